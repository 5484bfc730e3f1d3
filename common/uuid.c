/* RFC 4122 UUIDs: parse, format, v4 (CSPRNG), v5 (SHA-1) and the multi-event id derivation. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "astro/uuid.h"

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
astro_uuid_parse(const char *s, size_t len, struct astro_uuid *out)
{
    if (s == NULL || len != ASTRO_UUID_STR_LEN)
        return ASTRO_ERR;
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i++] != '-')
                return ASTRO_ERR;
            continue;
        }
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0)
            return ASTRO_ERR;
        out->b[k++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return ASTRO_OK;
}

void
astro_uuid_format(const struct astro_uuid *u, char out[ASTRO_UUID_STR_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u->b[i] >> 4];
        out[o++] = hex[u->b[i] & 0x0f];
    }
    out[o] = '\0';
}

static void
set_version(struct astro_uuid *u, uint8_t version)
{
    u->b[6] = (uint8_t)((u->b[6] & 0x0f) | (version << 4));
    u->b[8] = (uint8_t)((u->b[8] & 0x3f) | 0x80);
}

int
astro_uuid_v4(struct astro_uuid *out)
{
    if (RAND_bytes(out->b, sizeof(out->b)) != 1)
        return ASTRO_ERR;
    set_version(out, 4);
    return ASTRO_OK;
}

/* SHA-1 fetched once: with OpenSSL 3, EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) looks the
 * algorithm up in the provider store on every call, which was most of the cost of a derived id
 * (astro-leaflet derives one per match). The namespace of derived ids is parsed once too. The
 * fetched method lives for the process. */
static EVP_MD *sha1_md;
static struct astro_uuid derive_ns;
static bool derive_ns_ok;
static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;

static void
crypto_init(void)
{
    sha1_md = EVP_MD_fetch(NULL, "SHA1", NULL);
    derive_ns_ok = astro_uuid_parse(ASTRO_UUID_NAMESPACE, ASTRO_UUID_STR_LEN, &derive_ns) ==
                   ASTRO_OK;
}

/* RFC 4122 name-based UUIDs hash the namespace's 16 bytes, then the name. Returns a SHA-1
 * context with the namespace fed (free with EVP_MD_CTX_free() or v5_finish()), or NULL. */
static EVP_MD_CTX *
v5_start(const struct astro_uuid *ns)
{
    pthread_once(&crypto_once, crypto_init);
    if (sha1_md == NULL)
        return NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx != NULL && (EVP_DigestInit_ex2(ctx, sha1_md, NULL) != 1 ||
                        EVP_DigestUpdate(ctx, ns->b, sizeof(ns->b)) != 1)) {
        EVP_MD_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Finishes the digest into a version 5 UUID and frees ctx. */
static int
v5_finish(EVP_MD_CTX *ctx, struct astro_uuid *out)
{
    uint8_t digest[20];
    unsigned int dlen = 0;
    int ok = EVP_DigestFinal_ex(ctx, digest, &dlen) == 1 && dlen == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return ASTRO_ERR;
    memcpy(out->b, digest, 16);
    set_version(out, 5);
    return ASTRO_OK;
}

int
astro_uuid_v5(const struct astro_uuid *ns, const void *name, size_t len, struct astro_uuid *out)
{
    EVP_MD_CTX *ctx = v5_start(ns);
    if (ctx == NULL)
        return ASTRO_ERR;
    if (len > 0 && EVP_DigestUpdate(ctx, name, len) != 1) {
        EVP_MD_CTX_free(ctx);
        return ASTRO_ERR;
    }
    return v5_finish(ctx, out);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The name is hashed piecewise (namespace, rule, then "\n" + id for each sorted id), so no
 * joined string is ever built; the sort works on a stack copy of the id pointers for the usual
 * handful of sources (leaflet calls this once per match). */
int
astro_uuid_derive(const char *rule, const char *const *ids, size_t n, struct astro_uuid *out)
{
    pthread_once(&crypto_once, crypto_init);
    if (!derive_ns_ok)
        return ASTRO_ERR;
    const char *local[16];
    const char **sorted = n <= ASTRO_ARRAY_LEN(local) ? local : malloc(n * sizeof(*sorted));
    if (sorted == NULL)
        return ASTRO_ERR;
    if (n > 0) {
        memcpy(sorted, ids, n * sizeof(*sorted));
        qsort(sorted, n, sizeof(*sorted), cmp_str);
    }
    int rc = ASTRO_ERR;
    EVP_MD_CTX *ctx = v5_start(&derive_ns);
    if (ctx == NULL)
        goto done;
    bool fed = EVP_DigestUpdate(ctx, rule, strlen(rule)) == 1;
    for (size_t i = 0; fed && i < n; i++)
        fed = EVP_DigestUpdate(ctx, "\n", 1) == 1 &&
              EVP_DigestUpdate(ctx, sorted[i], strlen(sorted[i])) == 1;
    if (fed)
        rc = v5_finish(ctx, out);
    else
        EVP_MD_CTX_free(ctx);
done:
    if (sorted != local)
        free(sorted);
    return rc;
}

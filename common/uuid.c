/* RFC 4122 UUIDs: parse, format, v4 (CSPRNG), v5 (SHA-1) and the multi-event id derivation. */
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

/* Hashes the concatenation of parts; n_parts pieces of (ptr, len). */
static int
sha1_parts(const void *const *parts, const size_t *lens, size_t n_parts, uint8_t digest[20])
{
    int rc = ASTRO_ERR;
    unsigned int dlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1)
        goto done;
    for (size_t i = 0; i < n_parts; i++)
        if (lens[i] > 0 && EVP_DigestUpdate(ctx, parts[i], lens[i]) != 1)
            goto done;
    if (EVP_DigestFinal_ex(ctx, digest, &dlen) == 1 && dlen == 20)
        rc = ASTRO_OK;
done:
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* parts[0] must be the namespace's 16 bytes (RFC 4122 hashes namespace then name). */
static int
v5_from_parts(const void *const *parts, const size_t *lens, size_t n_parts,
              struct astro_uuid *out)
{
    uint8_t digest[20];
    if (sha1_parts(parts, lens, n_parts, digest) != ASTRO_OK)
        return ASTRO_ERR;
    memcpy(out->b, digest, 16);
    set_version(out, 5);
    return ASTRO_OK;
}

int
astro_uuid_v5(const struct astro_uuid *ns, const void *name, size_t len, struct astro_uuid *out)
{
    const void *parts[2] = {ns->b, name};
    size_t lens[2] = {sizeof(ns->b), len};
    return v5_from_parts(parts, lens, 2, out);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The name is hashed piecewise (namespace, rule, then "\n" + id for each sorted id), so no
 * joined string is ever built. */
int
astro_uuid_derive(const char *rule, const char *const *ids, size_t n, struct astro_uuid *out)
{
    struct astro_uuid ns;
    if (astro_uuid_parse(ASTRO_UUID_NAMESPACE, ASTRO_UUID_STR_LEN, &ns) != ASTRO_OK)
        return ASTRO_ERR;
    size_t n_parts = 2 + 2 * n;
    const char **sorted = malloc((n ? n : 1) * sizeof(*sorted));
    const void **parts = malloc(n_parts * sizeof(*parts));
    size_t *lens = malloc(n_parts * sizeof(*lens));
    int rc = ASTRO_ERR;
    if (sorted == NULL || parts == NULL || lens == NULL)
        goto done;
    if (n > 0)
        memcpy(sorted, ids, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_str);
    parts[0] = ns.b;
    lens[0] = sizeof(ns.b);
    parts[1] = rule;
    lens[1] = strlen(rule);
    for (size_t i = 0; i < n; i++) {
        parts[2 + 2 * i] = "\n";
        lens[2 + 2 * i] = 1;
        parts[3 + 2 * i] = sorted[i];
        lens[3 + 2 * i] = strlen(sorted[i]);
    }
    rc = v5_from_parts(parts, lens, n_parts, out);
done:
    free(sorted);
    free(parts);
    free(lens);
    return rc;
}

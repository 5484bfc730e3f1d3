/* API keys: hashing, scopes, the Redis record and the per-thread lookup cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "astro/apikey.h"
#include "astro/redis.h"

static const char *const scope_names[] = {"ingest", "read", "admin"};

static void
to_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}

int
astro_apikey_hash(const char *key, size_t len, char hex[ASTRO_APIKEY_HEX_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(key, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        hex[0] = '\0';
        return ASTRO_ERR;
    }
    to_hex(md, mdlen, hex);
    return ASTRO_OK;
}

void
astro_apikey_fingerprint(const char *hex, char fp[ASTRO_APIKEY_FP_LEN + 1])
{
    size_t n = strnlen(hex, ASTRO_APIKEY_FP_LEN);
    memcpy(fp, hex, n);
    fp[n] = '\0';
}

int
astro_apikey_check_format(const char *key, size_t len, char *err, size_t errlen)
{
    if (len < ASTRO_APIKEY_MIN_LEN || len > ASTRO_APIKEY_MAX_LEN)
        return astro_fail(err, errlen, "api_key: must be %d..%d characters",
                          ASTRO_APIKEY_MIN_LEN, ASTRO_APIKEY_MAX_LEN);
    for (size_t i = 0; i < len; i++)
        if (key[i] <= ' ' || key[i] > '~')
            return astro_fail(err, errlen, "api_key: only printable ASCII without spaces");
    return ASTRO_OK;
}

int
astro_apikey_redis_key(char *buf, size_t size, const char *hex)
{
    int n = snprintf(buf, size, ASTRO_APIKEY_PREFIX "%s", hex);
    if (n < 0 || (size_t)n >= size) {
        if (size > 0)
            buf[0] = '\0';
        return ASTRO_ERR;
    }
    return ASTRO_OK;
}

static int
scope_bit(const char *s, size_t len)
{
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(scope_names); i++)
        if (strlen(scope_names[i]) == len && memcmp(scope_names[i], s, len) == 0)
            return (int)(1u << i);
    return 0;
}

int
astro_apikey_scopes_parse(const char *s, unsigned *out, char *err, size_t errlen)
{
    unsigned mask = 0;
    *out = 0;
    if (s == NULL || s[0] == '\0')
        return astro_fail(err, errlen, "scopes: empty (use ingest, read, admin)");
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        int bit = scope_bit(p, len);
        if (bit == 0)
            return astro_fail(err, errlen, "scopes: unknown scope \"%.*s\" (use ingest, read, "
                              "admin)", (int)(len > 32 ? 32 : len), p);
        if (mask & (unsigned)bit)
            return astro_fail(err, errlen, "scopes: \"%.*s\" given twice", (int)len, p);
        mask |= (unsigned)bit;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    *out = mask;
    return ASTRO_OK;
}

void
astro_apikey_scopes_format(unsigned scopes, char *buf, size_t size)
{
    size_t used = 0;
    if (size == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(scope_names); i++) {
        if (!(scopes & (1u << i)))
            continue;
        int n = snprintf(buf + used, size - used, "%s%s", used ? "," : "", scope_names[i]);
        if (n < 0 || (size_t)n >= size - used)
            return;
        used += (size_t)n;
    }
}

/* Applies one field/value pair of the record to *out. */
static int
apply_field(const redisReply *f, const redisReply *v, struct astro_apikey_info *out,
            bool *has_name, char *err, size_t errlen)
{
    if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
        return astro_fail(err, errlen, "api key record: non-string field");
    if (strcmp(f->str, "name") == 0) {
        snprintf(out->name, sizeof(out->name), "%s", v->str);
        *has_name = true;
    } else if (strcmp(f->str, "scopes") == 0) {
        if (astro_apikey_scopes_parse(v->str, &out->scopes, err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
    } else if (strcmp(f->str, "created") == 0) {
        out->created = strtoll(v->str, NULL, 10);
    } else if (strcmp(f->str, "revoked") == 0) {
        out->revoked = true;
    }
    return ASTRO_OK;
}

int
astro_apikey_info_from_reply(const struct redisReply *r, struct astro_apikey_info *out,
                             char *err, size_t errlen)
{
    bool has_name = false;
    memset(out, 0, sizeof(*out));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
        return astro_fail(err, errlen, "api key record: unexpected reply");
    if (r->elements == 0)
        return ASTRO_OK;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (apply_field(r->element[i], r->element[i + 1], out, &has_name, err, errlen) !=
            ASTRO_OK)
            goto fail;
    if (!has_name || out->scopes == 0) {
        astro_fail(err, errlen, "api key record: missing name or scopes");
        goto fail;
    }
    out->found = true;
    return ASTRO_OK;
fail:
    memset(out, 0, sizeof(*out));
    return ASTRO_ERR;
}

int
astro_apikey_generate(char out[ASTRO_APIKEY_GEN_LEN + 1])
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return ASTRO_ERR;
    memcpy(out, "ak_", 3);
    to_hex(raw, sizeof(raw), out + 3);
    OPENSSL_cleanse(raw, sizeof(raw));
    return ASTRO_OK;
}

static int
reply_ok(redisReply *rep, const char *what, char *err, size_t errlen)
{
    if (rep->type == REDIS_REPLY_ERROR)
        return astro_fail(err, errlen, "%s: %s", what, rep->str);
    return ASTRO_OK;
}

int
astro_apikey_store(struct astro_redis *r, const char *key, const char *name, unsigned scopes,
                   bool only_if_missing, char *err, size_t errlen)
{
    char hex[ASTRO_APIKEY_HEX_LEN + 1], rkey[96], sc[32], created[24];
    if (astro_apikey_hash(key, strlen(key), hex) != ASTRO_OK ||
        astro_apikey_redis_key(rkey, sizeof(rkey), hex) != ASTRO_OK)
        return astro_fail(err, errlen, "api key: cannot hash");
    astro_apikey_scopes_format(scopes, sc, sizeof(sc));
    snprintf(created, sizeof(created), "%lld", (long long)time(NULL));
    /* One script, so the key is never seen (or left, by a crash between two commands) with a
     * name and no scopes, and a resend after a lost reply finds it complete. "Missing" means
     * no scopes field, so a key left partial by an older version is completed. */
    static const char script[] =
        "if ARGV[1] == '1' and redis.call('hexists', KEYS[1], 'scopes') == 1 then return 0 end\n"
        "redis.call('hset', KEYS[1], 'name', ARGV[2], 'scopes', ARGV[3], 'created', ARGV[4])\n"
        "return 1\n";
    const char *argv[] = {"EVAL", script, "1", rkey, only_if_missing ? "1" : "0", name, sc,
                          created};
    redisReply *rep = astro_redis_command(r, 8, argv, NULL, err, errlen);
    if (rep == NULL)
        return ASTRO_ERR;
    int rc = reply_ok(rep, "api key store", err, errlen);
    freeReplyObject(rep);
    return rc;
}

/* ---- cache ---- */

struct cache_slot {
    char hex[ASTRO_APIKEY_HEX_LEN + 1];
    uint64_t at_ms;
    struct astro_apikey_info info;
};

struct astro_apikey_cache {
    size_t cap;
    uint64_t ttl_ms;
    struct cache_slot *slots;
};

struct astro_apikey_cache *
astro_apikey_cache_new(size_t capacity, uint64_t ttl_ms)
{
    struct astro_apikey_cache *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->cap = capacity > 0 ? capacity : 1;
    c->ttl_ms = ttl_ms;
    c->slots = calloc(c->cap, sizeof(*c->slots));
    if (c->slots == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

void
astro_apikey_cache_free(struct astro_apikey_cache *c)
{
    if (c == NULL)
        return;
    free(c->slots);
    free(c);
}

/* The hash is uniformly random, so its first 8 hex digits index the table well. */
static struct cache_slot *
slot_of(struct astro_apikey_cache *c, const char *hex)
{
    char head[9];
    memcpy(head, hex, 8);
    head[8] = '\0';
    return &c->slots[strtoull(head, NULL, 16) % c->cap];
}

bool
astro_apikey_cache_get(struct astro_apikey_cache *c, const char *hex, uint64_t now_ms,
                       struct astro_apikey_info *out)
{
    if (c->ttl_ms == 0 || strlen(hex) != ASTRO_APIKEY_HEX_LEN)
        return false;
    struct cache_slot *s = slot_of(c, hex);
    if (s->hex[0] == '\0' || now_ms - s->at_ms >= c->ttl_ms)
        return false;
    if (CRYPTO_memcmp(s->hex, hex, ASTRO_APIKEY_HEX_LEN) != 0)
        return false;
    *out = s->info;
    return true;
}

void
astro_apikey_cache_put(struct astro_apikey_cache *c, const char *hex,
                       const struct astro_apikey_info *info, uint64_t now_ms)
{
    if (c->ttl_ms == 0 || strlen(hex) != ASTRO_APIKEY_HEX_LEN)
        return;
    struct cache_slot *s = slot_of(c, hex);
    memcpy(s->hex, hex, sizeof(s->hex));
    s->at_ms = now_ms;
    s->info = *info;
}

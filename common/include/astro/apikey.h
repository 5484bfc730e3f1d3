/* API keys: scopes, hashing, the Redis record and an in-process lookup cache.
 *
 * A key is a secret string handed to a producer once ("ak_" + 64 hex digits from the CSPRNG
 * when astro-admin creates it; any 16..256 printable bytes for a bootstrap key). Only its
 * SHA-256 (lowercase hex) is stored: the Redis hash `astro:apikey:<sha256 hex>` with fields
 * name, scopes ("ingest,read,admin"), created (epoch seconds) and, once revoked, revoked
 * (epoch seconds). A lookup is an HGETALL of that key, so the secret itself is never compared
 * byte by byte; the one comparison that does happen (a cache hit) uses CRYPTO_memcmp. Keys are
 * never logged: log astro_apikey_fingerprint() (the first 12 hex digits of the hash).
 *
 * The cache is per thread (not locked): each event-loop thread keeps its own. Entries, found or
 * not, live ttl_ms, so a revocation (or a new key) takes effect within that time. */
#ifndef ASTRO_APIKEY_H
#define ASTRO_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "astro/common.h"

struct redisReply;
struct astro_redis;

#define ASTRO_APIKEY_PREFIX "astro:apikey:"
#define ASTRO_APIKEY_HEX_LEN 64       /* SHA-256 in hex */
#define ASTRO_APIKEY_FP_LEN 12        /* fingerprint: first hex digits of the hash */
#define ASTRO_APIKEY_MIN_LEN 16       /* shortest accepted secret */
#define ASTRO_APIKEY_MAX_LEN 256      /* longest accepted secret */
#define ASTRO_APIKEY_NAME_MAX 64      /* key names: [A-Za-z0-9_.:-] */
#define ASTRO_APIKEY_GEN_LEN 67       /* "ak_" + 64 hex */

enum astro_scope {
    ASTRO_SCOPE_INGEST = 1u << 0,
    ASTRO_SCOPE_READ = 1u << 1,
    ASTRO_SCOPE_ADMIN = 1u << 2,
};
#define ASTRO_SCOPE_ALL (ASTRO_SCOPE_INGEST | ASTRO_SCOPE_READ | ASTRO_SCOPE_ADMIN)

/* What the Redis record says about a key. found is false for an unknown key. */
struct astro_apikey_info {
    bool found;
    bool revoked;
    unsigned scopes;
    int64_t created;
    char name[ASTRO_APIKEY_NAME_MAX + 1];
};

/* SHA-256 of key[0..len) as lowercase hex into hex (65 bytes with the NUL). ASTRO_ERR only if
 * libcrypto fails. */
int astro_apikey_hash(const char *key, size_t len, char hex[ASTRO_APIKEY_HEX_LEN + 1])
    ASTRO_MUST_CHECK;

/* The short form of a hash that logs and `astro-admin keys list` show (13 bytes with NUL). */
void astro_apikey_fingerprint(const char *hex, char fp[ASTRO_APIKEY_FP_LEN + 1]);

/* Checks the shape of a presented secret: ASTRO_MIN_LEN..MAX_LEN printable ASCII bytes.
 * Cheap check done before hashing, so junk never reaches Redis. */
int astro_apikey_check_format(const char *key, size_t len, char *err, size_t errlen)
    ASTRO_MUST_CHECK;

/* Writes "astro:apikey:<hex>" into buf. ASTRO_ERR if buf is too small. */
int astro_apikey_redis_key(char *buf, size_t size, const char *hex) ASTRO_MUST_CHECK;

/* Parses "ingest,read,admin" (any order, no duplicates, no empty items) into a scope mask. */
int astro_apikey_scopes_parse(const char *s, unsigned *out, char *err, size_t errlen)
    ASTRO_MUST_CHECK;

/* Writes the canonical "ingest,read,admin" form of scopes (only the bits set) into buf. */
void astro_apikey_scopes_format(unsigned scopes, char *buf, size_t size);

/* Fills *out from an HGETALL reply (borrowed). An empty array is an unknown key (found false);
 * a record without name or with bad scopes is an error (a corrupt record must not grant). */
int astro_apikey_info_from_reply(const struct redisReply *r, struct astro_apikey_info *out,
                                 char *err, size_t errlen) ASTRO_MUST_CHECK;

/* Generates a new secret ("ak_" + 64 hex digits from the CSPRNG) into out (68 bytes). */
int astro_apikey_generate(char out[ASTRO_APIKEY_GEN_LEN + 1]) ASTRO_MUST_CHECK;

/* Stores the record for key (hashed here; key borrowed and not kept) with name and scopes.
 * only_if_missing: leave an existing record alone (a bootstrap key revoked by an operator stays
 * revoked across restarts). Returns ASTRO_OK or ASTRO_ERR with the reason in err. */
int astro_apikey_store(struct astro_redis *r, const char *key, const char *name, unsigned scopes,
                       bool only_if_missing, char *err, size_t errlen) ASTRO_MUST_CHECK;

/* ---- per-thread lookup cache ---- */

struct astro_apikey_cache;

/* Returns a new cache of capacity slots (direct-mapped by the hash), entries kept ttl_ms
 * (0 disables caching), or NULL. Free with astro_apikey_cache_free(). Not thread-safe. */
struct astro_apikey_cache *astro_apikey_cache_new(size_t capacity, uint64_t ttl_ms)
    ASTRO_MUST_CHECK;
void astro_apikey_cache_free(struct astro_apikey_cache *c);

/* True and *out filled when hex is cached and younger than the TTL at now_ms. */
bool astro_apikey_cache_get(struct astro_apikey_cache *c, const char *hex, uint64_t now_ms,
                            struct astro_apikey_info *out);

/* Caches info for hex (both copied) as of now_ms, replacing whatever held the slot. */
void astro_apikey_cache_put(struct astro_apikey_cache *c, const char *hex,
                            const struct astro_apikey_info *info, uint64_t now_ms);

#endif

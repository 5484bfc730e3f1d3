/* Partitioning: the key hash (a wire contract, see partition.h), stream key names and the
 * recorded-P check that keeps a deployment from mixing partition counts. */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "astro/partition.h"

uint64_t
astro_partition_hash(const char *key, size_t len)
{
    uint64_t h = ASTRO_PARTITION_FNV_OFFSET;
    const unsigned char *p = (const unsigned char *)key;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= ASTRO_PARTITION_FNV_PRIME;
    }
    return h;
}

uint32_t
astro_partition_of(const char *key, size_t len, uint32_t nparts)
{
    if (nparts == 0)
        nparts = 1;
    return (uint32_t)(astro_partition_hash(key, len) % nparts);
}

int
astro_stream_key(char *buf, size_t size, const char *kind, uint32_t p)
{
    if (buf == NULL || size == 0)
        return ASTRO_ERR;
    buf[0] = '\0';
    if (kind == NULL ||
        (strcmp(kind, "mono") != 0 && strcmp(kind, "multi") != 0 && strcmp(kind, "agg") != 0))
        return ASTRO_ERR;
    if (p >= ASTRO_PARTITIONS_MAX)
        return ASTRO_ERR;
    int n = snprintf(buf, size, "astro:%s:{%" PRIu32 "}", kind, p);
    if (n < 0 || (size_t)n >= size) {
        buf[0] = '\0';
        return ASTRO_ERR;
    }
    return ASTRO_OK;
}

/* Frees a reply of c with its reader's own function: the connection may build replies in an
 * arena (astro_redis_options.arena_replies), which freeReplyObject() must not free. */
static void
reply_free(redisContext *c, redisReply *r)
{
    c->reader->fn->freeObject(r);
}

/* Runs one command and returns its reply (free with reply_free()), or NULL with the reason in
 * err. */
static redisReply *
run(redisContext *c, char *err, size_t errlen, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL) {
        astro_fail(err, errlen, "partitions: %s failed: %s", what,
                   c->errstr[0] ? c->errstr : "connection error");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        astro_fail(err, errlen, "partitions: %s failed: %s", what, r->str);
        reply_free(c, r);
        return NULL;
    }
    return r;
}

/* Parses the recorded value strictly: a decimal count in the valid range. */
static int
parse_recorded(const redisReply *r, uint32_t *out)
{
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 10)
        return ASTRO_ERR;
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(r->str, &end, 10);
    if (errno != 0 || *end != '\0' || r->str[0] < '0' || r->str[0] > '9')
        return ASTRO_ERR;
    if (v < ASTRO_PARTITIONS_MIN || v > ASTRO_PARTITIONS_MAX)
        return ASTRO_ERR;
    *out = (uint32_t)v;
    return ASTRO_OK;
}

int
astro_partition_check_recorded(struct redisContext *c, uint32_t nparts, char *err, size_t errlen)
{
    if (nparts < ASTRO_PARTITIONS_MIN || nparts > ASTRO_PARTITIONS_MAX)
        return astro_fail(err, errlen, "ASTRO_PARTITIONS=%" PRIu32 " is outside %d..%d", nparts,
                          ASTRO_PARTITIONS_MIN, ASTRO_PARTITIONS_MAX);
    /* SET NX first so two services starting together agree on whoever wrote first. */
    redisReply *r = run(c, err, errlen, "SET " ASTRO_PARTITION_META_KEY, "SET %s %u NX",
                        ASTRO_PARTITION_META_KEY, (unsigned)nparts);
    if (r == NULL)
        return ASTRO_ERR;
    reply_free(c, r);
    r = run(c, err, errlen, "GET " ASTRO_PARTITION_META_KEY, "GET %s", ASTRO_PARTITION_META_KEY);
    if (r == NULL)
        return ASTRO_ERR;
    uint32_t recorded = 0;
    int rc = parse_recorded(r, &recorded);
    if (rc != ASTRO_OK) {
        astro_fail(err, errlen,
                   "partitions: %s holds %s, not a partition count in %d..%d; fix or delete it",
                   ASTRO_PARTITION_META_KEY, r->type == REDIS_REPLY_STRING ? r->str : "no value",
                   ASTRO_PARTITIONS_MIN, ASTRO_PARTITIONS_MAX);
    } else if (recorded != nparts) {
        rc = astro_fail(err, errlen,
                        "ASTRO_PARTITIONS=%" PRIu32 " but this Redis was set up with %" PRIu32
                        " partitions; events would land in the wrong partitions. Set "
                        "ASTRO_PARTITIONS=%" PRIu32 " (changing P needs a re-partitioning "
                        "migration, not a restart)",
                        nparts, recorded, recorded);
    }
    reply_free(c, r);
    return rc;
}

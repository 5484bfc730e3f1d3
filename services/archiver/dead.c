/* Poison entries: an entry that cannot be decoded, or that PostgreSQL refused on its own
 * ASTRO_DEAD_AFTER times, is recorded in dead_events and on astro:dead, then acknowledged, so
 * it never blocks the stream. The order (PostgreSQL, XADD, XACK) means a crash in between
 * redelivers it: dead_events keeps one row, astro:dead may show it twice. */
#include <inttypes.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "archiver.h"
#include "astro/log.h"

static int
xadd_dead(struct arc_ctx *ctx, struct astro_redis *r, const char *stream, const char *entry_id,
          const char *reason, const char *attempts, const char *payload)
{
    const char *argv[] = {"XADD",   ARC_DEAD_STREAM, "MAXLEN", "~",      "1000000",
                          "*",      "reason",        reason,   "stream", stream,
                          "entry",  entry_id,        "attempts", attempts, "fields",
                          payload};
    redisReply *rep = arc_redis_cmd(ctx, r, (int)ASTRO_ARRAY_LEN(argv), argv, NULL);
    if (rep == NULL)
        return ASTRO_ERR;
    freeReplyObject(rep);
    return ASTRO_OK;
}

int
arc_dead_entry(struct arc_ctx *ctx, struct astro_redis *r, struct astro_pg *pg, int stream,
               const char *entry_id, const redisReply *fields, const char *reason,
               int64_t attempts)
{
    const char *key = ctx->streams[stream].key;
    char *payload = arc_fields_json(fields);
    char att[24], err[512];
    snprintf(att, sizeof(att), "%" PRId64, attempts);
    int rc = ASTRO_ERR;
    if (payload == NULL)
        goto done;
    if (arc_store_dead(pg, key, entry_id, reason, attempts, payload, err, sizeof(err)) !=
        ASTRO_OK) {
        astro_log_warn("dead entry %s %s: dead_events insert failed (kept pending): %s", key,
                       entry_id, err);
        goto done;
    }
    if (xadd_dead(ctx, r, key, entry_id, reason, att, payload) != ASTRO_OK ||
        arc_ack_one(ctx, r, stream, entry_id) != ASTRO_OK)
        goto done;
    astro_log_warn("dead entry %s %s after %s attempt(s): %s", key, entry_id, att, reason);
    rc = ASTRO_OK;
done:
    cJSON_free(payload);
    return rc;
}

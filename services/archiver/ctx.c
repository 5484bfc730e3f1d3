/* The service context: stream table, consumer name, start-up checks (recorded partition count,
 * consumer groups), metrics and the health callback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "archiver.h"
#include "astro/log.h"
#include "astro/metrics.h"
#include "astro/partition.h"
#include "astro/uuid.h"

static int
build_streams(struct arc_ctx *ctx, char *err, size_t errlen)
{
    static const struct {
        const char *key;
        enum arc_kind kind;
    } side[] = {{ARC_SESSIONS_STREAM, ARC_SESSION},
                {ARC_PREDICTIONS_STREAM, ARC_PREDICTION},
                {ARC_LATE_STREAM, ARC_LATE}};
    uint32_t p = (uint32_t)ctx->cfg->partitions;
    size_t nside = ASTRO_ARRAY_LEN(side);
    ctx->nstreams = 3 * (size_t)p + nside;
    ctx->streams = calloc(ctx->nstreams, sizeof(*ctx->streams));
    if (ctx->streams == NULL)
        return astro_fail(err, errlen, "out of memory");
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(side); i++) {
        struct arc_stream *s = &ctx->streams[2 * (size_t)p + i];
        snprintf(s->key, sizeof(s->key), "%s", side[i].key);
        s->kind = side[i].kind;
        snprintf(s->claim_cursor, sizeof(s->claim_cursor), "0-0");
    }
    static const char *const names[] = {[ARC_MONO] = "mono", [ARC_MULTI] = "multi",
                                        [ARC_CANDLE] = "agg"};
    for (uint32_t i = 0; i < 3 * p; i++) {
        struct arc_stream *s = &ctx->streams[i < 2 * p ? i : i + nside];
        s->kind = i < p ? ARC_MONO : i < 2 * p ? ARC_MULTI : ARC_CANDLE;
        s->partition = i % p;
        snprintf(s->claim_cursor, sizeof(s->claim_cursor), "0-0");
        if (astro_stream_key(s->key, sizeof(s->key), names[s->kind], s->partition) != ASTRO_OK)
            return astro_fail(err, errlen, "stream key of partition %u", s->partition);
    }
    return ASTRO_OK;
}

/* A unique consumer per process, so any number of archivers (even with one ASTRO_INSTANCE)
 * share the streams instead of reading each other's pending entries. */
static int
make_consumer(struct arc_ctx *ctx, char *err, size_t errlen)
{
    struct astro_uuid u;
    char s[ASTRO_UUID_STR_LEN + 1];
    if (astro_uuid_v4(&u) != ASTRO_OK)
        return astro_fail(err, errlen, "no randomness for the consumer name");
    astro_uuid_format(&u, s);
    snprintf(ctx->consumer, sizeof(ctx->consumer), "%s-%.8s",
             astro_service_instance(ctx->svc), s);
    return ASTRO_OK;
}

/* Start-up, on a short-lived connection: the deployment's P and the groups on every stream
 * (created at 0 so that an archiver deployed after the producers archives the history). */
static int
prepare_redis(struct arc_ctx *ctx, char *err, size_t errlen)
{
    struct astro_redis_options ro = {.connect_timeout_ms = 2000, .command_timeout_ms = 5000,
                                     .client_name = ctx->consumer, .max_attempts = 30,
                                     .deadline_ms = 30000, .backoff_initial_ms = 100,
                                     .backoff_max_ms = 2000};
    struct astro_redis *r = astro_redis_connect(ctx->cfg->svc.redis_url, &ro, err, errlen);
    if (r == NULL)
        return ASTRO_ERR;
    int rc = astro_partition_check_recorded(r->c, (uint32_t)ctx->cfg->partitions, err, errlen);
    for (size_t i = 0; rc == ASTRO_OK && i < ctx->nstreams; i++)
        rc = astro_redis_group_create(r, ctx->streams[i].key, ARC_GROUP, "0", err, errlen);
    astro_redis_free(r);
    return rc;
}

int
arc_ctx_init(struct arc_ctx *ctx, const struct arc_config *cfg, struct astro_service *svc,
             char *err, size_t errlen)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->cfg = cfg;
    ctx->svc = svc;
    if (arc_metrics_register(&ctx->m, astro_service_metrics(svc)) != ASTRO_OK)
        return astro_fail(err, errlen, "metrics registration failed");
    if (build_streams(ctx, err, errlen) != ASTRO_OK || make_consumer(ctx, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    return prepare_redis(ctx, err, errlen);
}

void
arc_ctx_cleanup(struct arc_ctx *ctx)
{
    free(ctx->streams);
    ctx->streams = NULL;
}

bool
arc_health(void *arg, struct cJSON *detail)
{
    const struct arc_ctx *ctx = arg;
    bool redis = atomic_load(&ctx->redis_ok), pg = atomic_load(&ctx->pg_ok);
    cJSON_AddStringToObject(detail, "redis", redis ? "ok" : "unavailable");
    cJSON_AddStringToObject(detail, "postgresql", pg ? "ok" : "unavailable");
    return redis && pg;
}

/* The ingest context: metrics, the start-up checks against Redis, one ing_loop per HTTP loop
 * with its Redis connections, the routes, health, and teardown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "astro/backoff.h"
#include "astro/http.h"
#include "astro/log.h"
#include "astro/loop.h"
#include "astro/metrics.h"
#include "astro/partition.h"
#include "astro/redis.h"
#include "astro/ws.h"
#include "ingest.h"

#define KEY_CACHE_SLOTS 1024
#define START_WAIT_MS 30000

static const char *const ws_extra[] = {"type", "seq"};

static int
register_metrics(struct ing_ctx *ctx, struct astro_metrics *r)
{
    struct ing_metrics *m = &ctx->m;
    char labels[64];
    m->accepted = astro_metrics_counter(r, "astro_ingest_events_accepted_total",
                                        "Events written to Redis", NULL);
    m->duplicates = astro_metrics_counter(r, "astro_ingest_duplicates_total",
                                          "Events acknowledged as duplicates", NULL);
    m->acks = astro_metrics_counter(r, "astro_ingest_acks_total",
                                    "Acks sent (WS ack frames and HTTP 202)", NULL);
    m->batches = astro_metrics_counter(r, "astro_ingest_batches_total",
                                       "Messages or requests sent to Redis", NULL);
    m->redis_errors = astro_metrics_counter(r, "astro_ingest_redis_errors_total",
                                            "Redis commands that failed", NULL);
    for (int i = 0; i < ING_R_COUNT; i++) {
        if (astro_metrics_labels(labels, sizeof(labels), "reason", ing_reason_code(i),
                                 (char *)NULL) != ASTRO_OK)
            return ASTRO_ERR;
        m->rejected[i] = astro_metrics_counter(r, "astro_ingest_rejected_total",
                                               "Refused messages and requests", labels);
        if (m->rejected[i] == NULL)
            return ASTRO_ERR;
    }
    m->sessions_started = astro_metrics_counter(r, "astro_ingest_sessions_started_total",
                                                "Edge sessions started", NULL);
    m->sessions_ended = astro_metrics_counter(r, "astro_ingest_sessions_ended_total",
                                              "Edge sessions ended", NULL);
    m->predictions = astro_metrics_counter(r, "astro_ingest_predictions_forwarded_total",
                                           "Prediction frames queued to edge connections", NULL);
    m->connections = astro_metrics_gauge(r, "astro_ingest_stream_connections",
                                         "Open /stream WebSockets", NULL);
    m->backpressure = astro_metrics_gauge(r, "astro_ingest_backpressure",
                                          "1 while new events are refused", NULL);
    m->backpressure_seconds = astro_metrics_gauge(r, "astro_ingest_backpressure_seconds",
                                                  "Total time spent in backpressure", NULL);
    size_t nb;
    const double *b = astro_metrics_default_buckets_seconds(&nb);
    m->redis_latency = astro_metrics_histogram(r, "astro_ingest_redis_latency_seconds",
                                               "Submit to last script reply of a batch", NULL,
                                               b, nb);
    bool ok = m->accepted && m->duplicates && m->acks && m->batches && m->redis_errors &&
              m->sessions_started && m->sessions_ended && m->predictions && m->connections &&
              m->backpressure && m->backpressure_seconds && m->redis_latency;
    return ok ? ASTRO_OK : ASTRO_ERR;
}

void
ing_reject(struct ing_ctx *ctx, enum ing_reason r)
{
    if (r < ING_R_COUNT)
        astro_counter_inc(ctx->m.rejected[r]);
}

int
ing_ctx_init(struct ing_ctx *ctx, const struct ing_config *cfg, struct astro_service *svc,
             char *err, size_t errlen)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->cfg = cfg;
    ctx->svc = svc;
    ctx->lim = astro_event_limits_default();
    ctx->lim.max_meta_bytes = (size_t)cfg->max_meta_bytes;
    ctx->lim.max_future_us = cfg->max_future_ms * 1000;
    ctx->lim.max_age_us = cfg->max_age_ms * 1000;
    ctx->ws_lim = ctx->lim;
    ctx->ws_lim.extra_fields = ws_extra;
    ctx->ws_lim.n_extra_fields = ASTRO_ARRAY_LEN(ws_extra);
    if (register_metrics(ctx, astro_service_metrics(svc)) != ASTRO_OK)
        return astro_fail(err, errlen, "cannot register metrics");
    return ASTRO_OK;
}

static int
load_script(struct astro_redis *r, char sha[41], char *err, size_t errlen)
{
    const char *argv[] = {"SCRIPT", "LOAD", ing_write_script};
    redisReply *rep = astro_redis_command(r, 3, argv, NULL, err, errlen);
    if (rep == NULL)
        return ASTRO_ERR;
    int rc = ASTRO_OK;
    if (rep->type != REDIS_REPLY_STRING || rep->len != 40)
        rc = astro_fail(err, errlen, "SCRIPT LOAD: %s",
                        rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
    else
        memcpy(sha, rep->str, 41);
    freeReplyObject(rep);
    return rc;
}

/* Start-up waits for Redis a while (containers start in any order), then gives up. */
static struct astro_redis *
connect_patiently(const char *url, char *err, size_t errlen)
{
    struct astro_redis_options o = {.client_name = "astro-ingest-init", .deadline_ms = 30000,
                                    .backoff_initial_ms = 100, .backoff_max_ms = 2000};
    struct astro_backoff b;
    uint64_t until = astro_backoff_now_ms() + START_WAIT_MS;
    astro_backoff_init(&b, 100, 2000, 0.2);
    for (;;) {
        struct astro_redis *r = astro_redis_connect(url, &o, err, errlen);
        if (r != NULL || astro_backoff_now_ms() >= until || strstr(err, "url") != NULL)
            return r;
        astro_log_warn("redis not reachable yet (%s); retrying", err);
        astro_backoff_sleep_ms(astro_backoff_next(&b));
    }
}

int
ing_ctx_prepare_redis(struct ing_ctx *ctx, char *err, size_t errlen)
{
    struct astro_redis *r = connect_patiently(ctx->cfg->svc.redis_url, err, errlen);
    int rc = ASTRO_ERR;
    if (r == NULL)
        return ASTRO_ERR;
    if (astro_partition_check_recorded(r->c, (uint32_t)ctx->cfg->partitions, err, errlen) !=
        ASTRO_OK)
        goto out;
    if (load_script(r, ctx->script_sha, err, errlen) != ASTRO_OK)
        goto out;
    const char *bk = ctx->cfg->bootstrap_key;
    if (bk != NULL && bk[0] != '\0') {
        if (astro_apikey_check_format(bk, strlen(bk), err, errlen) != ASTRO_OK ||
            astro_apikey_store(r, bk, "bootstrap", ASTRO_SCOPE_ALL, true, err, errlen) !=
                ASTRO_OK)
            goto out;
        char hex[ASTRO_APIKEY_HEX_LEN + 1], fp[ASTRO_APIKEY_FP_LEN + 1];
        if (astro_apikey_hash(bk, strlen(bk), hex) == ASTRO_OK) {
            astro_apikey_fingerprint(hex, fp);
            astro_log_info("bootstrap api key %s present", fp);
        }
    }
    rc = ASTRO_OK;
out:
    astro_redis_free(r);
    return rc;
}

static void
on_rw_connected(struct astro_redis_async *ra, void *arg)
{
    struct ing_loop *lp = arg;
    const char *argv[] = {"SCRIPT", "LOAD", ing_write_script};
    /* Redis may have restarted empty: load the script before the next batch needs it. */
    if (astro_redis_async_command(ra, NULL, NULL, 3, argv, NULL) != ASTRO_OK)
        astro_log_warn("loop %u: SCRIPT LOAD not sent", astro_loop_index(lp->loop));
}

static int
attach_loop(struct ing_ctx *ctx, struct ing_loop *lp, unsigned i, char *err, size_t errlen)
{
    char name[64];
    struct astro_http_server *http = astro_service_http(ctx->svc);
    lp->ctx = ctx;
    lp->loop = astro_http_server_loop(http, i);
    lp->base = astro_loop_base(lp->loop);
    lp->keys = astro_apikey_cache_new(KEY_CACHE_SLOTS, (uint64_t)ctx->cfg->key_cache_ms);
    if (lp->keys == NULL)
        return astro_fail(err, errlen, "out of memory");
    snprintf(name, sizeof(name), "astro-ingest-%s-w%u", astro_service_instance(ctx->svc), i);
    struct astro_redis_async_options o = {.client_name = name, .on_connected = on_rw_connected,
                                          .arg = lp};
    lp->rw = astro_redis_async_new(lp->base, ctx->cfg->svc.redis_url, &o, err, errlen);
    if (lp->rw == NULL)
        return ASTRO_ERR;
    /* The subscriber: no PING watchdog (hiredis 0.14 drops PONG in subscribe mode), TCP
     * keepalive instead (astro/redis.h). */
    snprintf(name, sizeof(name), "astro-ingest-%s-s%u", astro_service_instance(ctx->svc), i);
    struct astro_redis_async_options so = {.client_name = name, .subscriber = true,
                                           .ping_timeout_ms = 10000,
                                           .on_connected = ing_predict_on_connected, .arg = lp};
    lp->sub = astro_redis_async_new(lp->base, ctx->cfg->svc.redis_url, &so, err, errlen);
    return lp->sub != NULL ? ASTRO_OK : ASTRO_ERR;
}

int
ing_ctx_attach_loops(struct ing_ctx *ctx, char *err, size_t errlen)
{
    struct astro_http_server *http = astro_service_http(ctx->svc);
    ctx->nloops = astro_http_server_loop_count(http);
    ctx->loops = calloc(ctx->nloops, sizeof(*ctx->loops));
    if (ctx->loops == NULL)
        return astro_fail(err, errlen, "out of memory");
    for (unsigned i = 0; i < ctx->nloops; i++)
        if (attach_loop(ctx, &ctx->loops[i], i, err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
    return ASTRO_OK;
}

struct ing_loop *
ing_loop_of(struct ing_ctx *ctx, struct astro_loop *l)
{
    return &ctx->loops[astro_loop_index(l) % ctx->nloops];
}

int
ing_ctx_routes(struct ing_ctx *ctx, char *err, size_t errlen)
{
    struct astro_http_server *http = astro_service_http(ctx->svc);
    if (astro_http_server_route_ws(http, "/stream", &ing_stream_handlers, ctx, err, errlen) !=
        ASTRO_OK)
        return ASTRO_ERR;
    return astro_http_server_route(http, "POST", "/events", ing_http_events, ctx, err, errlen);
}

bool
ing_ctx_health(void *arg, cJSON *detail)
{
    struct ing_ctx *ctx = arg;
    bool ok = true;
    /* connected() reads a flag the loop thread writes; a stale answer only delays health. */
    for (unsigned i = 0; i < ctx->nloops; i++)
        ok = ok && astro_redis_async_connected(ctx->loops[i].rw);
    cJSON_AddStringToObject(detail, "redis", ok ? "ok" : "down");
    cJSON_AddStringToObject(detail, "backpressure",
                            atomic_load(&ctx->backpressure) ? "on" : "off");
    return ok;
}

void
ing_ctx_cleanup(struct ing_ctx *ctx)
{
    for (unsigned i = 0; ctx->loops != NULL && i < ctx->nloops; i++) {
        struct ing_loop *lp = &ctx->loops[i];
        astro_redis_async_free(lp->sub);
        astro_redis_async_free(lp->rw);
        ing_predict_cleanup(lp);
        astro_apikey_cache_free(lp->keys);
    }
    free(ctx->loops);
    ctx->loops = NULL;
}

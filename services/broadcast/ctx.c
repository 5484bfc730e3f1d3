/* The process context: metrics, one bc_loop per HTTP loop (async Redis connection and key
 * cache), routes, health and the SIGTERM drain. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "astro/http.h"
#include "astro/log.h"
#include "astro/loop.h"
#include "astro/metrics.h"
#include "astro/partition.h"
#include "astro/redis.h"
#include "broadcast.h"

#define C(field, name, help) (m->field = astro_metrics_counter(r, name, help, NULL)) == NULL

static int
register_metrics(struct bc_metrics *m, struct astro_metrics *r)
{
    size_t nb;
    const double *b = astro_metrics_default_buckets_seconds(&nb);
    if (C(events_read, "astro_broadcast_events_read_total", "Stream entries read") ||
        C(decode_errors, "astro_broadcast_decode_errors_total", "Entries that did not decode") ||
        C(redis_errors, "astro_broadcast_redis_errors_total", "Reader Redis errors") ||
        C(messages_out, "astro_broadcast_messages_out_total", "Messages queued to subscribers") ||
        C(bytes_out, "astro_broadcast_bytes_out_total", "Payload bytes queued to subscribers") ||
        C(slow_disconnects, "astro_broadcast_slow_disconnects_total",
          "Subscribers closed 1008 for a full outgoing queue") ||
        C(auth_failures, "astro_broadcast_auth_failures_total", "Refused or missing keys") ||
        C(backfilled, "astro_broadcast_backfilled_total", "Messages sent by since= resumes") ||
        C(predictions, "astro_broadcast_predictions_total", "Predictions stored and published") ||
        C(prediction_errors, "astro_broadcast_prediction_errors_total",
          "Predictions refused or not stored"))
        return ASTRO_ERR;
    m->subscribers = astro_metrics_gauge(r, "astro_broadcast_subscribers", "Open subscribers",
                                         NULL);
    m->fanout_latency = astro_metrics_histogram(
        r, "astro_broadcast_fanout_latency_seconds",
        "From the reader's XREAD reply to the frames queued on a loop", NULL, b, nb);
    return m->subscribers != NULL && m->fanout_latency != NULL ? ASTRO_OK : ASTRO_ERR;
}

int
bc_ctx_init(struct bc_ctx *ctx, const struct bc_config *cfg, struct astro_service *svc,
            char *err, size_t errlen)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->cfg = cfg;
    ctx->svc = svc;
    if (register_metrics(&ctx->m, astro_service_metrics(svc)) != ASTRO_OK)
        return astro_fail(err, errlen, "cannot register metrics");
    struct astro_redis *r = astro_redis_connect(cfg->svc.redis_url, NULL, err, errlen);
    if (r == NULL)
        return ASTRO_ERR;
    int rc = astro_partition_check_recorded(r->c, (uint32_t)cfg->partitions, err, errlen);
    astro_redis_free(r);
    return rc;
}

int
bc_ctx_attach_loops(struct bc_ctx *ctx, char *err, size_t errlen)
{
    struct astro_http_server *http = astro_service_http(ctx->svc);
    ctx->nloops = astro_http_server_loop_count(http);
    if ((ctx->loops = calloc(ctx->nloops, sizeof(*ctx->loops))) == NULL)
        return astro_fail(err, errlen, "out of memory");
    struct astro_redis_async_options o = {.client_name = "astro-broadcast"};
    for (unsigned i = 0; i < ctx->nloops; i++) {
        struct bc_loop *lp = &ctx->loops[i];
        lp->ctx = ctx;
        lp->loop = astro_http_server_loop(http, i);
        lp->rw = astro_redis_async_new(astro_loop_base(lp->loop), ctx->cfg->svc.redis_url, &o,
                                       err, errlen);
        lp->keys = astro_apikey_cache_new(1024, (uint64_t)ctx->cfg->key_cache_ms);
        if (lp->rw == NULL || lp->keys == NULL)
            return lp->rw == NULL ? ASTRO_ERR : astro_fail(err, errlen, "out of memory");
    }
    return ASTRO_OK;
}

struct bc_loop *
bc_loop_of(struct bc_ctx *ctx, struct astro_loop *l)
{
    return &ctx->loops[astro_loop_index(l) % ctx->nloops];
}

int
bc_ctx_routes(struct bc_ctx *ctx, char *err, size_t errlen)
{
    struct astro_http_server *http = astro_service_http(ctx->svc);
    if (astro_http_server_route_ws(http, "/stream/ws", &bc_stream_handlers, ctx, err, errlen) !=
            ASTRO_OK ||
        astro_http_server_route_ws(http, "/stream/ws/stats", &bc_stats_handlers, ctx, err,
                                   errlen) != ASTRO_OK)
        return ASTRO_ERR;
    return astro_http_server_route_ws(http, "/subscribe/{user_id}", &bc_user_handlers, ctx, err,
                                      errlen);
}

bool
bc_ctx_health(void *arg, cJSON *detail)
{
    struct bc_ctx *ctx = arg;
    bool ok = atomic_load(&ctx->reader_ok);
    for (unsigned i = 0; i < ctx->nloops; i++)
        ok = ok && astro_redis_async_connected(ctx->loops[i].rw);
    cJSON_AddStringToObject(detail, "redis", ok ? "ok" : "down");
    return ok;
}

void
bc_ctx_on_stop(void *arg)
{
    struct bc_ctx *ctx = arg;
    /* No batch may be posted once the loops stop: the reader ends first. */
    bc_reader_stop(ctx);
    astro_log_info("reader stopped; closing subscribers with 1001");
    astro_service_drained(ctx->svc);
}

void
bc_ctx_cleanup(struct bc_ctx *ctx)
{
    bc_reader_stop(ctx);
    for (unsigned i = 0; ctx->loops != NULL && i < ctx->nloops; i++) {
        astro_redis_async_free(ctx->loops[i].rw);
        astro_apikey_cache_free(ctx->loops[i].keys);
    }
    free(ctx->loops);
    ctx->loops = NULL;
}

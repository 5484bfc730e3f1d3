/* The civetweb server: one request handler that authenticates, dispatches on the decoded path
 * and records the request's metrics. civetweb's worker threads run the handlers; each has its
 * own connections (worker.c), so nothing here is shared but the atomics of the metrics. */
#include <stdio.h>
#include <string.h>

#include <civetweb.h>

#include "astro/log.h"
#include "astro/metrics.h"
#include "astro/time.h"
#include "query.h"

static bool
is_open_path(const struct qry_ctx *ctx, const char *path)
{
    if (strcmp(path, "/") == 0 || strcmp(path, "/openapi.json") == 0)
        return true; /* documentation carries no data */
    return ctx->cfg->open_health &&
           (strcmp(path, "/metrics") == 0 || strcmp(path, "/health") == 0 ||
            strncmp(path, "/health/", 8) == 0);
}

static void
dispatch(struct qry_ctx *ctx, struct mg_connection *c, const char *path, const char *qs)
{
    if (strcmp(path, "/") == 0)
        qry_reply_text(c, 200, "text/html; charset=utf-8", qry_index_html,
                       strlen(qry_index_html));
    else if (strcmp(path, "/openapi.json") == 0)
        qry_reply_text(c, 200, "application/json", qry_openapi_json, strlen(qry_openapi_json));
    else if (strcmp(path, "/metrics") == 0)
        qry_metrics_route(ctx, c);
    else if (strcmp(path, "/health") == 0 || strcmp(path, "/health/") == 0 ||
             strcmp(path, "/health/ready") == 0 || strcmp(path, "/health/redis") == 0 ||
             strcmp(path, "/health/database") == 0 || strcmp(path, "/health/full") == 0)
        qry_health_route(ctx, c, path);
    else if (strcmp(path, "/stats") == 0)
        qry_stats_route(ctx, c);
    else if (strncmp(path, "/events/", 8) == 0)
        qry_events_route(ctx, c, path, qs);
    else if (strncmp(path, "/buffer/", 8) == 0)
        qry_buffer_route(ctx, c, path, qs);
    else if (strncmp(path, "/candles/", 9) == 0)
        qry_candles_route(ctx, c, path, qs);
    else if (strncmp(path, "/indicators/", 12) == 0)
        qry_indicators_route(ctx, c, path, qs);
    else
        qry_reply_error(ctx, c, 404, "not_found", NULL, "no such endpoint");
}

static bool
authorized(struct qry_ctx *ctx, struct qry_worker *w, struct mg_connection *c)
{
    int64_t t0 = qry_mono_us();
    bool ok = qry_auth_check(ctx, c) == ASTRO_OK;
    qry_timing_add(w, QRY_ST_AUTH, t0);
    return ok;
}

static int
on_request(struct mg_connection *c, void *arg)
{
    struct qry_ctx *ctx = arg;
    const struct mg_request_info *ri = mg_get_request_info(c);
    struct qry_worker *w = qry_worker_of(c);
    int64_t t0 = qry_mono_us();
    qry_timing_begin(w);
    astro_counter_inc(ctx->m.requests);
    astro_gauge_add(ctx->m.in_flight, 1);
    const char *path = ri->local_uri != NULL ? ri->local_uri : "/";
    if (strcmp(ri->request_method, "GET") != 0) {
        qry_reply_error(ctx, c, 405, "method_not_allowed", NULL, "only GET is served");
    } else if (w == NULL) {
        qry_reply_error(ctx, c, 503, "internal", NULL, "worker not initialised");
    } else if (is_open_path(ctx, path) || !ctx->cfg->auth || authorized(ctx, w, c)) {
        dispatch(ctx, c, path, ri->query_string);
    }
    int64_t took = qry_mono_us() - t0;
    astro_gauge_add(ctx->m.in_flight, -1);
    astro_histogram_observe(ctx->m.latency, (double)took / 1e6);
    qry_timing_end(w, path, took);
    return 200;
}

static struct astro_counter *
error_counter(struct astro_metrics *m, const char *kind)
{
    char labels[64];
    if (astro_metrics_labels(labels, sizeof(labels), "kind", kind, (char *)NULL) != ASTRO_OK)
        return NULL;
    return astro_metrics_counter(m, "astro_query_errors_total",
                                 "Requests answered with an error, by kind", labels);
}

int
qry_metrics_init(struct qry_ctx *ctx)
{
    struct astro_metrics *m = ctx->metrics;
    size_t nb;
    const double *b = astro_metrics_default_buckets_seconds(&nb);
    struct qry_metrics *q = &ctx->m;
    q->requests = astro_metrics_counter(m, "astro_query_requests_total", "Requests served",
                                        NULL);
    q->in_flight = astro_metrics_gauge(m, "astro_query_requests_in_flight",
                                       "Requests being served", NULL);
    q->latency = astro_metrics_histogram(m, "astro_query_request_seconds",
                                         "Time to answer a request", NULL, b, nb);
    q->bad_request = error_counter(m, "bad_request");
    q->unauthorized = error_counter(m, "unauthorized");
    q->forbidden = error_counter(m, "forbidden");
    q->rate_limited = error_counter(m, "rate_limited");
    q->not_found = error_counter(m, "not_found");
    q->db_errors = error_counter(m, "database");
    q->redis_errors = error_counter(m, "redis");
    if (!q->requests || !q->in_flight || !q->latency || !q->bad_request || !q->unauthorized ||
        !q->forbidden || !q->rate_limited || !q->not_found || !q->db_errors || !q->redis_errors)
        return ASTRO_ERR;
    return ASTRO_OK;
}

int
qry_server_start(struct qry_ctx *ctx, char *err, size_t errlen)
{
    const struct qry_config *cfg = ctx->cfg;
    char ports[300], threads[16], timeout[24], maxreq[24];
    snprintf(ports, sizeof(ports), "%s:%lld", cfg->svc.http_bind, (long long)cfg->svc.http_port);
    snprintf(threads, sizeof(threads), "%lld", (long long)cfg->threads);
    snprintf(timeout, sizeof(timeout), "%lld", (long long)cfg->request_timeout_ms);
    snprintf(maxreq, sizeof(maxreq), "%lld", (long long)cfg->max_request_bytes);
    const char *opts[] = {"listening_ports", ports, "num_threads", threads,
                          "request_timeout_ms", timeout, "max_request_size", maxreq,
                          "enable_keep_alive", "yes", "keep_alive_timeout_ms", "30000",
                          "tcp_nodelay", "1", NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.init_thread = qry_worker_init;
    cb.exit_thread = qry_worker_exit;
    mg_init_library(0);
    ctx->mg = mg_start(&cb, ctx, opts);
    if (ctx->mg == NULL)
        return astro_fail(err, errlen, "cannot listen on %s", ports);
    mg_set_request_handler(ctx->mg, "/", on_request, ctx);
    struct mg_server_port sp[4];
    int n = mg_get_server_ports(ctx->mg, 4, sp);
    ctx->port = n > 0 ? sp[0].port : (int)cfg->svc.http_port;
    astro_log_info("listening on %s (port %d, %lld worker threads)", ports, ctx->port,
                   (long long)cfg->threads);
    return ASTRO_OK;
}

void
qry_server_stop(struct qry_ctx *ctx)
{
    if (ctx->mg == NULL)
        return;
    mg_stop(ctx->mg); /* returns once the workers finished their requests */
    ctx->mg = NULL;
    mg_exit_library();
}

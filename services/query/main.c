/* astro-query: configuration, the civetweb server, SIGTERM, teardown. */
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "astro/log.h"
#include "astro/metrics.h"
#include "astro/shutdown.h"
#include "query.h"

/* First SIGTERM: /health/ready turns 503 and the loop ends; main then stops civetweb, which
 * finishes the requests in flight before returning. */
static void
on_stop(void *arg)
{
    struct qry_ctx *ctx = arg;
    ctx->stopping = 1;
    astro_log_info("stopping: finishing requests in flight");
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct event_base *base = arg;
    event_base_loopbreak(base);
}

int
main(int argc, char **argv)
{
    struct qry_config cfg;
    struct qry_ctx ctx = {.cfg = &cfg};
    char err[512];
    int rc = 1;
    astro_service_config_load("astro-query", argc, argv, qry_cfg_vars, qry_cfg_nvars, &cfg,
                              &cfg.svc);
    struct event_base *base = event_base_new();
    struct astro_shutdown *sd = base ? astro_shutdown_new(base, cfg.svc.shutdown_ms, on_stop,
                                                          &ctx) : NULL;
    ctx.metrics = astro_metrics_new();
    if (sd == NULL || ctx.metrics == NULL ||
        astro_metrics_register_process(ctx.metrics, "astro-query", "1.0.0") != ASTRO_OK ||
        qry_metrics_init(&ctx) != ASTRO_OK) {
        astro_log_error("cannot initialise");
        goto out;
    }
    if (qry_server_start(&ctx, err, sizeof(err)) != ASTRO_OK) {
        astro_log_error("%s", err);
        goto out;
    }
    /* The loop only waits for the signal; a 100 ms tick notices the stop request. */
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, base);
    struct timeval tv = {0, 100000};
    event_add(tick, &tv);
    while (!ctx.stopping && astro_shutdown_state(sd) == ASTRO_SHUTDOWN_RUNNING)
        event_base_dispatch(base);
    event_free(tick);
    qry_server_stop(&ctx);
    astro_log_info("stopped");
    rc = 0;
out:
    qry_server_stop(&ctx);
    astro_shutdown_free(sd);
    astro_metrics_free(ctx.metrics);
    if (base != NULL)
        event_base_free(base);
    astro_cfg_free(qry_cfg_vars, qry_cfg_nvars, &cfg);
    return rc;
}

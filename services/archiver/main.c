/* astro-archiver: the whole life of the service. Configuration, the service skeleton, the
 * worker (archive pipeline) and housekeeper threads, the drain on SIGTERM, teardown. */
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "archiver.h"
#include "astro/log.h"

/* SIGTERM: the worker finishes and commits the batch in hand, acks it and stops reading; this
 * poll tells the service when it is done. */
static void
on_drain_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct arc_ctx *ctx = arg;
    if (atomic_load(&ctx->worker_done))
        astro_service_drained(ctx->svc);
}

static void
on_stop(void *arg)
{
    struct arc_ctx *ctx = arg;
    astro_log_info("stopping: finishing the batch in hand");
    atomic_store(&ctx->stop, true);
    struct timeval every = {0, 20000};
    ctx->drain_poll = event_new(astro_service_base(ctx->svc), -1, EV_PERSIST, on_drain_poll, ctx);
    if (ctx->drain_poll == NULL || event_add(ctx->drain_poll, &every) != 0)
        astro_service_drained(ctx->svc);
}

int
main(int argc, char **argv)
{
    static struct arc_config cfg;
    static struct arc_ctx ctx;
    char err[1024];
    size_t nvars;
    const struct astro_cfg_var *vars = arc_config_vars(&nvars);
    astro_service_config_load("astro-archiver", argc, argv, vars, nvars, &cfg, &cfg.svc);

    struct astro_service_opts opts = {.name = "astro-archiver", .cfg = &cfg.svc,
                                      .health = arc_health, .health_arg = &ctx,
                                      .on_stop = on_stop, .stop_arg = &ctx};
    struct astro_service *svc = astro_service_new(&opts, err, sizeof(err));
    int rc = 1;
    if (svc == NULL) {
        astro_log_error("start: %s", err);
        goto out;
    }
    if (arc_ctx_init(&ctx, &cfg, svc, err, sizeof(err)) != ASTRO_OK ||
        astro_service_start(svc, err, sizeof(err)) != ASTRO_OK ||
        arc_keeper_start(&ctx) != ASTRO_OK || arc_worker_start(&ctx) != ASTRO_OK) {
        astro_log_error("start: %s", err);
        atomic_store(&ctx.stop, true);
        atomic_store(&ctx.abort_now, true);
        arc_threads_join(&ctx);
        goto out;
    }
    rc = astro_service_run(svc);
    atomic_store(&ctx.stop, true);
    atomic_store(&ctx.abort_now, true); /* past the drain or the deadline: nothing to wait for */
    arc_threads_join(&ctx);
out:
    if (ctx.drain_poll != NULL)
        event_free(ctx.drain_poll);
    arc_ctx_cleanup(&ctx);
    astro_service_free(svc);
    astro_cfg_free(vars, nvars, &cfg);
    return rc;
}

/* astro-leaflet: the complex-event processor. Its whole life: configuration, the service
 * skeleton (HTTP /health and /metrics, signals), the context (rules, Redis), the worker thread,
 * then the drain on SIGTERM and teardown in reverse order. SIGHUP reloads the rules. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "astro/log.h"
#include "leaflet.h"

struct app {
    struct astro_service *svc;
    struct cep_ctx *ctx;
    struct event *drain_timer;
};

static bool
health(void *arg, cJSON *detail)
{
    struct app *a = arg;
    bool ok = a->ctx != NULL && atomic_load(&a->ctx->redis_ok);
    cJSON_AddStringToObject(detail, "redis", ok ? "ok" : "unavailable");
    return ok;
}

/* Polls the worker: once it has committed its last batch and released its leases, the drain is
 * complete. */
static void
on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct app *a = arg;
    (void)fd, (void)what;
    if (atomic_load(&a->ctx->done))
        astro_service_drained(a->svc);
}

static void
on_stop(void *arg)
{
    struct app *a = arg;
    struct timeval tv = {0, 20000};
    astro_log_info("stopping: finishing the current batch and releasing leases");
    atomic_store(&a->ctx->stop, true);
    event_add(a->drain_timer, &tv);
}

static void
on_sighup(evutil_socket_t fd, short what, void *arg)
{
    struct app *a = arg;
    (void)fd, (void)what;
    astro_log_info("SIGHUP: reloading rules");
    atomic_store(&a->ctx->reload, true);
}

int
main(int argc, char **argv)
{
    static struct cep_config cfg;
    struct app a = {0};
    struct event *hup = NULL;
    char err[512];
    int rc = 1;
    astro_service_config_load("astro-leaflet", argc, argv, cep_config_vars, cep_config_nvars,
                              &cfg, &cfg.svc);
    struct astro_service_opts opts = {.name = "astro-leaflet", .cfg = &cfg.svc,
                                      .health = health, .health_arg = &a,
                                      .on_stop = on_stop, .stop_arg = &a};
    if ((a.svc = astro_service_new(&opts, err, sizeof(err))) == NULL ||
        (a.ctx = cep_ctx_new(&cfg, a.svc, err, sizeof(err))) == NULL)
        goto out;
    if (cep_agg_metrics(a.ctx) != ASTRO_OK) {
        snprintf(err, sizeof(err), "cannot register the candle metrics");
        goto out;
    }
    struct event_base *base = astro_service_base(a.svc);
    a.drain_timer = event_new(base, -1, EV_PERSIST, on_drain_tick, &a);
    hup = evsignal_new(base, SIGHUP, on_sighup, &a);
    if (a.drain_timer == NULL || hup == NULL || event_add(hup, NULL) != 0) {
        snprintf(err, sizeof(err), "cannot set up the event loop");
        goto out;
    }
    if (astro_service_start(a.svc, err, sizeof(err)) != ASTRO_OK)
        goto out;
    if (cep_worker_start(a.ctx) != ASTRO_OK) {
        snprintf(err, sizeof(err), "cannot start the worker thread");
        goto out;
    }
    rc = astro_service_run(a.svc);
    err[0] = '\0';
out:
    if (rc != 0 && err[0])
        astro_log_error("%s", err);
    if (a.ctx != NULL)
        cep_worker_join(a.ctx);
    if (hup)
        event_free(hup);
    if (a.drain_timer)
        event_free(a.drain_timer);
    cep_ctx_free(a.ctx);
    astro_service_free(a.svc);
    astro_cfg_free(cep_config_vars, cep_config_nvars, &cfg);
    return rc;
}

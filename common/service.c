/* The shared daemon life: config bootstrap, metrics, /health and /metrics, graceful shutdown. */
#include <cjson/cJSON.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "astro/http.h"
#include "astro/metrics.h"
#include "astro/service.h"
#include "astro/shutdown.h"

struct astro_service {
    const char *name;
    const struct astro_service_config *cfg;
    astro_service_health_fn health;
    void *health_arg;
    void (*on_stop)(void *arg);
    void *stop_arg;
    struct event_base *base;
    struct astro_metrics *metrics;
    struct astro_http_server *http;
    struct astro_shutdown *shutdown;
    atomic_bool stopping;
    bool drained;
    time_t started;
};

static void
usage(FILE *out, const char *prog, const struct astro_cfg_var *vars, size_t n)
{
    fprintf(out, "usage: %s [--help]\n\nConfigured by environment variables:\n\n", prog);
    astro_cfg_help(out, vars, n);
}

/* Reads the log settings first, so that the warnings and errors of the full load are logged
 * with the right level and instance name. */
static void
init_logging(const char *prog)
{
    enum astro_log_level level = ASTRO_LOG_INFO;
    const char *lv = getenv("ASTRO_LOG_LEVEL");
    if (lv != NULL && astro_log_parse_level(lv, &level) != ASTRO_OK)
        level = ASTRO_LOG_INFO; /* the full load reports it */
    char inst[128];
    const char *env_inst = getenv("ASTRO_INSTANCE");
    if (env_inst != NULL && env_inst[0] != '\0') {
        snprintf(inst, sizeof(inst), "%s", env_inst);
    } else {
        char host[64] = "localhost";
        (void)gethostname(host, sizeof(host) - 1);
        snprintf(inst, sizeof(inst), "%s-%ld", host, (long)getpid());
    }
    astro_log_init(prog, inst, level);
}

void
astro_service_config_load(const char *prog, int argc, char **argv,
                          const struct astro_cfg_var *vars, size_t n, void *cfg,
                          struct astro_service_config *svc)
{
    init_logging(prog);
    if (argc > 1) {
        bool help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
        usage(help ? stdout : stderr, prog, vars, n);
        exit(help ? 0 : 2);
    }
    astro_cfg_main_load(prog, vars, n, cfg);
    if (svc->instance == NULL || svc->instance[0] == '\0') {
        char host[64] = "localhost", inst[128];
        (void)gethostname(host, sizeof(host) - 1);
        snprintf(inst, sizeof(inst), "%s-%ld", host, (long)getpid());
        free(svc->instance);
        svc->instance = strdup(inst);
        if (svc->instance == NULL) {
            fprintf(stderr, "%s: out of memory\n", prog);
            exit(1);
        }
    }
    astro_log_init(prog, svc->instance, svc->log_level);
    astro_cfg_log(vars, n, cfg);
}

static void
on_signal_stop(void *arg)
{
    struct astro_service *svc = arg;
    atomic_store(&svc->stopping, true);
    if (svc->on_stop != NULL)
        svc->on_stop(svc->stop_arg);
    else
        astro_service_drained(svc);
}

static int
make_http(struct astro_service *svc, char *err, size_t errlen)
{
    struct astro_http_server_opts o = {0};
    o.bind_addr = svc->cfg->http_bind;
    o.port = (uint16_t)svc->cfg->http_port;
    o.threads = (unsigned)svc->cfg->http_threads;
    astro_net_limits_from_config(&svc->cfg->net, &o.limits);
    if (astro_net_limits_check(&o.limits, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    o.metrics = svc->metrics;
    svc->http = astro_http_server_new(&o, err, errlen);
    return svc->http != NULL ? ASTRO_OK : ASTRO_ERR;
}

struct astro_service *
astro_service_new(const struct astro_service_opts *opts, char *err, size_t errlen)
{
    struct astro_service *svc = calloc(1, sizeof(*svc));
    if (svc == NULL) {
        astro_fail(err, errlen, "out of memory");
        return NULL;
    }
    svc->name = opts->name;
    svc->cfg = opts->cfg;
    svc->health = opts->health;
    svc->health_arg = opts->health_arg;
    svc->on_stop = opts->on_stop;
    svc->stop_arg = opts->stop_arg;
    svc->started = time(NULL);
    svc->base = event_base_new();
    svc->metrics = astro_metrics_new();
    if (svc->base == NULL || svc->metrics == NULL) {
        astro_fail(err, errlen, "out of memory");
        goto fail;
    }
    if (astro_metrics_register_process(svc->metrics, opts->name, ASTRO_VERSION) != ASTRO_OK) {
        astro_fail(err, errlen, "cannot register process metrics");
        goto fail;
    }
    if (make_http(svc, err, errlen) != ASTRO_OK)
        goto fail;
    svc->shutdown = astro_shutdown_new(svc->base, svc->cfg->shutdown_ms, on_signal_stop, svc);
    if (svc->shutdown == NULL) {
        astro_fail(err, errlen, "cannot install signal handlers");
        goto fail;
    }
    return svc;
fail:
    astro_service_free(svc);
    return NULL;
}

static void
on_health(struct astro_http_req *req, void *arg)
{
    struct astro_service *svc = arg;
    cJSON *root = cJSON_CreateObject();
    cJSON *checks = cJSON_AddObjectToObject(root, "checks");
    bool ok = svc->health == NULL || svc->health(svc->health_arg, checks);
    bool stopping = astro_service_stopping(svc);
    bool ready_route = strcmp(astro_http_req_path(req), "/health/ready") == 0;
    const char *status = stopping ? "stopping" : ok ? "ok" : "unhealthy";
    cJSON_AddStringToObject(root, "status", status);
    cJSON_AddStringToObject(root, "service", svc->name);
    cJSON_AddStringToObject(root, "instance", svc->cfg->instance);
    cJSON_AddStringToObject(root, "version", ASTRO_VERSION);
    cJSON_AddNumberToObject(root, "uptime_seconds", (double)(time(NULL) - svc->started));
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    /* /health/ is liveness with details (503 when a dependency is down); /health/ready is
     * readiness: also 503 while draining, so a load balancer stops sending work. */
    int code = ok && !(ready_route && stopping) ? 200 : 503;
    if (text == NULL) {
        astro_http_req_respond_error(req, 500, "out of memory");
        return;
    }
    astro_http_req_respond_json(req, code, text);
    free(text);
}

static void
on_metrics(struct astro_http_req *req, void *arg)
{
    struct astro_service *svc = arg;
    size_t len = 0;
    char *text = astro_metrics_render(svc->metrics, &len);
    if (text == NULL) {
        astro_http_req_respond_error(req, 500, "out of memory");
        return;
    }
    astro_http_req_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

int
astro_service_start(struct astro_service *svc, char *err, size_t errlen)
{
    static const char *const health_paths[] = {"/health", "/health/", "/health/ready"};
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(health_paths); i++)
        if (astro_http_server_route(svc->http, "GET", health_paths[i], on_health, svc, err,
                                    errlen) != ASTRO_OK)
            return ASTRO_ERR;
    if (astro_http_server_route(svc->http, "GET", "/metrics", on_metrics, svc, err, errlen) !=
        ASTRO_OK)
        return ASTRO_ERR;
    if (astro_http_server_start(svc->http, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    astro_log_info("listening on %s:%u", svc->cfg->http_bind,
                   (unsigned)astro_http_server_port(svc->http));
    return ASTRO_OK;
}

int
astro_service_run(struct astro_service *svc)
{
    event_base_dispatch(svc->base);
    enum astro_shutdown_state st = astro_shutdown_state(svc->shutdown);
    astro_http_server_shutdown(svc->http);
    if (svc->drained && st == ASTRO_SHUTDOWN_DRAINING) {
        astro_log_info("stopped cleanly");
        return 0;
    }
    astro_log_warn("stopped before the drain finished (%s)",
                   st == ASTRO_SHUTDOWN_FORCED ? "second signal" : "deadline");
    return 1;
}

void
astro_service_drained(struct astro_service *svc)
{
    svc->drained = true;
    event_base_loopbreak(svc->base);
}

bool
astro_service_stopping(const struct astro_service *svc)
{
    return atomic_load(&((struct astro_service *)svc)->stopping);
}

struct event_base *
astro_service_base(struct astro_service *svc)
{
    return svc->base;
}

struct astro_metrics *
astro_service_metrics(struct astro_service *svc)
{
    return svc->metrics;
}

struct astro_http_server *
astro_service_http(struct astro_service *svc)
{
    return svc->http;
}

const char *
astro_service_instance(const struct astro_service *svc)
{
    return svc->cfg->instance;
}

void
astro_service_free(struct astro_service *svc)
{
    if (svc == NULL)
        return;
    astro_http_server_free(svc->http);
    astro_shutdown_free(svc->shutdown);
    astro_metrics_free(svc->metrics);
    if (svc->base != NULL)
        event_base_free(svc->base);
    free(svc);
}

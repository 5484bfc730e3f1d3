/* The life every daemon shares: settings common to all (log level, instance name, HTTP port,
 * Redis URL, shutdown deadline), one metrics registry with the process metrics, an HTTP server
 * on the event-driven layer (astro/http.h) that serves /health, /health/ready and /metrics
 * beside the service's own routes, and graceful shutdown on SIGTERM/SIGINT.
 *
 * The main thread runs the service's main event_base (astro_service_base()); the HTTP server
 * runs its own loop threads (astro/loop.h). A service main reads like:
 *
 *     astro_service_config_load("astro-archiver", arc_vars, n, &cfg, &cfg.svc);
 *     svc = astro_service_new(&opts, err, sizeof(err));
 *     ... build the service on astro_service_base(svc), add routes ...
 *     astro_service_start(svc, err, sizeof(err));
 *     rc = astro_service_run(svc);        // until SIGTERM and the drain (or the deadline)
 *     ... free the service ...
 *     astro_service_free(svc);
 */
#ifndef ASTRO_SERVICE_H
#define ASTRO_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "astro/common.h"
#include "astro/config.h"
#include "astro/log.h"
#include "astro/net_limits.h"

struct cJSON;
struct event_base;
struct astro_metrics;
struct astro_http_server;
struct astro_service;

/* Settings every daemon has. Embed it in the service's config struct and splice
 * ASTRO_SERVICE_CFG_VARS(T, member, default_port) into its table. */
struct astro_service_config {
    enum astro_log_level log_level; /* ASTRO_LOG_LEVEL */
    char *instance;                 /* ASTRO_INSTANCE; empty -> "<hostname>-<pid>" */
    char *http_bind;                /* ASTRO_HTTP_BIND */
    int64_t http_port;              /* ASTRO_HTTP_PORT; 0 = ephemeral (tests) */
    int64_t http_threads;           /* ASTRO_HTTP_THREADS; 0 = one per core */
    char *redis_url;                /* ASTRO_REDIS_URL */
    int64_t shutdown_ms;            /* ASTRO_SHUTDOWN_TIMEOUT */
    struct astro_net_config net;    /* ASTRO_HTTP_*, ASTRO_WS_*, ASTRO_NET_* */
};

#define ASTRO_SERVICE_VAR_(name, type, def, min, max, T, m, field, flags, help)                 \
    {name, type, def, min, max, NULL, flags, offsetof(T, m.field), help}
#define ASTRO_SERVICE_CFG_VARS(T, m, default_port)                                              \
    ASTRO_SERVICE_VAR_("ASTRO_LOG_LEVEL", ASTRO_CFG_LOGLEVEL, "info", 0, 0, T, m, log_level, 0, \
                       "error, warn, info or debug"),                                           \
    ASTRO_SERVICE_VAR_("ASTRO_INSTANCE", ASTRO_CFG_STRING, "", 0, 0, T, m, instance, 0,         \
                       "Instance name in logs, metrics and consumer names (default host-pid)"), \
    ASTRO_SERVICE_VAR_("ASTRO_HTTP_BIND", ASTRO_CFG_STRING, "0.0.0.0", 0, 0, T, m, http_bind,   \
                       0, "Address the HTTP port listens on"),                                  \
    ASTRO_SERVICE_VAR_("ASTRO_HTTP_PORT", ASTRO_CFG_INT, default_port, 0, 65535, T, m,         \
                       http_port, 0, "HTTP port (health, metrics, service routes)"),            \
    ASTRO_SERVICE_VAR_("ASTRO_HTTP_THREADS", ASTRO_CFG_INT, "0", 0, 256, T, m, http_threads,   \
                       0, "HTTP event-loop threads (0 = one per core)"),                        \
    ASTRO_SERVICE_VAR_("ASTRO_REDIS_URL", ASTRO_CFG_STRING, "redis://127.0.0.1:6379/0", 0, 0,  \
                       T, m, redis_url, 0, "redis://[user:password@]host:port/db"),             \
    ASTRO_SERVICE_VAR_("ASTRO_SHUTDOWN_TIMEOUT", ASTRO_CFG_DURATION, "15s", 0, 600000, T, m,  \
                       shutdown_ms, 0, "Deadline to drain and exit after SIGTERM"),             \
    ASTRO_NET_CFG_VARS(T, m.net)

/* For a service main: initialises logging from ASTRO_LOG_LEVEL / ASTRO_INSTANCE, handles
 * --help (prints the table and exits 0) and any other argument (usage, exit 2), loads the table
 * (every bad variable reported, exit 2), fills an empty instance name and logs the effective
 * configuration. svc points at the embedded struct astro_service_config inside cfg. */
void astro_service_config_load(const char *prog, int argc, char **argv,
                               const struct astro_cfg_var *vars, size_t n, void *cfg,
                               struct astro_service_config *svc);

/* Health of the service's dependencies, called on an HTTP loop thread (so it must only read
 * thread-safe state: atomics, gauges). Adds its checks to detail ("redis": "ok", ...) and
 * returns true when the service can do its work. */
typedef bool (*astro_service_health_fn)(void *arg, struct cJSON *detail);

struct astro_service_opts {
    const char *name;                     /* "astro-archiver" (borrowed, static) */
    const struct astro_service_config *cfg; /* borrowed; must outlive the service */
    astro_service_health_fn health;       /* may be NULL (always healthy) */
    void *health_arg;
    /* First SIGTERM: stop intake and begin the drain; call astro_service_drained() when done
     * (or never, and the deadline ends the run). NULL: the run ends at once. Runs on the main
     * base's thread. */
    void (*on_stop)(void *arg);
    void *stop_arg;
};

/* Returns a new service (free with astro_service_free()) with its main event_base, metrics
 * registry (process metrics registered) and HTTP server (not started), or NULL with the reason
 * in err. opts->cfg must have been loaded. */
struct astro_service *astro_service_new(const struct astro_service_opts *opts, char *err,
                                        size_t errlen) ASTRO_MUST_CHECK;

/* The main event_base (owned by the service), the registry and the HTTP server (add routes
 * before astro_service_start()); all owned by the service. */
struct event_base *astro_service_base(struct astro_service *svc);
struct astro_metrics *astro_service_metrics(struct astro_service *svc);
struct astro_http_server *astro_service_http(struct astro_service *svc);
const char *astro_service_instance(const struct astro_service *svc);

/* Adds the /health, /health/, /health/ready and /metrics routes and starts the HTTP server. */
int astro_service_start(struct astro_service *svc, char *err, size_t errlen) ASTRO_MUST_CHECK;

/* Runs the main base until the drain is done, the deadline passes or a second signal comes;
 * then shuts the HTTP server down. Returns the process exit code: 0 after a clean drain, 1 when
 * the deadline or a second signal cut it short. */
int astro_service_run(struct astro_service *svc);

/* The drain is complete: astro_service_run() returns. Call on the main base's thread. */
void astro_service_drained(struct astro_service *svc);

/* True once SIGTERM/SIGINT was received (thread-safe). /health/ready answers 503 from then on. */
bool astro_service_stopping(const struct astro_service *svc);

/* Frees everything the service owns (after the caller freed what it attached to the base).
 * NULL is a no-op. */
void astro_service_free(struct astro_service *svc);

#endif

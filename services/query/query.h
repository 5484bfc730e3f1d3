/* astro-query: the REST API over the cold tier (PostgreSQL) and the hot tier (Redis recent
 * buffers), served by civetweb's thread pool with one PostgreSQL and one Redis connection per
 * worker thread (qry_worker). */
#ifndef ASTRO_QUERY_H
#define ASTRO_QUERY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "astro/common.h"
#include "astro/config.h"
#include "astro/event.h"
#include "astro/service.h"

struct mg_connection;
struct mg_context;
struct cJSON;

struct qry_config {
    struct astro_service_config svc;
    char *database_url;     /* ASTRO_DATABASE_URL */
    int64_t partitions;     /* ASTRO_PARTITIONS */
    bool auth;              /* ASTRO_QUERY_AUTH */
    bool open_health;       /* ASTRO_QUERY_OPEN_HEALTH: health + metrics need no key */
    int64_t rate_limit;     /* ASTRO_QUERY_RATE_LIMIT: requests per window per key, 0 = off */
    int64_t rate_window_ms; /* ASTRO_QUERY_RATE_WINDOW */
    int64_t threads;        /* ASTRO_QUERY_THREADS: civetweb workers */
    int64_t request_timeout_ms; /* ASTRO_QUERY_REQUEST_TIMEOUT: socket and statement timeout */
    int64_t max_request_bytes;  /* ASTRO_QUERY_MAX_REQUEST */
    int64_t buffer_max;     /* ASTRO_QUERY_BUFFER_MAX: entries read for /buffer/{key}/stats */
    int64_t key_cache_ms;   /* ASTRO_QUERY_KEY_CACHE_TTL */
    int64_t slow_log_ms;    /* ASTRO_QUERY_SLOW_LOG: log requests this slow, 0 = off */
};

extern const struct astro_cfg_var qry_cfg_vars[];
extern const size_t qry_cfg_nvars;

/* ---- parameters (params.c) ---------------------------------------------------------- */

enum qry_kind { QRY_MONO, QRY_MULTI };

#define QRY_LIMIT_DEFAULT 100
#define QRY_LIMIT_MAX 1000
#define QRY_OFFSET_MAX 100000
#define QRY_QUERY_MAX 4096 /* bytes of a query string */
#define QRY_VALUE_MAX 1024 /* decoded bytes of one value (24 indicator names and commas) */

/* Which filters are present; also selects the prepared statement. */
enum {
    QRY_F_START = 1u << 0,
    QRY_F_END = 1u << 1,
    QRY_F_SOURCE = 1u << 2, /* source_stream (mono) */
    QRY_F_TYPE = 1u << 3,   /* event_type (mono) */
    QRY_F_KEY = 1u << 4,
    QRY_F_CURSOR = 1u << 5,
    QRY_F_RULE = 1u << 6,   /* correlation_rule (multi) */
    QRY_F_CONF = 1u << 7,   /* min_confidence (multi) */
};

struct qry_filter {
    unsigned present;
    int64_t start_us, end_us; /* [start, end) */
    char source[ASTRO_EVENT_NAME_MAX + 1];
    char type[ASTRO_EVENT_NAME_MAX + 1];
    char rule[ASTRO_EVENT_NAME_MAX + 1];
    char key[257];
    double min_conf;
    int64_t limit, offset;
    int64_t cur_ts_us;
    char cur_id[ASTRO_EVENT_ID_MAX + 1];
};

/* A 400 answer: the parameter at fault and why. */
struct qry_error {
    char param[40];
    char msg[240];
};

/* Fills e (param, then the printf-style message) and returns ASTRO_ERR (params.c). */
int qry_error_set(struct qry_error *e, const char *param, const char *fmt, ...) ASTRO_PRINTF(3, 4);

/* A parameter an endpoint takes, and the filter bit it sets (0: none). */
struct qry_param_def {
    const char *name;
    unsigned bit;
};

/* Called for each parameter with its definition and percent-decoded value; fills e and returns
 * ASTRO_ERR to refuse it. */
typedef int (*qry_param_fn)(void *arg, const struct qry_param_def *def, const char *value,
                            struct qry_error *e);

/* Walks the raw query string qs (NULL = empty) of an endpoint taking defs ({NULL, 0}-ended):
 * splits it on '&', percent-decodes names and values and calls fn for each parameter. Refused
 * with the parameter in e: a string over QRY_QUERY_MAX bytes, an empty item (stray '&'), a name
 * not in defs, a repeat, a missing value, bad percent-encoding or UTF-8 (params.c). */
int qry_query_walk(const char *qs, const struct qry_param_def *defs, qry_param_fn fn, void *arg,
                   struct qry_error *e) ASTRO_MUST_CHECK;

/* What a query string may hold, per endpoint. */
enum qry_endpoint { QRY_EP_MONO, QRY_EP_MULTI, QRY_EP_STATS, QRY_EP_NONE };

/* Parses the raw (percent-encoded) query string qs (NULL = empty) for endpoint ep into *f
 * (caller's storage, fully overwritten). Every parameter is checked: unknown or repeated
 * names, bad percent-encoding or UTF-8, values out of range. Returns ASTRO_OK, or ASTRO_ERR
 * with the parameter and a reason in *e. */
int qry_params_parse(enum qry_endpoint ep, const char *qs, struct qry_filter *f,
                     struct qry_error *e) ASTRO_MUST_CHECK;

/* Parses a time parameter: RFC 3339 or integer epoch milliseconds. */
int qry_parse_time(const char *s, int64_t *us, char *err, size_t errlen) ASTRO_MUST_CHECK;

/* Decodes percent-encoding ('+' is a space) of src[0..n) into out (size bytes). Refuses a
 * malformed escape, an encoded NUL and output that is not UTF-8. */
int qry_url_decode(const char *src, size_t n, char *out, size_t size, char *err,
                   size_t errlen) ASTRO_MUST_CHECK;

/* ---- candles and indicators (agg_params.c, candles.c) -------------------------------- */

#define QRY_AGG_TF_DEFAULT "1m"
#define QRY_AGG_NAMES_MAX 24 /* = ASTRO_AGG_IND_MAX: the indicators one candle can carry */
#define QRY_AGG_NAME_MAX 32  /* = ASTRO_AGG_IND_NAME_MAX */

enum qry_agg_endpoint { QRY_EP_CANDLES, QRY_EP_INDICATORS };

/* Which optional filters are present; also selects the prepared statement. */
enum {
    QRY_A_TYPE = 1u << 0,
    QRY_A_START = 1u << 1,
    QRY_A_END = 1u << 2,
    QRY_A_NAMES = 1u << 3, /* indicators only */
};

struct qry_agg_filter {
    unsigned present;
    char tf[16];   /* the timeframe label as given (default QRY_AGG_TF_DEFAULT) */
    int64_t tf_us; /* its span */
    char type[ASTRO_EVENT_NAME_MAX + 1];
    int64_t start_us, end_us; /* [start, end) on bucket_start */
    int64_t limit;            /* candles or buckets, 1..QRY_LIMIT_MAX */
    size_t n_names;
    char names[QRY_AGG_NAMES_MAX][QRY_AGG_NAME_MAX + 1];
};

/* Parses the raw query string qs (NULL = empty) of /candles/{key} or /indicators/{key} into *f
 * (caller's storage, fully overwritten): timeframe, type, start_time, end_time, limit, and for
 * indicators names (comma-separated, each a name astro-leaflet can emit, no repeats, at most
 * QRY_AGG_NAMES_MAX). ASTRO_ERR with the parameter and a reason in *e. */
int qry_agg_params_parse(enum qry_agg_endpoint ep, const char *qs, struct qry_agg_filter *f,
                         struct qry_error *e) ASTRO_MUST_CHECK;

/* Whether s is an indicator name of the contract: sma_<n>, ema_<n>, rsi_<n>,
 * macd[_signal|_hist]_<f>_<s>_<g>, bb_(upper|middle|lower)_<n>_<k> (periods 1..9999 without
 * leading zeros, k a decimal as written in the rules, e.g. 2 or 2.5). */
bool qry_indicator_name_valid(const char *s);

/* ---- keyset cursor (cursor.c) ------------------------------------------------------- */

#define QRY_CURSOR_VERSION 1
#define QRY_CURSOR_MAX 128 /* encoded length bound, with the NUL */

/* Writes the opaque cursor for the row (ts_us, id) into out (QRY_CURSOR_MAX bytes):
 * base64url without padding of version byte, ts (int64 big-endian), id length, id. */
int qry_cursor_encode(int64_t ts_us, const char *id, char out[QRY_CURSOR_MAX]) ASTRO_MUST_CHECK;

/* Strictly decodes a cursor made by qry_cursor_encode(): alphabet, canonical length and
 * trailing bits, version, time range and id syntax. id gets ASTRO_EVENT_ID_MAX + 1 bytes. */
int qry_cursor_decode(const char *s, size_t len, int64_t *ts_us, char *id, char *err,
                      size_t errlen) ASTRO_MUST_CHECK;

/* ---- the server ----------------------------------------------------------------------- */

struct qry_metrics {
    struct astro_counter *requests, *bad_request, *unauthorized, *forbidden, *rate_limited,
        *not_found, *db_errors, *redis_errors;
    struct astro_gauge *in_flight;
    struct astro_histogram *latency;
};

struct qry_ctx {
    const struct qry_config *cfg;
    struct astro_metrics *metrics;
    struct qry_metrics m;
    struct mg_context *mg;
    int port;          /* the bound port (ASTRO_HTTP_PORT may be 0) */
    atomic_int stopping; /* set on SIGTERM (main thread), read by workers */
};

/* Per worker thread state (worker.c): lazily connected, reconnected with bounded backoff.
 * qry_worker_init/exit are civetweb's init_thread/exit_thread callbacks: the state is created
 * for request workers only and freed when the thread ends. qry_worker_of() returns the calling
 * worker's state (NULL on a thread without one). The connections and cache returned below are
 * owned by the worker and used only on its thread; NULL with the reason in err when the
 * dependency cannot be reached now. */
struct qry_worker;
struct astro_apikey_cache;
struct astro_pg;
struct astro_redis;
struct qry_worker *qry_worker_of(struct mg_connection *conn);
struct astro_pg *qry_worker_pg(struct qry_worker *w, char *err, size_t errlen);
struct astro_redis *qry_worker_redis(struct qry_worker *w, char *err, size_t errlen);
struct astro_apikey_cache *qry_worker_keys(struct qry_worker *w);
/* Whether prepared-statement slot exists on the worker's current PostgreSQL connection (all
 * are forgotten when the connection is re-made). */
bool qry_worker_prepared(struct qry_worker *w, unsigned slot);
void qry_worker_set_prepared(struct qry_worker *w, unsigned slot);
void *qry_worker_init(const struct mg_context *mg, int thread_type);

/* Per-request stage times (timing.c), kept in the worker so a slow request can be logged with
 * where its time went. qry_timing_begin() starts a request; qry_timing_add() charges the time
 * since t0 (from qry_mono_us()) to a stage; qry_timing_end() logs the request at warn level
 * when it took ASTRO_QUERY_SLOW_LOG or more (0 = never). All are no-ops when w is NULL. */
enum qry_stage { QRY_ST_AUTH, QRY_ST_PREPARE, QRY_ST_DB, QRY_ST_RENDER, QRY_ST_WRITE, QRY_ST_N };
struct qry_timing {
    int64_t stage_us[QRY_ST_N];
};
struct qry_timing *qry_worker_timing(struct qry_worker *w);
const struct qry_config *qry_worker_config(const struct qry_worker *w);
int64_t qry_mono_us(void);
void qry_timing_begin(struct qry_worker *w);
void qry_timing_add(struct qry_worker *w, enum qry_stage st, int64_t t0);
void qry_timing_end(struct qry_worker *w, const char *path, int64_t total_us);
void qry_worker_exit(const struct mg_context *mg, int thread_type, void *p);

/* A JSON text writer (jsonw.c) for pages rendered straight from libpq's text: one buffer with
 * QRY_JW_HEAD bytes kept in front for the HTTP head. Members are written in order; `first`
 * tracks whether a separator is due. An allocation failure marks oom and drops later writes
 * (qry_reply_jw then answers 500). The buffer is owned by the writer: qry_jw_cleanup(). */
#define QRY_JW_HEAD 192
struct qry_jw {
    char *buf;
    size_t len, cap;
    bool oom, first;
};
void qry_jw_init(struct qry_jw *w, size_t hint);
void qry_jw_cleanup(struct qry_jw *w);
void qry_jw_raw(struct qry_jw *w, const char *s, size_t n);
void qry_jw_lit(struct qry_jw *w, const char *s);
void qry_jw_str(struct qry_jw *w, const char *s); /* quoted, escaped */
/* key NULL: an array element. bracket '{' / '[' and the matching close. */
void qry_jw_open(struct qry_jw *w, const char *key, char bracket);
void qry_jw_close(struct qry_jw *w, char bracket);
void qry_jw_key(struct qry_jw *w, const char *key);
void qry_jw_kstr(struct qry_jw *w, const char *key, const char *s); /* s NULL: null */
void qry_jw_kraw(struct qry_jw *w, const char *key, const char *json);
void qry_jw_kint(struct qry_jw *w, const char *key, long long v);
/* A float8 as PostgreSQL prints it (shortest round-trip text): as is when it is a JSON
 * number, null otherwise (NaN, infinities). */
void qry_jw_knum(struct qry_jw *w, const char *key, const char *pg_text);
/* Whether s is a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
bool qry_is_json_number(const char *s);

/* Responses (reply.c). qry_reply_json takes ownership of body (freed here). */
void qry_reply_json(struct mg_connection *c, int status, struct cJSON *body);
void qry_reply_text(struct mg_connection *c, int status, const char *ctype, const char *body,
                    size_t len);
void qry_reply_error(struct qry_ctx *ctx, struct mg_connection *c, int status, const char *code,
                     const char *param, const char *msg);
void qry_reply_bad(struct qry_ctx *ctx, struct mg_connection *c, const struct qry_error *e);
/* Sends the writer's text as a JSON body, the head written into the room in front of it (one
 * write, no copy of the body); 500 if the writer ran out of memory. Cleans w up. */
void qry_reply_jw(struct mg_connection *c, int status, struct qry_jw *w);
/* Adds a PostgreSQL float8 text as a JSON number (copied as is: PostgreSQL prints the
 * shortest round-trip text), or null for NaN / infinities / anything not a JSON number. */
void qry_json_add_pg_number(struct cJSON *o, const char *name, const char *text);

/* Auth (auth.c): checks the API key (read scope) and the key's rate limit. ASTRO_OK when the
 * request may proceed; otherwise the 401/403/429/503 answer was sent. */
int qry_auth_check(struct qry_ctx *ctx, struct mg_connection *c) ASTRO_MUST_CHECK;

/* Route handlers (server.c dispatches on the decoded path; qs is the raw query string). Each
 * sends exactly one response. */
void qry_events_route(struct qry_ctx *ctx, struct mg_connection *c, const char *path,
                      const char *qs);
void qry_events_stats(struct qry_ctx *ctx, struct mg_connection *c, const char *qs);
void qry_buffer_route(struct qry_ctx *ctx, struct mg_connection *c, const char *path,
                      const char *qs);
void qry_health_route(struct qry_ctx *ctx, struct mg_connection *c, const char *path);
void qry_metrics_route(struct qry_ctx *ctx, struct mg_connection *c);
void qry_stats_route(struct qry_ctx *ctx, struct mg_connection *c);
/* /candles/{key} and /indicators/{key} (candles.c; path is the decoded path). */
void qry_candles_route(struct qry_ctx *ctx, struct mg_connection *c, const char *path,
                       const char *qs);
void qry_indicators_route(struct qry_ctx *ctx, struct mg_connection *c, const char *path,
                          const char *qs);

/* Health probes, also used by /stats: add to obj, return true when healthy. */
bool qry_probe_redis(struct qry_worker *w, struct cJSON *obj);
bool qry_probe_pg(struct qry_worker *w, struct cJSON *obj);
void qry_probe_streams(struct qry_ctx *ctx, struct qry_worker *w, struct cJSON *obj);

/* Starts civetweb with the routes; ASTRO_ERR with the reason. qry_server_stop waits for the
 * requests in flight. */
int qry_server_start(struct qry_ctx *ctx, char *err, size_t errlen) ASTRO_MUST_CHECK;
void qry_server_stop(struct qry_ctx *ctx);
int qry_metrics_init(struct qry_ctx *ctx) ASTRO_MUST_CHECK;

/* The OpenAPI 3 document and the HTML API page (openapi.c), static text. */
extern const char qry_openapi_json[];
extern const char qry_index_html[];

#endif

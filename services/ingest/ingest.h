/* astro-ingest: the WebSocket (/stream) and HTTP (POST /events) front door for producers and
 * edge devices. See docs/ingest.md.
 *
 * Threads: the HTTP layer runs N loop threads; each loop has an ing_loop with its own Redis
 * write connection, subscriber connection and API-key cache, so a request or a WebSocket never
 * leaves its loop. The main thread runs the backpressure poller and the shutdown drain. State
 * shared across threads (backpressure, stopping, metrics) is atomic. */
#ifndef ING_INGEST_H
#define ING_INGEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "astro/apikey.h"
#include "astro/event.h"
#include "astro/service.h"

struct event;
struct event_base;
struct astro_loop;
struct astro_metrics;
struct astro_redis_async;
struct astro_ws_conn;
struct astro_http_req;

struct ing_config {
    struct astro_service_config svc;
    int64_t partitions;
    int64_t dedup_ms;
    int64_t recent_max;
    char *bootstrap_key;
    int64_t auth_timeout_ms;
    int64_t key_cache_ms;
    int64_t bp_high, bp_low, bp_poll_ms, bp_retry_ms;
    int64_t max_items;
    int64_t max_meta_bytes;
    int64_t max_future_ms, max_age_ms;
};

extern const struct astro_cfg_var ing_config_vars[];
extern const size_t ing_config_nvars;

/* Relations between settings the table cannot express. */
int ing_config_check(const struct ing_config *cfg, char *err, size_t errlen) ASTRO_MUST_CHECK;

/* Reasons a message or request is refused: the WS error codes, plus auth and scope. */
enum ing_reason {
    ING_R_INVALID_JSON,
    ING_R_INVALID_EVENT,
    ING_R_UNKNOWN_TYPE,
    ING_R_NOT_AUTHENTICATED,
    ING_R_ALREADY_AUTHENTICATED,
    ING_R_BACKPRESSURE,
    ING_R_UNAVAILABLE,
    ING_R_TOO_MANY_ITEMS,
    ING_R_BAD_KEY,
    ING_R_SCOPE,
    ING_R_AUTH_TIMEOUT,
    ING_R_COUNT
};
const char *ing_reason_code(enum ing_reason r);

struct ing_metrics {
    struct astro_counter *accepted, *duplicates, *acks, *batches, *redis_errors;
    struct astro_counter *rejected[ING_R_COUNT];
    struct astro_counter *sessions_started, *sessions_ended, *predictions;
    struct astro_gauge *connections, *backpressure, *backpressure_seconds;
    struct astro_histogram *redis_latency;
};

struct ing_loop;

/* Process-wide context: read-only after start except the atomics. */
struct ing_ctx {
    const struct ing_config *cfg;
    struct astro_service *svc;
    struct astro_event_limits lim;    /* HTTP items */
    struct astro_event_limits ws_lim; /* WS messages: "type" and "seq" allowed */
    struct ing_metrics m;
    char script_sha[41];
    atomic_bool backpressure;
    atomic_bool stopping;
    atomic_uint loops_drained;
    struct ing_loop *loops;
    unsigned nloops;
    struct ing_bp *bp;
    struct event *drain_timer;
};

struct ing_conn;
struct ing_user;

/* Per loop thread; touched only on that thread (after start). */
struct ing_loop {
    struct ing_ctx *ctx;
    struct astro_loop *loop;
    struct event_base *base;
    struct astro_redis_async *rw;  /* script calls, key lookups, sessions */
    struct astro_redis_async *sub; /* SUBSCRIBE astro:edge:<user> */
    struct astro_apikey_cache *keys;
    unsigned inflight;             /* batches, lookups and session writes awaiting Redis */
    struct ing_conn *conns;        /* every open /stream connection */
    struct ing_user *users;        /* authenticated users with a subscription */
    bool draining, closed_all, reported;
};

/* ---- context (ctx.c) ---- */

/* Fills ctx (caller's storage) and registers the metrics. */
int ing_ctx_init(struct ing_ctx *ctx, const struct ing_config *cfg, struct astro_service *svc,
                 char *err, size_t errlen) ASTRO_MUST_CHECK;
/* Connects once synchronously: partition check, bootstrap key, script load. */
int ing_ctx_prepare_redis(struct ing_ctx *ctx, char *err, size_t errlen) ASTRO_MUST_CHECK;
/* Creates one ing_loop per HTTP loop, with its Redis connections (before the server starts). */
int ing_ctx_attach_loops(struct ing_ctx *ctx, char *err, size_t errlen) ASTRO_MUST_CHECK;
/* Adds /stream and POST /events. */
int ing_ctx_routes(struct ing_ctx *ctx, char *err, size_t errlen) ASTRO_MUST_CHECK;
/* After the loops stopped: frees the loops' state. */
void ing_ctx_cleanup(struct ing_ctx *ctx);
/* Health: Redis write connections and backpressure. */
bool ing_ctx_health(void *arg, struct cJSON *detail);
struct ing_loop *ing_loop_of(struct ing_ctx *ctx, struct astro_loop *l);
void ing_reject(struct ing_ctx *ctx, enum ing_reason r);

/* ---- the write path (write.c) ---- */

/* One atomic script call per partition group of a batch (at most ING_GROUP_MAX events): the
 * dedup check against the partition's time buckets, the stream entries, the dedup markers and
 * the recent-buffer entries of one group run without any other command in between; the calls
 * are pipelined and done runs once on the loop thread after every reply. */
#define ING_GROUP_MAX 128
/* The dedup window is covered by this many time buckets (sets) per partition, plus the
 * current one: a repeated id is a duplicate when first written less than the window ago, and
 * may still be one up to window / ING_DEDUP_BUCKETS later. */
#define ING_DEDUP_BUCKETS 2
struct ing_batch;
typedef void (*ing_batch_done_fn)(struct ing_batch *b, void *arg);
struct ing_batch {
    struct ing_loop *lp;
    struct astro_event *ev; /* n events, owned */
    bool *dup;              /* per event: already written within the dedup window */
    size_t n, pending;
    bool failed;
    uint64_t t0_ns;
    ing_batch_done_fn done;
    void *arg;
};

extern const char ing_write_script[];

struct ing_text {
    char *buf;
    size_t len, cap;
    bool oom;
};
/* The command of one script call (write_args.c), in the Redis protocol: EVALSHA (EVAL with
 * the body when eval_body) sha numkeys KEYS... ARGV... for the events ev[idx[0..n)] of
 * partition p, in that order. Fills *cmd (caller frees cmd->buf) or returns ASTRO_ERR. */
int ing_call_cmd_build(struct ing_text *cmd, const struct ing_ctx *ctx, uint32_t p,
                       const struct astro_event *ev, const size_t *idx, size_t n,
                       bool eval_body) ASTRO_MUST_CHECK;

/* Takes ownership of ev (n events, malloc'ed array). Returns NULL on allocation failure (ev is
 * then freed). */
struct ing_batch *ing_batch_new(struct ing_loop *lp, struct astro_event *ev, size_t n);
/* Sends every script call pipelined. ASTRO_ERR when nothing could be sent (Redis down): done
 * is not called and the caller still owns b. */
int ing_batch_submit(struct ing_batch *b, ing_batch_done_fn done, void *arg) ASTRO_MUST_CHECK;
void ing_batch_free(struct ing_batch *b);
/* Appends {"event_ids":[...],"duplicates":[...]} members to obj. */
int ing_batch_ids_json(const struct ing_batch *b, struct cJSON *obj) ASTRO_MUST_CHECK;

/* ---- event text (event_text.c) ---- */

/* Makes room for n more bytes and a NUL; false (and t->oom) on allocation failure. */
bool ing_text_grow(struct ing_text *t, size_t n);
/* Appends n bytes of s, NUL-terminated; on allocation failure sets t->oom and ignores later
 * appends. Inline: the write path calls it several times per field. */
static inline void
ing_text_put(struct ing_text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap && !ing_text_grow(t, n))
        return;
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}
/* Appends s as a JSON string with the escapes cJSON uses (UTF-8 passes through). */
void ing_text_put_json_string(struct ing_text *t, const char *s);
/* The event's wire JSON, byte for byte what cJSON_PrintUnformatted(astro_event_to_json(ev))
 * gives for a mono event, built without a cJSON tree. value_text: the value already formatted
 * by astro_event_format_double (the stream encoder's), or NULL. Returns a malloc'ed string or
 * NULL. */
char *ing_event_json(const struct astro_event *ev, const char *value_text);
/* Same, appended to t (not terminated by a NUL of its own beyond the builder's). */
int ing_event_json_put(struct ing_text *t, const struct astro_event *ev,
                       const char *value_text) ASTRO_MUST_CHECK;
/* Fills a v4 UUID (one CSPRNG call for all) into every event flagged ASTRO_EVENT_ASSIGN_ID and
 * clears the flag. */
int ing_assign_ids(struct astro_event *ev, size_t n) ASTRO_MUST_CHECK;

/* ---- messages (msg.c): pure parsing and validation, no I/O ---- */

enum ing_msg_kind { ING_MSG_AUTH, ING_MSG_EVENT, ING_MSG_EVENTS, ING_MSG_FEATURES, ING_MSG_RAW };

struct ing_parse_opts {
    const struct astro_event_limits *lim;
    size_t max_items;
    int64_t now_us;
    const char *default_key; /* key of events without one (the WS user_id; "" for HTTP) */
};

struct ing_parsed {
    enum ing_msg_kind kind;
    bool has_seq;
    double seq;
    struct astro_event *ev; /* n events (owned; ing_parsed_cleanup) */
    size_t n;
    enum ing_reason reason; /* on failure */
    char message[256];
    struct cJSON *items;    /* on failure: [{"index","field","reason"}] or NULL */
    struct cJSON *root;     /* the parsed message (auth reads it) */
};

/* Parses one WS text message. ASTRO_OK with events (none for auth), or ASTRO_ERR with reason,
 * message and, for batches, items; has_seq/seq are set whenever the envelope had a valid seq. */
int ing_msg_parse_ws(const char *buf, size_t len, const struct ing_parse_opts *o,
                     struct ing_parsed *out) ASTRO_MUST_CHECK;
/* Parses a POST /events body: one object, an array, or NDJSON. */
int ing_msg_parse_http(const char *buf, size_t len, const struct ing_parse_opts *o,
                       struct ing_parsed *out) ASTRO_MUST_CHECK;
/* Validates the auth message's fields; fills user_id (copied) and dev_json (malloc'ed compact
 * device_info or NULL). api_key points into p->root. */
int ing_msg_auth(const struct ing_parsed *p, const char **api_key, char *user_id,
                 size_t user_len, char **dev_json, char *err, size_t errlen) ASTRO_MUST_CHECK;
void ing_parsed_cleanup(struct ing_parsed *p);
/* {"type":"error","code","message","seq"?,"items"?} as a malloc'ed string. */
char *ing_msg_error_json(enum ing_reason r, const char *message, const struct ing_parsed *p,
                         int64_t retry_after_ms);

/* ---- auth (auth.c) ---- */

/* Looks up the key (cache, then HGETALL); done gets the record, or found=false and
 * unavailable=true when Redis did not answer. Runs done synchronously on a cache hit. Returns
 * ASTRO_ERR (done not called) when Redis is down. */
typedef void (*ing_auth_done_fn)(struct ing_loop *lp, const struct astro_apikey_info *info,
                                 bool unavailable, void *arg);
int ing_auth_lookup(struct ing_loop *lp, const char *key, ing_auth_done_fn done, void *arg)
    ASTRO_MUST_CHECK;

/* ---- WebSocket /stream (stream.c), HTTP POST /events (http_events.c) ---- */

extern const struct astro_ws_handlers ing_stream_handlers;
void ing_http_events(struct astro_http_req *req, void *arg);
/* Drain step on a loop: close every stream 1001 once nothing is in flight. */
void ing_stream_close_all(struct ing_loop *lp);

/* ---- sessions (session.c) ---- */

typedef void (*ing_session_done_fn)(struct ing_loop *lp, bool ok, void *arg);
int ing_session_start(struct ing_loop *lp, const char *sid, const char *user, const char *dev,
                      ing_session_done_fn done, void *arg) ASTRO_MUST_CHECK;
void ing_session_end(struct ing_loop *lp, const char *sid, const char *user);

/* ---- predictions (predict.c) ---- */

int ing_predict_add(struct ing_loop *lp, struct ing_conn *c, const char *user) ASTRO_MUST_CHECK;
void ing_predict_remove(struct ing_loop *lp, struct ing_conn *c);
void ing_predict_on_connected(struct astro_redis_async *ra, void *arg);
void ing_predict_cleanup(struct ing_loop *lp);

/* ---- backpressure (backpressure.c) and drain (drain.c), on the main thread ---- */

struct ing_bp *ing_bp_start(struct ing_ctx *ctx, struct event_base *base, char *err,
                            size_t errlen) ASTRO_MUST_CHECK;
void ing_bp_free(struct ing_bp *bp);
/* Pure hysteresis step: the new state for value v. */
bool ing_bp_next(bool on, long long v, long long high, long long low);

void ing_drain_start(void *arg); /* the service's on_stop */
/* A loop finished in-flight work: checks whether it is fully drained. Loop thread. */
void ing_drain_check(struct ing_loop *lp);

uint64_t ing_now_ns(void);

/* One /stream connection. Reference-counted: Redis callbacks in flight hold a reference, so a
 * reply for a closed connection finds ws == NULL instead of freed memory. */
enum ing_conn_state { ING_C_AUTH_WAIT, ING_C_AUTHING, ING_C_READY };
struct ing_conn {
    unsigned refs;
    struct ing_loop *lp;
    struct astro_ws_conn *ws; /* NULL once closed */
    enum ing_conn_state state;
    char user[ASTRO_EVENT_ID_MAX * 4 + 1];
    char sid[40];
    char fp[ASTRO_APIKEY_NAME_MAX + 1]; /* the key's name, for logs */
    char *dev_json;
    char *query_key;
    struct event *auth_timer;
    bool session_open;
    struct ing_conn *prev, *next; /* lp->conns */
    struct ing_user *uent;        /* subscription entry, once READY */
    struct ing_conn *unext;       /* next connection of the same user */
};

void ing_conn_ref(struct ing_conn *c);
void ing_conn_unref(struct ing_conn *c);

#endif

/* astro-broadcast: live WebSocket fan-out of the mono and multi streams (docs/broadcast.md).
 *
 * Threads: one reader thread owns the only stream read path (a synchronous Redis connection
 * doing XREAD BLOCK over astro:mono:{0..P-1} and astro:multi:{0..P-1}); it decodes each entry,
 * encodes it once to JSON with its position token, frames it once and posts a reference-counted
 * batch to every HTTP loop. Each loop keeps its own subscriber index and its own async Redis
 * connection (key lookups, resume backfills, predictions), so a subscriber never leaves its
 * loop. The reader also builds the once-a-second stats message. */
#ifndef BC_BROADCAST_H
#define BC_BROADCAST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "astro/agg.h"
#include "astro/apikey.h"
#include "astro/event.h"
#include "astro/service.h"

struct event;
struct event_base;
struct astro_loop;
struct astro_ws_conn;
struct astro_ws_msg;
struct astro_redis_async;
struct astro_event;
struct redisReply;

#define BC_MAX_PARTITIONS 64 /* ASTRO_PARTITIONS above this is refused */
#define BC_BUCKETS 1024
/* Stream kinds; the streams of partition p are slots BC_KINDS * p + kind. */
#define BC_KIND_MONO 0
#define BC_KIND_MULTI 1
#define BC_KIND_CANDLE 2 /* astro:agg:{p}: closed candles (issue 9) */
#define BC_KINDS 3
#define BC_SLOTS (BC_KINDS * BC_MAX_PARTITIONS)

struct bc_config {
    struct astro_service_config svc;
    int64_t partitions;
    int64_t block_ms;
    int64_t read_count;
    int64_t auth_timeout_ms;
    int64_t key_cache_ms;
    int64_t backfill_max;
};

extern const struct astro_cfg_var bc_config_vars[];
extern const size_t bc_config_nvars;

/* ---- position tokens (token.c): pure ---- */

/* A stream entry id. */
struct bc_id {
    uint64_t ms, seq;
};

/* The last id seen on every stream: slot BC_KINDS * p + kind. */
struct bc_pos {
    uint32_t parts;
    struct bc_id id[BC_SLOTS];
};

static inline uint32_t
bc_slot(uint32_t part, int kind)
{
    return BC_KINDS * part + (uint32_t)kind;
}

/* Parses "ms-seq" (len bytes, no terminator needed). */
int bc_id_parse(const char *s, size_t len, struct bc_id *out) ASTRO_MUST_CHECK;
/* -1, 0, 1 like strcmp. */
int bc_id_cmp(struct bc_id a, struct bc_id b);
/* Writes the opaque base64url token of pos into out; returns its length (0 when out is too
 * small). A token is about 3 + 8 bytes per stream before base64. */
size_t bc_token_encode(const struct bc_pos *pos, char *out, size_t size);
/* Decodes a token made for a deployment with parts partitions. ASTRO_ERR with a reason for
 * bad base64, a wrong version, a partition count that differs or trailing bytes. */
int bc_token_decode(const char *tok, uint32_t parts, struct bc_pos *out, char *err,
                    size_t errlen) ASTRO_MUST_CHECK;

/* ---- subscriber filters (filter.c): pure ---- */

enum bc_route { BC_ROUTE_STREAM, BC_ROUTE_STATS, BC_ROUTE_USER };

/* NULL strings match anything. Strings owned by the filter (bc_filter_cleanup()). */
struct bc_filter {
    bool mono, multi, candles;
    char *src, *key, *type, *rule;
    char *tf; /* candles: timeframe label */
    char *api_key;  /* from the query, if any */
    bool has_since;
    bool drop_oldest;
    struct bc_pos since;
};

/* One query parameter (borrowed). */
struct bc_param {
    const char *name, *value;
};

/* Builds a filter from the upgrade's query parameters for route (user: the /subscribe path's
 * user id, else NULL). Unknown or repeated parameters, bad values and a malformed since= are
 * refused with a reason naming the parameter. */
int bc_filter_parse(enum bc_route route, const char *user, const struct bc_param *params,
                    size_t n, uint32_t parts, struct bc_filter *f, char *err,
                    size_t errlen) ASTRO_MUST_CHECK;
void bc_filter_cleanup(struct bc_filter *f);

/* What a filter is checked against: borrowed from the event. */
struct bc_item {
    struct astro_ws_msg *msg; /* framed once, shared */
    int kind;                 /* BC_KIND_* */
    uint32_t part;
    struct bc_id id;
    char *src, *key, *type, *rule; /* rule NULL for mono; src and rule NULL for candles */
    char *tf;                      /* candles only */
};

/* Whether f takes items of a stream kind at all (BC_KIND_*). */
bool bc_filter_wants_kind(const struct bc_filter *f, int kind);
bool bc_filter_match(const struct bc_filter *f, const struct bc_item *it);

/* ---- the process ---- */

struct bc_metrics {
    struct astro_counter *events_read, *decode_errors, *redis_errors, *messages_out, *bytes_out;
    struct astro_counter *slow_disconnects, *auth_failures, *backfilled, *predictions;
    struct astro_counter *prediction_errors;
    struct astro_gauge *subscribers;
    struct astro_histogram *fanout_latency;
};

struct bc_loop;

struct bc_ctx {
    const struct bc_config *cfg;
    struct astro_service *svc;
    struct bc_metrics m;
    struct bc_loop *loops;
    unsigned nloops;
    pthread_t reader;
    bool reader_started;
    atomic_bool stop;
    atomic_bool reader_ok;
};

/* A batch the reader posts to every loop (reference counted across threads). */
struct bc_batch {
    atomic_uint refs;
    uint64_t t0_ns;          /* when the reader got the entries (fan-out latency) */
    struct astro_ws_msg *stats; /* a stats message instead of items, or NULL */
    size_t n;
    struct bc_item items[];
};

void bc_batch_unref(struct bc_batch *b);

struct bc_sub;

/* Per loop; touched only on its thread once started. */
struct bc_loop {
    struct bc_ctx *ctx;
    struct astro_loop *loop;
    struct astro_redis_async *rw;
    struct astro_apikey_cache *keys;
    struct bc_sub *subs;  /* every open subscriber */
    /* The index of authenticated event subscribers: by key filter (hash buckets), or in
     * `unkeyed` when they take every key; an event visits only its key's bucket and the
     * unkeyed list. */
    struct bc_sub *unkeyed;
    struct bc_sub *buckets[BC_BUCKETS];
};

/* ctx.c */
int bc_ctx_init(struct bc_ctx *ctx, const struct bc_config *cfg, struct astro_service *svc,
                char *err, size_t errlen) ASTRO_MUST_CHECK;
int bc_ctx_attach_loops(struct bc_ctx *ctx, char *err, size_t errlen) ASTRO_MUST_CHECK;
int bc_ctx_routes(struct bc_ctx *ctx, char *err, size_t errlen) ASTRO_MUST_CHECK;
bool bc_ctx_health(void *arg, struct cJSON *detail);
/* SIGTERM: stops the reader, then reports the drain (the HTTP layer closes 1001). */
void bc_ctx_on_stop(void *arg);
/* After astro_service_run(): stops the reader if needed and frees the loops' state. */
void bc_ctx_cleanup(struct bc_ctx *ctx);
struct bc_loop *bc_loop_of(struct bc_ctx *ctx, struct astro_loop *l);

/* reader.c: starts/stops the reader thread. */
int bc_reader_start(struct bc_ctx *ctx, char *err, size_t errlen) ASTRO_MUST_CHECK;
void bc_reader_stop(struct bc_ctx *ctx);

/* entry.c: one stream entry as the reader and a resume backfill see it. */
struct bc_entry {
    int kind;
    struct astro_event ev;  /* mono, multi */
    struct astro_candle c;  /* candles */
};
/* The stream key of a slot ("astro:mono:{3}", "astro:multi:{3}", "astro:agg:{3}"). */
int bc_slot_stream(uint32_t slot, char *out, size_t size) ASTRO_MUST_CHECK;
/* Decodes the field/value array of an entry on a stream of the given kind. ASTRO_ERR with a
 * reason for an entry that does not decode (e is then clean). */
int bc_entry_decode(int kind, const struct redisReply *fields, struct bc_entry *e, char *err,
                    size_t errlen) ASTRO_MUST_CHECK;
/* The strings filters look at, borrowed from e (view) or moved out of it (take: the item then
 * owns them; bc_batch_unref frees them). */
void bc_entry_view(const struct bc_entry *e, struct bc_item *it);
void bc_entry_take(struct bc_entry *e, struct bc_item *it);
/* The message subscribers get, as a malloc'ed JSON text, or NULL:
 * {"type":"event","stream":"mono"|"multi","position":..,"event":{..}} or
 * {"type":"candle","stream":"candles","position":..,"candle":{..}}. */
char *bc_entry_message(const struct bc_entry *e, const char *token);
void bc_entry_cleanup(struct bc_entry *e);

/* fanout.c: what the reader posts to a loop (malloc'ed; the loop frees it and drops its
 * reference to b). */
struct bc_post {
    struct bc_loop *lp;
    struct bc_batch *b;
};
/* Runs on lp's thread with a struct bc_post. */
void bc_fanout_deliver(void *arg);
/* Backfill done: sends the held batches and joins live. */
void bc_sub_go_live(struct bc_sub *s);
/* Sends one item to one subscriber (counts it); false once the connection is closing. */
bool bc_fanout_send(struct bc_sub *s, struct astro_ws_msg *m);

/* sub.c */
extern const struct astro_ws_handlers bc_stream_handlers, bc_stats_handlers, bc_user_handlers;

struct bc_sub {
    struct bc_loop *lp;
    struct astro_ws_conn *ws; /* NULL once closed */
    enum bc_route route;
    struct bc_filter f;
    char *user;
    int refs;                 /* on_close + pending Redis callbacks */
    bool linked, authed, live; /* live: backfill done (or none) */
    struct event *auth_timer;
    /* resume: per-stream end of the backfill, and live items held while it runs */
    struct bc_pos seen;
    unsigned backfill_pending;
    struct bc_batch **held;
    size_t nheld, capheld;
    struct bc_sub *prev, *next;   /* lp->subs */
    struct bc_sub **ihead;        /* the index list s is on, or NULL */
    struct bc_sub *iprev, *inext; /* within it */
};

/* fanout.c: adds an authenticated event subscriber to its loop's index / removes it. */
void bc_index_add(struct bc_sub *s);
void bc_index_remove(struct bc_sub *s);

void bc_sub_unref(struct bc_sub *s);
/* Live: deliver it now, or hold it while the backfill runs. */
void bc_sub_offer(struct bc_sub *s, struct bc_batch *b);

/* backfill.c: XRANGE (exclusive) per stream from s->f.since, then live. */
void bc_backfill_start(struct bc_sub *s);

/* predict.c: a {"type":"prediction",...} message from a /subscribe connection. */
void bc_predict_handle(struct bc_sub *s, const char *text, size_t len);

#endif

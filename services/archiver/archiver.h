/* astro-archiver: moves the durable streams (astro:mono:{p}, astro:multi:{p}, astro:sessions,
 * astro:predictions, astro:late, astro:agg:{p}) from Redis into PostgreSQL through the `archiver` consumer
 * group, trims the hot tier and reports its unarchived length for ingest's backpressure. See
 * docs/archiver.md.
 *
 * Threads: the main thread runs the service base (signals, HTTP health, the drain poll); each
 * of the ASTRO_WRITERS archive pipelines owns a share of the streams and is a reader thread
 * (XAUTOCLAIM, blocking XREADGROUP, decoding) and a writer thread (COPY, COMMIT, XACK), each
 * with its own sync connections (pipeline.h); a housekeeper thread trims, reports the backlog
 * and keeps day partitions. They share only atomics, the (thread-safe) metrics and, within a
 * pipeline, its two batch slots. */
#ifndef ARC_ARCHIVER_H
#define ARC_ARCHIVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "astro/agg.h"
#include "astro/config.h"
#include "astro/event.h"
#include "astro/metrics.h"
#include "astro/pg.h"
#include "astro/redis.h"
#include "astro/service.h"

#define ARC_GROUP "archiver"
#define ARC_DEAD_STREAM "astro:dead"
#define ARC_UNARCHIVED_KEY "astro:hot:unarchived"
#define ARC_ENTRY_ID_MAX 48
#define ARC_STREAM_KEY_MAX 48

struct arc_config {
    struct astro_service_config svc;
    char *database_url;        /* ASTRO_DATABASE_URL */
    int64_t partitions;        /* ASTRO_PARTITIONS */
    int64_t batch_size;        /* ASTRO_BATCH_SIZE rows */
    int64_t batch_age_ms;      /* ASTRO_BATCH_AGE */
    int64_t claim_idle_ms;     /* ASTRO_CLAIM_IDLE */
    int64_t dead_after;        /* ASTRO_DEAD_AFTER deliveries */
    int64_t hot_retention_ms;  /* ASTRO_HOT_RETENTION */
    int64_t trim_interval_ms;  /* ASTRO_TRIM_INTERVAL */
    int64_t cold_retention_days; /* ASTRO_COLD_RETENTION_DAYS; 0 = keep forever */
    int64_t partitions_ahead;  /* ASTRO_PARTITIONS_AHEAD days */
    int64_t test_crash_after_commit; /* ASTRO_TEST_CRASH_AFTER_COMMIT (test only) */
    int64_t writers;           /* ASTRO_WRITERS: pipelines (PostgreSQL connections) */
};

/* The config table and its length (static storage). */
const struct astro_cfg_var *arc_config_vars(size_t *n);

/* ---- stream identities ---- */

/* What a stream carries. Events (mono, multi) are COPYed; the low-volume side streams
 * (astro:sessions, astro:predictions, astro:late; see side.c for their field layouts) and the
 * candles of astro:agg:{p} (candle.c) are upserted row by row in the same transaction. */
enum arc_kind { ARC_MONO, ARC_MULTI, ARC_SESSION, ARC_PREDICTION, ARC_LATE, ARC_CANDLE, ARC_KINDS };
/* Tables counted in the metrics: one per kind, plus the indicators written with candles. */
enum { ARC_INDICATORS = ARC_KINDS, ARC_TABLES };

#define ARC_SESSIONS_STREAM "astro:sessions"
#define ARC_PREDICTIONS_STREAM "astro:predictions"
#define ARC_LATE_STREAM "astro:late"
#define ARC_SIDE_FIELDS 8

/* A stream entry id "ms-seq" as numbers, for comparisons and MINID arithmetic. */
struct arc_id {
    uint64_t ms, seq;
};

struct arc_stream {
    char key[ARC_STREAM_KEY_MAX];
    enum arc_kind kind;
    uint32_t partition;
    char claim_cursor[ARC_ENTRY_ID_MAX]; /* XAUTOCLAIM continuation */
    /* The highest entry id this process has received (read or claimed), and whether a read's
     * reply was lost since: then entries above it may be pending here, delivered but unseen. */
    struct arc_id seen;
    bool lost;
};

/* Parses "ms-seq" (or "ms", seq 0). ASTRO_OK or ASTRO_ERR for anything else. */
int arc_id_parse(const char *s, struct arc_id *out) ASTRO_MUST_CHECK;
int arc_id_cmp(struct arc_id a, struct arc_id b);
/* The smallest id greater than a. */
struct arc_id arc_id_next(struct arc_id a);
void arc_id_format(struct arc_id a, char *buf, size_t size);

/* ---- batch rows ---- */

/* A decoded side-stream entry: its values in the order side.c defines per kind, borrowed
 * from the reply (NULL for an absent optional field). */
struct arc_side {
    const char *v[ARC_SIDE_FIELDS];
};

/* One decoded stream entry. The event owns its strings (events only); side values and fields
 * are borrowed from the reply that the batch keeps alive until the batch is done. */
struct arc_row {
    int stream;          /* index into the worker's stream table */
    char entry_id[ARC_ENTRY_ID_MAX];
    struct astro_event ev;
    struct arc_side side;
    const redisReply *fields; /* the entry's field/value array (for astro:dead, late payload) */
    struct astro_candle *candle; /* ARC_CANDLE: owned, freed by arc_batch_reset() */
    bool redelivered;    /* claimed (XAUTOCLAIM): its row may already be archived */
};

/* Decodes a side-stream entry of kind (ARC_SESSION, ARC_PREDICTION, ARC_LATE) into out.
 * ASTRO_OK, or ASTRO_ERR with a reason for astro:dead. */
int arc_side_decode(enum arc_kind kind, const redisReply *fields, struct arc_side *out,
                    char *err, size_t errlen) ASTRO_MUST_CHECK;

/* Writes one side row (inside the caller's transaction); *rows grows by the rows it inserted
 * or updated. ASTRO_OK or ASTRO_ERR with "SQLSTATE ..." in err. */
int arc_side_write(struct astro_pg *pg, const struct arc_row *row, enum arc_kind kind,
                   uint64_t *rows, char *err, size_t errlen) ASTRO_MUST_CHECK;

/* Decodes an astro:agg:{p} entry (fields borrowed) into a new candle (*out; free with
 * astro_candle_cleanup() and free()). ASTRO_OK, or ASTRO_ERR with a reason for astro:dead. */
int arc_candle_decode(const redisReply *fields, struct astro_candle **out, char *err,
                      size_t errlen) ASTRO_MUST_CHECK;

/* Upserts one candle and its indicators that have a value (inside the caller's transaction),
 * keyed by (key, event_type, interval, bucket_start) and (key, event_type, name, interval, ts):
 * a redelivered candle changes nothing. c->inserted[ARC_CANDLE] / [ARC_INDICATORS] grow by the
 * rows inserted or changed, c->offered[ARC_INDICATORS] by the indicators sent. ASTRO_OK or
 * ASTRO_ERR with "SQLSTATE ..." in err. */
struct arc_store_counts;
int arc_candle_write(struct astro_pg *pg, const struct astro_candle *cd,
                     struct arc_store_counts *c, char *err, size_t errlen) ASTRO_MUST_CHECK;

/* An entry the decoder refused: never sent to PostgreSQL. */
struct arc_reject {
    int stream;
    char entry_id[ARC_ENTRY_ID_MAX];
    char reason[160];
    const redisReply *fields;
    bool marker; /* a leaflet watermark marker: not an event, acked without a row */
};

struct arc_batch {
    struct arc_row *rows;
    size_t n, cap;
    struct arc_reject *rejects;
    size_t nrej, caprej;
    redisReply **replies; /* owned; freed by arc_batch_reset() */
    size_t nrep, caprep;
    int64_t first_us;     /* when the first entry arrived (batch age) */
};

void arc_batch_init(struct arc_batch *b);
/* Frees rows, rejects and replies; keeps the arrays for reuse. */
void arc_batch_reset(struct arc_batch *b);
void arc_batch_cleanup(struct arc_batch *b);

/* Takes ownership of reply (an XREADGROUP / XAUTOCLAIM reply, freed by arc_batch_reset()) and
 * adds its entries for stream index `stream` (entries is the array of [id, fields] pairs inside
 * it). Undecodable entries become rejects. Returns the number of entries added, or -1 on
 * allocation failure (reply is then still owned by the batch). */
long arc_batch_add_entries(struct arc_batch *b, redisReply *reply, const redisReply *entries,
                           int stream, enum arc_kind kind);

/* Appends COPY text rows for the rows of one kind in rows[lo, hi) whose skip[i - lo] is false
 * (skip may be NULL): with keys, the key layout (row index, event_id, ts); else the event
 * table's own columns (see store.c). Returns the number of rows written or -1. */
long arc_rows_copy(const struct arc_row *rows, size_t lo, size_t hi, enum arc_kind kind,
                   const struct arc_stream *streams, const bool *skip, bool keys,
                   struct astro_pg_copybuf *buf);

/* Marks in skip[i - lo] every row of rows[lo, hi) that repeats an earlier row of the range
 * (same table, event id and time: one row in PostgreSQL). Returns how many, or -1. */
long arc_rows_mark_dups(const struct arc_row *rows, size_t lo, size_t hi,
                        const struct arc_stream *streams, bool *skip);

/* ---- minute rollups (rollup.c) ---- */

/* One event_rollups row to add: inserted rows per UTC minute, kind, source, type and rule. */
struct arc_rollup {
    int64_t minute_us;                   /* start of the UTC minute, epoch µs */
    enum arc_kind kind;                  /* ARC_MONO or ARC_MULTI */
    const char *src, *type, *rule;       /* borrowed from the rows; rule "" for mono */
    int64_t count;
};

/* Groups the event rows of rows[lo, hi) whose skip[i - lo] is false (skip may be NULL):
 * *out gets a new array (free() it; NULL when *n is 0) of distinct groups, sorted. ASTRO_OK,
 * or ASTRO_ERR when out of memory. */
int arc_rollups_count(const struct arc_row *rows, size_t lo, size_t hi,
                      const struct arc_stream *streams, const bool *skip,
                      struct arc_rollup **out, size_t *n) ASTRO_MUST_CHECK;

/* Adds the n groups to event_rollups in one statement inside the caller's transaction, locking
 * the rollup rows in one fixed order (parallel writers never deadlock on them). ASTRO_OK, or
 * ASTRO_ERR with "SQLSTATE ..." in err. */
int arc_rollups_write(struct astro_pg *pg, const struct arc_rollup *g, size_t n, char *err,
                      size_t errlen) ASTRO_MUST_CHECK;

/* Writes the JSON object {"field": "value", ...} of an entry's fields (for astro:dead and
 * dead_events.payload). Returns a new string (free with cJSON_free()) or NULL. */
char *arc_fields_json(const redisReply *fields);

/* ---- PostgreSQL store ---- */

enum arc_store_result { ARC_STORE_OK, ARC_STORE_DATA, ARC_STORE_RETRY };

/* A PostgreSQL connection with the temp staging tables it has created (per session). */
struct arc_store {
    struct astro_pg *pg;   /* owned */
    bool staged;
    uint64_t staged_gen;   /* pg->reconnects when the staging tables were created */
};

struct arc_store_counts {
    uint64_t inserted[ARC_TABLES]; /* by enum arc_kind, then ARC_INDICATORS */
    uint64_t offered[ARC_TABLES];
};

/* Writes rows[lo, hi) in one transaction (see store.c): duplicates inside the range dropped,
 * keys already archived skipped (a temp key table probed against the primary key), the rest
 * COPYed into the event tables, the minute rollups of exactly those rows upserted, COMMIT.
 * ARC_STORE_DATA: PostgreSQL refused the data (nothing committed; split the range);
 * ARC_STORE_RETRY: connection lost, deadlock or similar (nothing known committed; retry later).
 * counts gets rows offered and inserted per kind; err gets the reason. */
enum arc_store_result arc_store_write(struct arc_store *st, const struct arc_row *rows, size_t lo,
                                      size_t hi, const struct arc_stream *streams,
                                      struct arc_store_counts *counts, char *err, size_t errlen);

/* Records a poison entry in dead_events (idempotent). ASTRO_OK or ASTRO_ERR with err. */
int arc_store_dead(struct astro_pg *pg, const char *stream, const char *entry_id,
                   const char *reason, int64_t attempts, const char *payload_json, char *err,
                   size_t errlen) ASTRO_MUST_CHECK;

/* astro_ensure_day_partitions ahead and astro_drop_day_partitions behind for both event
 * tables. Returns ASTRO_OK or ASTRO_ERR with err; *created / *dropped get the counts. */
int arc_store_partitions(struct astro_pg *pg, int64_t ahead_days, int64_t keep_days,
                         long *created, long *dropped, char *err, size_t errlen) ASTRO_MUST_CHECK;

/* ---- trimming ---- */

struct arc_group_info {
    bool has_pending;
    struct arc_id first_pending;
    struct arc_id last_delivered;
};

/* The MINID for XTRIM: the oldest entry some group still needs (its first pending entry, or
 * the one after its last-delivered id), the age horizon and the rebuild point (NULL when
 * absent), whichever is oldest. Returns false when the stream must not be trimmed (no group). */
bool arc_trim_floor(const struct arc_group_info *groups, size_t ngroups, struct arc_id age,
                    const struct arc_id *rebuild, struct arc_id *minid);

/* ---- the service ---- */

struct arc_metrics {
    struct astro_counter *rows[ARC_TABLES];
    struct astro_counter *duplicates[ARC_TABLES];
    struct astro_counter *dead_decode;
    struct astro_counter *dead_refused;
    struct astro_counter *retries;
    struct astro_counter *redis_errors;
    struct astro_counter *pg_errors;
    struct astro_counter *claimed;
    struct astro_counter *markers;
    struct astro_counter *splits;
    struct astro_counter *trimmed;
    struct astro_counter *partitions_created;
    struct astro_counter *partitions_dropped;
    struct astro_histogram *batch_rows;
    struct astro_histogram *batch_seconds;
    struct astro_gauge *hot_length;
    struct astro_gauge *unarchived;
    struct astro_gauge *lag_seconds;
};

struct arc_ctx {
    const struct arc_config *cfg;
    struct astro_service *svc;
    struct arc_metrics m;
    struct arc_stream *streams; /* mono 0..P-1, multi P..2P-1, sessions, predictions, late,
                                 * then agg 2P+3..3P+2 */
    size_t nstreams;
    char consumer[128];
    pthread_t keeper;
    bool keeper_started;
    atomic_bool stop;      /* finish the batch in hand, ack, exit */
    atomic_bool abort_now; /* exit without waiting for PostgreSQL (deadline passed) */
    atomic_bool worker_done; /* every pipeline's writer has finished */
    atomic_uint writers_running;
    atomic_bool redis_ok, pg_ok;
    atomic_bool need_groups; /* a NOGROUP reply: Redis lost the groups (restart without data) */
    atomic_bool parts_ready; /* the keeper's first partition pass is over */
    atomic_uint_fast64_t commits;
    struct event *drain_poll;
    struct arc_pipe **pipes; /* the archive pipelines; freed by arc_threads_join() */
    size_t npipes;
};

int arc_metrics_register(struct arc_metrics *m, struct astro_metrics *reg) ASTRO_MUST_CHECK;

/* Builds the stream table, consumer name, checks P and creates the groups (sync, at start).
 * ASTRO_OK or ASTRO_ERR with err. */
int arc_ctx_init(struct arc_ctx *ctx, const struct arc_config *cfg, struct astro_service *svc,
                 char *err, size_t errlen) ASTRO_MUST_CHECK;
void arc_ctx_cleanup(struct arc_ctx *ctx);

/* Health callback for astro_service_opts: reads atomics only. */
bool arc_health(void *arg, struct cJSON *detail);

/* Worker (archive pipelines) and housekeeper threads. */
int arc_worker_start(struct arc_ctx *ctx) ASTRO_MUST_CHECK;
/* Joins every pipeline's threads and frees them (worker.c). */
void arc_workers_join(struct arc_ctx *ctx);
int arc_keeper_start(struct arc_ctx *ctx) ASTRO_MUST_CHECK;
/* Joins both threads (after setting stop / abort_now) and frees the worker's state. */
void arc_threads_join(struct arc_ctx *ctx);

/* Sync Redis helpers of the worker (redis.c). */
redisReply *arc_redis_cmd(struct arc_ctx *ctx, struct astro_redis *r, int argc,
                          const char **argv, const size_t *argvlen) ASTRO_MUST_CHECK;
/* Both read the streams ctx->streams[idx[0..n)] only (a pipeline's share). */
int arc_read_new(struct arc_ctx *ctx, struct astro_redis *r, const size_t *idx, size_t n,
                 struct arc_batch *b, size_t want, int64_t block_ms) ASTRO_MUST_CHECK;
int arc_claim_idle(struct arc_ctx *ctx, struct astro_redis *r, const size_t *idx, size_t n,
                   struct arc_batch *b, size_t want) ASTRO_MUST_CHECK;
int arc_ack(struct arc_ctx *ctx, struct astro_redis *r, const struct arc_batch *b, size_t lo,
            size_t hi) ASTRO_MUST_CHECK;
int arc_ack_one(struct arc_ctx *ctx, struct astro_redis *r, int stream,
                const char *entry_id) ASTRO_MUST_CHECK;
/* Creates the archiver group on every stream (after a NOGROUP reply). */
int arc_groups_ensure(struct arc_ctx *ctx, struct astro_redis *r) ASTRO_MUST_CHECK;
/* XPENDING delivery count of one entry; 0 when not pending, -1 on error. */
int64_t arc_deliveries(struct arc_ctx *ctx, struct astro_redis *r, int stream,
                       const char *entry_id);

/* Poison handling (dead.c): records in dead_events, XADD astro:dead, XACK. */
int arc_dead_entry(struct arc_ctx *ctx, struct astro_redis *r, struct astro_pg *pg, int stream,
                   const char *entry_id, const redisReply *fields, const char *reason,
                   int64_t attempts) ASTRO_MUST_CHECK;

#endif

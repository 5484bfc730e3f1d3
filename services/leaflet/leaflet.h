/* astro-leaflet: the service context. One worker thread owns a set of partitions (by leases in
 * Redis) and, per partition, a matcher fed from astro:mono:{p} through the `leaflet` consumer
 * group; each batch's outputs, late events, acks and checkpoint commit in one atomic script.
 * docs/leaflet.md describes the keys, the recovery and the configuration. */
#ifndef CEP_LEAFLET_H
#define CEP_LEAFLET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "astro/metrics.h"
#include "astro/redis.h"
#include "astro/service.h"
#include "cmdbuf.h"
#include "matcher.h"
#include "rules.h"

#define CEP_GROUP "leaflet"
#define CEP_WORKERS_KEY "astro:leaflet:workers"
#define CEP_LATE_STREAM "astro:late"
#define CEP_DEAD_STREAM "astro:dead"
#define CEP_OUTLIER_STREAM "astro:outliers"
#define CEP_LIVE_CHANNEL "astro:candles:live" /* PUBLISH: open candles (`publish`) */
#define CEP_MARK_FIELD ASTRO_STREAM_MARK_FIELD /* astro/event.h: an idle watermark marker */

struct cep_config {
    struct astro_service_config svc;
    int64_t partitions;
    char *rules_file;
    int64_t lateness_ms;
    int64_t idle_ms;
    int64_t batch;
    int64_t block_ms;
    int64_t lease_ms;
    int64_t max_held;
    int64_t series_ttl_ms; /* candle series idle expiry in event time; 0 = never */
};

extern const struct astro_cfg_var cep_config_vars[];
extern const size_t cep_config_nvars;

struct cep_metrics {
    struct astro_counter *events_in, *late, *duplicates, *evicted, *dead, *markers;
    struct astro_counter *commits, *aborts, *rebuilds, *replayed, *redis_errors, *reloads;
    struct astro_counter **matches; /* per rule of the current rule set */
    size_t nmatches;
    struct astro_gauge *owned, *wm_lag, *held, *pending;
    struct astro_counter *candles, *candle_late, *bad_volume, *snap_bytes; /* aggpart.c */
    struct astro_counter *outliers_flagged, *outliers_diverted, *series_expired;
    struct astro_gauge *series;
};

struct cep_ctx;
struct cep_candles;
struct cep_outliers;

struct cep_batchpos {
    struct cep_sid first;        /* first input entry of a committed batch */
    char out_pos[CEP_SID_STR];   /* astro:multi:{p} last id before that batch */
};

struct cep_partition {
    struct cep_ctx *ctx;
    uint32_t p;
    bool owned;
    char mono[32], multi[32], lease[32], rebuild[32], ckpt[48];
    struct cep_matcher *m;
    struct cep_cmdbuf out;    /* records (outputs, late, dead) of the batch being matched */
    struct cep_cmdbuf commit; /* the commit script call of the batch */
    struct cep_sid batch_last;
    size_t nentries;
    bool failed; /* an output of the batch could not be recorded: do not commit it */
    struct cep_matcher_stats before;
    char last_out[CEP_SID_STR];
    struct cep_sid last_acked;
    struct cep_batchpos *pos;
    size_t npos, cappos;
    int64_t last_event_ms, last_marker_ms; /* monotonic */
    struct cep_candles *cs; /* NULL unless the rules configure candles (aggpart.c) */
    struct cep_outliers *os; /* NULL unless the rules configure outlier screening */
    size_t nseries;          /* candle series last added to the leaflet_candle_series gauge */
    char agg[32], aggstate[40];
};

struct cep_ctx {
    const struct cep_config *cfg;
    struct astro_service *svc;
    const char *instance;
    struct cep_ruleset rules;
    struct cep_metrics met;
    struct astro_redis *r;
    struct cep_partition *parts;
    uint32_t nparts;
    pthread_t thread;
    bool thread_started;
    atomic_bool stop, done, reload, redis_ok;
    int64_t next_tick_ms;
};

/* context.c: the context (free with cep_ctx_free()) with its rules loaded, metrics registered
 * and Redis connected (partition count checked); NULL with the reason in err. cfg and svc are
 * borrowed. */
struct cep_ctx *cep_ctx_new(const struct cep_config *cfg, struct astro_service *svc, char *err,
                            size_t errlen) ASTRO_MUST_CHECK;
void cep_ctx_free(struct cep_ctx *ctx);
int cep_metrics_rules(struct cep_ctx *ctx) ASTRO_MUST_CHECK;
int64_t cep_mono_ms(void);

/* worker.c: the worker thread (started by cep_worker_start; it sets ctx->done when it has
 * committed its last batch and released its leases after ctx->stop). */
int cep_worker_start(struct cep_ctx *ctx) ASTRO_MUST_CHECK;
void cep_worker_join(struct cep_ctx *ctx);

/* lease.c: membership and leases; called between batches. */
void cep_lease_tick(struct cep_ctx *ctx);
void cep_lease_release_all(struct cep_ctx *ctx);
/* Extends the partition's lease (a long rebuild must not outlive it); ASTRO_ERR if it is not
 * ours any more or Redis failed. */
int cep_lease_renew(struct cep_partition *pp) ASTRO_MUST_CHECK;

/* partition.c: a batch of entries (the XREADGROUP / XAUTOCLAIM entry array, borrowed) matched
 * and committed. ASTRO_ERR on a Redis failure or a lost lease (the partition is then dropped). */
int cep_part_batch(struct cep_partition *pp, const redisReply *entries) ASTRO_MUST_CHECK;
/* The same in three steps so the commits of several partitions share one round trip: prepare
 * (match, build the commit), send (write it to c; Redis runs it while the next partition is
 * matched), finish (read its reply). */
int cep_part_prepare(struct cep_partition *pp, const redisReply *entries) ASTRO_MUST_CHECK;
int cep_part_send(struct cep_partition *pp, redisContext *c) ASTRO_MUST_CHECK;
int cep_part_finish(struct cep_partition *pp, redisContext *c) ASTRO_MUST_CHECK;
/* Writes a watermark marker when the partition has been idle (no event) for idle_ms. */
void cep_part_idle(struct cep_partition *pp, int64_t now_ms);
/* Forgets the partition's state (owned = false); the lease is left alone. */
void cep_part_drop(struct cep_partition *pp);
/* Starts a record of the partition's commit script: its kind (m multi, l late, d dead, a agg,
 * o outlier, h state, x state deleted, p publish) and how many fields follow. */
int cep_part_record(struct cep_partition *pp, const char *kind, int nfields) ASTRO_MUST_CHECK;

/* rebuild.c: takes a freshly leased partition: rebuilds its window state silently from the
 * checkpoint, then processes the entries the previous owner left pending. */
int cep_part_take(struct cep_partition *pp) ASTRO_MUST_CHECK;
struct cep_matcher *cep_part_matcher_new(struct cep_partition *pp) ASTRO_MUST_CHECK;

/* aggpart.c: candles in the partition's batches (issue 9, docs/candles.md). take restores the
 * state from astro:aggstate:{p}; push and mark wrap the matcher's and feed the candles; prepare
 * adds the changed state to the commit; ASTRO_ERR on allocation or Redis failure. */
int cep_agg_take(struct cep_partition *pp) ASTRO_MUST_CHECK;
void cep_agg_drop(struct cep_partition *pp);
int cep_agg_push(struct cep_partition *pp, const struct astro_event *ev,
                 struct cep_sid sid) ASTRO_MUST_CHECK;
int cep_agg_mark(struct cep_partition *pp, int64_t wm_us, struct cep_sid sid) ASTRO_MUST_CHECK;
int cep_agg_prepare(struct cep_partition *pp) ASTRO_MUST_CHECK;
int cep_agg_metrics(struct cep_ctx *ctx) ASTRO_MUST_CHECK;
/* End (µs) of the earliest open candle, INT64_MAX when none: an idle marker up to it closes it. */
int64_t cep_agg_next_close(const struct cep_partition *pp);
/* True when entry sid was diverted as an outlier (the rebuild replay skips it). */
bool cep_agg_diverted(const struct cep_partition *pp, struct cep_sid sid);

#endif

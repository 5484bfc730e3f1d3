/* OHLCV candles of one partition (issue 9): per (key, event type, timeframe), tumbling buckets
 * aligned to UTC (astro_tf_bucket), closed when the event-time watermark reaches the bucket's
 * end and then emitted exactly once with the indicators of the series. Pure, in memory, no I/O;
 * the state snapshots to Redis hash fields through aggstate.c. Conventions (docs/candles.md):
 *
 * - An event is applied when it is accepted (not late, not a duplicate: the matcher decides),
 *   in stream order. Open and close are the values of the earliest and the latest event by
 *   (event time, stream id), so out-of-order arrival within the lateness gives the in-order
 *   candle; high, low and count are order-free; volume and the VWAP sums are added in stream
 *   order (a reordering within the lateness may change them in the last bit, never a replay).
 * - A bucket [b, b + span) closes when the watermark is >= b + span: from then on every event of
 *   that bucket is late (ts < watermark) and goes to astro:late, so a closed candle never
 *   changes.
 * - A bucket without events yields no candle, and indicators advance only on emitted candles.
 * - Volume: the metadata field named in the config; absent (or no metadata) = 1; present but
 *   not a finite number >= 0 = a bad volume: the price still counts, with volume 0.
 * - Idle expiry (ttl_us > 0): a (type, key) whose latest event time is more than ttl_us behind
 *   the watermark, and that has no open bucket, is dropped when the watermark advances, so the
 *   set of series is a function of the stream alone; a returning key starts afresh (indicator
 *   warm-up again). Its hash fields are deleted by the next snapshot. */
#ifndef CEP_CANDLES_H
#define CEP_CANDLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aggcfg.h"
#include "astro/agg.h"
#include "matcher.h"

struct cep_bucket {
    int64_t start, fts, lts; /* bucket start; event times of the open and the close */
    struct cep_sid fsid, lsid;
    double o, h, l, c, vol, pv, psum; /* pv = sum(price*volume), psum = sum(price) */
    int64_t n;
};

/* One timeframe of a series: its open buckets (oldest first; more than one only while events
 * arrive out of order across a bucket edge) and its indicators. */
struct cep_tfstate {
    struct cep_bucket *b;
    uint32_t nb, capb;
    struct cep_ind_state ind;
    bool ind_dirty;
};

/* seen of a series restored from a snapshot that did not record it (version 1): the first
 * watermark after the restore counts as its last event. */
#define CEP_SEEN_UNKNOWN INT64_MIN

/* Every timeframe of one (key, candle config). */
struct cep_cgroup {
    char *key;
    uint64_t hash;
    int64_t seen; /* latest event time applied (idle expiry) */
    uint32_t ci;  /* index into cfg->candles */
    bool dirty;   /* open buckets changed since the last snapshot */
    bool expired; /* out of the table; the next snapshot deletes its fields and frees it */
    struct cep_cgroup *next, *dnext;
    struct cep_tfstate tf[];
};

/* A heap entry: the watermark at which something of g is due. In the close heap, the end of
 * g's open bucket of timeframe ti; in the idle heap (ti 0), the earliest watermark at which g
 * may expire (a lower bound: events since the push may have moved it later; the entry is then
 * checked and pushed again). */
struct cep_cheap {
    int64_t at;
    struct cep_cgroup *g;
    uint32_t ti;
};

/* A min-heap of entries in cheap_cmp() order (candles.c). */
struct cep_cheapq {
    struct cep_cheap *v;
    size_t n, cap;
};

struct cep_candle_stats {
    uint64_t applied, emitted, bad_volume, expired;
};

/* Called for each closed candle, in close order; c (and c->key) is borrowed for the call. */
typedef void (*cep_candle_emit_fn)(void *arg, const struct astro_candle *c);

struct cep_candles {
    const struct cep_agg_cfg *cfg;
    cep_candle_emit_fn emit;
    void *arg;
    struct cep_cgroup **buckets;
    size_t nbuckets, ngroups;
    struct cep_cheapq closing; /* open buckets by end */
    struct cep_cheapq idle;    /* one entry per group when ttl_us > 0, by due */
    struct cep_cgroup *dirty; /* groups with a changed bucket or indicator state, or expired */
    int64_t ttl_us;           /* idle expiry; 0 = never */
    int64_t wm;
    struct cep_sid pos; /* stream id of the last entry applied */
    struct cep_candle_stats st;
};

/* Returns new candle state (free with cep_candles_free()) or NULL on allocation failure. cfg is
 * borrowed and must outlive it. Series idle for more than ttl_us of event time expire (0 =
 * never). */
struct cep_candles *cep_candles_new(const struct cep_agg_cfg *cfg, int64_t ttl_us,
                                    cep_candle_emit_fn emit, void *arg) ASTRO_MUST_CHECK;
void cep_candles_free(struct cep_candles *cs);

/* Applies an accepted event (strings borrowed) read at stream id sid; events of types without
 * candles and entries at or before the last applied one are ignored. meta_json may be NULL.
 * ASTRO_ERR only on allocation failure. */
int cep_candles_add(struct cep_candles *cs, const char *key, const char *type, int64_t ts_us,
                    struct cep_sid sid, double value, const char *meta_json) ASTRO_MUST_CHECK;

/* Closes (emits) every bucket whose end is <= wm_us, then expires the idle series (ttl_us).
 * ASTRO_ERR only on allocation failure. */
int cep_candles_advance(struct cep_candles *cs, int64_t wm_us) ASTRO_MUST_CHECK;

/* Reads the volume of an event: 1 when absent; ASTRO_ERR (and *vol = 0) when the field is not a
 * finite number >= 0. */
int cep_candle_volume(const char *meta_json, const char *field, double *vol) ASTRO_MUST_CHECK;

/* The group of (key, ci), created when create is set; NULL when absent or out of memory. */
struct cep_cgroup *cep_candles_group(struct cep_candles *cs, const char *key, uint32_t ci,
                                     bool create);
/* Frees a group that is in no table nor heap any more (aggstate.c, for expired groups). */
void cep_candles_group_free(const struct cep_candles *cs, struct cep_cgroup *g);
/* Registers an open bucket with the close heap (aggstate.c uses it when restoring). */
int cep_candles_track(struct cep_candles *cs, struct cep_cgroup *g, uint32_t ti,
                      int64_t end) ASTRO_MUST_CHECK;
void cep_candles_mark_dirty(struct cep_candles *cs, struct cep_cgroup *g);

/* Calls fn with the running state of the newest open bucket of every timeframe of every group
 * changed since the last snapshot (c borrowed for the call; no indicators), before
 * cep_candles_snapshot() clears the marks. */
void cep_candles_each_open(const struct cep_candles *cs,
                           void (*fn)(void *arg, const struct astro_candle *c), void *arg);

/* aggstate.c: the snapshot. put(arg, field, flen, value, vlen) first gets every hash field of
 * the series expired since the last snapshot with value NULL (delete it; those groups are
 * freed), then one field per changed (type, key) bucket state and per changed (type, tf, key)
 * indicator state, then "@pos"; the dirty marks are cleared. Returns the bytes handed to put,
 * or -1 when put failed. */
int64_t cep_candles_snapshot(struct cep_candles *cs,
                             int (*put)(void *arg, const char *f, size_t flen, const char *v,
                                        size_t vlen),
                             void *arg);
/* Restores one hash field (as written by cep_candles_snapshot). Fields of types or timeframes
 * no longer configured, and indicator state of another indicator set, are skipped (counted
 * in *skipped). ASTRO_ERR on a corrupt field or allocation failure. */
int cep_candles_restore(struct cep_candles *cs, const char *f, size_t flen, const char *v,
                        size_t vlen, size_t *skipped) ASTRO_MUST_CHECK;

#endif

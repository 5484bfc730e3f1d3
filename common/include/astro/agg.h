/* Aggregates (issue 9): OHLCV candles with the indicators computed at their close, as
 * astro-leaflet writes them to astro:agg:{p}, the archiver stores them, astro-query serves them
 * and astro-broadcast pushes them.
 *
 * Decisions (docs/candles.md has the whole list):
 * - One stream entry per closed candle, with its indicators: a reader never has to join two
 *   streams, and the indicators of a candle commit with it.
 * - Timeframes are labels <n><s|m|h|d> ("1m", "4h", "1d"). The span must divide one day or be
 *   exactly one day, so buckets aligned to the epoch are aligned to UTC midnight.
 * - The label is kept as written: "60m" and "1h" are different series (the archiver's primary
 *   key uses the label).
 * - Numbers are written as the event codec writes doubles (shortest round-trip text). An
 *   indicator that cannot be computed yet has no value (JSON null); one computed from fewer
 *   candles than its period is not ready. */
#ifndef ASTRO_AGG_H
#define ASTRO_AGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "astro/common.h"
#include "astro/event.h"

struct redisReply;

#define ASTRO_AGG_IND_MAX 24
#define ASTRO_AGG_IND_NAME_MAX 32
#define ASTRO_AGG_TF_MAX 15
#define ASTRO_AGG_KEY_MAX 1024

struct astro_indicator_value {
    char name[ASTRO_AGG_IND_NAME_MAX + 1];
    double value; /* meaningful only when has_value */
    bool has_value;
    bool ready;
};

/* key is owned (heap, NUL-terminated); release with astro_candle_cleanup(). */
struct astro_candle {
    char *key;
    char type[ASTRO_EVENT_NAME_MAX + 1];
    char tf[ASTRO_AGG_TF_MAX + 1];
    int64_t tf_us;     /* span of tf */
    int64_t bucket_us; /* inclusive start, a multiple of tf_us */
    double open, high, low, close, volume, vwap;
    int64_t count;
    size_t n_ind;
    struct astro_indicator_value ind[ASTRO_AGG_IND_MAX];
};

/* Parses a timeframe label s[0..len) into its span in µs. ASTRO_ERR with a reason in err for
 * anything but <n><s|m|h|d> (n decimal, no sign, no leading zero) whose span divides one day or
 * equals it. */
int astro_tf_parse(const char *s, size_t len, int64_t *span_us, char *err,
                   size_t errlen) ASTRO_MUST_CHECK;

/* Start of the bucket of span span_us (> 0) holding ts_us: floor division, so times before the
 * epoch land in the bucket that contains them. */
int64_t astro_tf_bucket(int64_t ts_us, int64_t span_us);

/* Frees the key and zeroes the candle; a zeroed candle is a no-op. */
void astro_candle_cleanup(struct astro_candle *c);

/* Appends the candle's field/value pairs to f after the caller's own prefix ("XADD", key, "*";
 * see astro_stream_fields in astro/event.h): kind key type tf b o h l c v n vwap ind. Pointers
 * are borrowed from the candle (which must outlive the command) or point into f. ASTRO_ERR on a
 * non-finite number, a bad timeframe, a full argv or allocation failure. */
int astro_candle_stream_encode(const struct astro_candle *c,
                               struct astro_stream_fields *f) ASTRO_MUST_CHECK;

/* Decodes an astro:agg entry's field/value array (borrowed). Unknown fields are ignored;
 * missing, repeated or malformed fields, an indicator named twice, and a kind other than
 * "candle", fail with a reason
 * suitable for astro:dead. On failure *c is cleaned up. */
int astro_candle_stream_decode(struct redisReply *const *elements, size_t n,
                               struct astro_candle *c, char *err, size_t errlen) ASTRO_MUST_CHECK;

/* The `ind` field's text: [{"name":..,"value":number|null,"ready":bool},...], values as the
 * event codec writes doubles. Returns a new string (cJSON_free()) or NULL on allocation failure
 * or a non-finite value. */
char *astro_candle_indicators_json(const struct astro_candle *c) ASTRO_MUST_CHECK;

/* A new JSON object (free with cJSON_Delete), NULL on allocation failure or a time out of range:
 * {"key","event_type","timeframe","bucket_start","bucket_end","open","high","low","close",
 *  "volume","count","vwap","indicators":{"<name>":{"value":number|null,"ready":bool},...}} */
cJSON *astro_candle_to_json(const struct astro_candle *c) ASTRO_MUST_CHECK;

#endif

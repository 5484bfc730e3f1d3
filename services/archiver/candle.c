/* The aggregate streams astro:agg:{p} (issue 9): one entry per closed candle, with the
 * indicators computed at its close (common/include/astro/agg.h has the field layout). Each
 * candle is one statement inside the batch's transaction: the candle row and its indicator
 * rows are upserted together, so a redelivered entry changes nothing and a candle never
 * commits without its indicators. Candles are low volume (one per key, type and timeframe per
 * bucket), so no COPY path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "archiver.h"

int
arc_candle_decode(const redisReply *fields, struct astro_candle **out, char *err, size_t errlen)
{
    struct astro_candle *cd = calloc(1, sizeof(*cd));
    *out = NULL;
    if (cd == NULL)
        return astro_fail(err, errlen, "agg entry: out of memory");
    /* The codec refuses an indicator named twice, which the indicators upsert could never
     * store (PostgreSQL's 21000, no retry cures it): such an entry is undecodable, dead. */
    if (astro_candle_stream_decode(fields->element, fields->elements, cd, err, errlen) !=
        ASTRO_OK) {
        astro_candle_cleanup(cd);
        free(cd);
        return ASTRO_ERR;
    }
    *out = cd;
    return ASTRO_OK;
}

/* $1 key, $2 event_type, $3 interval (the label as written), $4 bucket start (epoch µs),
 * $5..$11 open high low close volume trades vwap, $12 the indicators as the codec writes them
 * (astro_candle_indicators_json: [{name, value|null, ready}]; those without a value are not
 * stored). An upsert that would change nothing updates nothing, so the
 * counts returned are the rows inserted or changed (a leaflet that re-emits a corrected candle
 * after a rebuild wins; an identical redelivery counts as a duplicate). */
static const char CANDLE_SQL[] =
    "WITH b AS (SELECT timestamptz 'epoch' + $4::bigint * interval '1 microsecond' AS ts),"
    " cand AS (INSERT INTO candles (key, event_type, \"interval\", bucket_start, open, high,"
    "  low, close, volume, trades, vwap)"
    "  SELECT $1, $2, $3, b.ts, $5::float8, $6::float8, $7::float8, $8::float8, $9::float8,"
    "  $10::bigint, $11::float8 FROM b"
    "  ON CONFLICT (key, event_type, \"interval\", bucket_start) DO UPDATE SET"
    "  open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,"
    "  volume = excluded.volume, trades = excluded.trades, vwap = excluded.vwap,"
    "  updated_at = now()"
    "  WHERE (candles.open, candles.high, candles.low, candles.close, candles.volume,"
    "  candles.trades, candles.vwap) IS DISTINCT FROM (excluded.open, excluded.high,"
    "  excluded.low, excluded.close, excluded.volume, excluded.trades, excluded.vwap)"
    "  RETURNING 1),"
    " ind AS (INSERT INTO indicators (key, event_type, name, \"interval\", ts, value, ready)"
    "  SELECT $1, $2, i.name, $3, b.ts, i.value, i.ready FROM b,"
    "  jsonb_to_recordset($12::jsonb) AS i(name text, value float8, ready boolean)"
    "  WHERE i.value IS NOT NULL ORDER BY i.name"
    "  ON CONFLICT (key, event_type, name, \"interval\", ts) DO UPDATE SET"
    "  value = excluded.value, ready = excluded.ready"
    "  WHERE (indicators.value, indicators.ready) IS DISTINCT FROM"
    "  (excluded.value, excluded.ready)"
    "  RETURNING 1)"
    " SELECT (SELECT count(*) FROM cand), (SELECT count(*) FROM ind)";

int
arc_candle_write(struct astro_pg *pg, const struct astro_candle *cd, struct arc_store_counts *c,
                 char *err, size_t errlen)
{
    char num[6][ASTRO_EVENT_DOUBLE_BUF], bucket[24], trades[24];
    const double v[] = {cd->open, cd->high, cd->low, cd->close, cd->volume, cd->vwap};
    for (size_t i = 0; i < 6; i++)
        astro_event_format_double(v[i], num[i]);
    snprintf(bucket, sizeof(bucket), "%lld", (long long)cd->bucket_us);
    snprintf(trades, sizeof(trades), "%lld", (long long)cd->count);
    uint64_t nind = 0;
    for (size_t i = 0; i < cd->n_ind; i++)
        nind += cd->ind[i].has_value;
    char *ind = astro_candle_indicators_json(cd);
    if (ind == NULL)
        return astro_fail(err, errlen, "indicators: out of memory");
    const char *params[] = {cd->key, cd->type, cd->tf, bucket, num[0], num[1], num[2],
                            num[3],  num[4],   trades, num[5], ind};
    PGresult *res = astro_pg_exec(pg, CANDLE_SQL, 12, params, err, errlen);
    cJSON_free(ind);
    if (res == NULL)
        return ASTRO_ERR;
    c->inserted[ARC_CANDLE] += strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    c->inserted[ARC_INDICATORS] += strtoull(PQgetvalue(res, 0, 1), NULL, 10);
    c->offered[ARC_INDICATORS] += nind;
    PQclear(res);
    return ASTRO_OK;
}

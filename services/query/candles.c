/* /candles/{key} and /indicators/{key}: the archived aggregates of issue 9 (tables candles and
 * indicators, sql/0005_candles.sql), newest `limit` buckets of [start_time, end_time) answered
 * oldest first, each candle shaped by astro_candle_to_json() so a client reads the same object
 * from the archive as astro-broadcast pushes live. One prepared statement per combination of
 * filters (as for the events), served by the primary keys and sql/0006_agg_query.sql. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <civetweb.h>

#include "astro/agg.h"
#include "astro/log.h"
#include "astro/time.h"
#include "query.h"
#include "sql.h"

/* A statement being built and its parameters (text, borrowed). */
struct agg_sql {
    char text[2048];
    size_t len;
    int n;
    const char *v[8];
    char start[ASTRO_TIME_RFC3339_LEN + 1], end[ASTRO_TIME_RFC3339_LEN + 1];
    char limit[24], names[QRY_AGG_NAMES_MAX * (QRY_AGG_NAME_MAX + 1) + 3];
};

static void put(struct agg_sql *q, const char *fmt, ...) ASTRO_PRINTF(2, 3);

static void
put(struct agg_sql *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(q->text + q->len, sizeof(q->text) - q->len, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof(q->text) - q->len)
        q->len += (size_t)n;
}

static int
param(struct agg_sql *q, const char *value)
{
    q->v[q->n] = value;
    return ++q->n;
}

/* Parameter values of the optional filters; names as a text[] literal (names are checked to
 * hold only [a-z0-9_.], so no quoting is needed). */
static int
fill_values(const struct qry_agg_filter *f, struct agg_sql *q)
{
    if (astro_time_format(f->start_us, q->start, sizeof(q->start)) != ASTRO_OK ||
        astro_time_format(f->end_us, q->end, sizeof(q->end)) != ASTRO_OK)
        return ASTRO_ERR;
    snprintf(q->limit, sizeof(q->limit), "%lld", (long long)f->limit);
    size_t o = 0;
    q->names[o++] = '{';
    for (size_t i = 0; i < f->n_names; i++)
        o += (size_t)snprintf(q->names + o, sizeof(q->names) - o, "%s%s", i ? "," : "",
                              f->names[i]);
    snprintf(q->names + o, sizeof(q->names) - o, "}");
    return ASTRO_OK;
}

/* The optional conditions on column col (bucket_start or ts), in QRY_A_* order. Returns the
 * parameter number of the names array (0 when absent). */
static int
conditions(const struct qry_agg_filter *f, struct agg_sql *q, const char *tbl, const char *col)
{
    int names = 0;
    if (f->present & QRY_A_TYPE)
        put(q, " AND %sevent_type = $%d", tbl, param(q, f->type));
    if (f->present & QRY_A_START)
        put(q, " AND %s%s >= $%d::timestamptz", tbl, col, param(q, q->start));
    if (f->present & QRY_A_END)
        put(q, " AND %s%s < $%d::timestamptz", tbl, col, param(q, q->end));
    if (f->present & QRY_A_NAMES) {
        names = param(q, q->names);
        put(q, " AND name = ANY ($%d::text[])", names);
    }
    return names;
}

static void
candles_sql(const struct qry_agg_filter *f, const char *key, struct agg_sql *q)
{
    put(q, "SELECT c.event_type, (extract(epoch FROM c.bucket_start) * 1000000)::int8, c.open,"
           " c.high, c.low, c.close, c.volume, c.trades, c.vwap, (SELECT json_agg("
           "json_build_array(i.name, i.value, i.ready) ORDER BY i.name) FROM indicators i"
           " WHERE i.key = c.key AND i.event_type = c.event_type AND i.\"interval\" ="
           " c.\"interval\" AND i.ts = c.bucket_start)::text FROM candles c WHERE c.key = $%d",
        param(q, key));
    put(q, " AND c.\"interval\" = $%d", param(q, f->tf));
    (void)conditions(f, q, "c.", "bucket_start");
    put(q, " ORDER BY c.bucket_start DESC, c.event_type DESC LIMIT $%d", param(q, q->limit));
}

/* The newest `limit` (event_type, ts) buckets that hold a wanted indicator, then their rows. */
static void
indicators_sql(const struct qry_agg_filter *f, const char *key, struct agg_sql *q)
{
    put(q, "WITH b AS (SELECT DISTINCT event_type, ts FROM indicators WHERE key = $%d",
        param(q, key));
    put(q, " AND \"interval\" = $%d", param(q, f->tf));
    int names = conditions(f, q, "", "ts");
    put(q, " ORDER BY ts DESC, event_type DESC LIMIT $%d)", param(q, q->limit));
    put(q, " SELECT i.event_type, (extract(epoch FROM i.ts) * 1000000)::int8, i.name, i.value,"
           " i.ready FROM indicators i JOIN b ON i.event_type = b.event_type AND i.ts = b.ts"
           " WHERE i.key = $1 AND i.\"interval\" = $2");
    if (names > 0)
        put(q, " AND i.name = ANY ($%d::text[])", names);
    put(q, " ORDER BY i.ts, i.event_type, i.name");
}

/* The indicators json_agg'ed by candles_sql: [[name, value, ready], ...] (NULL: none). */
static void
candle_indicators(struct astro_candle *cd, const char *json)
{
    cJSON *a = json != NULL ? cJSON_Parse(json) : NULL, *it;
    cJSON_ArrayForEach(it, a)
    {
        cJSON *name = cJSON_GetArrayItem(it, 0), *v = cJSON_GetArrayItem(it, 1);
        if (cd->n_ind == ASTRO_AGG_IND_MAX || !cJSON_IsString(name) ||
            strlen(name->valuestring) > ASTRO_AGG_IND_NAME_MAX)
            continue;
        struct astro_indicator_value *iv = &cd->ind[cd->n_ind++];
        snprintf(iv->name, sizeof(iv->name), "%s", name->valuestring);
        iv->has_value = cJSON_IsNumber(v);
        iv->value = iv->has_value ? v->valuedouble : 0;
        iv->ready = cJSON_IsTrue(cJSON_GetArrayItem(it, 2));
    }
    cJSON_Delete(a);
}

/* Row i of candles_sql as astro_candle_to_json() shapes it; vwap null when not stored (rows
 * archived before 0005). NULL when the stored numbers cannot be rendered (not finite). */
static cJSON *
candle_json(const PGresult *r, int i, const char *key, const struct qry_agg_filter *f)
{
    char keybuf[257];
    struct astro_candle cd;
    memset(&cd, 0, sizeof(cd));
    snprintf(keybuf, sizeof(keybuf), "%s", key);
    cd.key = keybuf; /* on the stack: cd is never passed to astro_candle_cleanup() */
    snprintf(cd.type, sizeof(cd.type), "%s", PQgetvalue(r, i, 0));
    snprintf(cd.tf, sizeof(cd.tf), "%s", f->tf);
    cd.tf_us = f->tf_us;
    cd.bucket_us = strtoll(PQgetvalue(r, i, 1), NULL, 10);
    double *num[] = {&cd.open, &cd.high, &cd.low, &cd.close, &cd.volume};
    for (int k = 0; k < 5; k++)
        *num[k] = strtod(PQgetvalue(r, i, 2 + k), NULL);
    cd.count = strtoll(PQgetvalue(r, i, 7), NULL, 10);
    bool no_vwap = PQgetisnull(r, i, 8);
    cd.vwap = no_vwap ? cd.close : strtod(PQgetvalue(r, i, 8), NULL);
    candle_indicators(&cd, PQgetisnull(r, i, 9) ? NULL : PQgetvalue(r, i, 9));
    cJSON *o = astro_candle_to_json(&cd);
    if (o != NULL && no_vwap)
        cJSON_ReplaceItemInObjectCaseSensitive(o, "vwap", cJSON_CreateNull());
    return o;
}

static cJSON *
page_head(const char *key, const struct qry_agg_filter *f)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "key", key);
    cJSON_AddStringToObject(o, "timeframe", f->tf);
    if (f->present & QRY_A_TYPE)
        cJSON_AddStringToObject(o, "event_type", f->type);
    else
        cJSON_AddNullToObject(o, "event_type");
    cJSON_AddNumberToObject(o, "limit", (double)f->limit);
    return o;
}

/* Rows come newest first (the LIMIT keeps the newest); the page lists them oldest first. */
static cJSON *
candles_page(const PGresult *r, const char *key, const struct qry_agg_filter *f)
{
    cJSON *o = page_head(key, f), *a = cJSON_AddArrayToObject(o, "candles");
    for (int i = PQntuples(r) - 1; i >= 0; i--) {
        cJSON *one = candle_json(r, i, key, f);
        if (one == NULL)
            astro_log_warn("candles: %s %s: a stored candle has a non-finite number", key,
                           f->tf);
        else
            cJSON_AddItemToArray(a, one);
    }
    cJSON_AddNumberToObject(o, "count", cJSON_GetArraySize(a));
    return o;
}

/* One bucket's object: the candle's identity and its indicators (filled by the caller). */
static cJSON *
bucket_json(const char *key, const struct qry_agg_filter *f, const char *type, int64_t b_us)
{
    char ts[ASTRO_TIME_RFC3339_LEN + 1];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "key", key);
    cJSON_AddStringToObject(o, "event_type", type);
    cJSON_AddStringToObject(o, "timeframe", f->tf);
    if (astro_time_format(b_us, ts, sizeof(ts)) == ASTRO_OK)
        cJSON_AddStringToObject(o, "bucket_start", ts);
    if (astro_time_format(b_us + f->tf_us, ts, sizeof(ts)) == ASTRO_OK)
        cJSON_AddStringToObject(o, "bucket_end", ts);
    cJSON_AddObjectToObject(o, "indicators");
    return o;
}

/* Rows ordered by (ts, event_type, name): consecutive rows of one bucket form one object. */
static cJSON *
indicators_page(const PGresult *r, const char *key, const struct qry_agg_filter *f)
{
    cJSON *o = page_head(key, f), *a = cJSON_AddArrayToObject(o, "indicators"), *cur = NULL;
    const char *cur_type = NULL, *cur_ts = NULL;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *type = PQgetvalue(r, i, 0), *ts = PQgetvalue(r, i, 1);
        if (cur == NULL || strcmp(type, cur_type) != 0 || strcmp(ts, cur_ts) != 0) {
            cur = bucket_json(key, f, type, strtoll(ts, NULL, 10));
            cJSON_AddItemToArray(a, cur);
            cur_type = type, cur_ts = ts;
        }
        cJSON *one = cJSON_AddObjectToObject(cJSON_GetObjectItemCaseSensitive(cur, "indicators"),
                                             PQgetvalue(r, i, 2));
        qry_json_add_pg_number(one, "value", PQgetvalue(r, i, 3));
        cJSON_AddBoolToObject(one, "ready", strcmp(PQgetvalue(r, i, 4), "t") == 0);
    }
    cJSON_AddNumberToObject(o, "count", cJSON_GetArraySize(a));
    return o;
}

/* The key is the rest of the path after prefix (it may hold '/'); 400 naming `key`. */
static int
path_key(struct qry_ctx *ctx, struct mg_connection *c, const char *rest, char key[257])
{
    struct qry_error e;
    char why[200];
    size_t len = strlen(rest);
    if (len == 0 || len > 256 || astro_event_check_key(rest, len, 256, why, sizeof(why)) !=
                                     ASTRO_OK) {
        snprintf(e.param, sizeof(e.param), "key");
        snprintf(e.msg, sizeof(e.msg), "%s", len == 0 ? "is missing" :
                                             len > 256 ? "must be at most 256 bytes" : why);
        qry_reply_bad(ctx, c, &e);
        return ASTRO_ERR;
    }
    memcpy(key, rest, len + 1);
    return ASTRO_OK;
}

static void
serve(struct qry_ctx *ctx, struct mg_connection *c, enum qry_agg_endpoint ep, const char *rest,
      const char *qs)
{
    struct qry_agg_filter f;
    struct qry_error e;
    struct agg_sql q;
    char key[257], err[512];
    if (path_key(ctx, c, rest, key) != ASTRO_OK)
        return;
    if (qry_agg_params_parse(ep, qs, &f, &e) != ASTRO_OK) {
        qry_reply_bad(ctx, c, &e);
        return;
    }
    memset(&q, 0, sizeof(q));
    if (fill_values(&f, &q) != ASTRO_OK) {
        qry_reply_error(ctx, c, 500, "internal", NULL, "cannot build the query");
        return;
    }
    if (ep == QRY_EP_CANDLES)
        candles_sql(&f, key, &q);
    else
        indicators_sql(&f, key, &q);
    unsigned slot = (ep == QRY_EP_CANDLES ? QRY_SLOT_CANDLES : QRY_SLOT_INDICATORS) + f.present;
    PGresult *r = qry_sql_exec(qry_worker_of(c), slot, q.text, q.n, q.v, err, sizeof(err));
    if (r == NULL) {
        astro_log_warn("%s: database: %s", ep == QRY_EP_CANDLES ? "candles" : "indicators",
                       err);
        qry_reply_error(ctx, c, 503, "database_unavailable", NULL,
                        "the database did not answer");
        return;
    }
    int64_t t0 = qry_mono_us();
    cJSON *o = ep == QRY_EP_CANDLES ? candles_page(r, key, &f) : indicators_page(r, key, &f);
    qry_timing_add(qry_worker_of(c), QRY_ST_RENDER, t0);
    PQclear(r);
    qry_reply_json(c, 200, o);
}

void
qry_candles_route(struct qry_ctx *ctx, struct mg_connection *c, const char *path,
                  const char *qs)
{
    serve(ctx, c, QRY_EP_CANDLES, path + strlen("/candles/"), qs);
}

void
qry_indicators_route(struct qry_ctx *ctx, struct mg_connection *c, const char *path,
                     const char *qs)
{
    serve(ctx, c, QRY_EP_INDICATORS, path + strlen("/indicators/"), qs);
}

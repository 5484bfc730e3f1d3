/* The cold-tier endpoints: /events/mono, /events/multi (filtered pages with offset or keyset
 * cursor), by-id lookups, lineage, and /events/stats from the per-minute rollups. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

#include "astro/log.h"
#include "astro/time.h"
#include "query.h"
#include "sql.h"

/* One result row as an event object (columns as in sql.c's MONO_COLS / MULTI_COLS); key NULL
 * for an array element. */
static void
row_jw(struct qry_jw *w, const char *key, const PGresult *r, int i, enum qry_kind kind)
{
    char ts[ASTRO_TIME_RFC3339_LEN + 1];
    bool ts_ok = astro_time_format(strtoll(PQgetvalue(r, i, 1), NULL, 10), ts, sizeof(ts)) ==
                 ASTRO_OK;
    qry_jw_open(w, key, '{');
    qry_jw_kstr(w, "event_id", PQgetvalue(r, i, 0));
    qry_jw_kstr(w, "timestamp", ts_ok ? ts : NULL);
    qry_jw_kstr(w, "source_stream", PQgetvalue(r, i, 2));
    qry_jw_kstr(w, "key", PQgetvalue(r, i, 3));
    qry_jw_kstr(w, "event_type", PQgetvalue(r, i, 4));
    qry_jw_knum(w, "value", PQgetvalue(r, i, 5));
    qry_jw_kraw(w, "metadata", PQgetvalue(r, i, 6)); /* jsonb text: valid JSON */
    qry_jw_kstr(w, "stream_entry_id", PQgetisnull(r, i, 7) ? NULL : PQgetvalue(r, i, 7));
    if (kind == QRY_MULTI) {
        qry_jw_kstr(w, "correlation_rule", PQgetvalue(r, i, 8));
        qry_jw_knum(w, "integrated_value", PQgetvalue(r, i, 9));
        qry_jw_knum(w, "confidence", PQgetvalue(r, i, 10));
        qry_jw_kraw(w, "source_events", PQgetvalue(r, i, 11));
        qry_jw_kraw(w, "lineage", PQgetvalue(r, i, 12));
    }
    qry_jw_close(w, '}');
}

/* "events": [...] with every row of r. */
static void
rows_jw(struct qry_jw *w, const PGresult *r, enum qry_kind kind)
{
    qry_jw_open(w, "events", '[');
    for (int i = 0; i < PQntuples(r); i++)
        row_jw(w, NULL, r, i, kind);
    qry_jw_close(w, ']');
}

/* A writer sized for r's rows (their text plus the JSON around each field). */
static void
jw_for(struct qry_jw *w, const PGresult *r)
{
    size_t hint = 256;
    for (int i = 0; i < PQntuples(r); i++)
        for (int f = 0; f < PQnfields(r); f++)
            hint += (size_t)PQgetlength(r, i, f) + 24;
    qry_jw_init(w, hint);
}

static void
reply_db_error(struct qry_ctx *ctx, struct mg_connection *c, const char *what, const char *err)
{
    astro_log_warn("%s: database: %s", what, err);
    qry_reply_error(ctx, c, 503, "database_unavailable", NULL, "the database did not answer");
}

static void
list_page(struct qry_ctx *ctx, struct mg_connection *c, enum qry_kind kind, const char *qs)
{
    struct qry_filter f;
    struct qry_error e;
    struct qry_sql_params p;
    char sql[1024], err[512];
    if (qry_params_parse(kind == QRY_MONO ? QRY_EP_MONO : QRY_EP_MULTI, qs, &f, &e) !=
        ASTRO_OK) {
        qry_reply_bad(ctx, c, &e);
        return;
    }
    int n = qry_sql_list(kind, f.present, sql, sizeof(sql));
    if (n < 0 || qry_sql_list_params(&f, &p) != n) {
        qry_reply_error(ctx, c, 500, "internal", NULL, "cannot build the query");
        return;
    }
    unsigned slot = f.present + (kind == QRY_MULTI ? QRY_SLOT_MULTI_BASE : 0);
    PGresult *r = qry_sql_exec(qry_worker_of(c), slot, sql, n, p.v, err, sizeof(err));
    if (r == NULL) {
        reply_db_error(ctx, c, "events", err);
        return;
    }
    int64_t t0 = qry_mono_us();
    struct qry_jw w;
    int rows = PQntuples(r);
    char cur[QRY_CURSOR_MAX];
    bool more = rows > 0 && rows == f.limit &&
                qry_cursor_encode(strtoll(PQgetvalue(r, rows - 1, 1), NULL, 10),
                                  PQgetvalue(r, rows - 1, 0), cur) == ASTRO_OK;
    jw_for(&w, r);
    qry_jw_open(&w, NULL, '{');
    rows_jw(&w, r, kind);
    qry_jw_kint(&w, "count", rows);
    qry_jw_kint(&w, "limit", (long long)f.limit);
    qry_jw_kint(&w, "offset", (long long)f.offset);
    qry_jw_kstr(&w, "next_cursor", more ? cur : NULL);
    qry_jw_close(&w, '}');
    PQclear(r);
    qry_timing_add(qry_worker_of(c), QRY_ST_RENDER, t0);
    qry_reply_jw(c, 200, &w);
}

/* Checks the id path segment and the (empty) query string. */
static int
check_id(struct qry_ctx *ctx, struct mg_connection *c, const char *id, const char *qs,
         char out[ASTRO_EVENT_ID_MAX + 1])
{
    struct qry_filter f;
    struct qry_error e;
    char why[200];
    if (qry_params_parse(QRY_EP_NONE, qs, &f, &e) != ASTRO_OK) {
        qry_reply_bad(ctx, c, &e);
        return ASTRO_ERR;
    }
    if (astro_event_check_id("id", id, strlen(id), ASTRO_EVENT_ID_MAX, out, why, sizeof(why)) !=
        ASTRO_OK) {
        snprintf(e.param, sizeof(e.param), "id");
        snprintf(e.msg, sizeof(e.msg), "%s", why);
        qry_reply_bad(ctx, c, &e);
        return ASTRO_ERR;
    }
    return ASTRO_OK;
}

static void
by_id(struct qry_ctx *ctx, struct mg_connection *c, enum qry_kind kind, const char *id_in,
      const char *qs)
{
    char id[ASTRO_EVENT_ID_MAX + 1], err[512];
    if (check_id(ctx, c, id_in, qs, id) != ASTRO_OK)
        return;
    const char *params[] = {id};
    PGresult *r = kind == QRY_MONO
        ? qry_sql_exec(qry_worker_of(c), QRY_SLOT_MONO_ID, qry_sql_mono_by_id, 1, params, err,
                       sizeof(err))
        : qry_sql_exec(qry_worker_of(c), QRY_SLOT_MULTI_ID, qry_sql_multi_by_id, 1, params,
                       err, sizeof(err));
    if (r == NULL) {
        reply_db_error(ctx, c, "by id", err);
        return;
    }
    if (PQntuples(r) == 0) {
        qry_reply_error(ctx, c, 404, "not_found", NULL, "no event with this id");
    } else {
        struct qry_jw w;
        jw_for(&w, r);
        row_jw(&w, NULL, r, 0, kind);
        qry_reply_jw(c, 200, &w);
    }
    PQclear(r);
}

/* The source mono events of a multi event, oldest first. 404 when the multi event is unknown;
 * sources the archive no longer holds are reported in "missing". */
static void
lineage(struct qry_ctx *ctx, struct mg_connection *c, const char *id_in, const char *qs)
{
    char id[ASTRO_EVENT_ID_MAX + 1], err[512];
    if (check_id(ctx, c, id_in, qs, id) != ASTRO_OK)
        return;
    const char *params[] = {id};
    struct qry_worker *w = qry_worker_of(c);
    PGresult *m = qry_sql_exec(w, QRY_SLOT_MULTI_ID, qry_sql_multi_by_id, 1, params, err,
                               sizeof(err));
    PGresult *r = m != NULL && PQntuples(m) > 0
        ? qry_sql_exec(w, QRY_SLOT_LINEAGE, qry_sql_lineage, 1, params, err, sizeof(err))
        : NULL;
    if (m == NULL || (PQntuples(m) > 0 && r == NULL)) {
        reply_db_error(ctx, c, "lineage", err);
    } else if (PQntuples(m) == 0) {
        qry_reply_error(ctx, c, 404, "not_found", NULL, "no multi event with this id");
    } else {
        struct qry_jw out;
        jw_for(&out, r);
        qry_jw_open(&out, NULL, '{');
        qry_jw_kstr(&out, "event_id", id);
        qry_jw_kraw(&out, "source_events", PQgetvalue(m, 0, 11));
        rows_jw(&out, r, QRY_MONO);
        qry_jw_kint(&out, "count", PQntuples(r));
        qry_jw_close(&out, '}');
        qry_reply_jw(c, 200, &out);
    }
    PQclear(m);
    PQclear(r);
}

/* Splits "/events/multi/{id}[/lineage]"; false when path is not of that shape. */
static bool
multi_path(const char *path, char *id, size_t size, bool *is_lineage)
{
    const char *p = path + 14, *slash = strchr(p, '/');
    *is_lineage = slash != NULL;
    if (slash != NULL && (slash == p || strcmp(slash, "/lineage") != 0))
        return false;
    size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
    if (n == 0)
        return false;
    snprintf(id, size, "%.*s", (int)n, p);
    return true;
}

void
qry_events_route(struct qry_ctx *ctx, struct mg_connection *c, const char *path,
                 const char *qs)
{
    char id[ASTRO_EVENT_ID_MAX * 4 + 1];
    bool is_lineage;
    size_t len = strlen(path);
    if (strcmp(path, "/events/mono") == 0)
        list_page(ctx, c, QRY_MONO, qs);
    else if (strcmp(path, "/events/multi") == 0)
        list_page(ctx, c, QRY_MULTI, qs);
    else if (strcmp(path, "/events/stats") == 0)
        qry_events_stats(ctx, c, qs);
    else if (len > 13 && memcmp(path, "/events/mono/", 13) == 0 &&
             memchr(path + 13, '/', len - 13) == NULL)
        by_id(ctx, c, QRY_MONO, path + 13, qs);
    else if (len > 14 && memcmp(path, "/events/multi/", 14) == 0 &&
             multi_path(path, id, sizeof(id), &is_lineage))
        is_lineage ? lineage(ctx, c, id, qs) : by_id(ctx, c, QRY_MULTI, id, qs);
    else
        qry_reply_error(ctx, c, 404, "not_found", NULL, "no such endpoint");
}

/* SQL for the event endpoints. A list query is built from the filters present, so each
 * combination gets its own prepared statement whose plan can use the index that serves it
 * ((source_stream, ts), (event_type, ts), (key, ts), (correlation_rule, ts), (ts)); a
 * "$1 IS NULL OR ..." catch-all would defeat the indexes under a generic plan. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "astro/pg.h"
#include "astro/time.h"
#include "query.h"
#include "sql.h"

#define MONO_COLS                                                                              \
    "event_id, (extract(epoch FROM ts) * 1000000)::int8, source_stream, key, event_type, "    \
    "value, metadata::text, stream_entry_id"
#define MULTI_COLS                                                                             \
    MONO_COLS ", correlation_rule, integrated_value, confidence, "                            \
              "array_to_json(source_events)::text, lineage::text"

const char qry_sql_mono_by_id[] =
    "SELECT " MONO_COLS " FROM mono_events WHERE event_id = $1 ORDER BY ts LIMIT 1";
const char qry_sql_multi_by_id[] =
    "SELECT " MULTI_COLS " FROM multi_events WHERE event_id = $1 ORDER BY ts LIMIT 1";
const char qry_sql_lineage[] =
    "SELECT " MONO_COLS " FROM mono_events WHERE event_id = ANY ("
    "SELECT unnest(source_events) FROM multi_events WHERE event_id = $1) ORDER BY ts, event_id";
const char qry_sql_stats[] =
    "SELECT kind, source_stream, event_type, correlation_rule, sum(count)::int8, "
    "(extract(epoch FROM min(minute)) * 1000000)::int8, "
    "(extract(epoch FROM max(minute)) * 1000000)::int8 "
    "FROM event_rollups WHERE minute >= $1::timestamptz AND minute < $2::timestamptz "
    "GROUP BY 1, 2, 3, 4";

struct sqlbuf {
    char *p;
    size_t len, cap;
    int n; /* parameters so far */
};

static void
add(struct sqlbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->len + n < b->cap) {
        memcpy(b->p + b->len, s, n + 1);
        b->len += n;
    }
}

/* Appends "pre$<next>post" as one more condition. */
static void
cond(struct sqlbuf *b, const char *pre, const char *post)
{
    char tmp[128];
    const char *glue = b->n == 0 ? " WHERE " : " AND ";
    b->n++;
    snprintf(tmp, sizeof(tmp), "%s%s$%d%s", glue, pre, b->n, post);
    add(b, tmp);
}

/* The keyset condition, (ts, event_id) > (cursor): written with ts >= first so the ts index
 * bounds the scan. */
static void
cond_cursor(struct sqlbuf *b)
{
    char tmp[160];
    int t = b->n + 1, id = b->n + 2;
    snprintf(tmp, sizeof(tmp),
             "%sts >= $%d::timestamptz AND (ts > $%d::timestamptz OR event_id > $%d)",
             b->n == 0 ? " WHERE " : " AND ", t, t, id);
    b->n += 2;
    add(b, tmp);
}

int
qry_sql_list(enum qry_kind kind, unsigned present, char *out, size_t size)
{
    struct sqlbuf b = {out, 0, size, 0};
    out[0] = '\0';
    add(&b, kind == QRY_MONO ? "SELECT " MONO_COLS " FROM mono_events"
                             : "SELECT " MULTI_COLS " FROM multi_events");
    if (present & QRY_F_START)
        cond(&b, "ts >= ", "::timestamptz");
    if (present & QRY_F_END)
        cond(&b, "ts < ", "::timestamptz");
    if (present & QRY_F_SOURCE)
        cond(&b, "source_stream = ", "");
    if (present & QRY_F_TYPE)
        cond(&b, "event_type = ", "");
    if (present & QRY_F_RULE)
        cond(&b, "correlation_rule = ", "");
    if (present & QRY_F_CONF)
        cond(&b, "confidence >= ", "::float8");
    if (present & QRY_F_KEY)
        cond(&b, "key = ", "");
    if (present & QRY_F_CURSOR)
        cond_cursor(&b);
    char tail[96];
    snprintf(tail, sizeof(tail), " ORDER BY ts, event_id LIMIT $%d OFFSET $%d", b.n + 1,
             b.n + 2);
    add(&b, tail);
    return b.len + 1 < size ? b.n + 2 : -1;
}

/* Text values of the list parameters, in the order qry_sql_list() numbers them. */
int
qry_sql_list_params(const struct qry_filter *f, struct qry_sql_params *p)
{
    int n = 0;
    if ((f->present & QRY_F_START) &&
        astro_time_format(f->start_us, p->start, sizeof(p->start)) != ASTRO_OK)
        return -1;
    if ((f->present & QRY_F_END) &&
        astro_time_format(f->end_us, p->end, sizeof(p->end)) != ASTRO_OK)
        return -1;
    if ((f->present & QRY_F_CURSOR) &&
        astro_time_format(f->cur_ts_us, p->cur, sizeof(p->cur)) != ASTRO_OK)
        return -1;
    snprintf(p->conf, sizeof(p->conf), "%.17g", f->min_conf);
    snprintf(p->limit, sizeof(p->limit), "%lld", (long long)f->limit);
    snprintf(p->offset, sizeof(p->offset), "%lld", (long long)f->offset);
    if (f->present & QRY_F_START) p->v[n++] = p->start;
    if (f->present & QRY_F_END) p->v[n++] = p->end;
    if (f->present & QRY_F_SOURCE) p->v[n++] = f->source;
    if (f->present & QRY_F_TYPE) p->v[n++] = f->type;
    if (f->present & QRY_F_RULE) p->v[n++] = f->rule;
    if (f->present & QRY_F_CONF) p->v[n++] = p->conf;
    if (f->present & QRY_F_KEY) p->v[n++] = f->key;
    if (f->present & QRY_F_CURSOR) {
        p->v[n++] = p->cur;
        p->v[n++] = f->cur_id;
    }
    p->v[n++] = p->limit;
    p->v[n++] = p->offset;
    return n;
}

PGresult *
qry_sql_exec(struct qry_worker *w, unsigned slot, const char *sql, int n,
             const char *const *params, char *err, size_t errlen)
{
    struct astro_pg *pg = qry_worker_pg(w, err, errlen);
    if (pg == NULL)
        return NULL;
    char name[16];
    snprintf(name, sizeof(name), "q%u", slot);
    int64_t t0 = qry_mono_us();
    if (!qry_worker_prepared(w, slot)) {
        PGresult *r = PQprepare(pg->conn, name, sql, n, NULL);
        qry_timing_add(w, QRY_ST_PREPARE, t0);
        t0 = qry_mono_us();
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            astro_pg_result_error(pg->conn, r, err, errlen);
            PQclear(r);
            return NULL;
        }
        PQclear(r);
        qry_worker_set_prepared(w, slot);
    }
    PGresult *r = PQexecPrepared(pg->conn, name, n, params, NULL, NULL, 0);
    qry_timing_add(w, QRY_ST_DB, t0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        astro_pg_result_error(pg->conn, r, err, errlen);
        PQclear(r);
        return NULL;
    }
    return r;
}

/* The minute rollups (event_rollups) of the rows a transaction inserted, counted in C: the
 * writer knows exactly which rows its COPY inserted (all of them, or those left after the
 * key probe), so the counts need no staging table and no GROUP BY in PostgreSQL. They are
 * sent as arrays in one INSERT ... SELECT FROM unnest(...) ... ON CONFLICT DO UPDATE. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archiver.h"

#define MINUTE_US INT64_C(60000000)

/* floor(ts / 1 min) * 1 min: UTC minutes, also before the epoch. */
static int64_t
minute_of(int64_t ts_us)
{
    int64_t q = ts_us / MINUTE_US;
    if (ts_us % MINUTE_US < 0)
        q--;
    return q * MINUTE_US;
}

static int
cmp_group(const void *pa, const void *pb)
{
    const struct arc_rollup *a = pa, *b = pb;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    if (a->minute_us != b->minute_us)
        return a->minute_us < b->minute_us ? -1 : 1;
    int c = strcmp(a->src, b->src);
    if (c == 0)
        c = strcmp(a->type, b->type);
    return c != 0 ? c : strcmp(a->rule, b->rule);
}

int
arc_rollups_count(const struct arc_row *rows, size_t lo, size_t hi,
                  const struct arc_stream *streams, const bool *skip, struct arc_rollup **out,
                  size_t *n)
{
    *out = NULL;
    *n = 0;
    struct arc_rollup *g = malloc((hi - lo + 1) * sizeof(*g));
    if (g == NULL)
        return ASTRO_ERR;
    size_t m = 0;
    for (size_t i = lo; i < hi; i++) {
        enum arc_kind k = streams[rows[i].stream].kind;
        if (k > ARC_MULTI || (skip != NULL && skip[i - lo]))
            continue;
        const struct astro_event *ev = &rows[i].ev;
        g[m++] = (struct arc_rollup){.minute_us = minute_of(ev->ts_us), .kind = k,
                                     .src = ev->src, .type = ev->type,
                                     .rule = k == ARC_MULTI && ev->rule ? ev->rule : "",
                                     .count = 1};
    }
    if (m == 0) {
        free(g);
        return ASTRO_OK;
    }
    qsort(g, m, sizeof(*g), cmp_group);
    size_t w = 0;
    for (size_t i = 1; i < m; i++) {
        if (cmp_group(&g[w], &g[i]) == 0)
            g[w].count++;
        else
            g[++w] = g[i];
    }
    *out = g;
    *n = w + 1;
    return ASTRO_OK;
}

/* A growing text buffer for the array literals. */
struct lit {
    char *s;
    size_t len, cap;
    bool failed;
};

static void
lit_put(struct lit *l, const char *s, size_t n)
{
    if (l->failed)
        return;
    if (l->len + n + 1 > l->cap) {
        size_t cap = l->cap ? l->cap : 256;
        while (cap < l->len + n + 1)
            cap *= 2;
        char *p = realloc(l->s, cap);
        if (p == NULL) {
            l->failed = true;
            return;
        }
        l->s = p;
        l->cap = cap;
    }
    memcpy(l->s + l->len, s, n);
    l->len += n;
    l->s[l->len] = '\0';
}

/* Appends one quoted element of a text[] literal: " and \ are backslash-escaped. */
static void
lit_text(struct lit *l, const char *s, bool first)
{
    lit_put(l, first ? "\"" : ",\"", first ? 1 : 2);
    for (const char *p = s; *p != '\0'; p++) {
        size_t run = strcspn(p, "\"\\");
        lit_put(l, p, run);
        p += run;
        if (*p == '\0')
            break;
        lit_put(l, "\\", 1);
        lit_put(l, p, 1);
    }
    lit_put(l, "\"", 1);
}

static void
lit_int(struct lit *l, int64_t v, bool first)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%s%" PRId64, first ? "" : ",", v);
    lit_put(l, buf, (size_t)n);
}

/* Columns of the unnest: minute (µs), kind, source_stream, event_type, correlation_rule,
 * count. ORDER BY is the lock order of the rollup rows, the same in every transaction. */
static const char ROLLUP_SQL[] =
    "INSERT INTO event_rollups (minute, kind, source_stream, event_type, correlation_rule, count)"
    " SELECT timestamptz 'epoch' + m * interval '1 microsecond', k, s, t, r, c"
    " FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])"
    " AS u(m, k, s, t, r, c) ORDER BY 2, 1, 3, 4, 5"
    " ON CONFLICT (minute, kind, source_stream, event_type, correlation_rule)"
    " DO UPDATE SET count = event_rollups.count + excluded.count";

int
arc_rollups_write(struct astro_pg *pg, const struct arc_rollup *g, size_t n, char *err,
                  size_t errlen)
{
    if (n == 0)
        return ASTRO_OK;
    struct lit col[6] = {{0}};
    for (size_t c = 0; c < 6; c++)
        lit_put(&col[c], "{", 1);
    for (size_t i = 0; i < n; i++) {
        bool first = i == 0;
        lit_int(&col[0], g[i].minute_us, first);
        lit_text(&col[1], g[i].kind == ARC_MONO ? "mono" : "multi", first);
        lit_text(&col[2], g[i].src, first);
        lit_text(&col[3], g[i].type, first);
        lit_text(&col[4], g[i].rule, first);
        lit_int(&col[5], g[i].count, first);
    }
    int rc = ASTRO_ERR;
    const char *params[6];
    for (size_t c = 0; c < 6; c++) {
        lit_put(&col[c], "}", 1);
        if (col[c].failed) {
            astro_fail(err, errlen, "rollups: out of memory");
            goto done;
        }
        params[c] = col[c].s;
    }
    PGresult *res = astro_pg_exec(pg, ROLLUP_SQL, 6, params, err, errlen);
    if (res != NULL) {
        PQclear(res);
        rc = ASTRO_OK;
    }
done:
    for (size_t c = 0; c < 6; c++)
        free(col[c].s);
    return rc;
}

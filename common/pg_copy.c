/* COPY ... FROM STDIN in text format: the row builder and the send/finish calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "astro/pg.h"

void
astro_pg_copybuf_init(struct astro_pg_copybuf *b)
{
    memset(b, 0, sizeof(*b));
}

void
astro_pg_copybuf_cleanup(struct astro_pg_copybuf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void
astro_pg_copybuf_reset(struct astro_pg_copybuf *b)
{
    b->len = b->rows = b->row_start = 0;
    b->fields = 0;
    b->failed = false;
}

static int
reserve(struct astro_pg_copybuf *b, size_t extra)
{
    if (b->failed)
        return ASTRO_ERR;
    if (b->len + extra <= b->cap)
        return ASTRO_OK;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = true;
        return ASTRO_ERR;
    }
    b->data = p;
    b->cap = cap;
    return ASTRO_OK;
}

/* Text COPY reads backslash sequences, so the four bytes that would end a field or row, or
 * start an escape, are written as escapes; every other byte (UTF-8 included) passes as is. */
static char
escape_for(char c)
{
    switch (c) {
    case '\\': return '\\';
    case '\t': return 't';
    case '\n': return 'n';
    case '\r': return 'r';
    default: return 0;
    }
}

int
astro_pg_copybuf_field(struct astro_pg_copybuf *b, const char *s, size_t n)
{
    /* Worst case every byte doubles, plus the separator. */
    if (reserve(b, (s ? 2 * n : 2) + 1) != ASTRO_OK)
        return ASTRO_ERR;
    if (b->fields > 0)
        b->data[b->len++] = '\t';
    b->fields++;
    if (s == NULL) {
        memcpy(b->data + b->len, "\\N", 2);
        b->len += 2;
        return ASTRO_OK;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\0') {
            b->failed = true;
            return ASTRO_ERR;
        }
        char e = escape_for(s[i]);
        if (e) {
            b->data[b->len++] = '\\';
            b->data[b->len++] = e;
        } else {
            b->data[b->len++] = s[i];
        }
    }
    return ASTRO_OK;
}

int
astro_pg_copybuf_str(struct astro_pg_copybuf *b, const char *s)
{
    return astro_pg_copybuf_field(b, s, s ? strlen(s) : 0);
}

int
astro_pg_copybuf_end_row(struct astro_pg_copybuf *b)
{
    if (reserve(b, 1) != ASTRO_OK)
        return ASTRO_ERR;
    b->data[b->len++] = '\n';
    b->rows++;
    b->fields = 0;
    b->row_start = b->len;
    return ASTRO_OK;
}

int
astro_pg_copy_begin(struct astro_pg *pg, const char *copy_sql, char *err, size_t errlen)
{
    if (astro_pg_ensure(pg, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    PGresult *res = PQexec(pg->conn, copy_sql);
    int rc = ASTRO_OK;
    if (PQresultStatus(res) != PGRES_COPY_IN)
        rc = astro_pg_result_error(pg->conn, res, err, errlen);
    PQclear(res);
    return rc;
}

int
astro_pg_copy_put(struct astro_pg *pg, struct astro_pg_copybuf *b, char *err, size_t errlen)
{
    if (b->failed)
        return astro_fail(err, errlen, "copy: row buffer unusable (out of memory or NUL byte)");
    if (b->row_start != b->len || b->fields != 0)
        return astro_fail(err, errlen, "copy: a row is half built (missing end_row)");
    if (b->len > 0 && PQputCopyData(pg->conn, b->data, (int)b->len) != 1)
        return astro_fail(err, errlen, "copy: sending data: %s", PQerrorMessage(pg->conn));
    astro_pg_copybuf_reset(b);
    return ASTRO_OK;
}

int
astro_pg_copy_end(struct astro_pg *pg, const char *abort_reason, uint64_t *rows, char *err,
                  size_t errlen)
{
    if (PQputCopyEnd(pg->conn, abort_reason) != 1)
        return astro_fail(err, errlen, "copy: ending: %s", PQerrorMessage(pg->conn));
    int rc = ASTRO_OK;
    bool seen = false;
    PGresult *res;
    /* Drain every result so the connection is ready for the next command even on error. */
    while ((res = PQgetResult(pg->conn)) != NULL) {
        if (!seen && PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = astro_pg_result_error(pg->conn, res, err, errlen);
        else if (!seen && rows != NULL)
            *rows = strtoull(PQcmdTuples(res), NULL, 10);
        seen = true;
        PQclear(res);
    }
    if (!seen)
        rc = astro_pg_result_error(pg->conn, NULL, err, errlen);
    return rc;
}

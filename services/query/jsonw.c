/* A JSON text writer for the event pages: the rows go from libpq's text straight into one
 * growing buffer, with room kept in front for the HTTP head, so a page is one allocation and
 * one write. Building a cJSON tree for 100 events cost ~3000 small allocations plus a print
 * and a copy per request (profiled at 10M rows: malloc/free, strlen and memmove were over
 * half of a worker's CPU time). Keys are literals of ours; string values are escaped as
 * RFC 8259 asks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

/* Whether s is a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
bool
qry_is_json_number(const char *s)
{
    s += *s == '-';
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        s += strspn(s, "0123456789");
    else
        return false;
    if (*s == '.') {
        size_t n = strspn(++s, "0123456789");
        if (n == 0)
            return false;
        s += n;
    }
    if (*s == 'e' || *s == 'E') {
        s += 1 + (s[1] == '+' || s[1] == '-');
        size_t n = strspn(s, "0123456789");
        if (n == 0)
            return false;
        s += n;
    }
    return *s == '\0';
}

void
qry_jw_init(struct qry_jw *w, size_t hint)
{
    w->cap = QRY_JW_HEAD + (hint > 0 ? hint : 1024);
    w->buf = malloc(w->cap);
    w->len = QRY_JW_HEAD;
    w->oom = w->buf == NULL;
    w->first = true;
}

void
qry_jw_cleanup(struct qry_jw *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

/* Room for n more bytes; on failure the writer is marked oom and writes are dropped. */
static bool
reserve(struct qry_jw *w, size_t n)
{
    if (w->oom)
        return false;
    if (w->len + n <= w->cap)
        return true;
    size_t cap = w->cap * 2 > w->len + n ? w->cap * 2 : w->len + n;
    char *p = realloc(w->buf, cap);
    if (p == NULL) {
        w->oom = true;
        return false;
    }
    w->buf = p;
    w->cap = cap;
    return true;
}

void
qry_jw_raw(struct qry_jw *w, const char *s, size_t n)
{
    if (reserve(w, n)) {
        memcpy(w->buf + w->len, s, n);
        w->len += n;
    }
}

void
qry_jw_lit(struct qry_jw *w, const char *s)
{
    qry_jw_raw(w, s, strlen(s));
}

void
qry_jw_str(struct qry_jw *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(s);
    if (!reserve(w, n * 6 + 2)) /* worst case: every byte a \u00XX */
        return;
    char *o = w->buf + w->len;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p;
        } else if (*p < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[*p >> 4];
            o[5] = hex[*p & 15];
            o += 6;
        } else {
            *o++ = (char)*p; /* UTF-8 passes through: the database holds valid UTF-8 */
        }
    }
    *o++ = '"';
    w->len = (size_t)(o - w->buf);
}

/* The separator before a member or element: none after an opening bracket. */
static void
sep(struct qry_jw *w)
{
    if (!w->first)
        qry_jw_raw(w, ",", 1);
    w->first = false;
}

void
qry_jw_open(struct qry_jw *w, const char *key, char bracket)
{
    qry_jw_key(w, key);
    qry_jw_raw(w, &bracket, 1);
    w->first = true;
}

void
qry_jw_close(struct qry_jw *w, char bracket)
{
    qry_jw_raw(w, &bracket, 1);
    w->first = false;
}

void
qry_jw_key(struct qry_jw *w, const char *key)
{
    sep(w);
    if (key != NULL) {
        qry_jw_str(w, key);
        qry_jw_raw(w, ":", 1);
    }
}

void
qry_jw_kstr(struct qry_jw *w, const char *key, const char *s)
{
    qry_jw_key(w, key);
    if (s != NULL)
        qry_jw_str(w, s);
    else
        qry_jw_lit(w, "null");
}

void
qry_jw_kraw(struct qry_jw *w, const char *key, const char *json)
{
    qry_jw_key(w, key);
    qry_jw_lit(w, json);
}

void
qry_jw_kint(struct qry_jw *w, const char *key, long long v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%lld", v);
    qry_jw_key(w, key);
    qry_jw_raw(w, num, (size_t)n);
}

void
qry_jw_knum(struct qry_jw *w, const char *key, const char *pg_text)
{
    qry_jw_key(w, key);
    qry_jw_lit(w, qry_is_json_number(pg_text) ? pg_text : "null");
}

/* Query-string parsing for the event endpoints: every parameter checked, every failure named.
 * The values go to PostgreSQL only as statement parameters; the checks here are for the user
 * (a clear 400) and for the plans (an index-friendly, typed filter). */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "astro/time.h"
#include "astro/utf8.h"
#include "query.h"


static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int
qry_url_decode(const char *src, size_t n, char *out, size_t size, char *err, size_t errlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)src[i];
        if (ch == '%') {
            if (i + 2 >= n || hexval(src[i + 1]) < 0 || hexval(src[i + 2]) < 0)
                return astro_fail(err, errlen, "malformed percent-encoding");
            ch = hexval(src[i + 1]) * 16 + hexval(src[i + 2]);
            i += 2;
            if (ch == 0)
                return astro_fail(err, errlen, "contains a NUL byte");
        } else if (ch == '+') {
            ch = ' ';
        }
        if (o + 1 >= size)
            return astro_fail(err, errlen, "longer than %zu bytes", size - 1);
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    if (!astro_utf8_valid(out, o))
        return astro_fail(err, errlen, "is not valid UTF-8");
    return ASTRO_OK;
}

int
qry_parse_time(const char *s, int64_t *us, char *err, size_t errlen)
{
    size_t len = strlen(s);
    bool digits = len > 0;
    for (size_t i = (s[0] == '-'); i < len; i++)
        digits = digits && isdigit((unsigned char)s[i]);
    if (digits) {
        int64_t ms;
        char e2[64];
        if (len > 16 || astro_cfg_parse_int(s, &ms, e2, sizeof(e2)) != ASTRO_OK)
            return astro_fail(err, errlen, "epoch milliseconds out of range");
        if (astro_time_from_epoch_ms((double)ms, us, e2, sizeof(e2)) != ASTRO_OK)
            return astro_fail(err, errlen, "epoch milliseconds out of range");
        return ASTRO_OK;
    }
    char e2[128];
    if (astro_time_parse_rfc3339(s, len, us, e2, sizeof(e2)) != ASTRO_OK)
        return astro_fail(err, errlen, "not RFC 3339 or epoch milliseconds (%s)", e2);
    return ASTRO_OK;
}

/* The parameters of each endpoint, with the filter bit they set. */
static const struct qry_param_def mono_params[] = {
    {"start_time", QRY_F_START}, {"end_time", QRY_F_END}, {"source_stream", QRY_F_SOURCE},
    {"event_type", QRY_F_TYPE},  {"key", QRY_F_KEY},      {"cursor", QRY_F_CURSOR},
    {"limit", 0},                {"offset", 0},           {NULL, 0}};
static const struct qry_param_def multi_params[] = {
    {"start_time", QRY_F_START}, {"end_time", QRY_F_END}, {"correlation_rule", QRY_F_RULE},
    {"min_confidence", QRY_F_CONF}, {"key", QRY_F_KEY}, {"cursor", QRY_F_CURSOR},
    {"limit", 0}, {"offset", 0}, {NULL, 0}};
static const struct qry_param_def stats_params[] = {
    {"start_time", QRY_F_START}, {"end_time", QRY_F_END}, {NULL, 0}};
static const struct qry_param_def no_params[] = {{NULL, 0}};

static const struct qry_param_def *
params_of(enum qry_endpoint ep)
{
    switch (ep) {
    case QRY_EP_MONO: return mono_params;
    case QRY_EP_MULTI: return multi_params;
    case QRY_EP_STATS: return stats_params;
    default: return no_params;
    }
}

int
qry_error_set(struct qry_error *e, const char *param, const char *fmt, ...)
{
    va_list ap;
    snprintf(e->param, sizeof(e->param), "%s", param);
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return ASTRO_ERR;
}

static int
parse_range(const char *v, int64_t lo, int64_t hi, int64_t *out, char *err, size_t errlen)
{
    if (astro_cfg_parse_int(v, out, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if (*out < lo || *out > hi)
        return astro_fail(err, errlen, "must be between %lld and %lld", (long long)lo,
                          (long long)hi);
    return ASTRO_OK;
}

static int
parse_confidence(const char *v, double *out, char *err, size_t errlen)
{
    char *end;
    /* decimal only: strtod would also take hex floats, "inf" and "nan" */
    if (*v == '\0' || strspn(v, "0123456789.eE+-") != strlen(v))
        return astro_fail(err, errlen, "is not a decimal number");
    *out = strtod(v, &end);
    if (*end != '\0' || !isfinite(*out))
        return astro_fail(err, errlen, "is not a number");
    if (*out < 0.0 || *out > 1.0)
        return astro_fail(err, errlen, "must be between 0 and 1");
    return ASTRO_OK;
}

static int
copy_name(const char *field, const char *v, char *out, size_t size, char *err, size_t errlen)
{
    if (astro_event_check_name(field, v, strlen(v), ASTRO_EVENT_NAME_MAX, err, errlen) !=
        ASTRO_OK)
        return ASTRO_ERR;
    snprintf(out, size, "%s", v);
    return ASTRO_OK;
}

/* Stores the decoded value v of parameter name into f. */
static int
apply(struct qry_filter *f, const char *name, const char *v, char *err, size_t errlen)
{
    if (strcmp(name, "start_time") == 0)
        return qry_parse_time(v, &f->start_us, err, errlen);
    if (strcmp(name, "end_time") == 0)
        return qry_parse_time(v, &f->end_us, err, errlen);
    if (strcmp(name, "limit") == 0)
        return parse_range(v, 1, QRY_LIMIT_MAX, &f->limit, err, errlen);
    if (strcmp(name, "offset") == 0)
        return parse_range(v, 0, QRY_OFFSET_MAX, &f->offset, err, errlen);
    if (strcmp(name, "min_confidence") == 0)
        return parse_confidence(v, &f->min_conf, err, errlen);
    if (strcmp(name, "cursor") == 0)
        return qry_cursor_decode(v, strlen(v), &f->cur_ts_us, f->cur_id, err, errlen);
    if (strcmp(name, "key") == 0) {
        if (astro_event_check_key(v, strlen(v), sizeof(f->key) - 1, err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
        snprintf(f->key, sizeof(f->key), "%s", v);
        return ASTRO_OK;
    }
    if (strcmp(name, "source_stream") == 0)
        return copy_name(name, v, f->source, sizeof(f->source), err, errlen);
    if (strcmp(name, "event_type") == 0)
        return copy_name(name, v, f->type, sizeof(f->type), err, errlen);
    return copy_name(name, v, f->rule, sizeof(f->rule), err, errlen);
}

/* One "name=value" item of the query string. seen tracks repeats by index in defs. */
static int
walk_item(const struct qry_param_def *defs, const char *item, size_t n, unsigned *seen,
          qry_param_fn fn, void *arg, struct qry_error *e)
{
    char name[40], value[QRY_VALUE_MAX + 1], why[200];
    const char *eq = memchr(item, '=', n);
    size_t nlen = eq != NULL ? (size_t)(eq - item) : n;
    if (qry_url_decode(item, nlen, name, sizeof(name), why, sizeof(why)) != ASTRO_OK)
        return qry_error_set(e, "(name)", "a parameter name %s", why);
    size_t i = 0;
    while (defs[i].name != NULL && strcmp(defs[i].name, name) != 0)
        i++;
    if (defs[i].name == NULL)
        return qry_error_set(e, name, "unknown parameter");
    if (*seen & (1u << i))
        return qry_error_set(e, name, "given more than once");
    *seen |= 1u << i;
    if (eq == NULL || eq + 1 == item + n)
        return qry_error_set(e, name, "needs a value");
    if (qry_url_decode(eq + 1, n - nlen - 1, value, sizeof(value), why, sizeof(why)) != ASTRO_OK)
        return qry_error_set(e, name, "%s", why);
    return fn(arg, &defs[i], value, e);
}

int
qry_query_walk(const char *qs, const struct qry_param_def *defs, qry_param_fn fn, void *arg,
               struct qry_error *e)
{
    unsigned seen = 0;
    if (qs == NULL)
        return ASTRO_OK;
    size_t len = strlen(qs);
    if (len > QRY_QUERY_MAX)
        return qry_error_set(e, "(query)", "query string longer than %d bytes", QRY_QUERY_MAX);
    for (const char *p = qs, *end = qs + len; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        size_t n = amp != NULL ? (size_t)(amp - p) : (size_t)(end - p);
        if (n == 0 || (amp != NULL && amp + 1 == end))
            return qry_error_set(e, "(query)", "empty parameter (stray '&')");
        if (walk_item(defs, p, n, &seen, fn, arg, e) != ASTRO_OK)
            return ASTRO_ERR;
        p += n + (amp != NULL);
    }
    return ASTRO_OK;
}

/* qry_param_fn of the event endpoints: apply() into the filter, its reason into e. */
static int
on_param(void *arg, const struct qry_param_def *def, const char *value, struct qry_error *e)
{
    struct qry_filter *f = arg;
    char why[200];
    if (apply(f, def->name, value, why, sizeof(why)) != ASTRO_OK)
        return qry_error_set(e, def->name, "%s", why);
    f->present |= def->bit;
    return ASTRO_OK;
}

/* Checks between parameters, after each was valid on its own. */
static int
check_combined(struct qry_filter *f, struct qry_error *e)
{
    if ((f->present & QRY_F_START) && (f->present & QRY_F_END) && f->end_us <= f->start_us)
        return qry_error_set(e, "end_time", "must be after start_time");
    if ((f->present & QRY_F_CURSOR) && f->offset != 0)
        return qry_error_set(e, "offset", "cannot be combined with cursor");
    return ASTRO_OK;
}

int
qry_params_parse(enum qry_endpoint ep, const char *qs, struct qry_filter *f,
                 struct qry_error *e)
{
    memset(f, 0, sizeof(*f));
    memset(e, 0, sizeof(*e));
    f->limit = QRY_LIMIT_DEFAULT;
    if (qry_query_walk(qs, params_of(ep), on_param, f, e) != ASTRO_OK)
        return ASTRO_ERR;
    return check_combined(f, e);
}

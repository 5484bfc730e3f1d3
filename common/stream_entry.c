/* Stream entries as named fields (astro/stream_entry.h). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "astro/event.h"
#include "astro/stream_entry.h"

/* Records one field/value pair; unknown names are skipped, repeated known names refused. */
static int
note(const char *const *names, size_t count, struct astro_stream_span *out, const char *name,
     size_t nlen, const char *v, size_t vlen, const char *what, char *err, size_t errlen)
{
    for (size_t k = 0; k < count; k++) {
        if (strlen(names[k]) != nlen || memcmp(names[k], name, nlen) != 0)
            continue;
        if (out[k].set)
            return astro_fail(err, errlen, "%s: duplicate field \"%s\"", what, names[k]);
        out[k] = (struct astro_stream_span){v, vlen, true};
        return ASTRO_OK;
    }
    return ASTRO_OK;
}

int
astro_stream_entry_spans(struct redisReply *const *elements, size_t n, const char *const *names,
                         size_t count, struct astro_stream_span *out, const char *what,
                         char *err, size_t errlen)
{
    memset(out, 0, count * sizeof(*out));
    if (n % 2 != 0)
        return astro_fail(err, errlen, "%s: odd number of field/value elements", what);
    for (size_t i = 0; i < n; i += 2) {
        const redisReply *k = elements[i], *v = elements[i + 1];
        if (k == NULL || v == NULL || k->type != REDIS_REPLY_STRING ||
            v->type != REDIS_REPLY_STRING)
            return astro_fail(err, errlen, "%s: element %zu is not a string", what, i);
        if (note(names, count, out, k->str, k->len, v->str, v->len, what, err, errlen) !=
            ASTRO_OK)
            return ASTRO_ERR;
    }
    return ASTRO_OK;
}

int
astro_stream_entry_spans_argv(const char *const *argv, const size_t *argvlen, size_t n,
                              const char *const *names, size_t count,
                              struct astro_stream_span *out, const char *what, char *err,
                              size_t errlen)
{
    memset(out, 0, count * sizeof(*out));
    if (n % 2 != 0)
        return astro_fail(err, errlen, "%s: odd number of field/value elements", what);
    for (size_t i = 0; i < n; i += 2)
        if (note(names, count, out, argv[i], argvlen[i], argv[i + 1], argvlen[i + 1], what, err,
                 errlen) != ASTRO_OK)
            return ASTRO_ERR;
    return ASTRO_OK;
}

/* Copies a numeric value into a terminated buffer; numbers are short, so anything that does
 * not fit is not a number we wrote. Only digits, sign, '.', 'e' and 'E' are allowed, which
 * keeps strtod away from "inf", "nan", hex floats and leading spaces. */
static int
numeric_text(const struct astro_stream_span *s, char buf[ASTRO_EVENT_DOUBLE_BUF])
{
    if (s->n == 0 || s->n >= ASTRO_EVENT_DOUBLE_BUF)
        return ASTRO_ERR;
    for (size_t i = 0; i < s->n; i++)
        if (strchr("0123456789+-.eE", s->p[i]) == NULL || s->p[i] == '\0')
            return ASTRO_ERR;
    memcpy(buf, s->p, s->n);
    buf[s->n] = '\0';
    return ASTRO_OK;
}

int
astro_stream_span_double(const struct astro_stream_span *s, const char *label, double *out,
                         char *err, size_t errlen)
{
    char buf[ASTRO_EVENT_DOUBLE_BUF];
    char *end;
    if (numeric_text(s, buf) == ASTRO_OK) {
        *out = strtod(buf, &end);
        if (*end == '\0' && isfinite(*out))
            return ASTRO_OK;
    }
    return astro_fail(err, errlen, "%s: not a finite number", label);
}

int
astro_stream_span_int64(const struct astro_stream_span *s, const char *label, int64_t *out,
                        char *err, size_t errlen)
{
    char buf[ASTRO_EVENT_DOUBLE_BUF];
    char *end;
    if (numeric_text(s, buf) == ASTRO_OK && (buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9'))) {
        errno = 0;
        long long v = strtoll(buf, &end, 10);
        if (*end == '\0' && errno == 0) {
            *out = v;
            return ASTRO_OK;
        }
    }
    return astro_fail(err, errlen, "%s: not an integer", label);
}

/* Loading a service's configuration table from the environment: defaults, strict parsing,
 * bounds, and one report listing every bad variable (an operator fixes them all in one go). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "astro/config.h"
#include "astro/log.h"

#define REASON_MAX 256

/* Accumulates one line per error into the caller's buffer; keeps counting when it is full. */
struct report {
    char *buf;
    size_t size, len;
    unsigned count;
};

static void ASTRO_PRINTF(2, 3)
report_add(struct report *r, const char *fmt, ...)
{
    r->count++;
    if (r->buf == NULL || r->size == 0 || r->len + 1 >= r->size)
        return;
    if (r->len > 0)
        r->buf[r->len++] = '\n';
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->buf + r->len, r->size - r->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        r->len += ((size_t)n < r->size - r->len) ? (size_t)n : r->size - r->len - 1;
    r->buf[r->len] = '\0';
}

/* Quotes a raw value for an error message: at most 64 characters, control bytes as \xNN, and
 * nothing at all of a secret. */
static void
quote(char *out, size_t size, const char *v, bool secret)
{
    if (secret) {
        snprintf(out, size, "(secret value)");
        return;
    }
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; v[i] != '\0' && o + 8 < size; i++) {
        unsigned char c = (unsigned char)v[i];
        if (i == 64) {
            o += (size_t)snprintf(out + o, size - o, "...");
            break;
        }
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    snprintf(out + o, size - o, "\"");
}

/* Formats an int/duration/bytes value for a bounds message, in the variable's own units. */
static void
format_num(char *buf, size_t size, enum astro_cfg_type type, int64_t v)
{
    if (type == ASTRO_CFG_DURATION)
        astro_cfg_format_duration(buf, size, v);
    else if (type == ASTRO_CFG_BYTES)
        astro_cfg_format_bytes(buf, size, v);
    else
        snprintf(buf, size, "%" PRId64, v);
}

static int
check_bounds(const struct astro_cfg_var *v, int64_t x, char *why, size_t whylen)
{
    char a[48], b[48];
    if (v->min >= v->max)
        return ASTRO_OK;
    if (v->flags & ASTRO_CFG_SECRET)
        snprintf(a, sizeof(a), "the value");
    else
        format_num(a, sizeof(a), v->type, x);
    if (x < v->min) {
        format_num(b, sizeof(b), v->type, v->min);
        return astro_fail(why, whylen, "%s is below the minimum %s", a, b);
    }
    if (x > v->max) {
        format_num(b, sizeof(b), v->type, v->max);
        return astro_fail(why, whylen, "%s is above the maximum %s", a, b);
    }
    return ASTRO_OK;
}

/* Finds s in the '|' separated choices (any case); returns a new copy spelled as in choices. */
static char *
match_choice(const char *choices, const char *s)
{
    size_t len = strlen(s);
    for (const char *c = choices; c != NULL && *c != '\0';) {
        const char *bar = strchr(c, '|');
        size_t clen = bar != NULL ? (size_t)(bar - c) : strlen(c);
        if (clen == len && strncasecmp(c, s, len) == 0)
            return strndup(c, clen);
        c = bar != NULL ? bar + 1 : NULL;
    }
    return NULL;
}

/* Bytes the field of a variable of this type occupies in the config struct. */
static size_t
field_size(enum astro_cfg_type type)
{
    switch (type) {
    case ASTRO_CFG_STRING:
    case ASTRO_CFG_ENUM:
        return sizeof(char *);
    case ASTRO_CFG_BOOL:
        return sizeof(bool);
    case ASTRO_CFG_LOGLEVEL:
        return sizeof(enum astro_log_level);
    case ASTRO_CFG_INT:
    case ASTRO_CFG_DURATION:
    case ASTRO_CFG_BYTES:
        break;
    }
    return sizeof(int64_t);
}

/* Parses a numeric type; on failure writes "<quoted value> <reason>" into why. */
static int
parse_number(const struct astro_cfg_var *v, const char *raw, int64_t *x, char *why,
             size_t whylen)
{
    char reason[REASON_MAX], q[96];
    int rc;
    if (v->type == ASTRO_CFG_DURATION)
        rc = astro_cfg_parse_duration(raw, x, reason, sizeof(reason));
    else if (v->type == ASTRO_CFG_BYTES)
        rc = astro_cfg_parse_bytes(raw, x, reason, sizeof(reason));
    else
        rc = astro_cfg_parse_int(raw, x, reason, sizeof(reason));
    if (rc == ASTRO_OK)
        return ASTRO_OK;
    quote(q, sizeof(q), raw, v->flags & ASTRO_CFG_SECRET);
    return astro_fail(why, whylen, "%s %s", q, reason);
}

/* Parses raw as v's type and stores it at field. ASTRO_ERR with the reason in why. */
static int
store_value(const struct astro_cfg_var *v, const char *raw, char *field, char *why,
            size_t whylen)
{
    char q[96];
    char *s = NULL;
    int64_t x = 0;
    bool b = false;
    enum astro_log_level lvl = ASTRO_LOG_INFO;

    quote(q, sizeof(q), raw, v->flags & ASTRO_CFG_SECRET);
    switch (v->type) {
    case ASTRO_CFG_STRING:
    case ASTRO_CFG_ENUM:
        s = v->type == ASTRO_CFG_STRING ? strdup(raw) : match_choice(v->choices, raw);
        if (s == NULL && v->type == ASTRO_CFG_STRING)
            return astro_fail(why, whylen, "out of memory");
        if (s == NULL)
            return astro_fail(why, whylen, "%s is not one of %s", q, v->choices);
        memcpy(field, &s, sizeof(s));
        return ASTRO_OK;
    case ASTRO_CFG_BOOL:
        if (astro_cfg_parse_bool(raw, &b, why, whylen) != ASTRO_OK)
            return astro_fail(why, whylen, "%s is not a boolean (true/false, 1/0, yes/no, on/off)",
                              q);
        memcpy(field, &b, sizeof(b));
        return ASTRO_OK;
    case ASTRO_CFG_LOGLEVEL:
        if (astro_log_parse_level(raw, &lvl) != ASTRO_OK)
            return astro_fail(why, whylen, "%s is not a log level (error, warn, info, debug)", q);
        memcpy(field, &lvl, sizeof(lvl));
        return ASTRO_OK;
    case ASTRO_CFG_INT:
    case ASTRO_CFG_DURATION:
    case ASTRO_CFG_BYTES:
        break;
    }
    if (parse_number(v, raw, &x, why, whylen) != ASTRO_OK ||
        check_bounds(v, x, why, whylen) != ASTRO_OK)
        return ASTRO_ERR;
    memcpy(field, &x, sizeof(x));
    return ASTRO_OK;
}

static void
load_one(const struct astro_cfg_var *v, char *cfg, struct report *r)
{
    char why[REASON_MAX];
    const char *raw = getenv(v->name);
    bool required = (v->flags & ASTRO_CFG_REQUIRED) != 0;

    if (raw == NULL && required) {
        report_add(r, "%s: is required but not set", v->name);
        return;
    }
    if (raw != NULL && raw[0] == '\0' && (required || v->type != ASTRO_CFG_STRING)) {
        report_add(r, "%s: is set but empty", v->name);
        return;
    }
    if (raw == NULL && v->def == NULL)
        return; /* stays NULL / 0 / false */
    if (store_value(v, raw != NULL ? raw : v->def, cfg + v->offset, why, sizeof(why)) == ASTRO_OK)
        return;
    if (raw != NULL)
        report_add(r, "%s: %s", v->name, why);
    else
        report_add(r, "%s: the built-in default %s (a bug in the service's table)", v->name, why);
}

int
astro_cfg_load(const struct astro_cfg_var *vars, size_t n, void *cfg, char *err, size_t errlen)
{
    struct report r = {.buf = err, .size = errlen};
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    for (size_t i = 0; i < n; i++)
        memset((char *)cfg + vars[i].offset, 0, field_size(vars[i].type));
    for (size_t i = 0; i < n; i++)
        load_one(&vars[i], cfg, &r);
    if (r.count == 0)
        return ASTRO_OK;
    astro_cfg_free(vars, n, cfg);
    return ASTRO_ERR;
}

void
astro_cfg_free(const struct astro_cfg_var *vars, size_t n, void *cfg)
{
    for (size_t i = 0; i < n; i++) {
        if (vars[i].type != ASTRO_CFG_STRING && vars[i].type != ASTRO_CFG_ENUM)
            continue;
        char *s = NULL;
        char *field = (char *)cfg + vars[i].offset;
        memcpy(&s, field, sizeof(s));
        free(s);
        s = NULL;
        memcpy(field, &s, sizeof(s));
    }
}

void
astro_cfg_main_load(const char *prog, const struct astro_cfg_var *vars, size_t n, void *cfg)
{
    char err[8192];
    astro_cfg_warn_unknown(vars, n);
    if (astro_cfg_load(vars, n, cfg, err, sizeof(err)) == ASTRO_OK)
        return;
    fprintf(stderr, "%s: invalid configuration:\n%s\n", prog, err);
    exit(2);
}

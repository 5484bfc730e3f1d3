/* Showing a configuration table: the masked effective values in the log, --help text, and
 * warnings about ASTRO_* variables the service does not know (usually typos). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "astro/config.h"
#include "astro/log.h"

#define MASK "****"
#define NAME_MAX_LEN 128

extern char **environ;

/* Bounded output cursor: appends stop silently at the end, out stays NUL-terminated. */
struct out {
    char *p;
    size_t size, len;
};

static void
put(struct out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && o->len + 1 < o->size; i++)
        o->p[o->len++] = s[i];
    o->p[o->len] = '\0';
}

/* At s (just after "://"): copies the URL's authority with the password of "user:pw@" masked
 * and returns the number of input bytes consumed. */
static size_t
mask_url_userinfo(struct out *o, const char *s)
{
    size_t auth = strcspn(s, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < auth; i++) {
        if (s[i] == '@')
            at = s + i; /* the last '@' ends the userinfo; a password may contain '@' */
    }
    const char *colon = at != NULL ? memchr(s, ':', (size_t)(at - s)) : NULL;
    if (colon == NULL) {
        put(o, s, auth);
        return auth;
    }
    put(o, s, (size_t)(colon - s) + 1);
    put(o, MASK, strlen(MASK));
    put(o, at, (size_t)(s + auth - at));
    return auth;
}

/* At s (just after "password="): masks a conninfo or query value, quoted or not. */
static size_t
mask_password_item(struct out *o, const char *s)
{
    size_t n = 0;
    if (s[0] == '\'') {
        for (n = 1; s[n] != '\0' && s[n] != '\''; n += (s[n] == '\\' && s[n + 1]) ? 2 : 1)
            ;
        n += s[n] == '\'';
    } else {
        n = strcspn(s, " \t\n&;");
    }
    put(o, MASK, strlen(MASK));
    return n;
}

void
astro_cfg_mask(char *out, size_t size, const char *value, bool secret)
{
    static const char pw[] = "password=";
    struct out o = {.p = out, .size = size};
    if (size == 0)
        return;
    out[0] = '\0';
    if (value == NULL || secret) {
        put(&o, value == NULL ? "(unset)" : MASK, value == NULL ? 7 : strlen(MASK));
        return;
    }
    for (size_t i = 0; value[i] != '\0';) {
        if (strncmp(value + i, "://", 3) == 0) {
            put(&o, "://", 3);
            i += 3 + mask_url_userinfo(&o, value + i + 3);
        } else if (strncasecmp(value + i, pw, sizeof(pw) - 1) == 0 &&
                   (i == 0 || strchr(" \t?&;", value[i - 1]) != NULL)) {
            put(&o, value + i, sizeof(pw) - 1);
            i += sizeof(pw) - 1;
            i += mask_password_item(&o, value + i);
        } else {
            put(&o, value + i, 1);
            i++;
        }
    }
}

/* Renders the current value of v in cfg as a user would write it. */
static void
show_value(char *buf, size_t size, const struct astro_cfg_var *v, const void *cfg)
{
    const char *field = (const char *)cfg + v->offset;
    const char *s = NULL;
    int64_t x = 0;
    bool b = false;
    enum astro_log_level lvl = ASTRO_LOG_INFO;
    switch (v->type) {
    case ASTRO_CFG_STRING:
    case ASTRO_CFG_ENUM:
        memcpy(&s, field, sizeof(s));
        astro_cfg_mask(buf, size, s, (v->flags & ASTRO_CFG_SECRET) && s != NULL);
        return;
    case ASTRO_CFG_BOOL:
        memcpy(&b, field, sizeof(b));
        snprintf(buf, size, "%s", b ? "true" : "false");
        return;
    case ASTRO_CFG_LOGLEVEL:
        memcpy(&lvl, field, sizeof(lvl));
        snprintf(buf, size, "%s", astro_log_level_name(lvl));
        return;
    case ASTRO_CFG_INT:
    case ASTRO_CFG_DURATION:
    case ASTRO_CFG_BYTES:
        break;
    }
    memcpy(&x, field, sizeof(x));
    if (v->flags & ASTRO_CFG_SECRET)
        snprintf(buf, size, MASK);
    else if (v->type == ASTRO_CFG_DURATION)
        astro_cfg_format_duration(buf, size, x);
    else if (v->type == ASTRO_CFG_BYTES)
        astro_cfg_format_bytes(buf, size, x);
    else
        snprintf(buf, size, "%" PRId64, x);
}

void
astro_cfg_log(const struct astro_cfg_var *vars, size_t n, const void *cfg)
{
    char value[1024];
    for (size_t i = 0; i < n; i++) {
        show_value(value, sizeof(value), &vars[i], cfg);
        astro_log_info("config: %s=%s%s", vars[i].name, value,
                       getenv(vars[i].name) == NULL ? " (default)" : "");
    }
}

/* Levenshtein distance between a[0..la) and b[0..lb), both at most NAME_MAX_LEN long. */
static size_t
edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t prev[NAME_MAX_LEN + 1], cur[NAME_MAX_LEN + 1];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof(size_t));
    }
    return prev[lb];
}

/* The known name closest to name[0..len), or NULL when none is within a typo's reach. */
static const char *
closest_name(const struct astro_cfg_var *vars, size_t n, const char *name, size_t len)
{
    const char *best = NULL;
    size_t best_d = len / 4 > 2 ? len / 4 : 2;
    for (size_t i = 0; i < n && len <= NAME_MAX_LEN; i++) {
        size_t vl = strlen(vars[i].name);
        if (vl > NAME_MAX_LEN)
            continue;
        size_t d = edit_distance(name, len, vars[i].name, vl);
        if (d <= best_d) {
            best = vars[i].name;
            best_d = d;
        }
    }
    return best;
}

static bool
known(const struct astro_cfg_var *vars, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(vars[i].name) == len && strncmp(vars[i].name, name, len) == 0)
            return true;
    }
    return false;
}

size_t
astro_cfg_warn_unknown(const struct astro_cfg_var *vars, size_t n)
{
    size_t warned = 0;
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, "ASTRO_", 6) != 0)
            continue;
        size_t len = strcspn(*e, "=");
        if (known(vars, n, *e, len))
            continue;
        const char *near = closest_name(vars, n, *e, len);
        if (near != NULL)
            astro_log_warn("config: %.*s is not a setting of this service; did you mean %s?",
                           (int)len, *e, near);
        else
            astro_log_warn("config: %.*s is not a setting of this service; ignored", (int)len,
                           *e);
        warned++;
    }
    return warned;
}

static const char *
type_name(enum astro_cfg_type type)
{
    static const char *const names[] = {"string",   "integer", "boolean",  "duration",
                                        "size",     "one of",  "log level"};
    return (unsigned)type < ASTRO_ARRAY_LEN(names) ? names[type] : "?";
}

/* ", range 1..10000" / ", range 100ms..1m" or nothing when unbounded. */
static void
show_range(char *buf, size_t size, const struct astro_cfg_var *v)
{
    char a[48], b[48];
    buf[0] = '\0';
    if (v->min >= v->max)
        return;
    if (v->type == ASTRO_CFG_DURATION) {
        astro_cfg_format_duration(a, sizeof(a), v->min);
        astro_cfg_format_duration(b, sizeof(b), v->max);
    } else if (v->type == ASTRO_CFG_BYTES) {
        astro_cfg_format_bytes(a, sizeof(a), v->min);
        astro_cfg_format_bytes(b, sizeof(b), v->max);
    } else if (v->type == ASTRO_CFG_INT) {
        snprintf(a, sizeof(a), "%" PRId64, v->min);
        snprintf(b, sizeof(b), "%" PRId64, v->max);
    } else {
        return;
    }
    snprintf(buf, size, ", range %s..%s", a, b);
}

void
astro_cfg_help(FILE *out, const struct astro_cfg_var *vars, size_t n)
{
    char def[512], range[128];
    fprintf(out, "Settings (environment variables):\n");
    for (size_t i = 0; i < n; i++) {
        const struct astro_cfg_var *v = &vars[i];
        astro_cfg_mask(def, sizeof(def), v->def, (v->flags & ASTRO_CFG_SECRET) && v->def);
        show_range(range, sizeof(range), v);
        fprintf(out, "  %s (%s%s%s%s, default %s%s%s)\n      %s\n", v->name, type_name(v->type),
                v->type == ASTRO_CFG_ENUM ? " " : "",
                v->type == ASTRO_CFG_ENUM && v->choices ? v->choices : "", range,
                v->def != NULL ? def : "none",
                (v->flags & ASTRO_CFG_REQUIRED) ? ", required" : "",
                (v->flags & ASTRO_CFG_SECRET) ? ", secret" : "", v->help ? v->help : "");
    }
}

/* Query-string parsing for /candles/{key} and /indicators/{key}: every parameter checked and
 * every failure named, like the event endpoints (params.c). Timeframes are checked with the
 * contract's own parser (astro_tf_parse), indicator names against the names astro-leaflet
 * emits, so a typo is a 400 rather than an empty answer. */
#include <stdio.h>
#include <string.h>

#include "astro/agg.h"
#include "query.h"


_Static_assert(QRY_AGG_NAMES_MAX == ASTRO_AGG_IND_MAX, "names bound follows the contract");
_Static_assert(QRY_AGG_NAME_MAX == ASTRO_AGG_IND_NAME_MAX, "name length follows the contract");

/* A period: 1..9999, decimal, no leading zero. Advances *s past it. */
static bool
period(const char **s)
{
    size_t n = strspn(*s, "0123456789");
    if (n == 0 || n > 4 || **s == '0')
        return false;
    *s += n;
    return true;
}

/* "_<period>" repeated count times, then the end of s (or, with k, "_<decimal>"). */
static bool
periods(const char *s, int count, bool k)
{
    for (int i = 0; i < count; i++)
        if (*s++ != '_' || !period(&s))
            return false;
    if (!k)
        return *s == '\0';
    if (*s++ != '_')
        return false;
    size_t n = strspn(s, "0123456789");
    if (n == 0)
        return false;
    s += n;
    if (*s == '.') {
        n = strspn(++s, "0123456789");
        if (n == 0)
            return false;
        s += n;
    }
    return *s == '\0';
}

bool
qry_indicator_name_valid(const char *s)
{
    static const struct {
        const char *prefix;
        int periods;
        bool k;
    } forms[] = {{"sma", 1, false},         {"ema", 1, false},        {"rsi", 1, false},
                 {"macd_signal", 3, false}, {"macd_hist", 3, false},  {"macd", 3, false},
                 {"bb_upper", 1, true},     {"bb_middle", 1, true},   {"bb_lower", 1, true}};
    if (strlen(s) > QRY_AGG_NAME_MAX)
        return false;
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        size_t n = strlen(forms[i].prefix);
        if (strncmp(s, forms[i].prefix, n) == 0 && periods(s + n, forms[i].periods, forms[i].k))
            return true;
    }
    return false;
}

/* names=a,b,c: each valid, no repeats, at most QRY_AGG_NAMES_MAX. */
static int
parse_names(struct qry_agg_filter *f, const char *v, struct qry_error *e)
{
    const char *p = v;
    for (;;) {
        size_t n = strcspn(p, ",");
        if (n == 0)
            return qry_error_set(e, "names", "empty name in the list (stray ',')");
        if (f->n_names == QRY_AGG_NAMES_MAX)
            return qry_error_set(e, "names", "at most %d names", QRY_AGG_NAMES_MAX);
        char *name = f->names[f->n_names];
        if (n > QRY_AGG_NAME_MAX)
            return qry_error_set(e, "names", "a name is longer than %d bytes", QRY_AGG_NAME_MAX);
        memcpy(name, p, n);
        name[n] = '\0';
        if (!qry_indicator_name_valid(name))
            return qry_error_set(e, "names",
                                 "%s: not an indicator name (sma_20, ema_20, rsi_14, "
                                 "macd_12_26_9, macd_signal_12_26_9, macd_hist_12_26_9, "
                                 "bb_upper_20_2, bb_middle_20_2, bb_lower_20_2)", name);
        for (size_t i = 0; i < f->n_names; i++)
            if (strcmp(f->names[i], name) == 0)
                return qry_error_set(e, "names", "%s: listed twice", name);
        f->n_names++;
        if (p[n] == '\0')
            return ASTRO_OK;
        p += n + 1;
    }
}

/* Stores the decoded value v of parameter name into f. */
static int
apply(struct qry_agg_filter *f, const char *name, const char *v, struct qry_error *e)
{
    char why[200];
    int64_t n;
    if (strcmp(name, "timeframe") == 0) {
        if (strlen(v) >= sizeof(f->tf) ||
            astro_tf_parse(v, strlen(v), &f->tf_us, why, sizeof(why)) != ASTRO_OK)
            return qry_error_set(e, name, "not a timeframe (1m, 5m, 15m, 1h, 4h, 1d: "
                                 "<n><s|m|h|d>, a span dividing one day)");
        snprintf(f->tf, sizeof(f->tf), "%s", v);
        return ASTRO_OK;
    }
    if (strcmp(name, "type") == 0) {
        if (astro_event_check_name(name, v, strlen(v), ASTRO_EVENT_NAME_MAX, why, sizeof(why)) !=
            ASTRO_OK)
            return qry_error_set(e, name, "%s", why);
        snprintf(f->type, sizeof(f->type), "%s", v);
        return ASTRO_OK;
    }
    if (strcmp(name, "start_time") == 0 || strcmp(name, "end_time") == 0) {
        int64_t *t = name[0] == 's' ? &f->start_us : &f->end_us;
        if (qry_parse_time(v, t, why, sizeof(why)) != ASTRO_OK)
            return qry_error_set(e, name, "%s", why);
        return ASTRO_OK;
    }
    if (strcmp(name, "limit") == 0) {
        if (astro_cfg_parse_int(v, &n, why, sizeof(why)) != ASTRO_OK || n < 1 ||
            n > QRY_LIMIT_MAX)
            return qry_error_set(e, name, "must be an integer between 1 and %d", QRY_LIMIT_MAX);
        f->limit = n;
        return ASTRO_OK;
    }
    return parse_names(f, v, e);
}

/* The parameters of /candles and /indicators (names: indicators only). */
static const struct qry_param_def candle_params[] = {
    {"timeframe", 0}, {"type", QRY_A_TYPE}, {"start_time", QRY_A_START},
    {"end_time", QRY_A_END}, {"limit", 0}, {NULL, 0}};
static const struct qry_param_def indicator_params[] = {
    {"timeframe", 0}, {"type", QRY_A_TYPE}, {"start_time", QRY_A_START},
    {"end_time", QRY_A_END}, {"limit", 0}, {"names", QRY_A_NAMES}, {NULL, 0}};

/* qry_param_fn: apply() into the filter. */
static int
on_param(void *arg, const struct qry_param_def *def, const char *value, struct qry_error *e)
{
    struct qry_agg_filter *f = arg;
    if (apply(f, def->name, value, e) != ASTRO_OK)
        return ASTRO_ERR;
    f->present |= def->bit;
    return ASTRO_OK;
}

int
qry_agg_params_parse(enum qry_agg_endpoint ep, const char *qs, struct qry_agg_filter *f,
                     struct qry_error *e)
{
    memset(f, 0, sizeof(*f));
    memset(e, 0, sizeof(*e));
    f->limit = QRY_LIMIT_DEFAULT;
    snprintf(f->tf, sizeof(f->tf), "%s", QRY_AGG_TF_DEFAULT);
    if (astro_tf_parse(f->tf, strlen(f->tf), &f->tf_us, e->msg, sizeof(e->msg)) != ASTRO_OK)
        return qry_error_set(e, "timeframe", "default timeframe refused");
    if (qry_query_walk(qs, ep == QRY_EP_INDICATORS ? indicator_params : candle_params,
                       on_param, f, e) != ASTRO_OK)
        return ASTRO_ERR;
    if ((f->present & QRY_A_START) && (f->present & QRY_A_END) && f->end_us <= f->start_us)
        return qry_error_set(e, "end_time", "must be after start_time");
    return ASTRO_OK;
}

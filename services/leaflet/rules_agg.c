/* Parser of the aggregate statements of the rules file (docs/rules.md):
 *   candles TYPE timeframes TF... [volume FIELD] [publish]
 *   indicators none | { sma N | ema N | rsi N | macd FAST SLOW SIGNAL | bollinger N K }...
 *   outliers TYPE|* [window N] [k K] [mode flag|divert]
 * Statements stand at the top level, anywhere in the file; errors carry line and column. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggcfg.h"
#include "rules_lex.h"

static int
number_of(struct cep_lex *p, struct cep_tok t, double lo, double hi, bool whole, double *out)
{
    char buf[40], *end;
    if (t.len == 0 || t.len >= sizeof(buf))
        return cep_lex_fail(p, t.col, "expected a number");
    memcpy(buf, t.s, t.len);
    buf[t.len] = '\0';
    errno = 0;
    *out = strtod(buf, &end);
    if (*end != '\0' || errno != 0 || !isfinite(*out) || *out < lo || *out > hi ||
        (whole && *out != floor(*out)))
        return cep_lex_fail(p, t.col, "expected %s between %g and %g, got \"%s\"",
                     whole ? "a whole number" : "a number", lo, hi, buf);
    return ASTRO_OK;
}

static int
period_of(struct cep_lex *p, uint32_t *out)
{
    double d = 0;
    if (number_of(p, cep_lex_next(p), 1, CEP_IND_MAX_PERIOD, true, &d) != ASTRO_OK)
        return ASTRO_ERR;
    *out = (uint32_t)d;
    return ASTRO_OK;
}

static int
parse_tfs(struct cep_lex *p, struct cep_candle_cfg *c)
{
    char terr[128];
    for (struct cep_tok t = cep_lex_next(p); t.len > 0; t = cep_lex_next(p)) {
        if (cep_tok_is(t, "volume") || cep_tok_is(t, "publish")) {
            p->pos = (size_t)t.col - 1; /* not a timeframe: give it back */
            break;
        }
        if (c->ntf == CEP_CANDLE_MAX_TF)
            return cep_lex_fail(p, t.col, "too many timeframes (at most %d)", CEP_CANDLE_MAX_TF);
        struct cep_candle_tf *tf = &c->tf[c->ntf];
        if (t.len > ASTRO_AGG_TF_MAX ||
            astro_tf_parse(t.s, t.len, &tf->span_us, terr, sizeof(terr)) != ASTRO_OK)
            return cep_lex_fail(p, t.col, "%s", t.len > ASTRO_AGG_TF_MAX ? "timeframe too long" : terr);
        memcpy(tf->label, t.s, t.len);
        tf->label[t.len] = '\0';
        for (size_t i = 0; i < c->ntf; i++)
            if (strcmp(c->tf[i].label, tf->label) == 0)
                return cep_lex_fail(p, t.col, "timeframe %s given twice", tf->label);
        c->ntf++;
    }
    if (c->ntf == 0)
        return cep_lex_fail(p, (int)p->pos + 1, "expected at least one timeframe (e.g. 1m 5m 1h)");
    return ASTRO_OK;
}

/* candles TYPE timeframes TF... [volume FIELD] [publish] */
static int
parse_candles(struct cep_lex *p, struct cep_agg_cfg *cfg)
{
    struct cep_tok t = cep_lex_next(p);
    if (cfg->ncandles == CEP_CANDLE_MAX_TYPES)
        return cep_lex_fail(p, t.col, "too many candle statements (at most %d)", CEP_CANDLE_MAX_TYPES);
    struct cep_candle_cfg *c = &cfg->candles[cfg->ncandles];
    memset(c, 0, sizeof(*c));
    if (cep_lex_name(p, t, "event type", c->type) != ASTRO_OK)
        return ASTRO_ERR;
    if (cep_agg_cfg_candles(cfg, c->type) != NULL)
        return cep_lex_fail(p, t.col, "candles for \"%s\" are already configured", c->type);
    snprintf(c->volume, sizeof(c->volume), "volume");
    if (!cep_tok_is(t = cep_lex_next(p), "timeframes"))
        return cep_lex_fail(p, t.col, "expected 'timeframes'");
    if (parse_tfs(p, c) != ASTRO_OK)
        return ASTRO_ERR;
    for (t = cep_lex_next(p); t.len > 0; t = cep_lex_next(p)) {
        if (cep_tok_is(t, "publish"))
            cfg->publish = true; /* for every candle type: one channel */
        else if (!cep_tok_is(t, "volume"))
            return cep_lex_fail(p, t.col, "expected 'volume FIELD' or 'publish'");
        else if (cep_lex_name(p, cep_lex_next(p), "volume field", c->volume) != ASTRO_OK)
            return ASTRO_ERR;
    }
    cfg->ncandles++;
    return ASTRO_OK;
}

static int
parse_indicator(struct cep_lex *p, struct cep_tok t, struct cep_ind_spec *s)
{
    static const char *const names[] = {"sma", "ema", "rsi", "macd", "bollinger"};
    size_t k = 0;
    while (k < ASTRO_ARRAY_LEN(names) && !cep_tok_is(t, names[k]))
        k++;
    if (k == ASTRO_ARRAY_LEN(names))
        return cep_lex_fail(p, t.col, "expected sma, ema, rsi, macd, bollinger or none");
    memset(s, 0, sizeof(*s));
    s->kind = (enum cep_ind_kind)k;
    struct cep_tok at = cep_lex_peek(p); /* the first period: where a MACD order error points */
    if (period_of(p, &s->n[0]) != ASTRO_OK)
        return ASTRO_ERR;
    if (s->kind == CEP_IND_MACD) {
        if (period_of(p, &s->n[1]) != ASTRO_OK || period_of(p, &s->n[2]) != ASTRO_OK)
            return ASTRO_ERR;
        if (s->n[0] >= s->n[1])
            return cep_lex_fail(p, at.col, "macd: the fast period must be shorter than the slow one");
    }
    if (s->kind == CEP_IND_BB) {
        t = cep_lex_next(p);
        if (number_of(p, t, 0.01, 100, false, &s->k) != ASTRO_OK)
            return ASTRO_ERR;
        if (t.len >= sizeof(s->ktext))
            return cep_lex_fail(p, t.col, "bollinger: k too long");
        memcpy(s->ktext, t.s, t.len);
        s->ktext[t.len] = '\0';
    }
    return ASTRO_OK;
}

static int
parse_indicators(struct cep_lex *p, struct cep_agg_cfg *cfg)
{
    struct cep_tok t = cep_lex_next(p);
    if (cfg->ind_explicit)
        return cep_lex_fail(p, 1, "indicators given twice");
    cfg->ind_explicit = true;
    memset(&cfg->ind, 0, sizeof(cfg->ind));
    if (cep_tok_is(t, "none"))
        return (t = cep_lex_next(p)).len ? cep_lex_fail(p, t.col, "nothing may follow 'none'") : ASTRO_OK;
    if (t.len == 0)
        return cep_lex_fail(p, t.col, "expected indicators (e.g. sma 20 rsi 14) or none");
    for (; t.len > 0; t = cep_lex_next(p)) {
        if (cfg->ind.n == CEP_IND_MAX_SPECS)
            return cep_lex_fail(p, t.col, "too many indicators (at most %d)", CEP_IND_MAX_SPECS);
        if (parse_indicator(p, t, &cfg->ind.v[cfg->ind.n++]) != ASTRO_OK)
            return ASTRO_ERR;
        if (cep_ind_cfg_outputs(&cfg->ind) > ASTRO_AGG_IND_MAX)
            return cep_lex_fail(p, t.col, "too many indicator values (at most %d)", ASTRO_AGG_IND_MAX);
    }
    return ASTRO_OK;
}

/* outliers TYPE|* [window N] [k K] [mode flag|divert] */
static int
parse_outliers(struct cep_lex *p, struct cep_agg_cfg *cfg)
{
    struct cep_outlier_cfg *o = &cfg->outliers;
    struct cep_tok t = cep_lex_next(p);
    double d = 0;
    if (o->mode != CEP_OUTLIER_OFF)
        return cep_lex_fail(p, 1, "outliers given twice");
    if (!cep_tok_is(t, "*") && cep_lex_name(p, t, "event type", o->type) != ASTRO_OK)
        return ASTRO_ERR;
    o->window = 50;
    o->k = 5;
    o->mode = CEP_OUTLIER_FLAG;
    for (t = cep_lex_next(p); t.len > 0; t = cep_lex_next(p)) {
        if (cep_tok_is(t, "window")) {
            if (number_of(p, cep_lex_next(p), 3, 1000, true, &d) != ASTRO_OK)
                return ASTRO_ERR;
            o->window = (uint32_t)d;
        } else if (cep_tok_is(t, "k")) {
            if (number_of(p, cep_lex_next(p), 0.1, 1000, false, &o->k) != ASTRO_OK)
                return ASTRO_ERR;
        } else if (cep_tok_is(t, "mode")) {
            t = cep_lex_next(p);
            if (!cep_tok_is(t, "flag") && !cep_tok_is(t, "divert"))
                return cep_lex_fail(p, t.col, "expected flag or divert");
            o->mode = cep_tok_is(t, "flag") ? CEP_OUTLIER_FLAG : CEP_OUTLIER_DIVERT;
        } else {
            return cep_lex_fail(p, t.col, "expected window N, k K or mode flag|divert");
        }
    }
    return ASTRO_OK;
}

void
cep_agg_cfg_init(struct cep_agg_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cep_ind_cfg_default(&cfg->ind);
}

bool
cep_agg_cfg_active(const struct cep_agg_cfg *cfg)
{
    return cfg->ncandles > 0 || cfg->outliers.mode != CEP_OUTLIER_OFF;
}

const struct cep_candle_cfg *
cep_agg_cfg_candles(const struct cep_agg_cfg *cfg, const char *type)
{
    for (size_t i = 0; i < cfg->ncandles; i++)
        if (strcmp(cfg->candles[i].type, type) == 0)
            return &cfg->candles[i];
    return NULL;
}

bool
cep_agg_is_statement(const char *w, size_t len)
{
    return (len == 7 && memcmp(w, "candles", 7) == 0) ||
           (len == 10 && memcmp(w, "indicators", 10) == 0) ||
           (len == 8 && memcmp(w, "outliers", 8) == 0);
}

int
cep_agg_parse_line(struct cep_agg_cfg *cfg, struct cep_lex *lx)
{
    lx->pos = 0;
    struct cep_tok t = cep_lex_next(lx);
    if (cep_tok_is(t, "candles"))
        return parse_candles(lx, cfg);
    if (cep_tok_is(t, "indicators"))
        return parse_indicators(lx, cfg);
    return parse_outliers(lx, cfg);
}

/* The aggregate statements of the rules file (issue 9, docs/rules.md "Candles, indicators and
 * outliers"): which event types get candles, on which timeframes, with which indicators, and
 * the outlier screen. Plain structs inside struct cep_ruleset, so a SIGHUP reload swaps them
 * with the rules. Everything is off when the file has no such statement. */
#ifndef CEP_AGGCFG_H
#define CEP_AGGCFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "astro/agg.h"
#include "astro/event.h"
#include "indicators.h"

struct cep_lex;

#define CEP_CANDLE_MAX_TYPES 8
#define CEP_CANDLE_MAX_TF 8

struct cep_candle_tf {
    char label[ASTRO_AGG_TF_MAX + 1];
    int64_t span_us;
};

struct cep_candle_cfg {
    char type[ASTRO_EVENT_NAME_MAX + 1];   /* event type the candles are built from */
    char volume[ASTRO_EVENT_NAME_MAX + 1]; /* metadata field holding the volume */
    struct cep_candle_tf tf[CEP_CANDLE_MAX_TF];
    size_t ntf;
};

enum cep_outlier_mode { CEP_OUTLIER_OFF, CEP_OUTLIER_FLAG, CEP_OUTLIER_DIVERT };

struct cep_outlier_cfg {
    enum cep_outlier_mode mode;
    char type[ASTRO_EVENT_NAME_MAX + 1]; /* "" = every type */
    uint32_t window;                     /* N: values in the rolling window */
    double k;                            /* outlier when |x - median| > k * MAD */
};

struct cep_agg_cfg {
    struct cep_candle_cfg candles[CEP_CANDLE_MAX_TYPES];
    size_t ncandles;
    struct cep_ind_cfg ind; /* the same set for every candle series */
    bool ind_explicit;      /* an `indicators` statement replaced the default set */
    bool publish;           /* PUBLISH the changed open candles after each commit */
    struct cep_outlier_cfg outliers;
};

/* The defaults: no candles, the default indicator set, outliers off. */
void cep_agg_cfg_init(struct cep_agg_cfg *cfg);
bool cep_agg_cfg_active(const struct cep_agg_cfg *cfg);
/* The candle config of an event type, or NULL. */
const struct cep_candle_cfg *cep_agg_cfg_candles(const struct cep_agg_cfg *cfg, const char *type);

/* True when the first word of a rules line (word[0..len)) starts an aggregate statement. */
bool cep_agg_is_statement(const char *word, size_t len);
/* Parses the statement on the lexer's line (from its start) into cfg; ASTRO_ERR with
 * "LINE:COL: reason" in lx->err. */
int cep_agg_parse_line(struct cep_agg_cfg *cfg, struct cep_lex *lx) ASTRO_MUST_CHECK;

#endif

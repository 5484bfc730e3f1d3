/* Technical indicators over the closes of a candle series (issue 9), each updated in O(1) per
 * closed candle (amortized: the rolling windows re-sum their ring once every n slides, which
 * bounds the drift of the running mean and variance). Conventions (docs/candles.md):
 *
 * - SMA(n): mean of the last n closes; no value before n closes.
 * - EMA(n): seeded with the SMA of the first n closes, then alpha = 2/(n+1); no value before n.
 * - RSI(n): Wilder; the first average gain/loss is the simple mean of the first n changes (so
 *   n+1 closes), then avg = (prev*(n-1) + x)/n. RSI = 100*G/(G+L); 50 when G = L = 0.
 * - MACD(f,s,sig): EMA(f) - EMA(s) once EMA(s) has a value; signal = EMA(sig) of the MACD values
 *   (seeded with the SMA of its first sig values); hist = MACD - signal.
 * - Bollinger(n,k): SMA(n) +- k * population sigma of the last n closes.
 * - A value exists as soon as it is computable and is then also ready (warm-up is over); while
 *   warming up there is no value (JSON null) and ready is false. */
#ifndef CEP_INDICATORS_H
#define CEP_INDICATORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "astro/agg.h"
#include "astro/common.h"

enum cep_ind_kind { CEP_IND_SMA, CEP_IND_EMA, CEP_IND_RSI, CEP_IND_MACD, CEP_IND_BB };

#define CEP_IND_MAX_SPECS 12
#define CEP_IND_MAX_PERIOD 1000

struct cep_ind_spec {
    enum cep_ind_kind kind;
    uint32_t n[3];  /* period; MACD: fast, slow, signal */
    double k;       /* Bollinger width in sigmas */
    char ktext[16]; /* k as written in the config (part of the names) */
};

struct cep_ind_cfg {
    struct cep_ind_spec v[CEP_IND_MAX_SPECS];
    size_t n;
};

/* Number of values a spec yields (MACD and Bollinger: 3). */
size_t cep_ind_outputs(const struct cep_ind_spec *s);
/* Total outputs of a config (at most ASTRO_AGG_IND_MAX when parsed by the rules parser). */
size_t cep_ind_cfg_outputs(const struct cep_ind_cfg *cfg);
/* The default set: SMA(20), EMA(20), RSI(14), MACD(12,26,9), Bollinger(20,2). */
void cep_ind_cfg_default(struct cep_ind_cfg *cfg);
/* A short text that changes whenever the config changes (stored with snapshots). */
void cep_ind_cfg_signature(const struct cep_ind_cfg *cfg, char *out, size_t outlen);

/* Building blocks, public for the unit tests. */
struct cep_ema {
    double v, seed;
    uint32_t n, count;
};
struct cep_roll { /* the last n values: ring, running mean and sum of squared deviations */
    double *ring;
    double mean, m2;
    uint32_t n, count, pos, slides;
};
struct cep_rsi {
    double prev, ag, al;
    uint32_t n, count; /* closes seen */
};
struct cep_macd {
    struct cep_ema fast, slow, signal;
};

void cep_ema_init(struct cep_ema *e, uint32_t n);
/* Feeds x; returns true when e->v is a value (n inputs seen). */
bool cep_ema_push(struct cep_ema *e, double x);
int cep_roll_init(struct cep_roll *r, uint32_t n) ASTRO_MUST_CHECK;
void cep_roll_cleanup(struct cep_roll *r);
void cep_roll_push(struct cep_roll *r, double x);
double cep_roll_sigma(const struct cep_roll *r); /* population sigma of the window */
void cep_rsi_init(struct cep_rsi *s, uint32_t n);
/* Feeds a close; returns true and the RSI in *out once n changes are seen. */
bool cep_rsi_push(struct cep_rsi *s, double close, double *out);

/* The state of every indicator of a config for one series. */
struct cep_ind_state {
    union cep_ind_one {
        struct cep_roll roll; /* SMA, Bollinger */
        struct cep_ema ema;
        struct cep_rsi rsi;
        struct cep_macd macd;
    } v[CEP_IND_MAX_SPECS];
    size_t n;
};

/* Initializes st for cfg (both borrowed; cfg must outlive st). ASTRO_ERR on allocation failure
 * (st is then cleaned up). */
int cep_ind_state_init(struct cep_ind_state *st, const struct cep_ind_cfg *cfg) ASTRO_MUST_CHECK;
void cep_ind_state_cleanup(struct cep_ind_state *st, const struct cep_ind_cfg *cfg);

/* Updates every indicator with a closed candle's close and writes their values (names per the
 * astro:agg contract) to out[0 .. cep_ind_cfg_outputs(cfg)); returns that count. */
size_t cep_ind_update(struct cep_ind_state *st, const struct cep_ind_cfg *cfg, double close,
                      struct astro_indicator_value *out);

/* Snapshot text of the state (appended to a growing buffer with the aggstate writer) and back:
 * see aggstate.h. */

#endif

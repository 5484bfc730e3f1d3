/* Indicators over candle closes, O(1) per candle (conventions in indicators.h and
 * docs/candles.md). Pure arithmetic; the state round-trips exactly through aggstate.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "indicators.h"

size_t
cep_ind_outputs(const struct cep_ind_spec *s)
{
    return s->kind == CEP_IND_MACD || s->kind == CEP_IND_BB ? 3 : 1;
}

size_t
cep_ind_cfg_outputs(const struct cep_ind_cfg *cfg)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n; i++)
        n += cep_ind_outputs(&cfg->v[i]);
    return n;
}

void
cep_ind_cfg_default(struct cep_ind_cfg *cfg)
{
    static const struct cep_ind_spec def[] = {
        {CEP_IND_SMA, {20, 0, 0}, 0, ""},     {CEP_IND_EMA, {20, 0, 0}, 0, ""},
        {CEP_IND_RSI, {14, 0, 0}, 0, ""},     {CEP_IND_MACD, {12, 26, 9}, 0, ""},
        {CEP_IND_BB, {20, 0, 0}, 2.0, "2"},
    };
    memset(cfg, 0, sizeof(*cfg));
    memcpy(cfg->v, def, sizeof(def));
    cfg->n = ASTRO_ARRAY_LEN(def);
}

void
cep_ind_cfg_signature(const struct cep_ind_cfg *cfg, char *out, size_t outlen)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < cfg->n && len < outlen; i++) {
        const struct cep_ind_spec *s = &cfg->v[i];
        int w = snprintf(out + len, outlen - len, "%s%d.%u.%u.%u.%s", i ? "," : "", (int)s->kind,
                         s->n[0], s->n[1], s->n[2], s->ktext);
        if (w < 0)
            return;
        len += (size_t)w;
    }
    if (len == 0)
        snprintf(out, outlen, "-");
}

void
cep_ema_init(struct cep_ema *e, uint32_t n)
{
    memset(e, 0, sizeof(*e));
    e->n = n;
}

bool
cep_ema_push(struct cep_ema *e, double x)
{
    if (e->count < e->n) {
        e->seed += x;
        if (++e->count == e->n)
            e->v = e->seed / e->n;
        return e->count == e->n;
    }
    double alpha = 2.0 / ((double)e->n + 1.0);
    e->v += alpha * (x - e->v);
    return true;
}

int
cep_roll_init(struct cep_roll *r, uint32_t n)
{
    memset(r, 0, sizeof(*r));
    r->n = n;
    r->ring = calloc(n, sizeof(*r->ring));
    return r->ring ? ASTRO_OK : ASTRO_ERR;
}

void
cep_roll_cleanup(struct cep_roll *r)
{
    free(r->ring);
    r->ring = NULL;
}

/* Two-pass mean and squared deviations of the full window: resets the drift the sliding update
 * accumulates. Summed oldest first, so the result depends on the window alone. */
static void
roll_exact(struct cep_roll *r)
{
    double sum = 0, m2 = 0;
    for (uint32_t i = 0; i < r->n; i++)
        sum += r->ring[(r->pos + i) % r->n];
    double mean = sum / r->n;
    for (uint32_t i = 0; i < r->n; i++) {
        double d = r->ring[(r->pos + i) % r->n] - mean;
        m2 += d * d;
    }
    r->mean = mean;
    r->m2 = m2;
    r->slides = 0;
}

void
cep_roll_push(struct cep_roll *r, double x)
{
    if (r->count < r->n) { /* Welford while filling */
        double d = x - r->mean;
        r->count++;
        r->mean += d / r->count;
        r->m2 += d * (x - r->mean);
        r->ring[r->pos] = x;
        r->pos = (r->pos + 1) % r->n;
        return;
    }
    double old = r->ring[r->pos];
    double mean = r->mean + (x - old) / r->n;
    r->m2 += (x - old) * (x - mean + old - r->mean);
    r->mean = mean;
    r->ring[r->pos] = x;
    r->pos = (r->pos + 1) % r->n;
    if (++r->slides >= r->n)
        roll_exact(r);
}

double
cep_roll_sigma(const struct cep_roll *r)
{
    return r->count ? sqrt(fmax(r->m2, 0.0) / r->count) : 0.0;
}

void
cep_rsi_init(struct cep_rsi *s, uint32_t n)
{
    memset(s, 0, sizeof(*s));
    s->n = n;
}

bool
cep_rsi_push(struct cep_rsi *s, double close, double *out)
{
    if (s->count++ == 0) {
        s->prev = close;
        return false;
    }
    double ch = close - s->prev, gain = ch > 0 ? ch : 0, loss = ch < 0 ? -ch : 0;
    s->prev = close;
    uint32_t changes = s->count - 1;
    if (changes <= s->n) { /* seed: simple mean of the first n changes */
        s->ag += gain;
        s->al += loss;
        if (changes < s->n)
            return false;
        s->ag /= s->n;
        s->al /= s->n;
    } else {
        s->ag = (s->ag * (s->n - 1) + gain) / s->n;
        s->al = (s->al * (s->n - 1) + loss) / s->n;
    }
    if (s->count > s->n + 2) /* keep the counter bounded; it only matters up to the seed */
        s->count = s->n + 2;
    *out = s->ag + s->al > 0 ? 100.0 * s->ag / (s->ag + s->al) : 50.0;
    return true;
}

int
cep_ind_state_init(struct cep_ind_state *st, const struct cep_ind_cfg *cfg)
{
    memset(st, 0, sizeof(*st));
    for (size_t i = 0; i < cfg->n; i++) {
        const struct cep_ind_spec *s = &cfg->v[i];
        union cep_ind_one *u = &st->v[i];
        st->n = i + 1;
        if (s->kind == CEP_IND_SMA || s->kind == CEP_IND_BB) {
            if (cep_roll_init(&u->roll, s->n[0]) != ASTRO_OK)
                goto fail;
        } else if (s->kind == CEP_IND_EMA) {
            cep_ema_init(&u->ema, s->n[0]);
        } else if (s->kind == CEP_IND_RSI) {
            cep_rsi_init(&u->rsi, s->n[0]);
        } else {
            cep_ema_init(&u->macd.fast, s->n[0]);
            cep_ema_init(&u->macd.slow, s->n[1]);
            cep_ema_init(&u->macd.signal, s->n[2]);
        }
    }
    return ASTRO_OK;
fail:
    cep_ind_state_cleanup(st, cfg);
    return ASTRO_ERR;
}

void
cep_ind_state_cleanup(struct cep_ind_state *st, const struct cep_ind_cfg *cfg)
{
    for (size_t i = 0; i < st->n && i < cfg->n; i++)
        if (cfg->v[i].kind == CEP_IND_SMA || cfg->v[i].kind == CEP_IND_BB)
            cep_roll_cleanup(&st->v[i].roll);
    st->n = 0;
}

static void
put(struct astro_indicator_value *o, bool has, double v, const char *name)
{
    snprintf(o->name, sizeof(o->name), "%s", name);
    o->has_value = o->ready = has;
    o->value = has ? v : 0.0;
}

static size_t
update_macd(struct cep_macd *m, const struct cep_ind_spec *s, double x,
            struct astro_indicator_value *out)
{
    char sfx[16], name[ASTRO_AGG_IND_NAME_MAX + 1];
    (void)cep_ema_push(&m->fast, x);
    bool has = cep_ema_push(&m->slow, x), sig = false;
    double macd = has ? m->fast.v - m->slow.v : 0.0;
    if (has)
        sig = cep_ema_push(&m->signal, macd);
    /* periods are <= CEP_IND_MAX_PERIOD: the modulo only tells the compiler the names fit */
    snprintf(sfx, sizeof(sfx), "%u_%u_%u", s->n[0] % 10000, s->n[1] % 10000, s->n[2] % 10000);
    snprintf(name, sizeof(name), "macd_%s", sfx);
    put(&out[0], has, macd, name);
    snprintf(name, sizeof(name), "macd_signal_%s", sfx);
    put(&out[1], sig, m->signal.v, name);
    snprintf(name, sizeof(name), "macd_hist_%s", sfx);
    put(&out[2], sig, macd - m->signal.v, name);
    return 3;
}

static size_t
update_bb(struct cep_roll *r, const struct cep_ind_spec *s, double x,
          struct astro_indicator_value *out)
{
    char name[ASTRO_AGG_IND_NAME_MAX + 1];
    cep_roll_push(r, x);
    bool has = r->count == r->n;
    double band = s->k * cep_roll_sigma(r);
    snprintf(name, sizeof(name), "bb_upper_%u_%s", s->n[0] % 10000, s->ktext);
    put(&out[0], has, r->mean + band, name);
    snprintf(name, sizeof(name), "bb_middle_%u_%s", s->n[0] % 10000, s->ktext);
    put(&out[1], has, r->mean, name);
    snprintf(name, sizeof(name), "bb_lower_%u_%s", s->n[0] % 10000, s->ktext);
    put(&out[2], has, r->mean - band, name);
    return 3;
}

/* One single-valued indicator (SMA, EMA, RSI). */
static void
update_one(union cep_ind_one *u, const struct cep_ind_spec *s, double x,
           struct astro_indicator_value *out)
{
    char name[ASTRO_AGG_IND_NAME_MAX + 1];
    double v = 0;
    bool has;
    if (s->kind == CEP_IND_SMA) {
        cep_roll_push(&u->roll, x);
        has = u->roll.count == u->roll.n;
        v = u->roll.mean;
        snprintf(name, sizeof(name), "sma_%u", s->n[0]);
    } else if (s->kind == CEP_IND_EMA) {
        has = cep_ema_push(&u->ema, x);
        v = u->ema.v;
        snprintf(name, sizeof(name), "ema_%u", s->n[0]);
    } else {
        has = cep_rsi_push(&u->rsi, x, &v);
        snprintf(name, sizeof(name), "rsi_%u", s->n[0]);
    }
    put(out, has, v, name);
}

size_t
cep_ind_update(struct cep_ind_state *st, const struct cep_ind_cfg *cfg, double close,
               struct astro_indicator_value *out)
{
    size_t k = 0;
    for (size_t i = 0; i < cfg->n && i < st->n; i++) {
        const struct cep_ind_spec *s = &cfg->v[i];
        if (s->kind == CEP_IND_MACD)
            k += update_macd(&st->v[i].macd, s, close, out + k);
        else if (s->kind == CEP_IND_BB)
            k += update_bb(&st->v[i].roll, s, close, out + k);
        else
            update_one(&st->v[i], s, close, &out[k++]);
    }
    return k;
}

/* The candle state snapshot: hash fields of astro:aggstate:{p}, written in the commit that acks
 * the inputs they include, so a new owner starts exactly where the last commit left off:
 *   "b" US type US key        every timeframe's open buckets of (type, key)
 *   "i" US type US tf US key  the indicator state of (type, tf, key)
 *   "@pos"                    stream id of the last entry applied ("ms-seq")
 * (US = 0x1f, which keys cannot contain). Values are binary: a version byte, then the fields in
 * host byte order, so doubles restore bit for bit (the restart test compares candles exactly).
 * Only the states changed since the previous commit are written: the size per commit follows
 * the keys touched, not the keys known. The fields of a series that expired (idle) are deleted
 * in the same commit, before any field is written (the key may have come back in the batch).
 * "b" values since version 2 carry the series' latest event time; version 1 is still read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "candles.h"

#define SNAP_VERSION 1
#define BUCKETS_VERSION 2 /* "b": the latest event time follows the version byte */
#define BUCKETS_VERSION_1 1 /* "b" written before expiry: no latest event time */
#define US "\x1f"

struct wbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void
w_put(struct wbuf *w, const void *src, size_t n)
{
    if (w->oom || n == 0) /* n == 0: src may be NULL (no open bucket) */
        return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap *= 2;
        char *p = realloc(w->p, cap);
        if (p == NULL) {
            w->oom = true;
            return;
        }
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void
w_u32(struct wbuf *w, uint32_t v)
{
    w_put(w, &v, sizeof(v));
}

static void
w_str(struct wbuf *w, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    w_u32(w, n);
    w_put(w, s, n);
}

struct rbuf {
    const char *p;
    size_t len, off;
    bool bad;
};

static void
r_get(struct rbuf *r, void *dst, size_t n)
{
    if (n == 0) /* dst may be NULL (no open bucket) */
        return;
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, r->p + r->off, n);
    r->off += n;
}

static uint32_t
r_u32(struct rbuf *r)
{
    uint32_t v;
    r_get(r, &v, sizeof(v));
    return v;
}

/* A length-prefixed string into out[outlen] (cut, and marked bad, when too long). */
static void
r_str(struct rbuf *r, char *out, size_t outlen)
{
    uint32_t n = r_u32(r);
    if (n >= outlen)
        r->bad = true;
    r_get(r, out, r->bad ? 0 : n);
    out[r->bad ? 0 : n] = '\0';
}

static void
w_buckets(struct wbuf *w, const struct cep_candles *cs, const struct cep_cgroup *g)
{
    const struct cep_candle_cfg *c = &cs->cfg->candles[g->ci];
    uint8_t v = BUCKETS_VERSION;
    w_put(w, &v, 1);
    w_put(w, &g->seen, sizeof(g->seen));
    w_u32(w, (uint32_t)c->ntf);
    for (size_t t = 0; t < c->ntf; t++) {
        w_str(w, c->tf[t].label);
        w_u32(w, g->tf[t].nb);
        w_put(w, g->tf[t].b, g->tf[t].nb * sizeof(*g->tf[t].b));
    }
}

static void
w_indicators(struct wbuf *w, const struct cep_ind_cfg *cfg, const struct cep_ind_state *st)
{
    char sig[256];
    uint8_t v = SNAP_VERSION;
    cep_ind_cfg_signature(cfg, sig, sizeof(sig));
    w_put(w, &v, 1);
    w_str(w, sig);
    for (size_t i = 0; i < cfg->n && i < st->n; i++) {
        const union cep_ind_one *u = &st->v[i];
        if (cfg->v[i].kind == CEP_IND_SMA || cfg->v[i].kind == CEP_IND_BB) {
            const struct cep_roll *r = &u->roll;
            uint32_t h[4] = {r->n, r->count, r->pos, r->slides};
            w_put(w, h, sizeof(h));
            w_put(w, &r->mean, sizeof(r->mean));
            w_put(w, &r->m2, sizeof(r->m2));
            w_put(w, r->ring, r->n * sizeof(*r->ring));
        } else if (cfg->v[i].kind == CEP_IND_EMA) {
            w_put(w, &u->ema, sizeof(u->ema));
        } else if (cfg->v[i].kind == CEP_IND_RSI) {
            w_put(w, &u->rsi, sizeof(u->rsi));
        } else {
            w_put(w, &u->macd, sizeof(u->macd));
        }
    }
}

typedef int (*put_fn)(void *arg, const char *f, size_t flen, const char *v, size_t vlen);

#define FIELD_MAX (ASTRO_AGG_KEY_MAX + 128)

/* The name of g's indicator field of timeframe t, or of its bucket field when t < 0, into
 * out[FIELD_MAX]. Returns its length, or -1 when it does not fit. */
static int
field_name(const struct cep_candles *cs, const struct cep_cgroup *g, int t, char *out)
{
    const struct cep_candle_cfg *c = &cs->cfg->candles[g->ci];
    int n = t < 0 ? snprintf(out, FIELD_MAX, "b" US "%s" US "%s", c->type, g->key)
                  : snprintf(out, FIELD_MAX, "i" US "%s" US "%s" US "%s", c->type,
                             c->tf[t].label, g->key);
    return n < 0 || n >= FIELD_MAX ? -1 : n;
}

static int64_t
snap_group(struct cep_candles *cs, struct cep_cgroup *g, struct wbuf *w, put_fn put, void *arg)
{
    const struct cep_candle_cfg *c = &cs->cfg->candles[g->ci];
    char field[FIELD_MAX];
    int64_t bytes = 0;
    for (size_t t = 0; t < c->ntf; t++) {
        if (!g->tf[t].ind_dirty)
            continue;
        g->tf[t].ind_dirty = false;
        w->len = 0;
        w_indicators(w, &cs->cfg->ind, &g->tf[t].ind);
        int n = field_name(cs, g, (int)t, field);
        if (w->oom || n < 0 || put(arg, field, (size_t)n, w->p, w->len) != ASTRO_OK)
            return -1;
        bytes += n + (int64_t)w->len;
    }
    w->len = 0;
    w_buckets(w, cs, g);
    int n = field_name(cs, g, -1, field);
    if (w->oom || n < 0 || put(arg, field, (size_t)n, w->p, w->len) != ASTRO_OK)
        return -1;
    return bytes + n + (int64_t)w->len;
}

/* Deletes every field of an expired group (value NULL); returns the bytes of the names or -1. */
static int64_t
drop_group(const struct cep_candles *cs, const struct cep_cgroup *g, put_fn put, void *arg)
{
    char field[FIELD_MAX];
    int64_t bytes = 0;
    for (int t = -1; t < (int)cs->cfg->candles[g->ci].ntf; t++) {
        int n = field_name(cs, g, t, field);
        if (n < 0 || put(arg, field, (size_t)n, NULL, 0) != ASTRO_OK)
            return -1;
        bytes += n;
    }
    return bytes;
}

/* Takes the expired groups out of the dirty list, deletes their fields and frees them. Before
 * the changed states are written: a key that expired and came back within the batch has a new
 * group whose fields must survive. Returns the bytes handed to put, or -1. */
static int64_t
snap_expired(struct cep_candles *cs, put_fn put, void *arg)
{
    struct cep_cgroup **link = &cs->dirty;
    int64_t total = 0;
    while (*link != NULL) {
        struct cep_cgroup *g = *link;
        if (!g->expired) {
            link = &g->dnext;
            continue;
        }
        *link = g->dnext;
        int64_t n = total < 0 ? -1 : drop_group(cs, g, put, arg);
        total = n < 0 ? -1 : total + n;
        cep_candles_group_free(cs, g);
    }
    return total;
}

int64_t
cep_candles_snapshot(struct cep_candles *cs, put_fn put, void *arg)
{
    struct wbuf w = {0};
    if (cs->dirty == NULL)
        return 0;
    int64_t total = snap_expired(cs, put, arg);
    if (total < 0)
        return -1;
    while (cs->dirty != NULL) {
        struct cep_cgroup *g = cs->dirty;
        cs->dirty = g->dnext;
        g->dirty = false;
        int64_t n = snap_group(cs, g, &w, put, arg);
        if (n < 0) {
            free(w.p);
            return -1;
        }
        total += n;
    }
    free(w.p);
    char pos[CEP_SID_STR];
    cep_sid_format(cs->pos, pos);
    if (put(arg, "@pos", 4, pos, strlen(pos)) != ASTRO_OK)
        return -1;
    return total + 4 + (int64_t)strlen(pos);
}

/* Splits "type US [tf US] key" (n separators before the key); NULL when malformed. */
static const char *
split(const char *f, size_t flen, int nsep, char type[ASTRO_EVENT_NAME_MAX + 1],
      char tf[ASTRO_AGG_TF_MAX + 1])
{
    const char *s = f, *end = f + flen;
    for (int i = 0; i < nsep; i++) {
        const char *u = memchr(s, 0x1f, (size_t)(end - s));
        size_t cap = i == 0 ? ASTRO_EVENT_NAME_MAX : ASTRO_AGG_TF_MAX;
        if (u == NULL || (size_t)(u - s) > cap)
            return NULL;
        memcpy(i == 0 ? type : tf, s, (size_t)(u - s));
        (i == 0 ? type : tf)[u - s] = '\0';
        s = u + 1;
    }
    return s;
}

static int
tf_index(const struct cep_candle_cfg *c, const char *label)
{
    for (size_t t = 0; t < c->ntf; t++)
        if (strcmp(c->tf[t].label, label) == 0)
            return (int)t;
    return -1;
}

static int
restore_tf_buckets(struct cep_candles *cs, struct cep_cgroup *g, int ti, struct rbuf *r)
{
    uint32_t nb = r_u32(r);
    if (r->bad || nb > 1000000 || r->len - r->off < nb * sizeof(struct cep_bucket))
        return ASTRO_ERR;
    if (ti < 0) { /* a timeframe no longer configured */
        r->off += nb * sizeof(struct cep_bucket);
        return ASTRO_OK;
    }
    struct cep_tfstate *t = &g->tf[ti];
    const struct cep_candle_cfg *c = &cs->cfg->candles[g->ci];
    free(t->b);
    t->b = nb ? malloc(nb * sizeof(*t->b)) : NULL;
    t->nb = t->capb = t->b ? nb : 0;
    if (nb && t->b == NULL)
        return ASTRO_ERR;
    r_get(r, t->b, nb * sizeof(*t->b));
    for (uint32_t i = 0; i < nb; i++)
        if (cep_candles_track(cs, g, (uint32_t)ti, t->b[i].start + c->tf[ti].span_us) !=
            ASTRO_OK)
            return ASTRO_ERR;
    return ASTRO_OK;
}

static int
restore_buckets(struct cep_candles *cs, struct cep_cgroup *g, struct rbuf *r)
{
    uint8_t v = 0;
    char label[ASTRO_AGG_TF_MAX + 1];
    r_get(r, &v, 1);
    if (v == BUCKETS_VERSION)
        r_get(r, &g->seen, sizeof(g->seen));
    uint32_t ntf = r_u32(r);
    if ((v != BUCKETS_VERSION_1 && v != BUCKETS_VERSION) || ntf > 64)
        return ASTRO_ERR;
    for (uint32_t i = 0; i < ntf; i++) {
        r_str(r, label, sizeof(label));
        if (r->bad ||
            restore_tf_buckets(cs, g, tf_index(&cs->cfg->candles[g->ci], label), r) != ASTRO_OK)
            return ASTRO_ERR;
    }
    return r->off == r->len ? ASTRO_OK : ASTRO_ERR;
}

static int
restore_roll(struct cep_roll *roll, struct rbuf *r)
{
    uint32_t h[4];
    r_get(r, h, sizeof(h));
    if (h[0] != roll->n || h[1] > h[0] || h[2] >= h[0] || h[3] > h[0])
        return ASTRO_ERR;
    roll->count = h[1];
    roll->pos = h[2];
    roll->slides = h[3];
    r_get(r, &roll->mean, sizeof(roll->mean));
    r_get(r, &roll->m2, sizeof(roll->m2));
    r_get(r, roll->ring, roll->n * sizeof(*roll->ring));
    return r->bad ? ASTRO_ERR : ASTRO_OK;
}

/* Restores into st; *match = false (nothing changed) when written under another config. */
static int
restore_indicators(const struct cep_ind_cfg *cfg, struct cep_ind_state *st, struct rbuf *r,
                   bool *match)
{
    char sig[256], got[256];
    uint8_t v = 0;
    cep_ind_cfg_signature(cfg, sig, sizeof(sig));
    r_get(r, &v, 1);
    r_str(r, got, sizeof(got));
    if (v != SNAP_VERSION || r->bad)
        return ASTRO_ERR;
    *match = strcmp(sig, got) == 0;
    for (size_t i = 0; *match && i < cfg->n && i < st->n; i++) {
        union cep_ind_one *u = &st->v[i];
        /* periods come from the config, never from the snapshot */
        if (cfg->v[i].kind == CEP_IND_SMA || cfg->v[i].kind == CEP_IND_BB) {
            if (restore_roll(&u->roll, r) != ASTRO_OK)
                return ASTRO_ERR;
        } else if (cfg->v[i].kind == CEP_IND_EMA) {
            uint32_t n = u->ema.n;
            r_get(r, &u->ema, sizeof(u->ema));
            u->ema.n = n;
        } else if (cfg->v[i].kind == CEP_IND_RSI) {
            uint32_t n = u->rsi.n;
            r_get(r, &u->rsi, sizeof(u->rsi));
            u->rsi.n = n;
        } else {
            struct cep_macd m = u->macd;
            r_get(r, &u->macd, sizeof(u->macd));
            u->macd.fast.n = m.fast.n;
            u->macd.slow.n = m.slow.n;
            u->macd.signal.n = m.signal.n;
        }
    }
    return r->bad || (*match && r->off != r->len) ? ASTRO_ERR : ASTRO_OK;
}

static int
restore_pos(struct cep_candles *cs, const char *v, size_t vlen)
{
    return cep_sid_parse(v, vlen, &cs->pos);
}

int
cep_candles_restore(struct cep_candles *cs, const char *f, size_t flen, const char *v,
                    size_t vlen, size_t *skipped)
{
    char type[ASTRO_EVENT_NAME_MAX + 1], tf[ASTRO_AGG_TF_MAX + 1], key[ASTRO_AGG_KEY_MAX + 1];
    struct rbuf r = {v, vlen, 0, false};
    if (flen == 4 && memcmp(f, "@pos", 4) == 0)
        return restore_pos(cs, v, vlen);
    if (flen < 2 || (f[0] != 'b' && f[0] != 'i') || f[1] != 0x1f)
        return ASTRO_ERR;
    const char *k = split(f + 2, flen - 2, f[0] == 'b' ? 1 : 2, type, tf);
    size_t klen = k ? flen - (size_t)(k - f) : 0;
    if (k == NULL || klen > ASTRO_AGG_KEY_MAX)
        return ASTRO_ERR;
    memcpy(key, k, klen);
    key[klen] = '\0';
    const struct cep_candle_cfg *c = cep_agg_cfg_candles(cs->cfg, type);
    int ti = c && f[0] == 'i' ? tf_index(c, tf) : 0;
    if (c == NULL || ti < 0) {
        (*skipped)++;
        return ASTRO_OK;
    }
    struct cep_cgroup *g = cep_candles_group(cs, key, (uint32_t)(c - cs->cfg->candles), true);
    if (g == NULL)
        return ASTRO_ERR;
    if (f[0] == 'b')
        return restore_buckets(cs, g, &r);
    bool match = true;
    if (restore_indicators(&cs->cfg->ind, &g->tf[ti].ind, &r, &match) != ASTRO_OK)
        return ASTRO_ERR;
    *skipped += !match;
    return ASTRO_OK;
}

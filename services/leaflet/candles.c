/* OHLCV candles: buckets per (key, type, timeframe), the close heap and the emission with
 * indicators. Semantics in candles.h; the snapshot format is aggstate.c's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "astro/partition.h"
#include "candles.h"

int
cep_candle_volume(const char *meta_json, const char *field, double *vol)
{
    char quoted[ASTRO_EVENT_NAME_MAX + 4];
    *vol = 1.0;
    if (meta_json == NULL)
        return ASTRO_OK;
    /* the parse is only paid for when the name occurs at all */
    snprintf(quoted, sizeof(quoted), "\"%s\"", field);
    if (strstr(meta_json, quoted) == NULL)
        return ASTRO_OK;
    cJSON *m = cJSON_Parse(meta_json);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, field);
    int rc = ASTRO_OK;
    if (v != NULL) {
        if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble >= 0) {
            *vol = v->valuedouble;
        } else {
            *vol = 0.0;
            rc = ASTRO_ERR;
        }
    }
    cJSON_Delete(m);
    return rc;
}

static uint64_t
group_hash(const char *key, uint32_t ci)
{
    return astro_partition_hash(key, strlen(key)) ^ ((uint64_t)ci * 0x9e3779b97f4a7c15u);
}

void
cep_candles_group_free(const struct cep_candles *cs, struct cep_cgroup *g)
{
    const struct cep_candle_cfg *c = &cs->cfg->candles[g->ci];
    for (size_t t = 0; t < c->ntf; t++) {
        free(g->tf[t].b);
        cep_ind_state_cleanup(&g->tf[t].ind, &cs->cfg->ind);
    }
    free(g->key);
    free(g);
}

static struct cep_cgroup *
group_new(const struct cep_candles *cs, const char *key, uint32_t ci, uint64_t h)
{
    const struct cep_candle_cfg *c = &cs->cfg->candles[ci];
    struct cep_cgroup *g = calloc(1, sizeof(*g) + c->ntf * sizeof(g->tf[0]));
    if (g == NULL)
        return NULL;
    g->ci = ci;
    g->hash = h;
    g->seen = CEP_SEEN_UNKNOWN;
    if ((g->key = strdup(key)) == NULL) {
        free(g);
        return NULL;
    }
    for (size_t t = 0; t < c->ntf; t++) {
        if (cep_ind_state_init(&g->tf[t].ind, &cs->cfg->ind) != ASTRO_OK) {
            cep_candles_group_free(cs, g);
            return NULL;
        }
    }
    return g;
}

static int
grow_table(struct cep_candles *cs)
{
    size_t n = cs->nbuckets ? cs->nbuckets * 2 : 256;
    struct cep_cgroup **nb = calloc(n, sizeof(*nb));
    if (nb == NULL)
        return ASTRO_ERR;
    for (size_t i = 0; i < cs->nbuckets; i++) {
        for (struct cep_cgroup *g = cs->buckets[i], *next; g != NULL; g = next) {
            next = g->next;
            g->next = nb[g->hash & (n - 1)];
            nb[g->hash & (n - 1)] = g;
        }
    }
    free(cs->buckets);
    cs->buckets = nb;
    cs->nbuckets = n;
    return ASTRO_OK;
}

/* Heap order: due watermark, then config, timeframe and key, so the close (and expiry) order
 * is a function of the state alone (the same after a restore). */
static int
cheap_cmp(const struct cep_cheap *a, const struct cep_cheap *b)
{
    if (a->at != b->at)
        return a->at < b->at ? -1 : 1;
    if (a->g->ci != b->g->ci)
        return a->g->ci < b->g->ci ? -1 : 1;
    if (a->ti != b->ti)
        return a->ti < b->ti ? -1 : 1;
    return strcmp(a->g->key, b->g->key);
}

static int
heap_push(struct cep_cheapq *q, struct cep_cheap e)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 256;
        struct cep_cheap *v = realloc(q->v, cap * sizeof(*v));
        if (v == NULL)
            return ASTRO_ERR;
        q->v = v;
        q->cap = cap;
    }
    size_t i = q->n++;
    while (i > 0 && cheap_cmp(&q->v[(i - 1) / 2], &e) > 0) {
        q->v[i] = q->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    q->v[i] = e;
    return ASTRO_OK;
}

static struct cep_cheap
heap_pop(struct cep_cheapq *q)
{
    struct cep_cheap top = q->v[0], last = q->v[--q->n];
    size_t i = 0, n = q->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && cheap_cmp(&q->v[c + 1], &q->v[c]) < 0)
            c++;
        if (cheap_cmp(&last, &q->v[c]) <= 0)
            break;
        q->v[i] = q->v[c];
        i = c;
    }
    if (n > 0)
        q->v[i] = last;
    return top;
}

struct cep_cgroup *
cep_candles_group(struct cep_candles *cs, const char *key, uint32_t ci, bool create)
{
    uint64_t h = group_hash(key, ci);
    for (struct cep_cgroup *g = cs->nbuckets ? cs->buckets[h & (cs->nbuckets - 1)] : NULL; g;
         g = g->next)
        if (g->hash == h && g->ci == ci && strcmp(g->key, key) == 0)
            return g;
    if (!create || (cs->ngroups >= cs->nbuckets && grow_table(cs) != ASTRO_OK))
        return NULL;
    struct cep_cgroup *g = group_new(cs, key, ci, h);
    /* due INT64_MIN: the first watermark advance sets the real one (seen is not known yet) */
    if (g == NULL ||
        (cs->ttl_us > 0 && heap_push(&cs->idle, (struct cep_cheap){INT64_MIN, g, 0}) != ASTRO_OK)) {
        if (g != NULL)
            cep_candles_group_free(cs, g);
        return NULL;
    }
    g->next = cs->buckets[h & (cs->nbuckets - 1)];
    cs->buckets[h & (cs->nbuckets - 1)] = g;
    cs->ngroups++;
    return g;
}

void
cep_candles_mark_dirty(struct cep_candles *cs, struct cep_cgroup *g)
{
    if (g->dirty)
        return;
    g->dirty = true;
    g->dnext = cs->dirty;
    cs->dirty = g;
}

int
cep_candles_track(struct cep_candles *cs, struct cep_cgroup *g, uint32_t ti, int64_t end)
{
    return heap_push(&cs->closing, (struct cep_cheap){end, g, ti});
}

/* The open bucket starting at start (created, in order, when new). */
static struct cep_bucket *
bucket_at(struct cep_candles *cs, struct cep_cgroup *g, uint32_t ti, int64_t start, bool *isnew)
{
    struct cep_tfstate *t = &g->tf[ti];
    uint32_t i = 0;
    while (i < t->nb && t->b[i].start < start)
        i++;
    *isnew = i == t->nb || t->b[i].start != start;
    if (!*isnew)
        return &t->b[i];
    if (t->nb == t->capb) {
        uint32_t cap = t->capb ? t->capb * 2 : 2;
        struct cep_bucket *v = realloc(t->b, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        t->b = v;
        t->capb = cap;
    }
    if (cep_candles_track(cs, g, ti, start + cs->cfg->candles[g->ci].tf[ti].span_us) != ASTRO_OK)
        return NULL;
    memmove(&t->b[i + 1], &t->b[i], (t->nb - i) * sizeof(*t->b));
    t->nb++;
    memset(&t->b[i], 0, sizeof(t->b[i]));
    t->b[i].start = start;
    return &t->b[i];
}

static bool
before(int64_t ts, struct cep_sid sid, int64_t ts2, struct cep_sid sid2)
{
    return ts != ts2 ? ts < ts2 : cep_sid_cmp(sid, sid2) < 0;
}

static void
bucket_apply(struct cep_bucket *b, bool isnew, int64_t ts, struct cep_sid sid, double x,
             double vol)
{
    if (isnew || before(ts, sid, b->fts, b->fsid)) {
        b->o = x;
        b->fts = ts;
        b->fsid = sid;
    }
    if (isnew || !before(ts, sid, b->lts, b->lsid)) {
        b->c = x;
        b->lts = ts;
        b->lsid = sid;
    }
    b->h = isnew || x > b->h ? x : b->h;
    b->l = isnew || x < b->l ? x : b->l;
    b->vol += vol;
    b->pv += x * vol;
    b->psum += x;
    b->n++;
}

int
cep_candles_add(struct cep_candles *cs, const char *key, const char *type, int64_t ts_us,
                struct cep_sid sid, double value, const char *meta_json)
{
    const struct cep_candle_cfg *c = cep_agg_cfg_candles(cs->cfg, type);
    if (c == NULL || cep_sid_cmp(sid, cs->pos) <= 0)
        return ASTRO_OK;
    double vol;
    if (cep_candle_volume(meta_json, c->volume, &vol) != ASTRO_OK)
        cs->st.bad_volume++;
    struct cep_cgroup *g = cep_candles_group(cs, key, (uint32_t)(c - cs->cfg->candles), true);
    if (g == NULL)
        return ASTRO_ERR;
    g->seen = ts_us > g->seen ? ts_us : g->seen;
    for (uint32_t ti = 0; ti < c->ntf; ti++) {
        int64_t start = astro_tf_bucket(ts_us, c->tf[ti].span_us);
        bool isnew;
        if (start + c->tf[ti].span_us <= cs->wm)
            continue; /* closed already: the matcher's lateness check makes this unreachable */
        struct cep_bucket *b = bucket_at(cs, g, ti, start, &isnew);
        if (b == NULL)
            return ASTRO_ERR;
        bucket_apply(b, isnew, ts_us, sid, value, vol);
    }
    cs->pos = sid;
    cs->st.applied++;
    cep_candles_mark_dirty(cs, g);
    return ASTRO_OK;
}

static void
fill_candle(const struct cep_candles *cs, struct cep_cgroup *g, uint32_t ti,
            const struct cep_bucket *b, struct astro_candle *out)
{
    const struct cep_candle_cfg *c = &cs->cfg->candles[g->ci];
    memset(out, 0, sizeof(*out));
    out->key = g->key;
    snprintf(out->type, sizeof(out->type), "%s", c->type);
    snprintf(out->tf, sizeof(out->tf), "%s", c->tf[ti].label);
    out->tf_us = c->tf[ti].span_us;
    out->bucket_us = b->start;
    out->open = b->o;
    out->high = b->h;
    out->low = b->l;
    out->close = b->c;
    out->volume = b->vol;
    out->count = b->n;
    out->vwap = b->vol > 0 ? b->pv / b->vol : b->psum / (double)b->n;
}

/* Closes the oldest open bucket of (g, ti): indicators, emission, removal. */
static void
close_bucket(struct cep_candles *cs, struct cep_cgroup *g, uint32_t ti)
{
    struct cep_tfstate *t = &g->tf[ti];
    struct astro_candle cd;
    if (t->nb == 0)
        return;
    fill_candle(cs, g, ti, &t->b[0], &cd);
    cd.n_ind = cep_ind_update(&t->ind, &cs->cfg->ind, cd.close, cd.ind);
    t->ind_dirty = true;
    memmove(&t->b[0], &t->b[1], (t->nb - 1) * sizeof(*t->b));
    t->nb--;
    cep_candles_mark_dirty(cs, g);
    cs->st.emitted++;
    cs->emit(cs->arg, &cd);
}

void
cep_candles_each_open(const struct cep_candles *cs,
                      void (*fn)(void *arg, const struct astro_candle *c), void *arg)
{
    struct astro_candle cd;
    for (struct cep_cgroup *g = cs->dirty; g != NULL; g = g->dnext) {
        const struct cep_candle_cfg *c = &cs->cfg->candles[g->ci];
        for (uint32_t ti = 0; ti < c->ntf; ti++) {
            if (g->tf[ti].nb == 0)
                continue;
            fill_candle(cs, g, ti, &g->tf[ti].b[g->tf[ti].nb - 1], &cd);
            fn(arg, &cd);
        }
    }
}

/* The earliest watermark at which g may expire: more than ttl after its latest event, and not
 * before its newest open bucket closes (when the watermark reaches the bucket's end). */
static int64_t
idle_due(const struct cep_candles *cs, const struct cep_cgroup *g)
{
    const struct cep_candle_cfg *c = &cs->cfg->candles[g->ci];
    int64_t due = g->seen >= INT64_MAX - cs->ttl_us ? INT64_MAX : g->seen + cs->ttl_us + 1;
    for (size_t t = 0; t < c->ntf; t++) {
        const struct cep_tfstate *tf = &g->tf[t];
        if (tf->nb > 0 && tf->b[tf->nb - 1].start + c->tf[t].span_us > due)
            due = tf->b[tf->nb - 1].start + c->tf[t].span_us;
    }
    return due;
}

/* Takes an idle group out of the table (a returning key starts a new series) and hands it to
 * the next snapshot through the dirty list: it deletes the group's fields and frees it. */
static void
group_expire(struct cep_candles *cs, struct cep_cgroup *g)
{
    struct cep_cgroup **link = &cs->buckets[g->hash & (cs->nbuckets - 1)];
    while (*link != g)
        link = &(*link)->next;
    *link = g->next;
    cs->ngroups--;
    cs->st.expired++;
    g->expired = true;
    cep_candles_mark_dirty(cs, g);
}

/* Expires the groups due at the watermark. Only entries due are looked at, each popped entry is
 * either expired or pushed again with its group's current due (later than the watermark), so
 * the cost follows the expiries and the returning keys, not the number of series. */
static int
expire_idle(struct cep_candles *cs)
{
    while (cs->idle.n > 0 && cs->idle.v[0].at <= cs->wm) {
        struct cep_cgroup *g = heap_pop(&cs->idle).g;
        if (g->seen == CEP_SEEN_UNKNOWN) { /* restored from a version 1 snapshot */
            g->seen = cs->wm;
            cep_candles_mark_dirty(cs, g);
        }
        int64_t due = idle_due(cs, g);
        if (due > cs->wm && heap_push(&cs->idle, (struct cep_cheap){due, g, 0}) != ASTRO_OK)
            return ASTRO_ERR;
        if (due <= cs->wm)
            group_expire(cs, g);
    }
    return ASTRO_OK;
}

int
cep_candles_advance(struct cep_candles *cs, int64_t wm_us)
{
    if (wm_us <= cs->wm)
        return ASTRO_OK;
    cs->wm = wm_us;
    while (cs->closing.n > 0 && cs->closing.v[0].at <= wm_us) {
        struct cep_cheap e = heap_pop(&cs->closing);
        close_bucket(cs, e.g, e.ti);
    }
    return expire_idle(cs);
}

struct cep_candles *
cep_candles_new(const struct cep_agg_cfg *cfg, int64_t ttl_us, cep_candle_emit_fn emit,
                void *arg)
{
    struct cep_candles *cs = calloc(1, sizeof(*cs));
    if (cs == NULL)
        return NULL;
    cs->cfg = cfg;
    cs->ttl_us = ttl_us;
    cs->emit = emit;
    cs->arg = arg;
    cs->wm = INT64_MIN;
    return cs;
}

void
cep_candles_free(struct cep_candles *cs)
{
    if (cs == NULL)
        return;
    for (struct cep_cgroup *g = cs->dirty, *next; g != NULL; g = next) {
        next = g->dnext;
        if (g->expired) /* in no table any more */
            cep_candles_group_free(cs, g);
    }
    for (size_t i = 0; i < cs->nbuckets; i++) {
        for (struct cep_cgroup *g = cs->buckets[i], *next; g != NULL; g = next) {
            next = g->next;
            cep_candles_group_free(cs, g);
        }
    }
    free(cs->buckets);
    free(cs->closing.v);
    free(cs->idle.v);
    free(cs);
}

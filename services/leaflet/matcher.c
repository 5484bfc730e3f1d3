/* The matcher's intake: lateness, duplicates, keys, the watermark and the hold queue that names
 * the rebuild point. See matcher.h for the semantics and docs/leaflet.md for why. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "astro/partition.h"
#include "matcher_int.h"

int
cep_sid_parse(const char *s, size_t len, struct cep_sid *out)
{
    uint64_t v[2] = {0, 0};
    int part = 0;
    size_t digits = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '-' && part == 0 && digits > 0) {
            part = 1;
            digits = 0;
            continue;
        }
        if (s[i] < '0' || s[i] > '9' || digits == 19)
            return ASTRO_ERR;
        v[part] = v[part] * 10 + (uint64_t)(s[i] - '0');
        digits++;
    }
    if (digits == 0)
        return ASTRO_ERR;
    out->ms = v[0];
    out->seq = v[1];
    return ASTRO_OK;
}

void
cep_sid_format(struct cep_sid sid, char out[CEP_SID_STR])
{
    snprintf(out, CEP_SID_STR, "%" PRIu64 "-%" PRIu64, sid.ms, sid.seq);
}

static struct cep_keystate *
ks_new(const struct cep_matcher *m, const char *key, uint64_t h)
{
    size_t n = m->rules->n;
    struct cep_keystate *ks = calloc(1, sizeof(*ks) + n * sizeof(ks->rs[0]));
    if (ks == NULL || (ks->key = strdup(key)) == NULL) {
        free(ks);
        return NULL;
    }
    ks->hash = h;
    for (size_t r = 0; r < n; r++)
        ks->rs[r].last_b_ts = INT64_MIN;
    return ks;
}

static void
ks_free(const struct cep_matcher *m, struct cep_keystate *ks)
{
    if (ks == NULL)
        return;
    for (size_t r = 0; r < m->rules->n; r++)
        cep_rstate_free(&ks->rs[r]);
    free(ks->key);
    free(ks);
}

static int
grow_buckets(void ***buckets, size_t *nb, size_t count, size_t next_off, size_t hash_off)
{
    if (count < *nb)
        return ASTRO_OK;
    size_t n = *nb ? *nb * 2 : 1024;
    void **nbk = calloc(n, sizeof(*nbk));
    if (nbk == NULL)
        return ASTRO_ERR;
    for (size_t i = 0; i < *nb; i++) {
        for (char *e = (*buckets)[i]; e != NULL;) {
            char *next = *(char **)(e + next_off);
            uint64_t h = *(uint64_t *)(e + hash_off);
            *(char **)(e + next_off) = nbk[h & (n - 1)];
            nbk[h & (n - 1)] = e;
            e = next;
        }
    }
    free(*buckets);
    *buckets = nbk;
    *nb = n;
    return ASTRO_OK;
}

/* The state of key (created on first use; the caller takes a reference). */
static struct cep_keystate *
key_intern(struct cep_matcher *m, const char *key)
{
    uint64_t h = astro_partition_hash(key, strlen(key));
    if (m->nkbuckets > 0) {
        for (struct cep_keystate *ks = m->kbuckets[h & (m->nkbuckets - 1)]; ks; ks = ks->next)
            if (ks->hash == h && strcmp(ks->key, key) == 0)
                return ks;
    }
    if (grow_buckets((void ***)&m->kbuckets, &m->nkbuckets, m->nkeys,
                     offsetof(struct cep_keystate, next),
                     offsetof(struct cep_keystate, hash)) != ASTRO_OK)
        return NULL;
    struct cep_keystate *ks = ks_new(m, key, h);
    if (ks == NULL)
        return NULL;
    ks->next = m->kbuckets[h & (m->nkbuckets - 1)];
    m->kbuckets[h & (m->nkbuckets - 1)] = ks;
    m->nkeys++;
    return ks;
}

static void
key_release(struct cep_matcher *m, struct cep_keystate *ks)
{
    if (--ks->refs > 0)
        return;
    struct cep_keystate **pp = &m->kbuckets[ks->hash & (m->nkbuckets - 1)];
    while (*pp != ks)
        pp = &(*pp)->next;
    *pp = ks->next;
    m->nkeys--;
    ks_free(m, ks);
}

static struct cep_item *
id_find(const struct cep_matcher *m, const char *id, uint64_t h)
{
    if (m->nibuckets == 0)
        return NULL;
    for (struct cep_item *it = m->ibuckets[h & (m->nibuckets - 1)]; it; it = it->id_next)
        if (it->id_hash == h && strcmp(it->li.id, id) == 0)
            return it;
    return NULL;
}

static void
id_remove(struct cep_matcher *m, struct cep_item *it)
{
    struct cep_item **pp = &m->ibuckets[it->id_hash & (m->nibuckets - 1)];
    while (*pp != it)
        pp = &(*pp)->id_next;
    *pp = it->id_next;
    m->nids--;
}

/* Frees dead items at the front of the hold queue, so the front is the rebuild point. */
static void
hold_trim(struct cep_matcher *m)
{
    while (m->hold_len > 0 && m->hold[m->hold_head]->refs == 0) {
        struct cep_item *it = m->hold[m->hold_head];
        m->hold_head = (m->hold_head + 1) % m->hold_cap;
        m->hold_len--;
        key_release(m, it->ks);
        it->id_next = m->freelist;
        m->freelist = it;
    }
}

void
cep_item_unref(struct cep_matcher *m, struct cep_item *it)
{
    if (--it->refs > 0)
        return;
    m->live--;
    id_remove(m, it);
    hold_trim(m);
}

static int
hold_push(struct cep_matcher *m, struct cep_item *it)
{
    if (m->hold_len == m->hold_cap) {
        size_t cap = m->hold_cap ? m->hold_cap * 2 : 1024;
        struct cep_item **v = malloc(cap * sizeof(*v));
        if (v == NULL)
            return ASTRO_ERR;
        for (size_t i = 0; i < m->hold_len; i++)
            v[i] = m->hold[(m->hold_head + i) % m->hold_cap];
        free(m->hold);
        m->hold = v;
        m->hold_head = 0;
        m->hold_cap = cap;
    }
    m->hold[(m->hold_head + m->hold_len++) % m->hold_cap] = it;
    return ASTRO_OK;
}

/* Processes one released item against every rule that it matches. */
static void
process(struct cep_matcher *m, struct cep_item *it)
{
    cep_window_expire(m, it->li.ts_us);
    for (size_t r = 0; r < m->rules->n; r++) {
        const struct cep_rule *rule = &m->rules->rules[r];
        uint32_t mask = cep_rule_mask(rule, it);
        if (mask == 0)
            continue;
        if (m->silent && m->consumed != NULL && !rule->reuse &&
            m->consumed(m->consumed_arg, r, it->li.id))
            continue;
        struct cep_keystate *ks = rule->global ? m->global_ks : it->ks;
        cep_operator_of(rule->op)->on_item(m, r, &ks->rs[r], ks, it, mask);
    }
    cep_item_unref(m, it);
}

static void
advance(struct cep_matcher *m, int64_t wm)
{
    m->wm = wm;
    while (m->nheap > 0 && m->heap[0].ts < wm)
        process(m, cep_heap_pop(m));
    cep_window_expire(m, wm);
}

/* Copies a name of at most 64 bytes (the event decoder's cap; longer is cut). */
static void
copy_name(char dst[ASTRO_EVENT_NAME_MAX + 1], const char *src)
{
    size_t n = src ? strnlen(src, ASTRO_EVENT_NAME_MAX) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

static struct cep_item *
item_new(struct cep_matcher *m, const struct astro_event *ev, struct cep_sid sid, uint64_t h)
{
    struct cep_item *it = m->freelist;
    if (it != NULL)
        m->freelist = it->id_next;
    else if ((it = malloc(sizeof(*it))) == NULL)
        return NULL;
    copy_name(it->li.id, ev->id);
    copy_name(it->li.stream, ev->src);
    copy_name(it->li.type, ev->type);
    it->li.ts_us = ev->ts_us;
    it->li.value = ev->value;
    it->sid = sid;
    it->wm_before = m->wm;
    it->id_hash = h;
    it->refs = 1;
    it->ks = key_intern(m, ev->key ? ev->key : "");
    if (it->ks == NULL) {
        it->id_next = m->freelist;
        m->freelist = it;
        return NULL;
    }
    it->ks->refs++;
    return it;
}

static int
accept(struct cep_matcher *m, struct cep_item *it)
{
    if (grow_buckets((void ***)&m->ibuckets, &m->nibuckets, m->nids,
                     offsetof(struct cep_item, id_next),
                     offsetof(struct cep_item, id_hash)) != ASTRO_OK ||
        hold_push(m, it) != ASTRO_OK)
        return ASTRO_ERR;
    if (cep_heap_push(m, it) != ASTRO_OK) {
        m->hold_len--;
        return ASTRO_ERR;
    }
    it->id_next = m->ibuckets[it->id_hash & (m->nibuckets - 1)];
    m->ibuckets[it->id_hash & (m->nibuckets - 1)] = it;
    m->nids++;
    m->live++;
    return ASTRO_OK;
}

int
cep_matcher_push(struct cep_matcher *m, const struct astro_event *ev, struct cep_sid sid)
{
    m->fed = true;
    m->last_sid = sid;
    m->st.events_in++;
    if (ev->ts_us < m->wm) {
        m->st.late++;
        if (!m->silent)
            m->sink.on_late(m->sink.arg, ev, sid, m->wm);
        return ASTRO_OK;
    }
    uint64_t h = astro_partition_hash(ev->id, strlen(ev->id));
    if (id_find(m, ev->id, h) != NULL) {
        m->st.duplicates++;
        return ASTRO_OK;
    }
    struct cep_item *it = item_new(m, ev, sid, h);
    if (it == NULL)
        return ASTRO_ERR;
    if (accept(m, it) != ASTRO_OK) {
        key_release(m, it->ks);
        free(it);
        return ASTRO_ERR;
    }
    if (ev->ts_us > m->max_ts) {
        m->max_ts = ev->ts_us;
        if (ev->ts_us - m->opt.lateness_us > m->wm)
            advance(m, ev->ts_us - m->opt.lateness_us);
    }
    if (m->nheap > m->opt.max_held) {
        m->st.forced++;
        advance(m, m->heap[0].ts + 1);
    }
    return ASTRO_OK;
}

int
cep_matcher_mark(struct cep_matcher *m, int64_t wm_us, struct cep_sid sid)
{
    m->fed = true;
    m->last_sid = sid;
    m->st.markers++;
    if (wm_us > m->wm)
        advance(m, wm_us);
    return ASTRO_OK;
}

struct cep_matcher *
cep_matcher_new(const struct cep_ruleset *rules, const struct cep_matcher_opts *opts,
                const struct cep_sink *sink)
{
    struct cep_matcher *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->rules = rules;
    m->opt = *opts;
    if (m->opt.max_held == 0)
        m->opt.max_held = 1000000;
    m->sink = *sink;
    m->wm = m->max_ts = INT64_MIN;
    size_t cap = CEP_MAX_PARTS + 1;
    for (size_t r = 0; r < rules->n; r++)
        if (rules->rules[r].count + 1 > cap)
            cap = rules->rules[r].count + 1;
    m->scratch_cap = cap;
    m->picks = calloc(cap, sizeof(*m->picks));
    m->lineage = calloc(cap, sizeof(*m->lineage));
    m->ids = calloc(cap, sizeof(*m->ids));
    m->wq = calloc(rules->n ? rules->n : 1, sizeof(*m->wq));
    m->st.matches = calloc(rules->n ? rules->n : 1, sizeof(*m->st.matches));
    m->global_ks = ks_new(m, "", 0);
    if (!m->picks || !m->lineage || !m->ids || !m->wq || !m->st.matches || !m->global_ks) {
        cep_matcher_free(m);
        return NULL;
    }
    return m;
}

void
cep_matcher_free(struct cep_matcher *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->hold_len; i++)
        free(m->hold[(m->hold_head + i) % m->hold_cap]);
    for (size_t i = 0; i < m->nkbuckets; i++) {
        for (struct cep_keystate *ks = m->kbuckets[i], *next; ks; ks = next) {
            next = ks->next;
            ks_free(m, ks);
        }
    }
    while (m->freelist) {
        struct cep_item *it = m->freelist;
        m->freelist = it->id_next;
        free(it);
    }
    for (size_t r = 0; m->wq && r < m->rules->n; r++)
        free(m->wq[r].v);
    ks_free(m, m->global_ks);
    free(m->kbuckets);
    free(m->ibuckets);
    free(m->hold);
    free(m->heap);
    free(m->wq);
    free(m->picks);
    free(m->lineage);
    free(m->ids);
    free(m->st.matches);
    free(m);
}

void
cep_matcher_set_silent(struct cep_matcher *m, bool silent,
                       bool (*consumed)(void *arg, size_t rule, const char *id), void *arg)
{
    m->silent = silent;
    m->consumed = consumed;
    m->consumed_arg = arg;
}

int64_t
cep_matcher_watermark(const struct cep_matcher *m)
{
    return m->wm;
}

void
cep_matcher_set_watermark(struct cep_matcher *m, int64_t wm_us)
{
    m->wm = wm_us;
    if (m->max_ts < wm_us + m->opt.lateness_us && wm_us != INT64_MIN)
        m->max_ts = wm_us + m->opt.lateness_us;
}

int64_t
cep_matcher_max_ts(const struct cep_matcher *m)
{
    return m->max_ts;
}

bool
cep_matcher_checkpoint(const struct cep_matcher *m, struct cep_sid *sid, int64_t *wm_us)
{
    if (!m->fed)
        return false;
    if (m->hold_len > 0) {
        const struct cep_item *front = m->hold[m->hold_head];
        *sid = front->sid;
        *wm_us = front->wm_before;
    } else {
        *sid = m->last_sid;
        sid->seq++;
        *wm_us = m->wm;
    }
    return true;
}

bool
cep_matcher_busy(const struct cep_matcher *m)
{
    return m->live > 0;
}

void
cep_matcher_stats(const struct cep_matcher *m, struct cep_matcher_stats *out)
{
    *out = m->st;
    out->buffered = m->nheap;
    out->held = m->live;
    out->keys = m->nkeys;
}

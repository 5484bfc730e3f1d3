/* The matcher's intake: lateness, duplicates, keys, the watermark and the hold queue that names
 * the rebuild point. See matcher.h for the semantics and docs/leaflet.md for why. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Key states come and go with their keys' live items. Up to KS_SPARE freed ones of the usual
 * size (a key of up to 39 bytes) are kept for reuse, with their slot arrays when these are
 * small: aligned_alloc() and free() per key cost more than matching the key's events. */
#define KS_SPARE 1024
#define KS_SPARE_SLOTS 8

/* The size of the key state of a key of keylen bytes, and in *at the offset of its rule states:
 * the header and key fill the first cache line (or lines), the rule states start on the next. */
static size_t
ks_size(const struct cep_matcher *m, size_t keylen, size_t *at)
{
    size_t line = 64;
    *at = (offsetof(struct cep_keystate, key) + keylen + 1 + line - 1) & ~(line - 1);
    return *at + ((m->rules->n * sizeof(struct cep_rstate) + line - 1) & ~(line - 1));
}

static struct cep_keystate *
ks_new(struct cep_matcher *m, const char *key, size_t keylen, uint64_t h)
{
    size_t at, size = ks_size(m, keylen, &at);
    struct cep_keystate *ks;
    if (size == m->ks_small && m->nks_spare > 0) {
        ks = m->ks_spare[--m->nks_spare];
    } else {
        if ((ks = aligned_alloc(64, size)) == NULL)
            return NULL;
        memset(ks, 0, size);
        ks->rs = (struct cep_rstate *)((char *)ks + at);
        for (size_t r = 0; r < m->rules->n; r++)
            ks->rs[r].last_b_ts = INT64_MIN;
    }
    memcpy(ks->key, key, keylen);
    ks->key[keylen] = '\0';
    ks->keylen = (uint32_t)keylen;
    ks->hash = h;
    return ks;
}

static void
ks_free(const struct cep_matcher *m, struct cep_keystate *ks)
{
    if (ks == NULL)
        return;
    for (size_t r = 0; r < m->rules->n; r++)
        cep_rstate_free(&ks->rs[r]);
    free(ks);
}

/* Frees ks or, when it has the usual size and there is room, keeps it as a spare (emptied, as
 * ks_new() hands it out). */
static void
ks_recycle(struct cep_matcher *m, struct cep_keystate *ks)
{
    size_t at;
    if (ks_size(m, ks->keylen, &at) != m->ks_small || m->nks_spare == KS_SPARE) {
        ks_free(m, ks);
        return;
    }
    for (size_t r = 0; r < m->rules->n; r++) {
        struct cep_rstate *st = &ks->rs[r];
        if (st->cap > KS_SPARE_SLOTS)
            cep_rstate_free(st);
        st->head = st->len = 0;
        st->last_b_ts = INT64_MIN;
    }
    m->ks_spare[m->nks_spare++] = ks;
}

/* The state of key[0..len), whose hash is h (created on first use; the caller takes a
 * reference). */
static struct cep_keystate *
key_intern(struct cep_matcher *m, const char *key, size_t len, uint64_t h)
{
    size_t pos = 0;
    for (struct cep_keystate *ks; (ks = cep_index_next(&m->keys, h, &pos)) != NULL;)
        if (ks->keylen == len && memcmp(ks->key, key, len) == 0)
            return ks;
    if (cep_index_reserve(&m->keys) != ASTRO_OK)
        return NULL;
    struct cep_keystate *ks = ks_new(m, key, len, h);
    if (ks == NULL)
        return NULL;
    cep_index_add(&m->keys, h, ks);
    return ks;
}

static void
key_release(struct cep_matcher *m, struct cep_keystate *ks)
{
    if (--ks->refs > 0)
        return;
    cep_index_del(&m->keys, ks->hash, ks);
    ks_recycle(m, ks);
}

static struct cep_item *
id_find(const struct cep_matcher *m, const char *id, uint64_t h)
{
    size_t pos = 0;
    for (struct cep_item *it; (it = cep_index_next(&m->ids_ix, h, &pos)) != NULL;)
        if (strcmp(it->li.id, id) == 0)
            return it;
    return NULL;
}

/* The interned name s (at most 64 bytes are kept: the event decoder's cap), referenced once
 * more; NULL on allocation failure. */
static struct cep_name *
name_intern(struct cep_matcher *m, const char *s)
{
    size_t len = s ? strnlen(s, ASTRO_EVENT_NAME_MAX) : 0;
    uint64_t h = cep_hash(s ? s : "", len);
    size_t pos = 0;
    struct cep_name *nm;
    while ((nm = cep_index_next(&m->names, h, &pos)) != NULL)
        if (nm->len == len && memcmp(nm->s, s, len) == 0)
            goto found;
    if (cep_index_reserve(&m->names) != ASTRO_OK || (nm = malloc(sizeof(*nm) + len + 1)) == NULL)
        return NULL;
    nm->hash = h;
    nm->refs = 0;
    nm->len = (uint32_t)len;
    memcpy(nm->s, s ? s : "", len);
    nm->s[len] = '\0';
    cep_index_add(&m->names, h, nm);
found:
    nm->refs++;
    return nm;
}

static void
name_release(struct cep_matcher *m, struct cep_name *nm)
{
    if (nm == NULL || --nm->refs > 0)
        return;
    cep_index_del(&m->names, nm->hash, nm);
    free(nm);
}

/* Frees dead items at the front of the hold queue, so the front is the rebuild point. */
static void
hold_trim(struct cep_matcher *m)
{
    while (m->hold.len > 0 && cep_hold_at(&m->hold, 0)->refs == 0)
        cep_hold_pop(&m->hold);
}

/* A dead item lets go of its id, key and names at once, while its key state is still in the
 * caches (its last holder just used it); while it waits in the hold queue only its refs are
 * read (hold_trim). */
void
cep_item_unref(struct cep_matcher *m, struct cep_item *it)
{
    if (--it->refs > 0)
        return;
    m->live--;
    cep_index_del(&m->ids_ix, it->id_hash, it);
    key_release(m, it->ks);
    name_release(m, it->li.stream);
    name_release(m, it->li.type);
    hold_trim(m);
}

/* How far ahead of the release point (in run entries) the item, its key state and its rule
 * states are loaded: each stage reads only what the stage before prefetched, so the misses of
 * the next items overlap the work on this one instead of stalling it. */
#define AHEAD_ITEM 12
#define AHEAD_KEY 8
#define AHEAD_STATE 4

CEP_PREFETCHER void
prefetch_ahead(const struct cep_matcher *m)
{
    const struct cep_hent *e;
    if ((e = cep_reorder_ahead(m, AHEAD_ITEM)) != NULL)
        cep_item_prefetch(e->it);
    if ((e = cep_reorder_ahead(m, AHEAD_KEY)) != NULL) {
        cep_keystate_prefetch(e->it->ks);
        cep_index_prefetch(&m->ids_ix, e->it->id_hash); /* it dies at once if no rule keeps it */
    }
    if ((e = cep_reorder_ahead(m, AHEAD_STATE)) != NULL)
        for (size_t r = 0; r < m->rules->n; r++)
            cep_rstate_prefetch(&e->it->ks->rs[r]);
}

/* Processes one released item against every rule that it matches. */
static void
process(struct cep_matcher *m, struct cep_item *it)
{
    cep_window_expire(m, it->li.ts_us);
    for (size_t r = 0; r < m->rules->n; r++) {
        const struct cep_rule *rule = &m->rules->rules[r];
        uint32_t mask = cep_rule_mask(m, r, it);
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
    for (const struct cep_hent *e; (e = cep_reorder_min(m)) != NULL && e->ts < wm;) {
        prefetch_ahead(m);
        process(m, cep_heap_pop(m));
    }
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

/* Starts loading the key state that the first index entry under hash names (the usual hit), so
 * that its miss overlaps the duplicate check and the item's construction. */
CEP_PREFETCHER void
key_prefetch(const struct cep_matcher *m, uint64_t hash)
{
    size_t pos = 0;
    const struct cep_keystate *ks = cep_index_next(&m->keys, hash, &pos);
    if (ks != NULL)
        __builtin_prefetch(ks);
}

/* What the intake looks up for an event, hashed up front so that both index probes are in
 * flight at once (cep_index_prefetch). */
struct intake {
    const char *key;
    size_t keylen;
    uint64_t id_hash, key_hash;
};

/* A new item at the back of the hold queue, with its key and names referenced; NULL (nothing
 * changed) on allocation failure. */
static struct cep_item *
item_new(struct cep_matcher *m, const struct astro_event *ev, struct cep_sid sid,
         const struct intake *in)
{
    if (cep_index_reserve(&m->ids_ix) != ASTRO_OK)
        return NULL;
    struct cep_item *it = cep_hold_push(&m->hold);
    if (it == NULL)
        return NULL;
    copy_name(it->li.id, ev->id);
    it->li.ts_us = ev->ts_us;
    it->li.value = ev->value;
    it->sid = sid;
    it->wm_before = m->wm;
    it->id_hash = in->id_hash;
    it->refs = 1;
    it->li.stream = name_intern(m, ev->src);
    it->li.type = name_intern(m, ev->type);
    /* the key last: its state is likely still on its way (key_prefetch()) */
    if (it->li.stream == NULL || it->li.type == NULL ||
        (it->ks = key_intern(m, in->key, in->keylen, in->key_hash)) == NULL) {
        name_release(m, it->li.stream);
        name_release(m, it->li.type);
        cep_hold_unpush(&m->hold);
        return NULL;
    }
    it->ks->refs++;
    return it;
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
    const char *key = ev->key ? ev->key : "";
    struct intake in = {key, strlen(key), cep_hash(ev->id, strlen(ev->id)), 0};
    in.key_hash = cep_hash(key, in.keylen);
    cep_index_prefetch(&m->ids_ix, in.id_hash);
    cep_index_prefetch(&m->keys, in.key_hash);
    key_prefetch(m, in.key_hash);
    if (id_find(m, ev->id, in.id_hash) != NULL) {
        m->st.duplicates++;
        return ASTRO_OK;
    }
    struct cep_item *it = item_new(m, ev, sid, &in);
    if (it == NULL)
        return ASTRO_ERR;
    if (cep_heap_push(m, it) != ASTRO_OK) {
        key_release(m, it->ks);
        name_release(m, it->li.stream);
        name_release(m, it->li.type);
        cep_hold_unpush(&m->hold);
        return ASTRO_ERR;
    }
    cep_index_add(&m->ids_ix, in.id_hash, it);
    m->live++;
    if (ev->ts_us > m->max_ts) {
        m->max_ts = ev->ts_us;
        if (ev->ts_us - m->opt.lateness_us > m->wm)
            advance(m, ev->ts_us - m->opt.lateness_us);
    }
    if (cep_reorder_len(m) > m->opt.max_held) {
        m->st.forced++;
        advance(m, cep_reorder_min(m)->ts + 1);
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

/* Interns the names the rule parts ask for, so matching an item's names is a pointer compare
 * (these references last as long as the matcher). */
static int
intern_parts(struct cep_matcher *m)
{
    size_t n = m->rules->n ? m->rules->n : 1;
    if ((m->part_names = calloc(n * CEP_MAX_PARTS * 2, sizeof(*m->part_names))) == NULL)
        return ASTRO_ERR;
    for (size_t r = 0; r < m->rules->n; r++) {
        const struct cep_rule *rule = &m->rules->rules[r];
        for (size_t j = 0; j < rule->nparts && j < CEP_MAX_PARTS; j++) {
            struct cep_name **pn = &m->part_names[(r * CEP_MAX_PARTS + j) * 2];
            if ((rule->parts[j].type[0] && !(pn[0] = name_intern(m, rule->parts[j].type))) ||
                (rule->parts[j].src[0] && !(pn[1] = name_intern(m, rule->parts[j].src))))
                return ASTRO_ERR;
        }
    }
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
    size_t at;
    m->ks_small = ks_size(m, 0, &at);
    m->ks_spare = calloc(KS_SPARE, sizeof(*m->ks_spare));
    m->global_ks = ks_new(m, "", 0, 0);
    if (!m->picks || !m->lineage || !m->ids || !m->wq || !m->st.matches || !m->ks_spare ||
        !m->global_ks || intern_parts(m) != ASTRO_OK) {
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
    for (size_t i = 0; i < m->keys.cap; i++)
        ks_free(m, m->keys.v[i].p);
    for (size_t i = 0; i < m->names.cap; i++)
        free(m->names.v[i].p);
    for (size_t r = 0; m->wq && r < m->rules->n; r++)
        free(m->wq[r].v);
    ks_free(m, m->global_ks);
    for (size_t i = 0; i < m->nks_spare; i++)
        ks_free(m, m->ks_spare[i]);
    free(m->ks_spare);
    cep_index_cleanup(&m->keys);
    cep_index_cleanup(&m->ids_ix);
    cep_index_cleanup(&m->names);
    free(m->part_names);
    cep_hold_cleanup(&m->hold);
    cep_reorder_cleanup(m);
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
    if (m->hold.len > 0) {
        const struct cep_item *front = cep_hold_at(&m->hold, 0);
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
    out->buffered = cep_reorder_len(m);
    out->held = m->live;
    out->keys = m->keys.n;
}

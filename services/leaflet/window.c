/* Window state: each rule keeps, per key (or once, for a global rule), the items still inside
 * its window, and one queue of every item it took in processing order. Because items are
 * processed in event-time order, the queue is also ordered by window end (ts + W), so expiry is
 * a pop from its front: an item whose window closed is either still the oldest item of its key
 * state (then the operator decides: drop, fire an absence, fire a partial match) or was
 * consumed by a match earlier (then nothing remains to do). */
#include <stdlib.h>
#include <string.h>

#include "astro/log.h"
#include "matcher_int.h"

int
cep_rstate_append(struct cep_rstate *st, struct cep_item *it, uint32_t mask)
{
    if (st->head > 0 && st->head + st->len == st->cap) {
        memmove(st->v, st->v + st->head, st->len * sizeof(*st->v));
        st->head = 0;
    }
    if (st->head + st->len == st->cap) {
        uint32_t cap = st->cap ? st->cap * 2 : 4;
        struct cep_slot *v = realloc(st->v, cap * sizeof(*v));
        if (v == NULL)
            return ASTRO_ERR;
        st->v = v;
        st->cap = cap;
    }
    st->v[st->head + st->len].it = it;
    st->v[st->head + st->len].ts = it->li.ts_us;
    st->v[st->head + st->len].mask = mask;
    st->len++;
    return ASTRO_OK;
}

/* Removes the idx-th item (0 = oldest) keeping the order. */
void
cep_rstate_remove(struct cep_rstate *st, uint32_t idx)
{
    struct cep_slot *base = st->v + st->head;
    if (idx == 0) {
        st->head++;
    } else {
        memmove(base + idx, base + idx + 1, (st->len - idx - 1) * sizeof(*base));
    }
    st->len--;
    if (st->len == 0)
        st->head = 0;
}

void
cep_rstate_free(struct cep_rstate *st)
{
    free(st->v);
    memset(st, 0, sizeof(*st));
}

static void
wq_pop(struct cep_matcher *m, size_t r, bool evict)
{
    struct cep_wqueue *q = &m->wq[r];
    struct cep_wentry e = q->v[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->len--;
    struct cep_rstate *st = &e.ks->rs[r];
    if (st->len > 0 && st->v[st->head].it == e.it) {
        if (evict) {
            cep_rstate_remove(st, 0);
            m->st.evicted++;
            astro_log_debug("rule %s: evicted event %s (state cap %zu)",
                            m->rules->rules[r].name, e.it->li.id, m->opt.max_held);
        } else {
            cep_operator_of(m->rules->rules[r].op)->on_expire(m, r, st, e.ks, e.it);
        }
    }
    cep_item_unref(m, e.it);
}

/* Records that rule r took item it (in ks's state or as an absence canceller), holding it until
 * its window ends; evicts the rule's oldest item when the rule is at its cap. */
int
cep_window_enter(struct cep_matcher *m, size_t r, struct cep_keystate *ks, struct cep_item *it)
{
    struct cep_wqueue *q = &m->wq[r];
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        struct cep_wentry *v = malloc(cap * sizeof(*v));
        if (v == NULL)
            return ASTRO_ERR;
        for (size_t i = 0; i < q->len; i++)
            v[i] = q->v[(q->head + i) & (q->cap - 1)];
        free(q->v);
        q->v = v;
        q->head = 0;
        q->cap = cap;
    }
    q->v[(q->head + q->len) & (q->cap - 1)] = (struct cep_wentry){it, ks, it->li.ts_us};
    q->len++;
    it->refs++;
    while (q->len > m->opt.max_held)
        wq_pop(m, r, true);
    return ASTRO_OK;
}

/* How far ahead of rule r's queue front the entries' key states and items, then their rule
 * states and id index slots, are loaded (the second stage reads what the first prefetched):
 * entries expire ~W after they were last touched, long out of the caches. */
#define EXPIRE_AHEAD_ENTRY 32 /* the queue itself: written ~W ago, as far out of the caches */
#define EXPIRE_AHEAD_ITEM 8
#define EXPIRE_AHEAD_STATE 4

CEP_PREFETCHER void
wq_prefetch(const struct cep_matcher *m, size_t r, const struct cep_wqueue *q)
{
    if (q->len > EXPIRE_AHEAD_ENTRY)
        __builtin_prefetch(&q->v[(q->head + EXPIRE_AHEAD_ENTRY) & (q->cap - 1)]);
    if (q->len > EXPIRE_AHEAD_ITEM) {
        const struct cep_wentry *e = &q->v[(q->head + EXPIRE_AHEAD_ITEM) & (q->cap - 1)];
        cep_keystate_prefetch(e->ks);
        cep_item_prefetch(e->it);
    }
    if (q->len > EXPIRE_AHEAD_STATE) {
        const struct cep_wentry *e = &q->v[(q->head + EXPIRE_AHEAD_STATE) & (q->cap - 1)];
        const struct cep_rstate *st = &e->ks->rs[r];
        if (st->len > 0)
            __builtin_prefetch(&st->v[st->head]);
        cep_index_prefetch(&m->ids_ix, e->it->id_hash);
    }
}

/* Closes every window that ends before event time t (ts + W < t), in order. */
void
cep_window_expire(struct cep_matcher *m, int64_t t)
{
    for (size_t r = 0; r < m->rules->n; r++) {
        int64_t w = m->rules->rules[r].within_us;
        struct cep_wqueue *q = &m->wq[r];
        while (q->len > 0 && q->v[q->head].ts + w < t) {
            wq_prefetch(m, r, q);
            wq_pop(m, r, false);
        }
    }
}

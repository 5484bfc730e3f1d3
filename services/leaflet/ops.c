/* The operators: all-of, sequence, count and absence, and the multi event a match produces.
 *
 * Items reach an operator in processing order (event time, then stream id), after every window
 * that ended earlier has been closed, so a rule's state for a key holds exactly the items within
 * the window of the arriving one. Without `reuse`, a match consumes its items and picks the
 * oldest candidates (each event takes part in at most one match of the rule); with `reuse`, the
 * arriving item fires once with the newest candidates and nothing is consumed. */
#include <math.h>
#include <string.h>

#include "astro/uuid.h"
#include "matcher_int.h"

/* The parts of rule r that item it matches. Names are interned, so a part naming another type
 * or source is ruled out by a pointer compare; the full test runs only where the names fit. */
uint32_t
cep_rule_mask(const struct cep_matcher *m, size_t r, const struct cep_item *it)
{
    const struct cep_rule *rule = &m->rules->rules[r];
    struct cep_name *const *pn = &m->part_names[r * CEP_MAX_PARTS * 2];
    uint32_t mask = 0;
    for (size_t j = 0; j < rule->nparts; j++) {
        if ((pn[2 * j] != NULL && pn[2 * j] != it->li.type) ||
            (pn[2 * j + 1] != NULL && pn[2 * j + 1] != it->li.stream))
            continue;
        if (cep_part_match(&rule->parts[j], it->li.type->s, it->li.stream->s, it->li.value))
            mask |= 1u << j;
    }
    return mask;
}

static bool
picked(struct cep_item *const *picks, size_t n, const struct cep_item *it)
{
    for (size_t i = 0; i < n; i++)
        if (picks[i] == it)
            return true;
    return false;
}

/* Fills every part but `slot` (taken by picks[0]) from st's items with ts <= limit, oldest
 * first or newest first. idx[] gets the state positions of picks[1..]. Returns the number of
 * parts filled (slot included). */
static size_t
fill_parts(struct cep_matcher *m, const struct cep_rule *r, const struct cep_rstate *st,
           size_t slot, bool newest, int64_t limit, uint32_t *idx)
{
    size_t n = 1;
    for (size_t k = 0; k < r->nparts; k++) {
        if (k == slot)
            continue;
        for (uint32_t i = 0; i < st->len; i++) {
            uint32_t at = newest ? st->len - 1 - i : i;
            const struct cep_slot *s = &st->v[st->head + at];
            if (!(s->mask & (1u << k)) || s->ts > limit || picked(m->picks, n, s->it))
                continue;
            idx[n - 1] = at;
            m->picks[n++] = s->it;
            break;
        }
    }
    return n;
}

/* Removes the state positions idx[0..n) (any order) from st. */
static void
consume(struct cep_rstate *st, uint32_t *idx, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t best = i;
        for (size_t j = i + 1; j < n; j++)
            if (idx[j] > idx[best])
                best = j;
        uint32_t t = idx[i];
        idx[i] = idx[best];
        idx[best] = t;
        cep_rstate_remove(st, idx[i]);
    }
}

static int
keep(struct cep_matcher *m, size_t r, struct cep_rstate *st, struct cep_keystate *ks,
     struct cep_item *it, uint32_t mask)
{
    if (cep_rstate_append(st, it, mask) != ASTRO_OK)
        return ASTRO_ERR;
    return cep_window_enter(m, r, ks, it);
}

static const char *
out_key(const struct cep_rule *r, const struct cep_item *it)
{
    return r->global ? "" : it->ks->key;
}

static void
all_on_item(struct cep_matcher *m, size_t r, struct cep_rstate *st, struct cep_keystate *ks,
            struct cep_item *it, uint32_t mask)
{
    const struct cep_rule *rule = &m->rules->rules[r];
    uint32_t idx[CEP_MAX_PARTS];
    for (size_t j = 0; j < rule->nparts; j++) {
        if (!(mask & (1u << j)))
            continue;
        m->picks[0] = it;
        size_t n = fill_parts(m, rule, st, j, rule->reuse, it->li.ts_us, idx);
        if (n < rule->nparts)
            continue;
        cep_emit(m, r, out_key(rule, it), m->picks, n, n, rule->nparts, it->li.ts_us);
        if (!rule->reuse) {
            consume(st, idx, n - 1);
            return;
        }
        break;
    }
    (void)!keep(m, r, st, ks, it, mask);
}

/* An all-of item leaves its window unconsumed: with `min`, the parts found within its window
 * fire as a partial match when there are enough of them. */
static void
all_on_expire(struct cep_matcher *m, size_t r, struct cep_rstate *st, struct cep_keystate *ks,
              struct cep_item *it)
{
    const struct cep_rule *rule = &m->rules->rules[r];
    uint32_t mask = st->v[st->head].mask;
    cep_rstate_remove(st, 0);
    (void)ks;
    if (rule->min_parts == 0 || rule->reuse)
        return;
    uint32_t idx[CEP_MAX_PARTS];
    size_t slot = 0;
    while (!(mask & (1u << slot)))
        slot++;
    m->picks[0] = it;
    int64_t end = it->li.ts_us + rule->within_us;
    size_t n = fill_parts(m, rule, st, slot, false, end, idx);
    if (n < rule->min_parts)
        return;
    cep_emit(m, r, out_key(rule, it), m->picks, n, n, rule->nparts, end);
    consume(st, idx, n - 1);
}

/* Finds items for parts 0..last-1 in order before the arriving item: the earliest chain
 * (consuming) or the latest (reuse). Returns true and fills picks[0..last) and idx. */
static bool
seq_chain(struct cep_matcher *m, const struct cep_rule *r, const struct cep_rstate *st,
          uint32_t *idx)
{
    size_t last = r->nparts - 1;
    if (!r->reuse) {
        uint32_t pos = 0;
        for (size_t k = 0; k < last; k++) {
            while (pos < st->len && !(st->v[st->head + pos].mask & (1u << k)))
                pos++;
            if (pos == st->len)
                return false;
            idx[k] = pos;
            m->picks[k] = st->v[st->head + pos++].it;
        }
        return true;
    }
    int64_t pos = (int64_t)st->len - 1;
    for (size_t k = last; k-- > 0;) {
        while (pos >= 0 && !(st->v[st->head + pos].mask & (1u << k)))
            pos--;
        if (pos < 0)
            return false;
        idx[k] = (uint32_t)pos;
        m->picks[k] = st->v[st->head + pos--].it;
    }
    return true;
}

static void
seq_on_item(struct cep_matcher *m, size_t r, struct cep_rstate *st, struct cep_keystate *ks,
            struct cep_item *it, uint32_t mask)
{
    const struct cep_rule *rule = &m->rules->rules[r];
    uint32_t lastbit = 1u << (rule->nparts - 1);
    uint32_t idx[CEP_MAX_PARTS];
    if ((mask & lastbit) && seq_chain(m, rule, st, idx)) {
        size_t n = rule->nparts;
        m->picks[n - 1] = it;
        cep_emit(m, r, out_key(rule, it), m->picks, n, n, n, it->li.ts_us);
        if (!rule->reuse) {
            consume(st, idx, n - 1);
            return;
        }
    }
    if (mask & ~lastbit)
        (void)!keep(m, r, st, ks, it, mask & ~lastbit);
}

static void
count_on_item(struct cep_matcher *m, size_t r, struct cep_rstate *st, struct cep_keystate *ks,
              struct cep_item *it, uint32_t mask)
{
    const struct cep_rule *rule = &m->rules->rules[r];
    size_t need = rule->count - 1;
    if (st->len >= need) {
        uint32_t first = rule->reuse ? st->len - (uint32_t)need : 0;
        for (size_t i = 0; i < need; i++)
            m->picks[i] = st->v[st->head + first + i].it;
        m->picks[need] = it;
        cep_emit(m, r, out_key(rule, it), m->picks, need + 1, need + 1, rule->count,
                 it->li.ts_us);
        if (!rule->reuse) {
            st->head += (uint32_t)need;
            st->len -= (uint32_t)need;
            if (st->len == 0)
                st->head = 0;
            return;
        }
    }
    (void)!keep(m, r, st, ks, it, mask);
}

/* absence A without B: bit 0 is A, bit 1 is B. A B cancels every open A (all are within its
 * window, being no older than W); it stays held as a canceller until its own window ends. */
static void
absence_on_item(struct cep_matcher *m, size_t r, struct cep_rstate *st,
                struct cep_keystate *ks, struct cep_item *it, uint32_t mask)
{
    if (mask & 2u) {
        st->head = st->len = 0;
        st->last_b_ts = it->li.ts_us;
        (void)!cep_window_enter(m, r, ks, it);
    }
    if ((mask & 1u) && st->last_b_ts != it->li.ts_us)
        (void)!keep(m, r, st, ks, it, 1u);
}

static void
absence_on_expire(struct cep_matcher *m, size_t r, struct cep_rstate *st,
                  struct cep_keystate *ks, struct cep_item *it)
{
    const struct cep_rule *rule = &m->rules->rules[r];
    (void)ks;
    cep_rstate_remove(st, 0);
    m->picks[0] = it;
    cep_emit(m, r, out_key(rule, it), m->picks, 1, 1, 1, it->li.ts_us + rule->within_us);
}

static void
drop_on_expire(struct cep_matcher *m, size_t r, struct cep_rstate *st, struct cep_keystate *ks,
               struct cep_item *it)
{
    (void)m, (void)r, (void)ks, (void)it;
    cep_rstate_remove(st, 0);
}

static const struct cep_operator operators[] = {
    [CEP_OP_ALL] = {all_on_item, all_on_expire},
    [CEP_OP_SEQ] = {seq_on_item, drop_on_expire},
    [CEP_OP_COUNT] = {count_on_item, drop_on_expire},
    [CEP_OP_ABSENCE] = {absence_on_item, absence_on_expire},
};

const struct cep_operator *
cep_operator_of(enum cep_op op)
{
    return &operators[op];
}

static double
aggregate(enum cep_agg agg, const struct astro_lineage_item *li, size_t n)
{
    double v = li[0].value;
    if (agg == CEP_AGG_FIRST)
        return v;
    if (agg == CEP_AGG_LAST)
        return li[n - 1].value;
    for (size_t i = 1; i < n; i++) {
        double x = li[i].value;
        if (agg == CEP_AGG_MIN)
            v = x < v ? x : v;
        else if (agg == CEP_AGG_MAX)
            v = x > v ? x : v;
        else
            v += x;
    }
    return agg == CEP_AGG_AVG ? v / (double)n : v;
}

static void
lineage_item(struct astro_lineage_item *li, const struct cep_item *it)
{
    memcpy(li->id, it->li.id, sizeof(li->id));
    memcpy(li->stream, it->li.stream->s, it->li.stream->len + 1);
    memcpy(li->type, it->li.type->s, it->li.type->len + 1);
    li->ts_us = it->li.ts_us;
    li->value = it->li.value;
}

/* Builds the multi event of a match of picks[0..n) and hands it to the sink. Lineage is in
 * processing order; the id is astro_uuid_derive(rule, source ids). */
void
cep_emit(struct cep_matcher *m, size_t r, const char *key, struct cep_item **picks, size_t n,
         size_t matched, size_t required, int64_t ts)
{
    const struct cep_rule *rule = &m->rules->rules[r];
    for (size_t i = 1; i < n; i++) { /* insertion sort: n is small */
        struct cep_item *x = picks[i];
        size_t j = i;
        while (j > 0 && cep_item_cmp(picks[j - 1], x) > 0) {
            picks[j] = picks[j - 1];
            j--;
        }
        picks[j] = x;
    }
    for (size_t i = 0; i < n; i++)
        lineage_item(&m->lineage[i], picks[i]);
    if (m->silent)
        return;
    m->st.matches[r]++;
    double ival = aggregate(rule->agg, m->lineage, n);
    struct astro_event ev = {
        .ts_us = ts, .src = (char *)"leaflet", .key = (char *)key, .type = (char *)rule->emit,
        .value = isfinite(ival) ? ival : 0, .is_multi = true, .rule = (char *)rule->name,
        .integrated_value = isfinite(ival) ? ival : 0,
        .confidence = cep_expr_eval(&rule->conf, (double)matched, (double)required),
        .n_sources = n, .lineage = m->lineage,
    };
    struct astro_uuid u;
    for (size_t i = 0; i < n; i++)
        m->ids[i] = m->lineage[i].id;
    if (astro_uuid_derive(rule->name, m->ids, n, &u) != ASTRO_OK)
        return;
    astro_uuid_format(&u, ev.id);
    m->sink.on_match(m->sink.arg, r, &ev);
}

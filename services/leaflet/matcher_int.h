/* Internals shared by the matcher's files (matcher.c: intake and keys; store.c: the hold queue's
 * slabs and the indexes; reorder.c: the event-time buffer; window.c: per-rule window state and
 * expiry; ops.c: the operators and their output). */
#ifndef CEP_MATCHER_INT_H
#define CEP_MATCHER_INT_H

#include <string.h>

#include "matcher.h"

struct cep_keystate;
struct cep_item;

/* For the helpers that only prefetch: GCC deems a function whose one effect is a prefetch pure
 * and drops the calls to it (the result is unused) unless they were inlined before that
 * analysis, so they must be inlined early. */
#define CEP_PREFETCHER static inline __attribute__((always_inline))

/* An interned type or source name (store: the matcher's name index). Items point to one instead
 * of carrying copies, which halves the item and turns the rules' name tests into pointer
 * compares; refs counts the items and rule parts using it. */
struct cep_name {
    uint64_t hash;
    uint32_t refs, len;
    char s[];
};

struct cep_hent {
    int64_t ts;
    struct cep_sid sid;
    struct cep_item *it;
};

/* One accepted input event, stored in the hold queue's slabs (store.c). refs counts its holders
 * (the reorder buffer and each rule window queue it sits in); at 0 it is dead: its key and
 * names are released then, and its slot is reused once it leaves the front of the hold queue.
 * What processing and death read comes first (refs up to li.type, see cep_item_prefetch()); the
 * stream id is read when it is buffered (hot), for a tie in event time and for the checkpoint. */
struct cep_item {
    uint32_t refs;
    struct cep_keystate *ks;
    uint64_t id_hash;
    struct {
        int64_t ts_us;
        double value;
        struct cep_name *stream, *type;
        char id[ASTRO_EVENT_ID_MAX + 1];
    } li; /* the lineage item, names interned (cep_emit() expands it) */
    struct cep_sid sid;
    int64_t wm_before; /* watermark before this entry: the rebuild point's watermark */
};

/* ts copies it->li.ts_us so scans and expiry need not touch the (cold) item. */
struct cep_slot {
    struct cep_item *it;
    int64_t ts;
    uint32_t mask; /* parts of the rule the item matches */
};

/* A rule's open state for one key: items in processing order. */
struct cep_rstate {
    struct cep_slot *v;
    uint32_t head, len, cap;
    int64_t last_b_ts; /* absence: time of the last B, for an A at the very same instant */
};

/* One allocation, cache-line aligned: the key follows the header, so a lookup reads one line
 * (for keys up to 39 bytes), and the rule states start on the line after the key. */
struct cep_keystate {
    uint64_t hash;
    uint32_t refs; /* items referring to it */
    uint32_t keylen;
    struct cep_rstate *rs; /* one per rule */
    char key[];
};

/* Starts loading a key state's first two lines: the header and key, and (for a short key and
 * up to two rules) the rule states. */
CEP_PREFETCHER void
cep_keystate_prefetch(const struct cep_keystate *ks)
{
    __builtin_prefetch(ks);
    __builtin_prefetch((const char *)ks + 64);
}

/* Per rule: every item entered into a window, in processing (= event-time) order, so expiry is
 * a pop from the front. */
struct cep_wentry {
    struct cep_item *it;
    struct cep_keystate *ks;
    int64_t ts;
};
struct cep_wqueue {
    struct cep_wentry *v;
    size_t head, len, cap; /* a ring; cap a power of 2 (a mask, not a division, per entry) */
};

/* An operator: what an item does to a rule's state, and what happens when an item leaves the
 * window unconsumed. Candles and indicators (issue 9) add operators with their own state. */
struct cep_operator {
    void (*on_item)(struct cep_matcher *m, size_t r, struct cep_rstate *st,
                    struct cep_keystate *ks, struct cep_item *it, uint32_t mask);
    void (*on_expire)(struct cep_matcher *m, size_t r, struct cep_rstate *st,
                      struct cep_keystate *ks, struct cep_item *it);
};

/* The hold queue: a ring of slabs holding every accepted item in arrival order (store.c). */
struct cep_hold {
    struct cep_item **chunk; /* ring of chunks, cap a power of 2 */
    size_t cap, first, nch;  /* ring capacity, first chunk in use, chunks in use */
    size_t head, len;        /* the front item's index in the first chunk, items held */
    struct cep_item *spare;  /* an emptied chunk kept for reuse */
};

/* An open-addressing index from a 64-bit hash to an object (linear probing, load <= 1/2). */
struct cep_islot {
    uint64_t hash;
    void *p; /* NULL = empty */
};
struct cep_index {
    struct cep_islot *v;
    size_t cap, n;
};

struct cep_matcher {
    const struct cep_ruleset *rules;
    struct cep_matcher_opts opt;
    struct cep_sink sink;
    int64_t wm, max_ts;
    bool fed;
    struct cep_sid last_sid;
    /* reorder buffer (reorder.c): a sorted run for entries arriving in or near order, and a
     * binary min-heap for the rest; keys copied so neither touches items */
    struct cep_hent *run;
    size_t run_head, run_len, run_cap;
    struct cep_hent *heap;
    size_t nheap, capheap;
    /* hold queue: every item in arrival order until dead and at the front */
    struct cep_hold hold;
    size_t live;
    /* keys (-> keystate) and the ids of live items (-> item) */
    struct cep_index keys, ids_ix, names;
    /* per rule r and part j: the interned type and source the part asks for (NULL = any) at
     * [(r * CEP_MAX_PARTS + j) * 2] and [.. + 1] */
    struct cep_name **part_names;
    struct cep_keystate *global_ks;
    struct cep_keystate **ks_spare; /* freed key states for reuse (matcher.c) */
    size_t nks_spare, ks_small;     /* how many; the size they have */
    struct cep_wqueue *wq; /* per rule */
    /* output scratch */
    struct cep_item **picks;
    struct astro_lineage_item *lineage;
    const char **ids;
    size_t scratch_cap;
    bool silent;
    bool (*consumed)(void *arg, size_t rule, const char *id);
    void *consumed_arg;
    struct cep_matcher_stats st;
};

/* store.c; the lookups every event makes are inline below */
#define CEP_CHUNK 512 /* items per slab of the hold queue */
struct cep_item *cep_hold_push(struct cep_hold *h) ASTRO_MUST_CHECK;
void cep_hold_unpush(struct cep_hold *h);
void cep_hold_pop(struct cep_hold *h);
void cep_hold_cleanup(struct cep_hold *h);
int cep_index_reserve(struct cep_index *x) ASTRO_MUST_CHECK;
void cep_index_add(struct cep_index *x, uint64_t hash, void *p);
void cep_index_del(struct cep_index *x, uint64_t hash, const void *p);
void cep_index_cleanup(struct cep_index *x);

/* The i-th held item (0 = the front). */
static inline struct cep_item *
cep_hold_at(const struct cep_hold *h, size_t i)
{
    size_t pos = h->head + i;
    return &h->chunk[(h->first + pos / CEP_CHUNK) & (h->cap - 1)][pos % CEP_CHUNK];
}

/* The indexes' hash: eight bytes per multiply instead of FNV's one (ids, keys and names are
 * hashed on every event). Internal only: nothing the matcher outputs depends on it. */
static inline uint64_t
cep_hash(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15u ^ n, w;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdu;
        h ^= h >> 32;
    }
    w = 0;
    for (size_t i = 0; i < n; i++) /* n < 8: a loop, not a call to memcpy */
        w |= (uint64_t)(unsigned char)s[i] << (8 * i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53u;
    return h ^ (h >> 29);
}

static inline size_t
cep_index_home(const struct cep_index *x, uint64_t hash)
{
    return (size_t)(hash ^ (hash >> 32)) & (x->cap - 1);
}

/* Starts loading the slot line a lookup or deletion of hash will read first: the indexes are
 * larger than the caches, so their probes miss, and two misses in flight cost about one. */
CEP_PREFETCHER void
cep_index_prefetch(const struct cep_index *x, uint64_t hash)
{
    if (x->cap > 0)
        __builtin_prefetch(&x->v[cep_index_home(x, hash)]);
}

/* The next entry stored under hash, starting at *pos (0 on the first call), or NULL. */
static inline void *
cep_index_next(const struct cep_index *x, uint64_t hash, size_t *pos)
{
    if (x->cap == 0)
        return NULL;
    size_t j = *pos ? *pos - 1 : cep_index_home(x, hash);
    for (; x->v[j].p != NULL; j = (j + 1) & (x->cap - 1)) {
        if (x->v[j].hash == hash) {
            *pos = ((j + 1) & (x->cap - 1)) + 1;
            return x->v[j].p;
        }
    }
    return NULL;
}

/* Starts loading the slots an operator reads first in st: the oldest and the append point. */
CEP_PREFETCHER void
cep_rstate_prefetch(const struct cep_rstate *st)
{
    if (st->v != NULL) {
        __builtin_prefetch(&st->v[st->head]);
        __builtin_prefetch(&st->v[st->head + st->len]);
    }
}

/* Starts loading the fields of it that processing and death read (they may span two lines). */
CEP_PREFETCHER void
cep_item_prefetch(const struct cep_item *it)
{
    __builtin_prefetch(it);
    __builtin_prefetch(&it->li.type);
}

/* reorder.c */
/* The entry d places behind the front of the sorted run, NULL past its end: usually the item
 * released d items from now (one from the heap may come first), so it is worth prefetching. */
static inline const struct cep_hent *
cep_reorder_ahead(const struct cep_matcher *m, size_t d)
{
    return d < m->run_len ? &m->run[m->run_head + d] : NULL;
}

int cep_heap_push(struct cep_matcher *m, struct cep_item *it) ASTRO_MUST_CHECK;
struct cep_item *cep_heap_pop(struct cep_matcher *m);
/* Entries buffered, and the earliest one (NULL when empty). */
size_t cep_reorder_len(const struct cep_matcher *m);
const struct cep_hent *cep_reorder_min(const struct cep_matcher *m);
void cep_reorder_cleanup(struct cep_matcher *m);
int cep_item_cmp(const struct cep_item *a, const struct cep_item *b);

/* window.c */
int cep_rstate_append(struct cep_rstate *st, struct cep_item *it, uint32_t mask) ASTRO_MUST_CHECK;
void cep_rstate_remove(struct cep_rstate *st, uint32_t idx);
void cep_rstate_free(struct cep_rstate *st);
int cep_window_enter(struct cep_matcher *m, size_t r, struct cep_keystate *ks,
                     struct cep_item *it) ASTRO_MUST_CHECK;
void cep_window_expire(struct cep_matcher *m, int64_t t);
void cep_item_unref(struct cep_matcher *m, struct cep_item *it);

/* ops.c */
const struct cep_operator *cep_operator_of(enum cep_op op);
uint32_t cep_rule_mask(const struct cep_matcher *m, size_t r, const struct cep_item *it);
void cep_emit(struct cep_matcher *m, size_t r, const char *key, struct cep_item **picks,
              size_t n, size_t matched, size_t required, int64_t ts);

#endif

/* Internals shared by the matcher's files (matcher.c: intake and keys; reorder.c: the event-time
 * buffer; window.c: per-rule window state and expiry; ops.c: the operators and their output). */
#ifndef CEP_MATCHER_INT_H
#define CEP_MATCHER_INT_H

#include "matcher.h"

struct cep_keystate;
struct cep_item;

struct cep_hent {
    int64_t ts;
    struct cep_sid sid;
    struct cep_item *it;
};

/* One accepted input event. refs counts its holders (the reorder buffer and each rule window
 * queue it sits in); at 0 it is dead, and it is freed once it leaves the hold queue. */
struct cep_item {
    struct astro_lineage_item li;
    struct cep_sid sid;
    int64_t wm_before; /* watermark before this entry: the rebuild point's watermark */
    struct cep_keystate *ks;
    struct cep_item *id_next; /* duplicate-id hash chain */
    uint64_t id_hash;
    uint32_t refs;
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

struct cep_keystate {
    char *key;
    uint64_t hash;
    struct cep_keystate *next;
    uint32_t refs; /* items referring to it */
    struct cep_rstate rs[];
};

/* Per rule: every item entered into a window, in processing (= event-time) order, so expiry is
 * a pop from the front. */
struct cep_wentry {
    struct cep_item *it;
    struct cep_keystate *ks;
    int64_t ts;
};
struct cep_wqueue {
    struct cep_wentry *v;
    size_t head, len, cap;
};

/* An operator: what an item does to a rule's state, and what happens when an item leaves the
 * window unconsumed. Candles and indicators (issue 9) add operators with their own state. */
struct cep_operator {
    void (*on_item)(struct cep_matcher *m, size_t r, struct cep_rstate *st,
                    struct cep_keystate *ks, struct cep_item *it, uint32_t mask);
    void (*on_expire)(struct cep_matcher *m, size_t r, struct cep_rstate *st,
                      struct cep_keystate *ks, struct cep_item *it);
};

struct cep_matcher {
    const struct cep_ruleset *rules;
    struct cep_matcher_opts opt;
    struct cep_sink sink;
    int64_t wm, max_ts;
    bool fed;
    struct cep_sid last_sid;
    /* reorder buffer: binary min-heap on (ts, sid), keys copied so sifting stays in cache */
    struct cep_hent *heap;
    size_t nheap, capheap;
    /* hold queue: every item in arrival order until dead and at the front */
    struct cep_item **hold;
    size_t hold_head, hold_len, hold_cap;
    size_t live;
    /* keys and ids */
    struct cep_keystate **kbuckets;
    size_t nkbuckets, nkeys;
    struct cep_keystate *global_ks;
    struct cep_item **ibuckets;
    size_t nibuckets, nids;
    struct cep_wqueue *wq; /* per rule */
    struct cep_item *freelist;
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

/* reorder.c */
int cep_heap_push(struct cep_matcher *m, struct cep_item *it) ASTRO_MUST_CHECK;
struct cep_item *cep_heap_pop(struct cep_matcher *m);
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
uint32_t cep_rule_mask(const struct cep_rule *r, const struct cep_item *it);
void cep_emit(struct cep_matcher *m, size_t r, const char *key, struct cep_item **picks,
              size_t n, size_t matched, size_t required, int64_t ts);

#endif

/* The event-time reorder buffer: accepted events wait here until the watermark passes them and
 * leave in (event time, stream id) order. The stream id breaks ties, so equal timestamps are
 * processed in arrival order whatever the batch boundaries were.
 *
 * Two structures, one order: most events arrive in order or a few places out of it, and go into
 * a sorted run (an array; insertion scans back at most RUN_SCAN places, then moves the tail up);
 * an event further out of order goes into a binary heap. The earliest entry is the smaller of
 * the run's front and the heap's top. With the usual small disorder this costs a compare or a
 * short move per event instead of two sifts through a heap of every buffered event. */
#include <stdlib.h>
#include <string.h>

#include "matcher_int.h"

int
cep_sid_cmp(struct cep_sid a, struct cep_sid b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    if (a.seq != b.seq)
        return a.seq < b.seq ? -1 : 1;
    return 0;
}

int
cep_item_cmp(const struct cep_item *a, const struct cep_item *b)
{
    if (a->li.ts_us != b->li.ts_us)
        return a->li.ts_us < b->li.ts_us ? -1 : 1;
    return cep_sid_cmp(a->sid, b->sid);
}

static int
hent_cmp(const struct cep_hent *a, const struct cep_hent *b)
{
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    return cep_sid_cmp(a->sid, b->sid);
}

#define RUN_SCAN 64

/* Makes room for one more entry at the run's end. */
static int
run_reserve(struct cep_matcher *m)
{
    if (m->run_head + m->run_len < m->run_cap)
        return ASTRO_OK;
    if (m->run_head > m->run_len) { /* mostly consumed: slide down instead of growing */
        memmove(m->run, m->run + m->run_head, m->run_len * sizeof(*m->run));
        m->run_head = 0;
        return ASTRO_OK;
    }
    size_t cap = m->run_cap ? m->run_cap * 2 : 256;
    struct cep_hent *v = realloc(m->run, cap * sizeof(*v));
    if (v == NULL)
        return ASTRO_ERR;
    m->run = v;
    m->run_cap = cap;
    return ASTRO_OK;
}

/* Inserts e into the run if its place is within RUN_SCAN of the end; false if it is not. */
static bool
run_insert(struct cep_matcher *m, const struct cep_hent *e)
{
    struct cep_hent *base = m->run + m->run_head;
    size_t i = m->run_len;
    while (i > 0 && m->run_len - i < RUN_SCAN && hent_cmp(&base[i - 1], e) > 0)
        i--;
    if (i > 0 && hent_cmp(&base[i - 1], e) > 0)
        return false;
    memmove(base + i + 1, base + i, (m->run_len - i) * sizeof(*base));
    base[i] = *e;
    m->run_len++;
    return true;
}

static int
heap_insert(struct cep_matcher *m, struct cep_hent e)
{
    if (m->nheap == m->capheap) {
        size_t cap = m->capheap ? m->capheap * 2 : 256;
        struct cep_hent *h = realloc(m->heap, cap * sizeof(*h));
        if (h == NULL)
            return ASTRO_ERR;
        m->heap = h;
        m->capheap = cap;
    }
    size_t i = m->nheap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (hent_cmp(&m->heap[parent], &e) <= 0)
            break;
        m->heap[i] = m->heap[parent];
        i = parent;
    }
    m->heap[i] = e;
    return ASTRO_OK;
}

int
cep_heap_push(struct cep_matcher *m, struct cep_item *it)
{
    struct cep_hent e = {it->li.ts_us, it->sid, it};
    if (run_reserve(m) != ASTRO_OK)
        return ASTRO_ERR;
    if (run_insert(m, &e))
        return ASTRO_OK;
    return heap_insert(m, e);
}

static struct cep_item *
heap_remove_top(struct cep_matcher *m)
{
    struct cep_item *top = m->heap[0].it;
    struct cep_hent last = m->heap[--m->nheap];
    size_t i = 0, n = m->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && hent_cmp(&m->heap[c + 1], &m->heap[c]) < 0)
            c++;
        if (hent_cmp(&last, &m->heap[c]) <= 0)
            break;
        m->heap[i] = m->heap[c];
        i = c;
    }
    if (n > 0)
        m->heap[i] = last;
    return top;
}

size_t
cep_reorder_len(const struct cep_matcher *m)
{
    return m->run_len + m->nheap;
}

static bool
run_first(const struct cep_matcher *m)
{
    if (m->nheap == 0)
        return true;
    return m->run_len > 0 && hent_cmp(&m->run[m->run_head], &m->heap[0]) < 0;
}

const struct cep_hent *
cep_reorder_min(const struct cep_matcher *m)
{
    if (m->run_len + m->nheap == 0)
        return NULL;
    return run_first(m) ? &m->run[m->run_head] : &m->heap[0];
}

/* Removes and returns the earliest item (NULL when empty). */
struct cep_item *
cep_heap_pop(struct cep_matcher *m)
{
    if (m->run_len + m->nheap == 0)
        return NULL;
    if (!run_first(m))
        return heap_remove_top(m);
    struct cep_item *it = m->run[m->run_head].it;
    if (--m->run_len == 0)
        m->run_head = 0;
    else
        m->run_head++;
    return it;
}

void
cep_reorder_cleanup(struct cep_matcher *m)
{
    free(m->run);
    free(m->heap);
    m->run = m->heap = NULL;
    m->run_len = m->run_head = m->run_cap = m->nheap = m->capheap = 0;
}

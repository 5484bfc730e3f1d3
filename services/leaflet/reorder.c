/* The event-time reorder buffer: accepted events wait here until the watermark passes them and
 * leave in (event time, stream id) order. The stream id breaks ties, so equal timestamps are
 * processed in arrival order whatever the batch boundaries were. */
#include <stdlib.h>

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

int
cep_heap_push(struct cep_matcher *m, struct cep_item *it)
{
    struct cep_hent e = {it->li.ts_us, it->sid, it};
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

/* Removes and returns the earliest item (NULL when empty). */
struct cep_item *
cep_heap_pop(struct cep_matcher *m)
{
    if (m->nheap == 0)
        return NULL;
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

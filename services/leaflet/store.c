/* The matcher's storage: the hold queue (every accepted item, in arrival order, in slabs) and
 * the open-addressing indexes of ids and keys.
 *
 * Why slabs: items die in arrival order (an item leaves the hold queue only from the front), so
 * a ring of fixed chunks is both the allocator and the queue. Items never move (operators keep
 * pointers to them), nothing is malloc'ed per event, and the items a window closes are next to
 * each other in memory. Why open addressing: with ~50k live items, chained buckets cost a cache
 * miss per link; here a lookup reads one slot line and compares the stored 64-bit hash before it
 * touches an item, so a miss (the usual case: a new id) never reads an item at all. */
#include <stdlib.h>
#include <string.h>

#include "matcher_int.h"

static struct cep_item **
chunk_at(const struct cep_hold *h, size_t i)
{
    return &h->chunk[(h->first + i) & (h->cap - 1)];
}

static int
ring_grow(struct cep_hold *h)
{
    size_t cap = h->cap ? h->cap * 2 : 8;
    struct cep_item **v = malloc(cap * sizeof(*v));
    if (v == NULL)
        return ASTRO_ERR;
    for (size_t i = 0; i < h->nch; i++)
        v[i] = *chunk_at(h, i);
    free(h->chunk);
    h->chunk = v;
    h->cap = cap;
    h->first = 0;
    return ASTRO_OK;
}

/* A new, uninitialised item at the back of the queue, or NULL on allocation failure. */
struct cep_item *
cep_hold_push(struct cep_hold *h)
{
    size_t pos = h->head + h->len;
    if (pos / CEP_CHUNK == h->nch) {
        if (h->nch == h->cap && ring_grow(h) != ASTRO_OK)
            return NULL;
        struct cep_item *c = h->spare;
        if (c == NULL && (c = malloc(CEP_CHUNK * sizeof(*c))) == NULL)
            return NULL;
        h->spare = NULL;
        *chunk_at(h, h->nch++) = c;
    }
    h->len++;
    return &(*chunk_at(h, pos / CEP_CHUNK))[pos % CEP_CHUNK];
}

/* Forgets the item just pushed (its construction failed). */
void
cep_hold_unpush(struct cep_hold *h)
{
    h->len--;
}

/* Drops the front item; a chunk emptied by it is kept as the spare (one, so a queue hovering at
 * a chunk boundary does not malloc and free in turn). */
void
cep_hold_pop(struct cep_hold *h)
{
    h->len--;
    if (++h->head < CEP_CHUNK && h->len > 0)
        return;
    if (h->len == 0 && h->head < CEP_CHUNK) {
        h->head = 0; /* empty: restart the same chunk */
        return;
    }
    struct cep_item *c = *chunk_at(h, 0);
    h->first = (h->first + 1) & (h->cap - 1);
    h->nch--;
    h->head = 0;
    if (h->spare == NULL)
        h->spare = c;
    else
        free(c);
}

void
cep_hold_cleanup(struct cep_hold *h)
{
    for (size_t i = 0; i < h->nch; i++)
        free(*chunk_at(h, i));
    free(h->chunk);
    free(h->spare);
    memset(h, 0, sizeof(*h));
}

/* Makes room for one more entry (load stays at most 1/2). */
int
cep_index_reserve(struct cep_index *x)
{
    if ((x->n + 1) * 2 <= x->cap)
        return ASTRO_OK;
    struct cep_index nx = {NULL, x->cap ? x->cap * 2 : 1024, x->n};
    if ((nx.v = calloc(nx.cap, sizeof(*nx.v))) == NULL)
        return ASTRO_ERR;
    for (size_t i = 0; i < x->cap; i++) {
        if (x->v[i].p == NULL)
            continue;
        size_t j = cep_index_home(&nx, x->v[i].hash);
        while (nx.v[j].p != NULL)
            j = (j + 1) & (nx.cap - 1);
        nx.v[j] = x->v[i];
    }
    free(x->v);
    *x = nx;
    return ASTRO_OK;
}

/* Adds p under hash; cep_index_reserve() must have succeeded just before. */
void
cep_index_add(struct cep_index *x, uint64_t hash, void *p)
{
    size_t j = cep_index_home(x, hash);
    while (x->v[j].p != NULL)
        j = (j + 1) & (x->cap - 1);
    x->v[j].hash = hash;
    x->v[j].p = p;
    x->n++;
}

/* Removes p (stored under hash) and shifts the entries after it back, so probes need no
 * tombstones. */
void
cep_index_del(struct cep_index *x, uint64_t hash, const void *p)
{
    size_t mask = x->cap - 1, i = cep_index_home(x, hash);
    while (x->v[i].p != p)
        i = (i + 1) & mask;
    for (size_t j = (i + 1) & mask; x->v[j].p != NULL; j = (j + 1) & mask) {
        /* move the entry at j into the hole unless its home lies cyclically in (i, j] */
        if (((j - cep_index_home(x, x->v[j].hash)) & mask) >= ((j - i) & mask)) {
            x->v[i] = x->v[j];
            i = j;
        }
    }
    x->v[i].p = NULL;
    x->n--;
}

void
cep_index_cleanup(struct cep_index *x)
{
    free(x->v);
    memset(x, 0, sizeof(*x));
}

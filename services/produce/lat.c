/* Ack latency samples and their percentiles. */
#include <stdlib.h>

#include "produce.h"

int
prd_lat_add(struct prd_lat *l, int64_t us)
{
    if (l->n == l->cap) {
        size_t cap = l->cap * 2 + 1024;
        int64_t *v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL)
            return ASTRO_ERR;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = us;
    return ASTRO_OK;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least q of the samples at or below it. */
int64_t
prd_lat_quantile(struct prd_lat *l, double q)
{
    if (l->n == 0)
        return 0;
    qsort(l->v, l->n, sizeof(*l->v), cmp_i64);
    size_t rank = (size_t)(q * (double)l->n + 0.999999);
    if (rank == 0)
        rank = 1;
    if (rank > l->n)
        rank = l->n;
    return l->v[rank - 1];
}

void
prd_lat_cleanup(struct prd_lat *l)
{
    free(l->v);
    *l = (struct prd_lat){0};
}

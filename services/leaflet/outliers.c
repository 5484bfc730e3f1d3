/* Outlier screening: rolling median +- k*MAD per (key, type). Semantics in outliers.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "astro/partition.h"
#include "outliers.h"

#define US "\x1f"

struct cep_outliers *
cep_outliers_new(const struct cep_outlier_cfg *cfg)
{
    struct cep_outliers *os = calloc(1, sizeof(*os));
    if (os == NULL)
        return NULL;
    os->cfg = cfg;
    if ((os->scratch = calloc(cfg->window ? cfg->window : 1, sizeof(double))) == NULL) {
        free(os);
        return NULL;
    }
    return os;
}

void
cep_outliers_free(struct cep_outliers *os)
{
    if (os == NULL)
        return;
    for (size_t i = 0; i < os->nbuckets; i++) {
        for (struct cep_oseries *s = os->buckets[i], *next; s != NULL; s = next) {
            next = s->next;
            free(s->key);
            free(s);
        }
    }
    free(os->buckets);
    free(os->scratch);
    free(os->diverted);
    free(os);
}

static int
cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double
median_sorted(const double *v, size_t n)
{
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

void
cep_outlier_band_of(const double *v, size_t n, double k, double *scratch,
                    struct cep_outlier_band *band)
{
    memcpy(scratch, v, n * sizeof(*v));
    qsort(scratch, n, sizeof(*scratch), cmpd);
    double med = median_sorted(scratch, n), mean_dev = 0;
    for (size_t i = 0; i < n; i++) {
        scratch[i] = fabs(v[i] - med);
        mean_dev += scratch[i];
    }
    qsort(scratch, n, sizeof(*scratch), cmpd);
    double mad = median_sorted(scratch, n);
    if (mad == 0) /* more than half equal: the MAD says nothing about the rest */
        mad = mean_dev / (double)n;
    band->median = med;
    band->mad = mad;
    band->lo = med - k * mad;
    band->hi = med + k * mad;
}

static uint64_t
series_hash(const char *key, const char *type)
{
    return astro_partition_hash(key, strlen(key)) * 31u + astro_partition_hash(type, strlen(type));
}

static int
grow(struct cep_outliers *os)
{
    size_t n = os->nbuckets ? os->nbuckets * 2 : 256;
    struct cep_oseries **nb = calloc(n, sizeof(*nb));
    if (nb == NULL)
        return ASTRO_ERR;
    for (size_t i = 0; i < os->nbuckets; i++) {
        for (struct cep_oseries *s = os->buckets[i], *next; s != NULL; s = next) {
            next = s->next;
            s->next = nb[s->hash & (n - 1)];
            nb[s->hash & (n - 1)] = s;
        }
    }
    free(os->buckets);
    os->buckets = nb;
    os->nbuckets = n;
    return ASTRO_OK;
}

static struct cep_oseries *
series_of(struct cep_outliers *os, const char *key, const char *type)
{
    uint64_t h = series_hash(key, type);
    for (struct cep_oseries *s = os->nbuckets ? os->buckets[h & (os->nbuckets - 1)] : NULL; s;
         s = s->next)
        if (s->hash == h && strcmp(s->key, key) == 0 && strcmp(s->type, type) == 0)
            return s;
    if (os->nseries >= os->nbuckets && grow(os) != ASTRO_OK)
        return NULL;
    struct cep_oseries *s = calloc(1, sizeof(*s) + os->cfg->window * sizeof(double));
    if (s == NULL || (s->key = strdup(key)) == NULL) {
        free(s);
        return NULL;
    }
    snprintf(s->type, sizeof(s->type), "%s", type);
    s->hash = h;
    s->next = os->buckets[h & (os->nbuckets - 1)];
    os->buckets[h & (os->nbuckets - 1)] = s;
    os->nseries++;
    return s;
}

static int
remember_divert(struct cep_outliers *os, struct cep_sid sid)
{
    if (os->ndiverted == os->capdiverted) {
        size_t cap = os->capdiverted ? os->capdiverted * 2 : 64;
        struct cep_sid *v = realloc(os->diverted, cap * sizeof(*v));
        if (v == NULL)
            return ASTRO_ERR;
        os->diverted = v;
        os->capdiverted = cap;
    }
    os->diverted[os->ndiverted++] = sid;
    os->diverted_dirty = true;
    return ASTRO_OK;
}

int
cep_outliers_screen(struct cep_outliers *os, const char *key, const char *type, double x,
                    struct cep_sid sid, struct cep_outlier_band *band)
{
    const struct cep_outlier_cfg *cfg = os->cfg;
    if (cfg->type[0] != '\0' && strcmp(cfg->type, type) != 0)
        return 0;
    struct cep_oseries *s = series_of(os, key, type);
    if (s == NULL)
        return -1;
    int verdict = 0;
    if (s->count == cfg->window) {
        cep_outlier_band_of(s->ring, cfg->window, cfg->k, os->scratch, band);
        verdict = fabs(x - band->median) > cfg->k * band->mad;
    }
    s->ring[s->pos] = x;
    s->pos = (s->pos + 1) % cfg->window;
    s->count += s->count < cfg->window;
    if (!s->dirty) {
        s->dirty = true;
        s->dnext = os->dirty;
        os->dirty = s;
    }
    if (verdict && cfg->mode == CEP_OUTLIER_DIVERT && remember_divert(os, sid) != ASTRO_OK)
        return -1;
    os->flagged += verdict && cfg->mode == CEP_OUTLIER_FLAG;
    os->diverts += verdict && cfg->mode == CEP_OUTLIER_DIVERT;
    return verdict;
}

bool
cep_outliers_was_diverted(const struct cep_outliers *os, struct cep_sid sid)
{
    size_t lo = 0, hi = os->ndiverted;
    while (lo < hi) { /* ids are kept in stream order */
        size_t mid = (lo + hi) / 2;
        int c = cep_sid_cmp(os->diverted[mid], sid);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

void
cep_outliers_prune(struct cep_outliers *os, struct cep_sid r)
{
    size_t k = 0;
    while (k < os->ndiverted && cep_sid_cmp(os->diverted[k], r) < 0)
        k++;
    if (k == 0)
        return;
    memmove(os->diverted, os->diverted + k, (os->ndiverted - k) * sizeof(*os->diverted));
    os->ndiverted -= k;
    os->diverted_dirty = true;
}

typedef int (*put_fn)(void *arg, const char *f, size_t flen, const char *v, size_t vlen);

static int64_t
snap_series(struct cep_outliers *os, struct cep_oseries *s, char *buf, put_fn put, void *arg)
{
    char field[ASTRO_AGG_KEY_MAX + 96];
    uint32_t h[3] = {os->cfg->window, s->count, s->pos};
    size_t len = sizeof(h) + os->cfg->window * sizeof(double);
    memcpy(buf, h, sizeof(h));
    memcpy(buf + sizeof(h), s->ring, os->cfg->window * sizeof(double));
    int n = snprintf(field, sizeof(field), "o" US "%s" US "%s", s->type, s->key);
    if (n < 0 || (size_t)n >= sizeof(field) || put(arg, field, (size_t)n, buf, len) != ASTRO_OK)
        return -1;
    return n + (int64_t)len;
}

int64_t
cep_outliers_snapshot(struct cep_outliers *os, put_fn put, void *arg)
{
    int64_t total = 0;
    char *buf = malloc(12 + os->cfg->window * sizeof(double));
    if (buf == NULL)
        return -1;
    while (os->dirty != NULL) {
        struct cep_oseries *s = os->dirty;
        os->dirty = s->dnext;
        s->dirty = false;
        int64_t n = snap_series(os, s, buf, put, arg);
        if (n < 0) {
            free(buf);
            return -1;
        }
        total += n;
    }
    free(buf);
    if (os->diverted_dirty) {
        size_t len = os->ndiverted * sizeof(*os->diverted);
        /* an empty list is written as one zero byte: HSET needs some value */
        if (put(arg, "@divert", 7, len ? (const char *)os->diverted : "", len ? len : 1) !=
            ASTRO_OK)
            return -1;
        os->diverted_dirty = false;
        total += 7 + (int64_t)len;
    }
    return total;
}

static int
restore_series(struct cep_outliers *os, const char *f, size_t flen, const char *v, size_t vlen)
{
    char type[ASTRO_EVENT_NAME_MAX + 1], key[ASTRO_AGG_KEY_MAX + 1];
    const char *u = memchr(f + 2, 0x1f, flen - 2);
    if (u == NULL || (size_t)(u - f - 2) > ASTRO_EVENT_NAME_MAX ||
        flen - (size_t)(u + 1 - f) > ASTRO_AGG_KEY_MAX)
        return ASTRO_ERR;
    memcpy(type, f + 2, (size_t)(u - f - 2));
    type[u - f - 2] = '\0';
    memcpy(key, u + 1, flen - (size_t)(u + 1 - f));
    key[flen - (size_t)(u + 1 - f)] = '\0';
    uint32_t h[3];
    if (vlen < sizeof(h))
        return ASTRO_ERR;
    memcpy(h, v, sizeof(h));
    if (h[0] != os->cfg->window) /* another window size: warm up again */
        return ASTRO_OK;
    if (vlen != sizeof(h) + h[0] * sizeof(double) || h[1] > h[0] || h[2] >= h[0])
        return ASTRO_ERR;
    struct cep_oseries *s = series_of(os, key, type);
    if (s == NULL)
        return ASTRO_ERR;
    s->count = h[1];
    s->pos = h[2];
    memcpy(s->ring, v + sizeof(h), h[0] * sizeof(double));
    return ASTRO_OK;
}

int
cep_outliers_restore(struct cep_outliers *os, const char *f, size_t flen, const char *v,
                     size_t vlen, bool *handled)
{
    *handled = true;
    if (flen == 7 && memcmp(f, "@divert", 7) == 0) {
        size_t n = vlen / sizeof(struct cep_sid);
        os->ndiverted = 0;
        if (vlen % sizeof(struct cep_sid) != 0 && vlen != 1)
            return ASTRO_ERR;
        for (size_t i = 0; i < n; i++) {
            struct cep_sid sid;
            memcpy(&sid, v + i * sizeof(sid), sizeof(sid));
            if (remember_divert(os, sid) != ASTRO_OK)
                return ASTRO_ERR;
        }
        os->diverted_dirty = false;
        return ASTRO_OK;
    }
    if (flen >= 2 && f[0] == 'o' && f[1] == 0x1f)
        return restore_series(os, f, flen, v, vlen);
    *handled = false;
    return ASTRO_OK;
}

/* Metrics registry and Prometheus text exposition (format 0.0.4).
 *
 * Families and series are linked lists in registration order, changed only under the registry
 * lock (start-up). Values are C11 atomics so hot paths never lock: counters are uint64 adds,
 * gauges keep the bits of a double in a uint64 and update by compare-and-swap, histograms keep
 * one count per bucket (non-cumulative, summed at render) plus a sum and a count. */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "astro/metrics.h"

enum family_type { FAM_COUNTER, FAM_GAUGE, FAM_HISTOGRAM };

struct astro_counter {
    _Atomic uint64_t value;
};

struct astro_gauge {
    _Atomic uint64_t bits;
};

struct astro_histogram {
    double *bounds;
    size_t nbounds;
    _Atomic uint64_t *buckets; /* nbounds + 1: the last one is +Inf */
    _Atomic uint64_t sum_bits;
    _Atomic uint64_t count;
};

struct series {
    char *labels; /* "" when none */
    union {
        struct astro_counter counter;
        struct astro_gauge gauge;
        struct astro_histogram hist;
    } u;
    struct series *next;
};

struct family {
    char *name;
    char *help;
    enum family_type type;
    struct series *series, **series_tail;
    struct family *next;
};

struct render_hook {
    void (*fn)(void *arg);
    void *arg;
    struct render_hook *next;
};

struct astro_metrics {
    pthread_mutex_t lock;
    struct family *families, **families_tail;
    struct render_hook *hooks;
};

static const double default_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};

const double *
astro_metrics_default_buckets_seconds(size_t *n)
{
    if (n != NULL)
        *n = ASTRO_ARRAY_LEN(default_buckets);
    return default_buckets;
}

static uint64_t
dbl_bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof(b));
    return b;
}

static double
bits_dbl(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

/* ---- updates (lock-free) ---- */

void
astro_counter_add(struct astro_counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

uint64_t
astro_counter_get(const struct astro_counter *c)
{
    return atomic_load_explicit(&((struct astro_counter *)c)->value, memory_order_relaxed);
}

void
astro_gauge_set(struct astro_gauge *g, double v)
{
    atomic_store_explicit(&g->bits, dbl_bits(v), memory_order_relaxed);
}

/* Adds delta to the double stored in *bits with a CAS loop (no atomic double add in C11). */
static void
atomic_add_double(_Atomic uint64_t *bits, double delta)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(bits, &old, dbl_bits(bits_dbl(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void
astro_gauge_add(struct astro_gauge *g, double delta)
{
    atomic_add_double(&g->bits, delta);
}

double
astro_gauge_get(const struct astro_gauge *g)
{
    return bits_dbl(atomic_load_explicit(&((struct astro_gauge *)g)->bits, memory_order_relaxed));
}

void
astro_histogram_observe(struct astro_histogram *h, double v)
{
    size_t i = 0;
    /* Bucket i counts v <= bounds[i] (and > bounds[i-1]); NaN falls through to +Inf. */
    while (i < h->nbounds && !(v <= h->bounds[i]))
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_add_double(&h->sum_bits, v);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

/* ---- names and labels ---- */

static bool
name_char(char c, bool first, bool colon_ok)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return true;
    if (c == ':')
        return colon_ok;
    return !first && c >= '0' && c <= '9';
}

/* Length of the valid name at s (0 if none). */
static size_t
name_span(const char *s, bool colon_ok)
{
    size_t i = 0;
    while (s[i] != '\0' && name_char(s[i], i == 0, colon_ok))
        i++;
    return i;
}

int
astro_metrics_name_valid(const char *name)
{
    return name != NULL && name[0] != '\0' && name[name_span(name, true)] == '\0';
}

/* Accepts `name="value"(,name="value")*` with only \\ \" \n escapes inside values, so a bad
 * label string is refused at registration instead of breaking every scrape. */
static bool
labels_valid(const char *s)
{
    if (*s == '\0')
        return true;
    for (;;) {
        size_t n = name_span(s, false);
        if (n == 0 || s[n] != '=' || s[n + 1] != '"')
            return false;
        s += n + 2;
        while (*s != '"') {
            if (*s == '\0' || *s == '\n')
                return false;
            if (*s == '\\' && s[1] != '\\' && s[1] != '"' && s[1] != 'n')
                return false;
            s += (*s == '\\') ? 2 : 1;
        }
        s++;
        if (*s == '\0')
            return true;
        if (*s++ != ',')
            return false;
    }
}

/* Appends the escaped value at *pos; returns false when it does not fit. */
static bool
put_escaped(char *buf, size_t size, size_t *pos, const char *v)
{
    for (; *v != '\0'; v++) {
        const char *rep = (*v == '\\') ? "\\\\" : (*v == '"') ? "\\\"" : (*v == '\n') ? "\\n" : NULL;
        size_t n = rep != NULL ? 2 : 1;
        if (*pos + n >= size)
            return false;
        memcpy(buf + *pos, rep != NULL ? rep : v, n);
        *pos += n;
    }
    return true;
}

int
astro_metrics_labels(char *buf, size_t size, ...)
{
    if (buf == NULL || size == 0)
        return ASTRO_ERR;
    va_list ap;
    va_start(ap, size);
    size_t pos = 0;
    int rc = ASTRO_OK;
    const char *name;
    while ((name = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        size_t n = strlen(name);
        if (value == NULL || n == 0 || name[name_span(name, false)] != '\0' ||
            pos + n + 4 >= size) {
            rc = ASTRO_ERR;
            break;
        }
        pos += (size_t)snprintf(buf + pos, size - pos, "%s%s=\"", pos > 0 ? "," : "", name);
        if (!put_escaped(buf, size, &pos, value) || pos + 1 >= size) {
            rc = ASTRO_ERR;
            break;
        }
        buf[pos++] = '"';
    }
    va_end(ap);
    buf[rc == ASTRO_OK ? pos : 0] = '\0';
    return rc;
}

/* ---- registry ---- */

struct astro_metrics *
astro_metrics_new(void)
{
    struct astro_metrics *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->families_tail = &m->families;
    return m;
}

static void
series_free(struct series *s, enum family_type type)
{
    if (type == FAM_HISTOGRAM) {
        free(s->u.hist.bounds);
        free((void *)s->u.hist.buckets);
    }
    free(s->labels);
    free(s);
}

void
astro_metrics_free(struct astro_metrics *m)
{
    if (m == NULL)
        return;
    for (struct family *f = m->families, *fn; f != NULL; f = fn) {
        fn = f->next;
        for (struct series *s = f->series, *sn; s != NULL; s = sn) {
            sn = s->next;
            series_free(s, f->type);
        }
        free(f->name);
        free(f->help);
        free(f);
    }
    for (struct render_hook *h = m->hooks, *hn; h != NULL; h = hn) {
        hn = h->next;
        free(h);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Finds the family called name or appends a new one. NULL on a type or help clash or OOM. */
static struct family *
get_family(struct astro_metrics *m, const char *name, const char *help, enum family_type type)
{
    for (struct family *f = m->families; f != NULL; f = f->next) {
        if (strcmp(f->name, name) == 0)
            return (f->type == type && strcmp(f->help, help) == 0) ? f : NULL;
    }
    struct family *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->name = strdup(name);
    f->help = strdup(help);
    if (f->name == NULL || f->help == NULL) {
        free(f->name);
        free(f->help);
        free(f);
        return NULL;
    }
    f->type = type;
    f->series_tail = &f->series;
    *m->families_tail = f;
    m->families_tail = &f->next;
    return f;
}

static bool
bounds_valid(const double *bounds, size_t n)
{
    if (n > 0 && bounds == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            return false;
    }
    return true;
}

static int
hist_init(struct astro_histogram *h, const double *bounds, size_t n)
{
    h->bounds = malloc((n > 0 ? n : 1) * sizeof(double));
    h->buckets = calloc(n + 1, sizeof(*h->buckets));
    if (h->bounds == NULL || h->buckets == NULL)
        return ASTRO_ERR;
    if (n > 0)
        memcpy(h->bounds, bounds, n * sizeof(double));
    h->nbounds = n;
    return ASTRO_OK;
}

static bool
same_bounds(const struct astro_histogram *h, const double *bounds, size_t n)
{
    return h->nbounds == n && (n == 0 || memcmp(h->bounds, bounds, n * sizeof(double)) == 0);
}

/* Creates the series (labels copied) and appends it to f. NULL on allocation failure. */
static struct series *
add_series(struct family *f, const char *labels, const double *bounds, size_t nbounds)
{
    struct series *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->labels = strdup(labels);
    if (s->labels == NULL ||
        (f->type == FAM_HISTOGRAM && hist_init(&s->u.hist, bounds, nbounds) != ASTRO_OK)) {
        series_free(s, f->type);
        return NULL;
    }
    *f->series_tail = s;
    f->series_tail = &s->next;
    return s;
}

static struct series *
register_series(struct astro_metrics *m, const char *name, const char *help, const char *labels,
                enum family_type type, const double *bounds, size_t nbounds)
{
    if (labels == NULL)
        labels = "";
    if (help == NULL)
        help = "";
    if (m == NULL || !astro_metrics_name_valid(name) || !labels_valid(labels) ||
        (type == FAM_HISTOGRAM && !bounds_valid(bounds, nbounds)))
        return NULL;
    pthread_mutex_lock(&m->lock);
    struct series *s = NULL;
    struct family *f = get_family(m, name, help, type);
    if (f == NULL)
        goto out;
    for (s = f->series; s != NULL; s = s->next) {
        if (strcmp(s->labels, labels) == 0)
            break;
    }
    if (s != NULL && type == FAM_HISTOGRAM && !same_bounds(&s->u.hist, bounds, nbounds))
        s = NULL; /* same series with other buckets: a programming error, refuse it */
    else if (s == NULL)
        s = add_series(f, labels, bounds, nbounds);
out:
    pthread_mutex_unlock(&m->lock);
    return s;
}

struct astro_counter *
astro_metrics_counter(struct astro_metrics *m, const char *name, const char *help,
                      const char *labels)
{
    struct series *s = register_series(m, name, help, labels, FAM_COUNTER, NULL, 0);
    return s != NULL ? &s->u.counter : NULL;
}

struct astro_gauge *
astro_metrics_gauge(struct astro_metrics *m, const char *name, const char *help,
                    const char *labels)
{
    struct series *s = register_series(m, name, help, labels, FAM_GAUGE, NULL, 0);
    return s != NULL ? &s->u.gauge : NULL;
}

struct astro_histogram *
astro_metrics_histogram(struct astro_metrics *m, const char *name, const char *help,
                        const char *labels, const double *bounds, size_t nbounds)
{
    struct series *s = register_series(m, name, help, labels, FAM_HISTOGRAM, bounds, nbounds);
    return s != NULL ? &s->u.hist : NULL;
}

int
astro_metrics_on_render(struct astro_metrics *m, void (*fn)(void *arg), void *arg)
{
    struct render_hook *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return ASTRO_ERR;
    h->fn = fn;
    h->arg = arg;
    pthread_mutex_lock(&m->lock);
    struct render_hook **tail = &m->hooks;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = h;
    pthread_mutex_unlock(&m->lock);
    return ASTRO_OK;
}

/* ---- rendering ---- */

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void ASTRO_PRINTF(2, 3)
sb_printf(struct sbuf *b, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2 && !b->oom; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* Formats v as the shortest decimal that reads back as the same double, Prometheus-style
 * for the infinities and NaN, so 0.1 renders as "0.1" and not "0.10000000000000001", and
 * whole numbers (byte counts, timestamps) without an exponent. */
static void
fmt_double(char *buf, size_t size, double v)
{
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 9007199254740992.0) { /* 2^53: integers print exactly */
        snprintf(buf, size, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* HELP text escapes backslash and newline (exposition format 0.0.4). */
static void
put_help(struct sbuf *b, const struct family *f)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    sb_printf(b, "# HELP %s ", f->name);
    for (const char *c = f->help; *c != '\0'; c++) {
        if (*c == '\\')
            sb_printf(b, "\\\\");
        else if (*c == '\n')
            sb_printf(b, "\\n");
        else
            sb_printf(b, "%c", *c);
    }
    sb_printf(b, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
}

static void
put_sample(struct sbuf *b, const char *name, const char *suffix, const char *labels,
           const char *value)
{
    if (labels[0] != '\0')
        sb_printf(b, "%s%s{%s} %s\n", name, suffix, labels, value);
    else
        sb_printf(b, "%s%s %s\n", name, suffix, value);
}

static void
put_histogram(struct sbuf *b, const char *name, const struct series *s)
{
    struct astro_histogram *h = (struct astro_histogram *)&s->u.hist;
    const char *sep = s->labels[0] != '\0' ? "," : "";
    uint64_t cum = 0;
    char le[40], num[40];
    for (size_t i = 0; i <= h->nbounds; i++) {
        cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < h->nbounds)
            fmt_double(le, sizeof(le), h->bounds[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        sb_printf(b, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, s->labels, sep, le,
                  (unsigned long long)cum);
    }
    fmt_double(num, sizeof(num), bits_dbl(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)));
    put_sample(b, name, "_sum", s->labels, num);
    /* _count is the +Inf bucket, so a scrape racing an observe stays self-consistent. */
    snprintf(num, sizeof(num), "%llu", (unsigned long long)cum);
    put_sample(b, name, "_count", s->labels, num);
}

static void
put_family(struct sbuf *b, const struct family *f)
{
    char num[40];
    if (f->series == NULL)
        return;
    put_help(b, f);
    for (const struct series *s = f->series; s != NULL; s = s->next) {
        if (f->type == FAM_HISTOGRAM) {
            put_histogram(b, f->name, s);
            continue;
        }
        if (f->type == FAM_COUNTER)
            snprintf(num, sizeof(num), "%llu",
                     (unsigned long long)astro_counter_get(&s->u.counter));
        else
            fmt_double(num, sizeof(num), astro_gauge_get(&s->u.gauge));
        put_sample(b, f->name, "", s->labels, num);
    }
}

char *
astro_metrics_render(struct astro_metrics *m, size_t *len)
{
    struct sbuf b = {.p = malloc(4096), .cap = 4096};
    if (b.p == NULL)
        return NULL;
    b.p[0] = '\0';
    pthread_mutex_lock(&m->lock);
    for (struct render_hook *h = m->hooks; h != NULL; h = h->next)
        h->fn(h->arg);
    for (const struct family *f = m->families; f != NULL; f = f->next)
        put_family(&b, f);
    pthread_mutex_unlock(&m->lock);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (len != NULL)
        *len = b.len;
    return b.p;
}

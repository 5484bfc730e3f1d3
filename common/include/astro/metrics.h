/* Metrics: counters, gauges and histograms, exposed as Prometheus text (format 0.0.4).
 *
 * A registry owns its metrics. Registration takes a lock and is meant for start-up; updates
 * (astro_counter_add, astro_gauge_set, astro_histogram_observe) are lock-free atomics and safe
 * from any thread. A metric family is identified by its name; each call with the same name and a
 * different label set adds a series to that family (same type and help required). Registering the
 * same name and labels twice returns the existing series. */
#ifndef ASTRO_METRICS_H
#define ASTRO_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "astro/common.h"

struct astro_metrics;
struct astro_counter;
struct astro_gauge;
struct astro_histogram;

/* Returns a new, empty registry (free with astro_metrics_free()) or NULL on allocation failure. */
struct astro_metrics *astro_metrics_new(void);
void astro_metrics_free(struct astro_metrics *m);

/* labels is NULL or Prometheus label text without braces, e.g. "table=\"mono_events\"" (copied).
 * Each returns a series owned by the registry, or NULL for an invalid name, a type clash or
 * allocation failure. */
struct astro_counter *astro_metrics_counter(struct astro_metrics *m, const char *name,
                                            const char *help, const char *labels);
struct astro_gauge *astro_metrics_gauge(struct astro_metrics *m, const char *name,
                                        const char *help, const char *labels);
/* bounds: strictly increasing upper bounds (copied); +Inf is implicit. */
struct astro_histogram *astro_metrics_histogram(struct astro_metrics *m, const char *name,
                                                const char *help, const char *labels,
                                                const double *bounds, size_t nbounds);

void astro_counter_add(struct astro_counter *c, uint64_t n);
#define astro_counter_inc(c) astro_counter_add((c), 1)
uint64_t astro_counter_get(const struct astro_counter *c);

void astro_gauge_set(struct astro_gauge *g, double v);
void astro_gauge_add(struct astro_gauge *g, double delta);
double astro_gauge_get(const struct astro_gauge *g);

void astro_histogram_observe(struct astro_histogram *h, double v);

/* Renders every family in registration order. Returns a NUL-terminated malloc'ed buffer (caller
 * frees) and stores its length in *len when len is not NULL; NULL on allocation failure. */
char *astro_metrics_render(struct astro_metrics *m, size_t *len);

#endif

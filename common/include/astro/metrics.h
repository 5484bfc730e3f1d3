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

/* Label text given at registration is checked (name="value" pairs, comma separated, only the
 * \\ \" \n escapes); malformed text makes the registration return NULL. Build it with: */
/* Writes Prometheus label text for name/value pairs into buf, e.g.
 * astro_metrics_labels(buf, sizeof(buf), "table", "mono_events", "op", "copy", (char *)NULL)
 * gives `table="mono_events",op="copy"`. Values are escaped (\\ \" \n), names are validated
 * ([a-zA-Z_][a-zA-Z0-9_]*). Returns ASTRO_OK, or ASTRO_ERR for a bad name or a buf too small. */
int astro_metrics_labels(char *buf, size_t size, ...) ASTRO_MUST_CHECK
    __attribute__((sentinel));

/* True when name is a valid metric name: [a-zA-Z_:][a-zA-Z0-9_:]*. */
int astro_metrics_name_valid(const char *name);

/* Upper bounds for latency histograms in seconds, 0.0005 .. 10 (static storage; *n gets the
 * count). */
const double *astro_metrics_default_buckets_seconds(size_t *n);

/* Registers fn(arg) to run under the registry lock at the start of every render, before any
 * value is read: the place to refresh gauges that are sampled rather than updated (queue
 * depths, memory). fn must not call back into the registry except to update series.
 * Returns ASTRO_OK or ASTRO_ERR on allocation failure. */
int astro_metrics_on_render(struct astro_metrics *m, void (*fn)(void *arg), void *arg)
    ASTRO_MUST_CHECK;

/* Registers the standard process metrics of a daemon: astro_build_info{service,version} 1,
 * process_start_time_seconds and process_resident_memory_bytes (read from /proc/self/statm on
 * each render). service and version are copied. Returns ASTRO_OK or ASTRO_ERR. */
int astro_metrics_register_process(struct astro_metrics *m, const char *service,
                                   const char *version) ASTRO_MUST_CHECK;

#endif

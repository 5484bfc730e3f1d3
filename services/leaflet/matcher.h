/* The matcher of one partition: pure, in-memory, no I/O. Input entries (events with their stream
 * ids, and watermark markers) go in; matches (multi-originated events) and late events come out
 * through callbacks. The output is a function of the input sequence alone (docs/leaflet.md,
 * "Determinism"):
 *
 * - Watermark wm = max(event time seen) - lateness, or a marker's value if larger (markers are
 *   how the daemon records an idle advance in the partition's stream, so a replay sees it too).
 *   An event with ts < wm on arrival is late: it goes to on_late and nowhere else.
 * - Accepted events wait in a reorder buffer and are processed in (ts, stream id) order once
 *   ts < wm, so out-of-order arrival within the lateness gives exactly the in-order result.
 * - A window of W spans event times [t, t + W] inclusive; state older than that is dropped (or,
 *   for absence and `min` rules, fires) when processing time passes t + W.
 * - Every event is held (for the rebuild point) while it is buffered or still inside a window of
 *   some rule that accepted it; cep_matcher_checkpoint() names the oldest one. */
#ifndef CEP_MATCHER_H
#define CEP_MATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "astro/common.h"
#include "astro/event.h"
#include "rules.h"

/* A Redis stream id "ms-seq". */
struct cep_sid {
    uint64_t ms, seq;
};

#define CEP_SID_STR 44

int cep_sid_parse(const char *s, size_t len, struct cep_sid *out) ASTRO_MUST_CHECK;
void cep_sid_format(struct cep_sid sid, char out[CEP_SID_STR]);
int cep_sid_cmp(struct cep_sid a, struct cep_sid b);

struct cep_sink {
    /* A match. multi (and its strings and lineage) is borrowed for the call only. */
    void (*on_match)(void *arg, size_t rule, const struct astro_event *multi);
    /* An event later than the watermark: ev borrowed for the call; wm is the watermark. */
    void (*on_late)(void *arg, const struct astro_event *ev, struct cep_sid sid, int64_t wm);
    void *arg;
};

struct cep_matcher_opts {
    int64_t lateness_us;
    size_t max_held; /* cap per rule state and for the reorder buffer; 0 = 1,000,000 */
};

struct cep_matcher_stats {
    uint64_t events_in, late, duplicates, evicted, forced, markers;
    uint64_t *matches; /* per rule (owned by the matcher) */
    size_t buffered, held, keys;
};

struct cep_matcher;

/* Returns a new matcher (free with cep_matcher_free()) or NULL on allocation failure. rules and
 * sink are borrowed and must outlive it (rules may be swapped only through a new matcher). */
struct cep_matcher *cep_matcher_new(const struct cep_ruleset *rules,
                                    const struct cep_matcher_opts *opts,
                                    const struct cep_sink *sink) ASTRO_MUST_CHECK;
void cep_matcher_free(struct cep_matcher *m);

/* Feeds one event (borrowed; copied as needed) read at stream id sid. Stream ids must increase.
 * Returns ASTRO_ERR only on allocation failure. */
int cep_matcher_push(struct cep_matcher *m, const struct astro_event *ev,
                     struct cep_sid sid) ASTRO_MUST_CHECK;

/* A watermark marker at stream id sid: raises the watermark to wm_us if that is higher. */
int cep_matcher_mark(struct cep_matcher *m, int64_t wm_us, struct cep_sid sid) ASTRO_MUST_CHECK;

/* Silent mode (rebuild): matches and late events are not reported. consumed(arg, rule, id)
 * says whether an event was already consumed by an output of that rule (then it is not added to
 * that rule's state). NULL consumed = nothing consumed. */
void cep_matcher_set_silent(struct cep_matcher *m, bool silent,
                            bool (*consumed)(void *arg, size_t rule, const char *id), void *arg);

int64_t cep_matcher_watermark(const struct cep_matcher *m);
/* Sets the watermark (rebuild: the watermark that held before the replay's first entry). */
void cep_matcher_set_watermark(struct cep_matcher *m, int64_t wm_us);
/* Max event time seen (INT64_MIN before any). */
int64_t cep_matcher_max_ts(const struct cep_matcher *m);

/* The rebuild point: the oldest held entry's stream id and the watermark before it; when nothing
 * is held, the id just after the last entry fed and the current watermark. Returns false before
 * any entry was fed. */
bool cep_matcher_checkpoint(const struct cep_matcher *m, struct cep_sid *sid, int64_t *wm_us);

/* True when the matcher holds buffered events or open window state (an idle advance matters). */
bool cep_matcher_busy(const struct cep_matcher *m);

void cep_matcher_stats(const struct cep_matcher *m, struct cep_matcher_stats *out);

#endif

/* Outlier screening (issue 9, the stream normalizer): per (key, event type), the last N values
 * in stream order; a value x is an outlier when |x - median| > k * MAD of that window (MAD: the
 * median of |v - median|). Conventions (docs/candles.md "Outlier screening"):
 *
 * - Screened in stream order when an entry arrives, before the lateness check and the rules.
 * - No verdict until the window holds N values (warm-up); every value, outlier or not, then
 *   enters the window (a lasting level shift stops being flagged after about N/2 values).
 * - MAD = 0 (more than half of the window equal): the mean absolute deviation from the median is
 *   used instead; when that is 0 too (all N equal), any other value is an outlier.
 * - flag: the event goes on to the rules and candles, an entry goes to astro:outliers;
 *   divert: the event is excluded from rules and candles, an entry goes to astro:outliers.
 * Pure and in memory; the state snapshots through the same hash as the candles. */
#ifndef CEP_OUTLIERS_H
#define CEP_OUTLIERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aggcfg.h"
#include "matcher.h"

struct cep_oseries {
    char *key;
    char type[ASTRO_EVENT_NAME_MAX + 1];
    uint64_t hash;
    uint32_t count, pos;
    bool dirty;
    struct cep_oseries *next, *dnext;
    double ring[];
};

/* A verdict: the band the value was tested against. */
struct cep_outlier_band {
    double median, mad, lo, hi;
};

struct cep_outliers {
    const struct cep_outlier_cfg *cfg;
    struct cep_oseries **buckets;
    size_t nbuckets, nseries;
    struct cep_oseries *dirty;
    double *scratch;
    /* diverted entries at or after the rebuild point: a takeover's silent replay skips them */
    struct cep_sid *diverted;
    size_t ndiverted, capdiverted;
    bool diverted_dirty;
    uint64_t flagged, diverts;
};

/* Returns new state (free with cep_outliers_free()) or NULL; cfg is borrowed. */
struct cep_outliers *cep_outliers_new(const struct cep_outlier_cfg *cfg) ASTRO_MUST_CHECK;
void cep_outliers_free(struct cep_outliers *os);

/* Screens value x of (key, type) read at sid and adds it to the window. Returns 1 with *band
 * filled when it is an outlier, 0 when not (or not screened: other type, warm-up), -1 on
 * allocation failure. A diverted outlier is remembered for cep_outliers_was_diverted(). */
int cep_outliers_screen(struct cep_outliers *os, const char *key, const char *type, double x,
                        struct cep_sid sid, struct cep_outlier_band *band) ASTRO_MUST_CHECK;

/* The band of window v[0..n) (n >= 1; scratch holds n doubles): median and MAD (see above). */
void cep_outlier_band_of(const double *v, size_t n, double k, double *scratch,
                         struct cep_outlier_band *band);

/* True when the entry sid was diverted (rebuild: do not replay it into the rules). */
bool cep_outliers_was_diverted(const struct cep_outliers *os, struct cep_sid sid);
/* Forgets diverted ids before r (the rebuild point never goes back). */
void cep_outliers_prune(struct cep_outliers *os, struct cep_sid r);

/* Snapshot and restore, as cep_candles_snapshot/restore: fields "o" US type US key (the window)
 * and "@divert" (the diverted ids). Returns bytes handed to put, or -1. */
int64_t cep_outliers_snapshot(struct cep_outliers *os,
                              int (*put)(void *arg, const char *f, size_t flen, const char *v,
                                         size_t vlen),
                              void *arg);
/* ASTRO_OK and *handled = false for fields that are not the outliers'. */
int cep_outliers_restore(struct cep_outliers *os, const char *f, size_t flen, const char *v,
                         size_t vlen, bool *handled) ASTRO_MUST_CHECK;

#endif

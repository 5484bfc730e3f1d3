/* A Redis stream entry's field/value array as named fields: the part of decoding that the event
 * codec (astro/event.h) and the candle codec (astro/agg.h) share. Values are borrowed from the
 * reply or argv they come from. */
#ifndef ASTRO_STREAM_ENTRY_H
#define ASTRO_STREAM_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "astro/common.h"

struct redisReply;

/* One field's value (borrowed); set is false when the entry does not have the field. */
struct astro_stream_span {
    const char *p;
    size_t n;
    bool set;
};

/* Fills out[k] (zeroed first) with the value of field names[k], k < count, from the elements of
 * an XREAD/XRANGE entry's field array. Unknown fields are skipped (forward compatibility). An
 * odd element count, a non-string element or a repeated known field fail with a reason that
 * starts with what ("stream entry", "agg entry"). */
int astro_stream_entry_spans(struct redisReply *const *elements, size_t n,
                             const char *const *names, size_t count,
                             struct astro_stream_span *out, const char *what, char *err,
                             size_t errlen) ASTRO_MUST_CHECK;

/* The same from a plain argv of n field/value strings. */
int astro_stream_entry_spans_argv(const char *const *argv, const size_t *argvlen, size_t n,
                                  const char *const *names, size_t count,
                                  struct astro_stream_span *out, const char *what, char *err,
                                  size_t errlen) ASTRO_MUST_CHECK;

/* A value written by astro_event_format_double (digits, sign, '.', 'e', 'E' only: no "inf",
 * "nan", hex or spaces) that is finite. ASTRO_ERR with "<label>: not a finite number". */
int astro_stream_span_double(const struct astro_stream_span *s, const char *label, double *out,
                             char *err, size_t errlen) ASTRO_MUST_CHECK;

/* A decimal integer in int64_t range. ASTRO_ERR with "<label>: not an integer". */
int astro_stream_span_int64(const struct astro_stream_span *s, const char *label, int64_t *out,
                            char *err, size_t errlen) ASTRO_MUST_CHECK;

#endif

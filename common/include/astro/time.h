/* Event time: signed 64-bit microseconds since the Unix epoch (UTC), parsed from RFC 3339 or
 * epoch milliseconds and always formatted as RFC 3339 UTC with exactly six fraction digits.
 *
 * Decisions:
 * - Representable range is 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z, so every value
 *   formats as a four-digit year. Anything outside (after applying the offset) is rejected.
 * - Fractions of 1..9 digits are accepted and truncated (not rounded) to microseconds.
 * - A leap second (":60") is accepted and maps to :59.999999 of the same minute, so ordering
 *   is kept and the value stays inside the minute the producer meant. Seconds > 60 are rejected.
 * - Epoch milliseconds (JSON numbers, may have a fraction) are rounded to the nearest
 *   microsecond, because a double cannot hold most decimal fractions exactly. */
#ifndef ASTRO_TIME_H
#define ASTRO_TIME_H

#include <stddef.h>
#include <stdint.h>

#include "astro/common.h"

#define ASTRO_TIME_MIN_US INT64_C(-62135596800000000)  /* 0001-01-01T00:00:00Z */
#define ASTRO_TIME_MAX_US INT64_C(253402300799999999)  /* 9999-12-31T23:59:59.999999Z */
#define ASTRO_TIME_RFC3339_LEN 27                      /* "YYYY-MM-DDTHH:MM:SS.ffffffZ" */
#define ASTRO_US_PER_SEC INT64_C(1000000)

/* Parses RFC 3339 ("2026-12-01T02:03:04.5+01:00"; 'T'/'t' separator, 'Z'/'z' or ±hh:mm) from
 * s[0..len) (no terminator needed) into *out_us. Returns ASTRO_ERR with a reason in err. */
int astro_time_parse_rfc3339(const char *s, size_t len, int64_t *out_us, char *err,
                             size_t errlen) ASTRO_MUST_CHECK;

/* Converts epoch milliseconds (finite, inside the representable range) to µs. */
int astro_time_from_epoch_ms(double ms, int64_t *out_us, char *err, size_t errlen) ASTRO_MUST_CHECK;

/* Writes "YYYY-MM-DDTHH:MM:SS.ffffffZ" plus NUL into out (outlen >= ASTRO_TIME_RFC3339_LEN + 1).
 * Returns ASTRO_ERR if us is out of range or out is too small. */
int astro_time_format(int64_t us, char *out, size_t outlen) ASTRO_MUST_CHECK;

/* Current wall-clock time (CLOCK_REALTIME) in µs since the epoch. */
int64_t astro_now_us(void);

#endif

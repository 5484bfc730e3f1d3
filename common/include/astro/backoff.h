/* Exponential backoff with jitter, shared by every reconnect loop (Redis sync and async,
 * PostgreSQL). The delay doubles from `initial_ms` up to `max_ms`; each delay is then drawn
 * uniformly from [d * (1 - jitter), d] so that many clients dropped by the same blip do not
 * reconnect in lockstep. Plain value type: no allocation, caller's storage. */
#ifndef ASTRO_BACKOFF_H
#define ASTRO_BACKOFF_H

#include <stdint.h>

#include "astro/common.h"

struct astro_backoff {
    uint32_t initial_ms; /* first delay; 0 means 100 */
    uint32_t max_ms;     /* cap; 0 means 30000 */
    double jitter;       /* 0..1 fraction of the delay that is randomised */
    uint32_t attempt;    /* delays handed out since the last reset */
    uint32_t seed;       /* rand_r state; 0 seeds from the clock on first use */
};

/* Initialises b (caller's storage) with the given bounds; jitter is clamped to 0..1. */
void astro_backoff_init(struct astro_backoff *b, uint32_t initial_ms, uint32_t max_ms,
                        double jitter);

/* Returns the next delay in milliseconds and advances the attempt counter. */
uint32_t astro_backoff_next(struct astro_backoff *b);

/* Forgets past failures, so the next delay is `initial_ms` again (call after a success). */
void astro_backoff_reset(struct astro_backoff *b);

/* Monotonic clock in milliseconds, for deadlines. */
uint64_t astro_backoff_now_ms(void);

/* Sleeps ms milliseconds (restarting on EINTR). */
void astro_backoff_sleep_ms(uint32_t ms);

#endif

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "astro/backoff.h"

void
astro_backoff_init(struct astro_backoff *b, uint32_t initial_ms, uint32_t max_ms, double jitter)
{
    b->initial_ms = initial_ms ? initial_ms : 100;
    b->max_ms = max_ms ? max_ms : 30000;
    if (b->max_ms < b->initial_ms)
        b->max_ms = b->initial_ms;
    b->jitter = jitter < 0 ? 0 : (jitter > 1 ? 1 : jitter);
    b->attempt = 0;
    b->seed = 0;
}

uint32_t
astro_backoff_next(struct astro_backoff *b)
{
    uint64_t d = b->initial_ms;
    /* Shift in steps so a long outage cannot overflow: stop doubling once at the cap. */
    for (uint32_t i = 0; i < b->attempt && d < b->max_ms; i++)
        d *= 2;
    if (d > b->max_ms)
        d = b->max_ms;
    b->attempt++;
    if (b->seed == 0)
        b->seed = (uint32_t)astro_backoff_now_ms() ^ (uint32_t)(uintptr_t)b;
    double frac = (double)rand_r(&b->seed) / (double)RAND_MAX;
    double delay = (double)d * (1.0 - b->jitter * frac);
    return delay < 1 ? 1 : (uint32_t)delay;
}

void
astro_backoff_reset(struct astro_backoff *b)
{
    b->attempt = 0;
}

uint64_t
astro_backoff_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void
astro_backoff_sleep_ms(uint32_t ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Where a request's time goes: each worker keeps the time per stage of the request it is
 * serving (auth, prepare, database, JSON rendering, socket write), and a request slower than
 * ASTRO_QUERY_SLOW_LOG is logged with that split, so a latency outlier can be placed in one
 * stage without a profiler. Stages are charged on the worker's own thread only. */
#include <ctype.h>
#include <stdio.h>
#include <time.h>

#include "astro/log.h"
#include "query.h"

int64_t
qry_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
qry_timing_begin(struct qry_worker *w)
{
    if (w == NULL)
        return;
    struct qry_timing *t = qry_worker_timing(w);
    for (int i = 0; i < QRY_ST_N; i++)
        t->stage_us[i] = 0;
}

void
qry_timing_add(struct qry_worker *w, enum qry_stage st, int64_t t0)
{
    if (w != NULL && st < QRY_ST_N)
        qry_worker_timing(w)->stage_us[st] += qry_mono_us() - t0;
}

void
qry_timing_end(struct qry_worker *w, const char *path, int64_t total_us)
{
    if (w == NULL)
        return;
    int64_t slow_ms = qry_worker_config(w)->slow_log_ms;
    if (slow_ms == 0 || total_us < slow_ms * 1000)
        return;
    /* the path is the client's: printable ASCII only, bounded, so it cannot forge log lines */
    char shown[81];
    size_t n = 0;
    for (; path[n] != '\0' && n < sizeof(shown) - 1; n++)
        shown[n] = isprint((unsigned char)path[n]) ? path[n] : '?';
    shown[n] = '\0';
    const int64_t *s = qry_worker_timing(w)->stage_us;
    int64_t other = total_us;
    for (int i = 0; i < QRY_ST_N; i++)
        other -= s[i];
    astro_log_warn("slow request %s: %lld us (auth %lld, prepare %lld, db %lld, render %lld, "
                   "write %lld, other %lld)",
                   shown, (long long)total_us, (long long)s[QRY_ST_AUTH],
                   (long long)s[QRY_ST_PREPARE], (long long)s[QRY_ST_DB],
                   (long long)s[QRY_ST_RENDER], (long long)s[QRY_ST_WRITE], (long long)other);
}

/* Helpers of the benchmarks that run the real astro-leaflet against a private redis-server
 * (bench_leaflet_drain, bench_leaflet_candles): checked commands, the worker as a child
 * process (tests/harness/spawn.c), "has the group consumed everything", CPU of a reaped child,
 * medians. Header-only like bench_util.h. */
#ifndef ASTRO_BENCH_LEAFLET_H
#define ASTRO_BENCH_LEAFLET_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <hiredis/hiredis.h>

#include "spawn.h"

/* Exits the benchmark on a failed command; frees the reply. */
static inline void
bench_must(redisContext *rc, redisReply *r)
{
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "redis: %s\n", r ? r->str : rc->errstr);
        exit(1);
    }
    freeReplyObject(r);
}

/* Starts one astro-leaflet worker (P 16, instance "bench", no HTTP port, idle markers off) on
 * url with rules; log_level NULL = warn. Exits the benchmark if it cannot. */
static inline pid_t
bench_leaflet_spawn(const char *bin, const char *rules, const char *url, const char *log_level)
{
    char u[320], r[320], l[64];
    snprintf(u, sizeof(u), "ASTRO_REDIS_URL=%s", url);
    snprintf(r, sizeof(r), "ASTRO_RULES_FILE=%s", rules);
    snprintf(l, sizeof(l), "ASTRO_LOG_LEVEL=%s", log_level != NULL ? log_level : "warn");
    const char *const set[] = {u, r, l, "ASTRO_PARTITIONS=16", "ASTRO_HTTP_PORT=0",
                               "ASTRO_HTTP_BIND=127.0.0.1", "ASTRO_HTTP_THREADS=1",
                               "ASTRO_INSTANCE=bench", "ASTRO_LEAFLET_IDLE=1h", NULL};
    const char *const argv[] = {"astro-leaflet", NULL};
    pid_t pid = harness_spawn(bin, argv, set, NULL, NULL);
    if (pid < 0)
        exit(1);
    return pid;
}

/* True when group has read every entry of stream (XINFO GROUPS lag 0) and acked them all
 * (pending 0). A stream or group that does not exist yet is not done. */
static inline bool
bench_group_done(redisContext *rc, const char *stream, const char *group)
{
    redisReply *r = redisCommand(rc, "XINFO GROUPS %s", stream);
    bool done = false;
    for (size_t g = 0; r && r->type == REDIS_REPLY_ARRAY && g < r->elements; g++) {
        const redisReply *gr = r->element[g];
        if (gr->elements < 2 || strcmp(gr->element[1]->str, group) != 0)
            continue;
        long long lag = -1, pending = -1;
        for (size_t k = 0; k + 1 < gr->elements; k += 2) {
            const redisReply *v = gr->element[k + 1];
            if (strcmp(gr->element[k]->str, "lag") == 0 && v->type == REDIS_REPLY_INTEGER)
                lag = v->integer;
            else if (strcmp(gr->element[k]->str, "pending") == 0)
                pending = v->integer;
        }
        done = lag == 0 && pending == 0;
    }
    freeReplyObject(r);
    return done;
}

/* User + system CPU seconds of a reaped child (wait4's rusage). */
static inline double
bench_rusage_s(const struct rusage *ru)
{
    return (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec / 1e6 +
           (double)ru->ru_stime.tv_sec + (double)ru->ru_stime.tv_usec / 1e6;
}

static inline int
bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of v[0..n) (sorts v). */
static inline double
bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
    return v[n / 2];
}

#endif

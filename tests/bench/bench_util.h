/* Helpers shared by the benchmark servers: the message every server writes, CPU and wall clocks,
 * and the strict numeric argument parsing their command lines use. Header-only so each benchmark
 * stays one executable with no library of its own. */
#ifndef ASTRO_BENCH_UTIL_H
#define ASTRO_BENCH_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Fills buf[0..size) with a JSON text of exactly size bytes (size >= 64) carrying seq, so every
 * server writes byte-for-byte the same messages. */
static inline void
bench_message(char *buf, size_t size, unsigned long seq)
{
    int head = snprintf(buf, size, "{\"type\":\"event\",\"seq\":%lu,\"pad\":\"", seq);
    memset(buf + head, 'x', size - (size_t)head - 2);
    buf[size - 2] = '"';
    buf[size - 1] = '}';
}

static inline double
bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* User + system CPU seconds of the whole process, all threads. */
static inline double
bench_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Parses a whole decimal argument in [min, max]; exits 2 with the argument's name otherwise. */
static inline unsigned long
bench_arg(const char *name, const char *s, unsigned long min, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "bad %s: %s (want %lu..%lu)\n", name, s, min, max);
        exit(2);
    }
    return v;
}

#endif

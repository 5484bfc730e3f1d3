/* In-memory matcher throughput: events/s through one partition's matcher on one core with the
 * two default rules over 10k keys, against a baseline measured in the same run: the same intake
 * (lateness check, duplicate check, reorder buffer, release) with a rule that matches nothing.
 * Medians of BENCH_RUNS (default 5) runs.
 *
 * usage: bench_leaflet_matcher RULES_FILE [EVENTS (default 2000000)] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "matcher.h"

#define RING 65536
#define NKEYS 10000

static struct astro_event ring[RING];
static char keys[NKEYS][16];
static uint64_t matches;

static void
on_match(void *arg, size_t rule, const struct astro_event *ev)
{
    (void)arg, (void)rule, (void)ev;
    matches++;
}

static void
on_late(void *arg, const struct astro_event *ev, struct cep_sid sid, int64_t wm)
{
    (void)arg, (void)ev, (void)sid, (void)wm;
}

static void
make_ring(void)
{
    static const char *types[] = {"A", "B", "C", "D"};
    unsigned seed = 1;
    for (int k = 0; k < NKEYS; k++)
        snprintf(keys[k], sizeof(keys[k]), "user_%d", k);
    for (int i = 0; i < RING; i++) {
        seed = seed * 1103515245u + 12345u;
        struct astro_event *ev = &ring[i];
        snprintf(ev->id, sizeof(ev->id), "%08x-bench-%d", seed, i);
        ev->key = keys[(seed >> 8) % NKEYS];
        ev->type = (char *)types[(seed >> 4) % 4];
        ev->src = (char *)((seed >> 20) % 2 ? "axon_1" : "axon_2");
        ev->value = (double)(seed % 100);
    }
}

/* Events/s of n pushes; timestamps advance 50 µs per event with a little disorder. *cpu gets
 * the rate over the process's CPU time (the machine is shared: wall time includes waiting for a
 * core, CPU time is the cost on one core). */
static double
run(const struct cep_ruleset *rs, long n, double *cpu)
{
    struct cep_sink sink = {on_match, on_late, NULL};
    struct cep_matcher_opts opt = {.lateness_us = 100000};
    struct cep_matcher *m = cep_matcher_new(rs, &opt, &sink);
    if (m == NULL)
        exit(1);
    double t0 = bench_now_s(), c0 = bench_cpu_s();
    for (long i = 0; i < n; i++) {
        struct astro_event *ev = &ring[i % RING];
        ev->ts_us = 1700000000000000LL + i * 50 - (i % 7) * 300;
        struct cep_sid sid = {(uint64_t)i + 1, 0};
        if (cep_matcher_push(m, ev, sid) != ASTRO_OK)
            exit(1);
    }
    double dt = bench_now_s() - t0;
    *cpu = (double)n / (bench_cpu_s() - c0);
    cep_matcher_free(m);
    return (double)n / dt;
}

static int
cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    struct cep_ruleset rules, none;
    char err[256];
    const char *none_text = "rule none\n all NOTHING\n within 2s\n";
    if (argc < 2 || cep_rules_load(argv[1], &rules, err, sizeof(err)) != ASTRO_OK ||
        cep_rules_parse(none_text, strlen(none_text), &none, err, sizeof(err)) != ASTRO_OK) {
        fprintf(stderr, "usage: %s RULES_FILE [EVENTS]  (%s)\n", argv[0], argc < 2 ? "" : err);
        return 2;
    }
    long n = argc > 2 ? atol(argv[2]) : 2000000;
    int runs = getenv("BENCH_RUNS") ? atoi(getenv("BENCH_RUNS")) : 5;
    if (runs < 1 || runs > 50 || n < 1)
        return 2;
    make_ring();
    double base[50], rules_eps[50], base_cpu[50], rules_cpu[50];
    for (int r = 0; r < runs; r++) {
        base[r] = run(&none, n, &base_cpu[r]);
        matches = 0;
        rules_eps[r] = run(&rules, n, &rules_cpu[r]);
        fprintf(stderr, "run %d: intake %.0f (cpu %.0f), rules %.0f (cpu %.0f) events/s, ratio "
                "%.2f\n", r, base[r], base_cpu[r], rules_eps[r], rules_cpu[r],
                rules_eps[r] / base[r]);
    }
    qsort(base, (size_t)runs, sizeof(double), cmpd);
    qsort(rules_eps, (size_t)runs, sizeof(double), cmpd);
    qsort(base_cpu, (size_t)runs, sizeof(double), cmpd);
    qsort(rules_cpu, (size_t)runs, sizeof(double), cmpd);
    double b = base[runs / 2], v = rules_eps[runs / 2];
    printf("matcher: %ld events, %d keys, %d runs (median; wall clock, and per CPU second)\n", n,
           NKEYS, runs);
    printf("  intake only (rule matching nothing): %.0f events/s  (cpu %.0f)\n", b,
           base_cpu[runs / 2]);
    printf("  default rules:                       %.0f events/s  (cpu %.0f; %.2f of intake; "
           "%llu matches in the last run)\n", v, rules_cpu[runs / 2], v / b,
           (unsigned long long)matches);
    return 0;
}

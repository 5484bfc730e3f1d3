/* Draining a backlog: BENCH_EVENTS (default 1,000,000) events over P partitions in a private
 * redis-server, drained by one astro-leaflet worker with the default rules, against a bare
 * reader in the same run (XREADGROUP COUNT 500 over all partitions + one XACK per partition
 * per round, nothing else). Prints events/s of both and the ratio, medians of BENCH_RUNS (3).
 *
 * usage: bench_leaflet_drain ASTRO_LEAFLET_BIN RULES_FILE */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "astro/partition.h"
#include "bench_leaflet.h"
#include "bench_util.h"
#include "servers.h"

#define P 16

static redisContext *rc;
static char streams[P][32];

static void
load(long n)
{
    static const char *types[] = {"A", "B", "C", "D"};
    unsigned seed = 3;
    long long ts = 1700000000000000LL;
    for (long i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        char key[16], id[24], tsb[24], val[8];
        snprintf(key, sizeof(key), "user_%u", (seed >> 8) % 10000);
        snprintf(id, sizeof(id), "b-%ld", i);
        ts += 50 + (seed % 7) * 10;
        snprintf(tsb, sizeof(tsb), "%lld", ts);
        snprintf(val, sizeof(val), "%u", seed % 100);
        uint32_t p = astro_partition_of(key, strlen(key), P);
        redisAppendCommand(rc, "XADD %s * id %s ts %s src axon_1 key %s type %s val %s",
                           streams[p], id, tsb, key, types[(seed >> 4) % 4], val);
        if (i % 1000 == 999 || i == n - 1)
            for (long k = i - i % 1000; k <= i; k++) {
                redisReply *r;
                if (redisGetReply(rc, (void **)&r) != REDIS_OK)
                    exit(1);
                freeReplyObject(r);
            }
    }
}

/* Redis's CPU seconds so far (user + sys, from INFO cpu). */
static double
redis_cpu_s(void)
{
    redisReply *r = redisCommand(rc, "INFO cpu");
    double u = 0, s = 0;
    const char *p;
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        if ((p = strstr(r->str, "used_cpu_user:")) != NULL)
            u = atof(p + 14);
        if ((p = strstr(r->str, "used_cpu_sys:")) != NULL)
            s = atof(p + 13);
    }
    freeReplyObject(r);
    return u + s;
}

/* CPU seconds of the last phase: the reader (bare: this process; leaflet: the worker) and
 * Redis. On a shared machine the wall clock includes waiting for a core; these do not. */
static double cpu_client, cpu_redis;
static long long outputs; /* multi events the last leaflet run wrote */

/* The bare reader with a fresh group; returns events/s. */
static double
bare(int run, long n)
{
    char group[32];
    snprintf(group, sizeof(group), "bare%d", run);
    for (int p = 0; p < P; p++)
        bench_must(rc, redisCommand(rc, "XGROUP CREATE %s %s 0", streams[p], group));
    const char *argv[7 + 2 * P] = {"XREADGROUP", "GROUP", group, "c", "COUNT", "500"};
    int argc = 6;
    argv[argc++] = "STREAMS";
    for (int p = 0; p < P; p++)
        argv[argc++] = streams[p];
    for (int p = 0; p < P; p++)
        argv[argc++] = ">";
    long got = 0;
    double t0 = bench_now_s(), c0 = bench_cpu_s(), r0 = redis_cpu_s();
    for (;;) {
        redisReply *r = redisCommandArgv(rc, argc, argv, NULL);
        if (r == NULL)
            exit(1);
        if (r->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            break;
        }
        for (size_t s = 0; s < r->elements; s++) {
            const redisReply *e = r->element[s]->element[1];
            const char **ack = malloc((3 + e->elements) * sizeof(*ack));
            ack[0] = "XACK";
            ack[1] = r->element[s]->element[0]->str;
            ack[2] = group;
            for (size_t i = 0; i < e->elements; i++)
                ack[3 + i] = e->element[i]->element[0]->str;
            bench_must(rc, redisCommandArgv(rc, (int)(3 + e->elements), ack, NULL));
            free(ack);
            got += (long)e->elements;
        }
        freeReplyObject(r);
    }
    double dt = bench_now_s() - t0;
    cpu_client = bench_cpu_s() - c0;
    cpu_redis = redis_cpu_s() - r0;
    if (got != n)
        fprintf(stderr, "bare reader: read %ld of %ld\n", got, n);
    return (double)n / dt;
}

static bool
leaflet_done(void)
{
    for (int p = 0; p < P; p++)
        if (!bench_group_done(rc, streams[p], "leaflet"))
            return false;
    return true;
}

static double
leaflet(const char *bin, const char *rules, const char *url, long n)
{
    bench_must(rc, redisCommand(rc, "DEL astro:late astro:leaflet:workers"));
    for (int p = 0; p < P; p++) {
        freeReplyObject(redisCommand(rc, "XGROUP DESTROY %s leaflet", streams[p]));
        bench_must(rc, redisCommand(rc, "DEL astro:multi:{%d} astro:leaflet:ckpt:{%d} "
                                        "astro:rebuild:{%d} astro:lease:{%d}", p, p, p, p));
    }
    double t0 = bench_now_s(), r0 = redis_cpu_s();
    pid_t pid = bench_leaflet_spawn(bin, rules, url, NULL);
    while (!leaflet_done()) {
        usleep(20000);
        if (bench_now_s() - t0 > 600) {
            fprintf(stderr, "leaflet did not drain within 600 s\n");
            break;
        }
    }
    double dt = bench_now_s() - t0;
    cpu_redis = redis_cpu_s() - r0;
    outputs = 0;
    for (int p = 0; p < P; p++) {
        redisReply *r = redisCommand(rc, "XLEN astro:multi:{%d}", p);
        outputs += r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        freeReplyObject(r);
    }
    kill(pid, SIGTERM);
    struct rusage ru;
    wait4(pid, NULL, 0, &ru);
    cpu_client = bench_rusage_s(&ru);
    return (double)n / dt;
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ASTRO_LEAFLET_BIN RULES_FILE\n", argv[0]);
        return 2;
    }
    long n = getenv("BENCH_EVENTS") ? atol(getenv("BENCH_EVENTS")) : 1000000;
    int runs = getenv("BENCH_RUNS") ? atoi(getenv("BENCH_RUNS")) : 3;
    if (n < 1 || runs < 1 || runs > 20)
        return 2;
    struct harness_server *srv = harness_redis_start(NULL);
    if (srv == NULL)
        return 1;
    rc = redisConnect("127.0.0.1", harness_server_port(srv));
    for (int p = 0; p < P; p++)
        (void)!astro_stream_key(streams[p], sizeof(streams[p]), "mono", (uint32_t)p);
    double t0 = bench_now_s();
    load(n);
    fprintf(stderr, "loaded %ld events over %d partitions in %.1f s\n", n, P, bench_now_s() - t0);
    /* BENCH_LEAFLET_OTHER: a second astro-leaflet binary (e.g. the previous version) drained
     * in the same runs, for an A/B under the same load */
    const char *other = getenv("BENCH_LEAFLET_OTHER");
    double b[20], l[20], o[20];
    for (int r = 0; r < runs; r++) {
        b[r] = bare(r, n);
        fprintf(stderr, "run %d: bare %.0f events/s (cpu: reader %.1f s, redis %.1f s)\n", r,
                b[r], cpu_client, cpu_redis);
        l[r] = leaflet(argv[1], argv[2], harness_server_url(srv), n);
        fprintf(stderr, "run %d: leaflet %.0f events/s, ratio %.2f (cpu: worker %.1f s, redis "
                "%.1f s; %lld outputs)\n", r, l[r], l[r] / b[r], cpu_client, cpu_redis, outputs);
        if (other != NULL) {
            o[r] = leaflet(other, argv[2], harness_server_url(srv), n);
            fprintf(stderr, "run %d: other %.0f events/s, ratio %.2f (cpu: worker %.1f s, "
                    "redis %.1f s; %lld outputs)\n", r, o[r], o[r] / b[r], cpu_client,
                    cpu_redis, outputs);
        }
    }

    double bm = bench_median(b, runs), lm = bench_median(l, runs);
    printf("drain: %ld events, %d partitions, %d runs (median)\n", n, P, runs);
    printf("  bare XREADGROUP COUNT 500 + XACK: %.0f events/s\n", bm);
    printf("  astro-leaflet, default rules:      %.0f events/s  (ratio %.2f)\n", lm, lm / bm);
    if (other != NULL) {
        double om = bench_median(o, runs);
        printf("  other astro-leaflet (%s): %.0f events/s  (ratio %.2f)\n", other, om, om / bm);
    }
    redisFree(rc);
    harness_server_free(srv);
    return 0;
}

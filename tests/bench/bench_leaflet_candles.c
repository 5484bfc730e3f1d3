/* The CPU cost of candles (issue 9) in the real worker: trades over 10,000 keys are XADDed at a
 * steady rate (BENCH_RATE events/s, default 10,000, for BENCH_SECONDS, default 15) into 16
 * partitions of a private redis-server while one astro-leaflet worker consumes them, once with
 * the default rules only, their candle statements removed (the baseline: trades match no rule),
 * and once with those rules plus `candles trade timeframes 1m 5m 15m 1h 4h 1d` and the default
 * indicators. The event time runs
 * BENCH_SPEEDUP (default 8) times faster than the wall clock, so 1m and 5m candles close during
 * the run. Reported: the worker's CPU seconds (user + system, from wait4) per event, medians of
 * BENCH_RUNS (default 3) runs of each, alternating, and their ratio.
 *
 * usage: bench_leaflet_candles ASTRO_LEAFLET_BIN DEFAULT_RULES_FILE */
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
#define NKEYS 10000

static redisContext *rc;
static char streams[P][32];

static void
reset(void)
{
    bench_must(rc, redisCommand(rc, "FLUSHALL"));
}

/* Appends event i (pipelined; the caller reads the replies). */
static void
append_trade(long i, long long ts, unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    unsigned x = *seed >> 8;
    char key[16], id[24], tsb[24], val[24], meta[40];
    unsigned k = x % NKEYS;
    snprintf(key, sizeof(key), "SYM%u", k);
    snprintf(id, sizeof(id), "c-%ld", i);
    snprintf(tsb, sizeof(tsb), "%lld", ts);
    snprintf(val, sizeof(val), "%u.%02u", 100 + k % 50, (x >> 14) % 100);
    snprintf(meta, sizeof(meta), "{\"volume\":%u}", 1 + (x >> 20) % 100);
    uint32_t p = astro_partition_of(key, strlen(key), P);
    redisAppendCommand(rc, "XADD %s * id %s ts %s src exchange key %s type trade val %s meta %s",
                       streams[p], id, tsb, key, val, meta);
}

/* Feeds rate events/s for seconds, in 10 ms ticks; returns the events sent. */
static long
feed(long rate, long seconds, long speedup)
{
    unsigned seed = 5;
    long per_tick = rate / 100, n = 0, total = rate * seconds;
    long long ts = 1700000000000000LL, step = 1000000LL * speedup / rate;
    double t0 = bench_now_s();
    for (long tick = 0; n < total; tick++) {
        for (long j = 0; j < per_tick && n < total; j++, n++, ts += step)
            append_trade(n, ts, &seed);
        for (long j = 0; j < per_tick; j++) {
            redisReply *r;
            if (redisGetReply(rc, (void **)&r) != REDIS_OK)
                exit(1);
            freeReplyObject(r);
        }
        double wait = t0 + (double)(tick + 1) / 100.0 - bench_now_s();
        if (wait > 0)
            usleep((useconds_t)(wait * 1e6));
    }
    return n;
}

static bool
drained(void)
{
    for (int p = 0; p < P; p++)
        if (!bench_group_done(rc, streams[p], "leaflet"))
            return false;
    return true;
}

/* One run: CPU µs of the worker per event; *candles gets the entries of astro:agg. */
static double
run(const char *bin, const char *rules, const char *url, long *candles)
{
    reset();
    fprintf(stderr, "%.3f start %s\n", bench_now_s(), rules);
    pid_t pid = bench_leaflet_spawn(bin, rules, url, getenv("BENCH_LOG"));
    usleep(300000); /* the worker takes its leases and creates the groups */
    long n = feed(getenv("BENCH_RATE") ? atol(getenv("BENCH_RATE")) : 10000,
                  getenv("BENCH_SECONDS") ? atol(getenv("BENCH_SECONDS")) : 15,
                  getenv("BENCH_SPEEDUP") ? atol(getenv("BENCH_SPEEDUP")) : 8);
    double t0 = bench_now_s();
    fprintf(stderr, "%.3f fed %ld\n", t0, n);
    while (!drained() && bench_now_s() - t0 < 120)
        usleep(20000);
    kill(pid, SIGTERM);
    struct rusage ru;
    int st;
    if (wait4(pid, &st, 0, &ru) != pid)
        exit(1);
    *candles = 0;
    for (int p = 0; p < P; p++) {
        redisReply *r = redisCommand(rc, "XLEN astro:agg:{%d}", p);
        *candles += r && r->type == REDIS_REPLY_INTEGER ? (long)r->integer : 0;
        freeReplyObject(r);
    }
    return bench_rusage_s(&ru) * 1e6 / (double)n;
}

/* The two rules files: the default rules without their aggregate statements (the baseline),
 * and those rules plus the candle statements. */
static void
write_rules(const char *base, const char *plain, const char *candles)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd),
             "grep -v -E '^[[:space:]]*(candles|indicators)[[:space:]]' '%s' > '%s' && "
             "cp '%s' '%s' && printf 'candles trade timeframes 1m 5m 15m 1h 4h 1d volume "
             "volume\\nindicators sma 20 ema 20 rsi 14 macd 12 26 9 bollinger 20 2\\n' >> '%s'",
             base, plain, plain, candles, candles);
    if (system(cmd) != 0)
        exit(1);
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ASTRO_LEAFLET_BIN DEFAULT_RULES_FILE\n", argv[0]);
        return 2;
    }
    int runs = getenv("BENCH_RUNS") ? atoi(getenv("BENCH_RUNS")) : 3;
    if (runs < 1 || runs > 20)
        return 2;
    char plain_rules[64], candle_rules[64];
    snprintf(plain_rules, sizeof(plain_rules), "/tmp/bench-plain-%d.rules", (int)getpid());
    snprintf(candle_rules, sizeof(candle_rules), "/tmp/bench-candles-%d.rules", (int)getpid());
    write_rules(argv[2], plain_rules, candle_rules);
    struct harness_server *srv = harness_redis_start(NULL);
    if (srv == NULL)
        return 1;
    rc = redisConnect("127.0.0.1", harness_server_port(srv));
    for (int p = 0; p < P; p++)
        (void)!astro_stream_key(streams[p], sizeof(streams[p]), "mono", (uint32_t)p);
    double b[20], c[20];
    long nb = 0, nc = 0;
    for (int r = 0; r < runs; r++) {
        b[r] = run(argv[1], plain_rules, harness_server_url(srv), &nb);
        c[r] = run(argv[1], candle_rules, harness_server_url(srv), &nc);
        fprintf(stderr, "run %d: rules only %.2f µs CPU/event, with candles %.2f (%ld candles)\n",
                r, b[r], c[r], nc);
    }

    double bm = bench_median(b, runs), cm = bench_median(c, runs);
    printf("candles: 10000 keys x 6 timeframes, worker CPU per event, %d runs (median)\n", runs);
    printf("  default rules only:            %.2f µs/event\n", bm);
    printf("  + candles and 9 indicators:    %.2f µs/event  (ratio %.2f, %ld candles written)\n",
           cm, cm / bm, nc);
    unlink(plain_rules);
    unlink(candle_rules);
    redisFree(rc);
    harness_server_free(srv);
    return 0;
}

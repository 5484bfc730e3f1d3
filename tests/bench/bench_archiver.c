/* astro-archiver benchmarks (issue 4), against private redis-server + postgres (harness):
 *  (a) a backlog of N mono events (default 1,000,000) archived by astro-archiver: rows/s, as a
 *      ratio to `psql \copy` of the same rows into the same schema, measured in the same run;
 *      medians of R runs (default 3), each on fresh databases.
 *  (b) archive lag at a steady rate (default 20,000 events/s for 10 s): per row, the time from
 *      the event's XADD (its ts) to the start of the transaction that archived it
 *      (ingested_at), p50 / p99 / max.
 * usage: bench_archiver [N [R [RATE [SECONDS]]]]   prints Markdown rows.
 * env: BENCH_ARCHIVERS=n archiver processes for (a) (default 1), BENCH_BATCH (ASTRO_BATCH_SIZE),
 *      BENCH_WRITERS (ASTRO_WRITERS), BENCH_LOG (their ASTRO_LOG_LEVEL). */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "astro/event.h"
#include "astro/partition.h"
#include "astro/time.h"
#include "servers.h"

#define P 16

static struct harness_server *redis_srv, *pg_srv;
static redisContext *rc;

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what)
{
    fprintf(stderr, "bench_archiver: %s\n", what);
    harness_server_free(redis_srv);
    harness_server_free(pg_srv);
    exit(1);
}

static int
run_wait(const char *const *argv, const char *db_url)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (db_url != NULL)
            setenv("ASTRO_DATABASE_URL", db_url, 1);
        setenv("ASTRO_LOG_LEVEL", "warn", 1);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
sql(const char *url, const char *q)
{
    PGconn *c = PQconnectdb(url);
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
        die(PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static double
sql_num(const char *url, const char *q)
{
    PGconn *c = PQconnectdb(url);
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        die(PQerrorMessage(c));
    double v = atof(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

/* A fresh, migrated database with today's partitions. */
static void
fresh_db(const char *name, char *url, size_t len)
{
    if (harness_pg_create_db(pg_srv, name, url, len) != 0)
        die("create db");
    const char *argv[] = {ARC_BENCH_ADMIN, "migrate", NULL};
    if (run_wait(argv, url) != 0)
        die("migrate");
    sql(url, "SELECT astro_ensure_day_partitions('mono_events',"
             " (now() AT TIME ZONE 'UTC')::date - 1, 5)");
}

static void
make_event(struct astro_event *ev, long i, int64_t ts, char *key, char *src)
{
    snprintf(key, 32, "user_%ld", i % 1000);
    snprintf(src, 16, "axon_%ld", i % 4);
    memset(ev, 0, sizeof(*ev));
    snprintf(ev->id, sizeof(ev->id), "bench-%ld", i);
    ev->ts_us = ts;
    ev->src = src;
    ev->key = key;
    ev->type = (i % 2) ? "A" : "B";
    ev->value = (double)i * 0.25;
    ev->meta_json = "{\"ch\":[1,2,3],\"fw\":\"1.2.3\"}";
}

/* XADDs events [from, from+n) pipelined; ts = base_us + i (µs) or now when base_us is 0. */
static void
produce(long from, long n, int64_t base_us)
{
    for (long i = from; i < from + n; i++) {
        struct astro_event ev;
        char key[32], src[16], sk[32];
        make_event(&ev, i, base_us ? base_us + i : astro_now_us(), key, src);
        struct astro_stream_fields f;
        astro_stream_fields_init(&f);
        if (astro_stream_key(sk, sizeof(sk), "mono", astro_partition_of(key, strlen(key), P)) !=
                ASTRO_OK ||
            astro_stream_fields_push(&f, "XADD", 4) != ASTRO_OK ||
            astro_stream_fields_push(&f, sk, strlen(sk)) != ASTRO_OK ||
            astro_stream_fields_push(&f, "*", 1) != ASTRO_OK ||
            astro_event_stream_encode(&ev, &f) != ASTRO_OK)
            die("encode");
        redisAppendCommandArgv(rc, f.argc, f.argv, f.argvlen);
        astro_stream_fields_cleanup(&f);
        if ((i - from) % 1000 == 999 || i == from + n - 1) {
            long k = (i - from) % 1000 + 1;
            for (long j = 0; j < k; j++) {
                redisReply *r;
                if (redisGetReply(rc, (void **)&r) != REDIS_OK || r->type != REDIS_REPLY_STRING)
                    die("XADD");
                freeReplyObject(r);
            }
        }
    }
}

/* The same rows as COPY text for mono_events, written to path. */
static void
write_copy_file(const char *path, long n, int64_t base_us)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        die("copy file");
    for (long i = 0; i < n; i++) {
        struct astro_event ev;
        char key[32], src[16], ts[40], val[ASTRO_EVENT_DOUBLE_BUF];
        make_event(&ev, i, base_us + i, key, src);
        if (astro_time_format(ev.ts_us, ts, sizeof(ts)) != ASTRO_OK)
            die("time");
        astro_event_format_double(ev.value, val);
        fprintf(f, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%ld-0\n", ev.id, ts, ev.src, ev.key, ev.type,
                val, ev.meta_json, i);
    }
    fclose(f);
}

static long long
unarchived(void)
{
    long long n = 0;
    for (int p = 0; p < P; p++) {
        redisReply *r = redisCommand(rc, "XINFO GROUPS astro:mono:{%d}", p);
        for (size_t g = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && g < r->elements; g++) {
            redisReply *m = r->element[g];
            for (size_t k = 0; k + 1 < m->elements; k += 2)
                if ((!strcmp(m->element[k]->str, "lag") || !strcmp(m->element[k]->str, "pending")) &&
                    m->element[k + 1]->type == REDIS_REPLY_INTEGER)
                    n += m->element[k + 1]->integer;
                else if (!strcmp(m->element[k]->str, "lag"))
                    n += 1000000000; /* unknown */
        }
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements == 0)
            n += 1000000000; /* group not there yet */
        freeReplyObject(r);
    }
    return n;
}

static pid_t
start_archiver(const char *db_url)
{
    pid_t pid = fork();
    if (pid == 0) {
        char p[8];
        snprintf(p, sizeof(p), "%d", P);
        setenv("ASTRO_REDIS_URL", harness_server_url(redis_srv), 1);
        setenv("ASTRO_DATABASE_URL", db_url, 1);
        setenv("ASTRO_PARTITIONS", p, 1);
        setenv("ASTRO_HTTP_PORT", "0", 1);
        setenv("ASTRO_HTTP_BIND", "127.0.0.1", 1);
        setenv("ASTRO_HTTP_THREADS", "1", 1);
        if (getenv("BENCH_BATCH") != NULL)
            setenv("ASTRO_BATCH_SIZE", getenv("BENCH_BATCH"), 1);
        if (getenv("BENCH_WRITERS") != NULL)
            setenv("ASTRO_WRITERS", getenv("BENCH_WRITERS"), 1);
        setenv("ASTRO_LOG_LEVEL", getenv("BENCH_LOG") ? getenv("BENCH_LOG") : "warn", 1);
        execl(ARC_BENCH_ARCHIVER, "astro-archiver", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* CPU seconds (user + system) the process has used so far. */
static double
cpu_of(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (p != NULL)
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void
stop_archiver(pid_t pid)
{
    fprintf(stderr, "archiver cpu: %.2f s\n", cpu_of(pid));
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static double
archive_backlog(long n, int run)
{
    char url[256], name[32];
    snprintf(name, sizeof(name), "arc_%d", run);
    fresh_db(name, url, sizeof(url));
    redisReply *r = redisCommand(rc, "FLUSHALL");
    freeReplyObject(r);
    produce(0, n, astro_now_us() - 600 * INT64_C(1000000));
    /* BENCH_ARCHIVERS processes share the group (default 1). */
    int procs = getenv("BENCH_ARCHIVERS") ? atoi(getenv("BENCH_ARCHIVERS")) : 1;
    pid_t pids[8];
    procs = procs < 1 ? 1 : procs > 8 ? 8 : procs;
    double t0 = now_s();
    for (int i = 0; i < procs; i++)
        pids[i] = start_archiver(url);
    while (unarchived() > 0 && now_s() - t0 < 600)
        usleep(50000);
    double dt = now_s() - t0;
    for (int i = 0; i < procs; i++)
        stop_archiver(pids[i]);
    if ((long)sql_num(url, "SELECT count(*) FROM mono_events") != n)
        die("archiver: row count differs");
    return (double)n / dt;
}

static double
psql_copy(long n, int run, const char *file)
{
    char url[256], name[32], cmd[1024];
    snprintf(name, sizeof(name), "copy_%d", run);
    fresh_db(name, url, sizeof(url));
    snprintf(cmd, sizeof(cmd),
             "psql -q -v ON_ERROR_STOP=1 '%s' -c \"\\copy mono_events (event_id, ts,"
             " source_stream, key, event_type, value, metadata, stream_entry_id) FROM '%s'\"",
             url, file);
    double t0 = now_s();
    if (system(cmd) != 0)
        die("psql \\copy failed");
    double dt = now_s() - t0;
    if ((long)sql_num(url, "SELECT count(*) FROM mono_events") != n)
        die("psql: row count differs");
    return (double)n / dt;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void
steady_lag(int rate, int seconds)
{
    char url[256];
    fresh_db("arc_steady", url, sizeof(url));
    redisReply *r = redisCommand(rc, "FLUSHALL");
    freeReplyObject(r);
    pid_t pid = start_archiver(url);
    sleep(1);
    long per_tick = rate / 20, sent = 0;
    double t0 = now_s();
    for (int tick = 0; tick < seconds * 20; tick++) {
        produce(sent, per_tick, 0);
        sent += per_tick;
        double next = t0 + (tick + 1) * 0.05, w = next - now_s();
        if (w > 0)
            usleep((useconds_t)(w * 1e6));
    }
    double achieved = (double)sent / (now_s() - t0);
    while (unarchived() > 0 && now_s() - t0 < 300)
        usleep(50000);
    stop_archiver(pid);
#define LAG_Q(pct)                                                                              \
    "SELECT percentile_cont(" pct ") WITHIN GROUP (ORDER BY"                                    \
    " extract(epoch FROM ingested_at - ts) * 1000) FROM mono_events"
    double p50 = sql_num(url, LAG_Q("0.5"));
    double p99 = sql_num(url, LAG_Q("0.99"));
    double mx = sql_num(url, "SELECT max(extract(epoch FROM ingested_at - ts) * 1000)"
                             " FROM mono_events");
    printf("| steady load: %ld events at %.0f events/s (asked %d) | lag p50 %.0f ms | p99 %.0f ms"
           " | max %.0f ms |\n", sent, achieved, rate, p50, p99, mx);
}

int
main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    int rate = argc > 3 ? atoi(argv[3]) : 20000;
    int seconds = argc > 4 ? atoi(argv[4]) : 10;
    redis_srv = harness_redis_start(NULL);
    pg_srv = harness_pg_start();
    if (redis_srv == NULL || pg_srv == NULL)
        die("servers did not start");
    rc = redisConnect("127.0.0.1", harness_server_port(redis_srv));
    if (rc == NULL || rc->err)
        die("redis connect");
    char file[] = "/tmp/bench_archiver_XXXXXX";
    int fd = mkstemp(file);
    if (fd < 0)
        die("mkstemp");
    close(fd);
    write_copy_file(file, n, astro_now_us() - 600 * INT64_C(1000000));
    double arc[16], cp[16], ratio[16];
    runs = runs < 1 ? 1 : runs > 16 ? 16 : runs;
    for (int i = 0; i < runs; i++) {
        cp[i] = psql_copy(n, i, file);
        arc[i] = archive_backlog(n, i);
        ratio[i] = arc[i] / cp[i];
        fprintf(stderr, "run %d: psql \\copy %.0f rows/s, archiver %.0f rows/s, ratio %.2f\n",
                i + 1, cp[i], arc[i], ratio[i]);
    }
    unlink(file);
    qsort(arc, (size_t)runs, sizeof(double), cmp_double);
    qsort(cp, (size_t)runs, sizeof(double), cmp_double);
    qsort(ratio, (size_t)runs, sizeof(double), cmp_double);
    printf("| backlog of %ld events, median of %d runs | archiver %.0f rows/s | psql \\copy %.0f"
           " rows/s | ratio %.2f (runs %.2f..%.2f) |\n",
           n, runs, arc[runs / 2], cp[runs / 2], ratio[runs / 2], ratio[0], ratio[runs - 1]);
    if (rate > 0 && seconds > 0)
        steady_lag(rate, seconds);
    redisFree(rc);
    harness_server_free(redis_srv);
    harness_server_free(pg_srv);
    return 0;
}

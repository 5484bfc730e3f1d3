/* astro-query benchmark (issue 6): wrk against the real daemon for a filtered /events/mono page,
 * a by-id lookup and /events/stats, each as a ratio to pgbench running the same SQL (prepared,
 * same client count) against the same PostgreSQL in the same run. Medians of QRY_BENCH_RUNS
 * (default 3) runs of QRY_BENCH_SECS (default 5) seconds each. Rows: QRY_BENCH_ROWS (default
 * 10,000,000, spread over the last 24 h), generated inside PostgreSQL into the day partitions
 * astro_ensure_day_partitions() creates, loaded once per invocation. QRY_BENCH_THREADS:
 * astro-query workers (default 8). Needs wrk and pgbench (PATH or /usr/lib/postgresql/15/bin).
 *
 * p99: wrk adds, for each response slower than twice the mean interval between a
 * connection's requests, the samples a constant-rate client would have seen queued behind it
 * (coordinated-omission correction); pgbench's per-transaction log has no such correction, so
 * one 1 s stall weighs ~2500 samples in wrk's p99 and 1 in pgbench's. The table reports
 * pgbench's p99 both raw and corrected the way wrk corrects, and the ratio uses the latter.
 *
 * Each scenario starts with one unmeasured QRY_BENCH_WARMUP-second (default 2) pass of wrk and
 * of pgbench: the first requests of a fresh server read index and heap pages from disk and build
 * the sessions' caches, which is start-up, not the steady state the runs measure. The header
 * prints kernel.sched_autogroup_enabled: with it on, every PostgreSQL backend (its own session:
 * PostgreSQL calls setsid() in each child) is a scheduling group of its own, and on this 2-core
 * machine backends were seen runnable but unscheduled for up to 5 s (docs/benchmarks.md). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "astro/apikey.h"
#include "astro/pg.h"
#include "astro/redis.h"
#include "astro/time.h"
#include "servers.h"
#include "wsraw.h"

#define KEY "bench-reader-key-0123456789"
#define CLIENTS 8
#define PGBENCH "/usr/lib/postgresql/15/bin/pgbench"
#define BENCH_DAY_US (INT64_C(86400) * 1000000)

struct result {
    double rps, p99_ms, p99_raw_ms; /* p99_ms corrected as wrk does; raw: pgbench only */
};

static char db_url[512];

static void
sql(const char *q)
{
    char err[512];
    struct astro_pg *pg = astro_pg_connect(db_url, NULL, err, sizeof(err));
    if (pg == NULL || astro_pg_exec_ok(pg, q, err, sizeof(err)) != ASTRO_OK) {
        fprintf(stderr, "sql: %s\n", err);
        exit(1);
    }
    astro_pg_free(pg);
}

static int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        exit(1);
    close(fd);
    return ntohs(a.sin_port);
}

static double
to_ms(double v, const char *unit)
{
    if (strcmp(unit, "us") == 0)
        return v / 1000.0;
    if (strcmp(unit, "s") == 0)
        return v * 1000.0;
    return v;
}

static struct result
run_wrk(int port, const char *path, int secs)
{
    char cmd[1024], line[512];
    struct result r = {0, 0, 0};
    snprintf(cmd, sizeof(cmd),
             "wrk -t2 -c%d -d%ds --latency -H 'Authorization: Bearer " KEY "' "
             "'http://127.0.0.1:%d%s' 2>&1", CLIENTS, secs, port, path);
    FILE *f = popen(cmd, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        double v;
        char unit[8];
        if (sscanf(line, "Requests/sec: %lf", &v) == 1)
            r.rps = v;
        else if (sscanf(line, " 99%% %lf%7[a-z]", &v, unit) == 2)
            r.p99_ms = to_ms(v, unit);
        else if (strstr(line, "Non-2xx") != NULL)
            fprintf(stderr, "wrk: %s", line);
    }
    if (f != NULL)
        pclose(f);
    return r;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* wrk's coordinated-omission correction (wrk.c stats_correct) applied to raw latencies: each
 * sample l >= 2 * interval adds l - interval, l - 2 * interval, ... while above interval,
 * where interval = run time / (requests per connection). Returns the new count (*lat grown). */
static size_t
co_correct(double **lat, size_t n, size_t *cap, double interval)
{
    size_t total = n;
    for (size_t i = 0; i < n && interval > 0; i++) {
        for (double m = (*lat)[i] - interval; (*lat)[i] >= 2 * interval && m > interval;
             m -= interval) {
            if (total == *cap)
                *lat = realloc(*lat, (*cap *= 2) * sizeof(double));
            (*lat)[total++] = m;
        }
    }
    return total;
}

static double
p99_of(double *lat, size_t n)
{
    qsort(lat, n, sizeof(double), cmp_double);
    return n > 0 ? lat[(size_t)((double)n * 0.99)] : 0;
}

/* pgbench with the statement in a script file; p99 from the per-transaction log, raw and
 * corrected as wrk corrects its own. */
static struct result
run_pgbench(const char *statement, int secs)
{
    char dir[] = "/tmp/qrybench-XXXXXX", cmd[2048], path[600], line[512];
    struct result r = {0, 0, 0};
    if (mkdtemp(dir) == NULL)
        return r;
    snprintf(path, sizeof(path), "%s/q.sql", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "%s;\n", statement);
    fclose(f);
    snprintf(cmd, sizeof(cmd),
             "cd %s && %s -n -M prepared -c %d -j 2 -T %d -l --log-prefix=%s/log"
             " -f q.sql '%s' 2>&1", dir, PGBENCH, CLIENTS, secs, dir, db_url);
    f = popen(cmd, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        double v;
        if (sscanf(line, "tps = %lf", &v) == 1)
            r.rps = v;
    }
    if (f != NULL)
        pclose(f);
    size_t n = 0, cap = 1 << 16;
    double *lat = malloc(cap * sizeof(double));
    snprintf(cmd, sizeof(cmd), "cat %s/log.* 2>/dev/null", dir);
    f = popen(cmd, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        long long client, tx, us;
        if (sscanf(line, "%lld %lld %lld", &client, &tx, &us) == 3) {
            if (n == cap)
                lat = realloc(lat, (cap *= 2) * sizeof(double));
            lat[n++] = (double)us / 1000.0;
        }
    }
    if (f != NULL)
        pclose(f);
    if (n >= CLIENTS) {
        r.p99_raw_ms = p99_of(lat, n);
        double interval_ms = secs * 1000.0 / (double)(n / CLIENTS);
        r.p99_ms = p99_of(lat, co_correct(&lat, n, &cap, interval_ms));
    }
    free(lat);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return r;
}

static double
median3(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return v[n / 2];
}

static void
exec_on(struct astro_pg *pg, const char *q)
{
    char err[512];
    if (astro_pg_exec_ok(pg, q, err, sizeof(err)) != ASTRO_OK) {
        fprintf(stderr, "sql: %s\n", err);
        exit(1);
    }
}

/* A server sized for a 10M-row table (about 3 GB with its indexes) and a bulk load: the
 * harness defaults (128 MB of shared buffers, 1 GB of WAL between checkpoints) would turn
 * the load into checkpoints and the reads into page-cache copies. */
static void
tune_server(struct harness_server *ps)
{
    sql("ALTER SYSTEM SET shared_buffers = '512MB'");
    sql("ALTER SYSTEM SET max_wal_size = '8GB'");
    sql("ALTER SYSTEM SET checkpoint_timeout = '30min'");
    sql("ALTER SYSTEM SET maintenance_work_mem = '512MB'");
    if (harness_server_restart(ps) != 0)
        exit(1);
}

/* Fills one day partition [lo_us, lo_us + 1 day) with rows i of ts t0 + i * step: detached
 * and stripped of its indexes while the rows go in, so that re-attaching it builds each
 * index in one sorted pass (5 indexes maintained row by row took twice as long). */
static long
load_partition(struct astro_pg *pg, const char *name, const char *bound, int64_t lo_us,
               int64_t t0_us, int64_t step_us, long rows)
{
    char q[2048];
    int64_t first = lo_us <= t0_us ? 0 : (lo_us - t0_us + step_us - 1) / step_us;
    int64_t last = (lo_us + BENCH_DAY_US - t0_us + step_us - 1) / step_us - 1;
    last = last > rows - 1 ? rows - 1 : last;
    if (first > last)
        return 0;
    snprintf(q, sizeof(q), "ALTER TABLE mono_events DETACH PARTITION %s", name);
    exec_on(pg, q);
    snprintf(q, sizeof(q),
             "DO $$ DECLARE r record; BEGIN"
             " FOR r IN SELECT conname FROM pg_constraint WHERE conrelid = '%s'::regclass"
             " AND contype = 'p' LOOP EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %%I',"
             " r.conname); END LOOP;"
             " FOR r IN SELECT indexrelid::regclass AS i FROM pg_index WHERE indrelid ="
             " '%s'::regclass LOOP EXECUTE format('DROP INDEX %%s', r.i); END LOOP; END $$",
             name, name, name);
    exec_on(pg, q);
    snprintf(q, sizeof(q),
             "INSERT INTO %s (event_id, ts, source_stream, key, event_type, value, metadata)"
             " SELECT 'm' || i, 'epoch'::timestamptz + (%lld + i * %lld) * interval '1"
             " microsecond', 's' || (i %% 10), 'k' || (i %% 1000), 't' || (i %% 5), i,"
             " '{\"fw\":\"1.2.3\"}' FROM generate_series(%lld::int8, %lld::int8) i",
             name, (long long)t0_us, (long long)step_us, (long long)first, (long long)last);
    exec_on(pg, q);
    snprintf(q, sizeof(q), "ALTER TABLE mono_events ATTACH PARTITION %s %s", name, bound);
    exec_on(pg, q);
    return (long)(last - first + 1);
}

/* rows mono events from t0 over one day (10 sources, 5 types, 1000 keys), into the day
 * partitions astro_ensure_day_partitions() makes, with their event_rollups; then ANALYZE. */
static void
load(long rows, int64_t t0_us)
{
    char q[1024], err[512];
    int64_t step = BENCH_DAY_US / rows, t = astro_now_us();
    fprintf(stderr, "loading %ld mono events...\n", rows);
    struct astro_pg *pg = astro_pg_connect(db_url, NULL, err, sizeof(err));
    if (pg == NULL)
        exit(1);
    snprintf(q, sizeof(q),
             "SELECT astro_ensure_day_partitions('mono_events', (('epoch'::timestamptz + %lld"
             " * interval '1 microsecond') AT TIME ZONE 'UTC')::date, 2)", (long long)t0_us);
    exec_on(pg, q);
    PGresult *r = astro_pg_exec(pg,
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), (extract(epoch FROM"
        " to_date(right(c.relname, 8), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC'))::int8"
        " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent ="
        " 'mono_events'::regclass AND c.relname ~ '_p[0-9]{8}$' ORDER BY 1", 0, NULL, err,
        sizeof(err));
    long loaded = 0;
    for (int i = 0; r != NULL && i < PQntuples(r); i++)
        loaded += load_partition(pg, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                                 strtoll(PQgetvalue(r, i, 2), NULL, 10) * 1000000, t0_us, step,
                                 rows);
    PQclear(r);
    if (loaded != rows) {
        fprintf(stderr, "loaded %ld rows into day partitions, expected %ld\n", loaded, rows);
        exit(1);
    }
    exec_on(pg, "INSERT INTO event_rollups SELECT date_trunc('minute', ts), 'mono',"
                " source_stream, event_type, '', count(*) FROM mono_events GROUP BY 1, 2, 3, 4, 5");
    exec_on(pg, "VACUUM ANALYZE mono_events");
    exec_on(pg, "ANALYZE event_rollups");
    astro_pg_free(pg);
    fprintf(stderr, "loaded %ld rows in %.0f s\n", rows, (double)(astro_now_us() - t) / 1e6);
}

static pid_t
start_query(struct harness_server *rs, int port)
{
    pid_t pid = fork();
    if (pid == 0) {
        char p[16];
        snprintf(p, sizeof(p), "%d", port);
        setenv("ASTRO_HTTP_PORT", p, 1);
        setenv("ASTRO_HTTP_BIND", "127.0.0.1", 1);
        setenv("ASTRO_DATABASE_URL", db_url, 1);
        setenv("ASTRO_REDIS_URL", harness_server_url(rs), 1);
        const char *threads = getenv("QRY_BENCH_THREADS");
        setenv("ASTRO_QUERY_THREADS", threads != NULL ? threads : "8", 1);
        setenv("ASTRO_QUERY_RATE_LIMIT", "0", 1);
        setenv("ASTRO_QUERY_KEY_CACHE_TTL", "5s", 1);
        setenv("ASTRO_LOG_LEVEL", "warn", 1);
        execl(QRY_BENCH_BIN, "astro-query", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        struct wsraw *w = wsraw_connect("127.0.0.1", port, 500);
        if (w != NULL) {
            wsraw_close(w);
            return pid;
        }
        usleep(50000);
    }
    return pid;
}

struct scenario {
    const char *name, *path;
    const char *sql;       /* values inlined: what pgbench runs */
    const char *prepared;  /* what astro-query prepares (services/query/sql.c) */
    const char *args;      /* EXECUTE arguments for it */
};

/* Prints the generic plan of the statement astro-query prepares (its sessions force generic
 * plans), so the indexes each filter uses can be checked. */
static void
explain(const struct scenario *sc)
{
    char err[512], q[2048];
    struct astro_pg *pg = astro_pg_connect(db_url, NULL, err, sizeof(err));
    snprintf(q, sizeof(q), "SET plan_cache_mode = force_generic_plan; PREPARE g AS %s",
             sc->prepared);
    if (pg == NULL || astro_pg_exec_ok(pg, q, err, sizeof(err)) != ASTRO_OK) {
        fprintf(stderr, "explain %s: %s\n", sc->name, err);
        astro_pg_free(pg);
        return;
    }
    snprintf(q, sizeof(q), "EXPLAIN (COSTS OFF) EXECUTE g%s", sc->args);
    PGresult *r = astro_pg_exec(pg, q, 0, NULL, err, sizeof(err));
    printf("generic plan, %s:\n", sc->name);
    for (int i = 0; r != NULL && i < PQntuples(r); i++)
        printf("    %s\n", PQgetvalue(r, i, 0));
    PQclear(r);
    astro_pg_free(pg);
}

static void
store_key(struct harness_server *rs)
{
    char err[256];
    struct astro_redis *r = astro_redis_connect(harness_server_url(rs), NULL, err, sizeof(err));
    if (r == NULL || astro_apikey_store(r, KEY, "bench", ASTRO_SCOPE_READ, false, err,
                                        sizeof(err)) != ASTRO_OK) {
        fprintf(stderr, "api key: %s\n", err);
        exit(1);
    }
    astro_redis_free(r);
}

static void
run_scenario(int port, const struct scenario *sc, int runs, int secs, int warmup)
{
    double a[9], b[9], ap[9], bp[9], braw[9];
    if (warmup > 0) {
        run_wrk(port, sc->path, warmup);
        run_pgbench(sc->sql, warmup);
    }
    for (int i = 0; i < runs; i++) {
        struct result x = run_wrk(port, sc->path, secs), y = run_pgbench(sc->sql, secs);
        a[i] = x.rps, ap[i] = x.p99_ms, b[i] = y.rps, bp[i] = y.p99_ms, braw[i] = y.p99_raw_ms;
        fprintf(stderr,
                "%s run %d: api %.0f/s p99 %.2f ms, pgbench %.0f/s p99 %.2f ms (raw %.2f)\n",
                sc->name, i + 1, x.rps, x.p99_ms, y.rps, y.p99_ms, y.p99_raw_ms);
    }
    double ar = median3(a, runs), br = median3(b, runs);
    printf("%-14s %10.0f %10.0f %7.2f %10.2f %10.2f %10.2f\n", sc->name, ar, br,
           br > 0 ? ar / br : 0, median3(ap, runs), median3(bp, runs), median3(braw, runs));
    fflush(stdout);
}

/* The kernel's autogroup setting, "?" where it cannot be read. */
static const char *
autogroup(void)
{
    static char v[8] = "?";
    FILE *f = fopen("/proc/sys/kernel/sched_autogroup_enabled", "r");
    if (f != NULL) {
        if (fgets(v, sizeof(v), f) == NULL)
            strcpy(v, "?");
        v[strcspn(v, "\n")] = '\0';
        fclose(f);
    }
    return v;
}

#define COLS "event_id, (extract(epoch FROM ts) * 1000000)::int8, source_stream, key," \
             " event_type, value, metadata::text, stream_entry_id"

int
main(void)
{
    long rows = getenv("QRY_BENCH_ROWS") ? atol(getenv("QRY_BENCH_ROWS")) : 10000000;
    int runs = getenv("QRY_BENCH_RUNS") ? atoi(getenv("QRY_BENCH_RUNS")) : 3;
    int secs = getenv("QRY_BENCH_SECS") ? atoi(getenv("QRY_BENCH_SECS")) : 5;
    int warmup = getenv("QRY_BENCH_WARMUP") ? atoi(getenv("QRY_BENCH_WARMUP")) : 2;
    char cmd[1024], a[ASTRO_TIME_RFC3339_LEN + 1], b[ASTRO_TIME_RFC3339_LEN + 1];
    char id_path[256], id_sql[1024], id_args[64], page_path[256], page_sql[1024], page_args[160];
    runs = runs < 1 ? 1 : runs > 9 ? 9 : runs;
    if (rows < 1000)
        return 2;
    struct harness_server *rs = harness_redis_start(NULL), *ps = harness_pg_start();
    if (rs == NULL || ps == NULL || harness_pg_create_db(ps, "astro", db_url, sizeof(db_url)))
        return 1;
    snprintf(cmd, sizeof(cmd), "ASTRO_DATABASE_URL='%s' '%s' migrate >/dev/null", db_url,
             QRY_BENCH_ADMIN);
    if (system(cmd) != 0)
        return 1;
    tune_server(ps);
    int64_t t0 = astro_now_us() - BENCH_DAY_US;
    load(rows, t0);
    store_key(rs);
    /* by id: the middle row; a filtered page: one source, a 2 h window in the middle */
    snprintf(id_path, sizeof(id_path), "/events/mono/m%ld", rows / 2);
    snprintf(id_sql, sizeof(id_sql),
             "SELECT " COLS " FROM mono_events WHERE event_id = 'm%ld' ORDER BY ts LIMIT 1",
             rows / 2);
    snprintf(id_args, sizeof(id_args), "('m%ld')", rows / 2);
    if (astro_time_format(t0 + BENCH_DAY_US / 2, a, sizeof(a)) != ASTRO_OK ||
        astro_time_format(t0 + BENCH_DAY_US / 2 + BENCH_DAY_US / 12, b, sizeof(b)) != ASTRO_OK)
        return 1;
    snprintf(page_path, sizeof(page_path),
             "/events/mono?source_stream=s3&start_time=%s&end_time=%s&limit=100", a, b);
    snprintf(page_sql, sizeof(page_sql),
             "SELECT " COLS " FROM mono_events WHERE ts >= '%s'::timestamptz AND ts <"
             " '%s'::timestamptz AND source_stream = 's3' ORDER BY ts, event_id LIMIT 100"
             " OFFSET 0", a, b);
    snprintf(page_args, sizeof(page_args), "('%s', '%s', 's3', 100, 0)", a, b);
    const char *stats_sql =
        "SELECT kind, source_stream, event_type, correlation_rule, sum(count)::int8,"
        " (extract(epoch FROM min(minute)) * 1000000)::int8,"
        " (extract(epoch FROM max(minute)) * 1000000)::int8 FROM event_rollups WHERE"
        " minute >= now() - interval '1 day' AND minute < now() GROUP BY 1, 2, 3, 4";
    const char *stats_prep =
        "SELECT kind, source_stream, event_type, correlation_rule, sum(count)::int8,"
        " (extract(epoch FROM min(minute)) * 1000000)::int8,"
        " (extract(epoch FROM max(minute)) * 1000000)::int8 FROM event_rollups WHERE"
        " minute >= $1::timestamptz AND minute < $2::timestamptz GROUP BY 1, 2, 3, 4";
    struct scenario sc[] = {
        {"filtered page", page_path, page_sql,
         "SELECT " COLS " FROM mono_events WHERE ts >= $1::timestamptz AND ts < $2::timestamptz"
         " AND source_stream = $3 ORDER BY ts, event_id LIMIT $4 OFFSET $5", page_args},
        {"by id", id_path, id_sql,
         "SELECT " COLS " FROM mono_events WHERE event_id = $1 ORDER BY ts LIMIT 1", id_args},
        {"stats", "/events/stats", stats_sql, stats_prep, "(now() - interval '1 day', now())"}};
    for (size_t s = 0; s < 3; s++)
        explain(&sc[s]);
    int port = free_port();
    pid_t q = start_query(rs, port);
    printf("astro-query vs pgbench, %ld rows, %d clients, %d x %d s after %d s warm-up, medians;"
           " kernel.sched_autogroup_enabled = %s\n", rows, CLIENTS, runs, secs, warmup,
           autogroup());
    printf("%-14s %10s %10s %7s %10s %10s %10s\n", "scenario", "api req/s", "pg tps", "ratio",
           "api p99ms", "pg p99ms", "pg raw p99");
    for (size_t s = 0; s < 3; s++)
        run_scenario(port, &sc[s], runs, secs, warmup);
    kill(q, SIGTERM);
    waitpid(q, NULL, 0);
    harness_server_free(rs);
    harness_server_free(ps);
    return 0;
}

/* Fixture of the astro-archiver integration tests (see archiver_itest.h). */
#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "archiver_itest.h"
#include "astro/event.h"
#include "astro/partition.h"
#include "servers.h"
#include "spawn.h"
#include "wsraw.h"

void
arc_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void
quiet(void *arg, const char *msg)
{
    (void)arg, (void)msg;
}

static void
migrate(const char *url)
{
    const char *admin = getenv("ASTRO_ADMIN");
    ck_assert_msg(admin != NULL, "ASTRO_ADMIN (path of astro-admin) is not set");
    char db[512];
    ck_assert_int_lt(snprintf(db, sizeof(db), "ASTRO_DATABASE_URL=%s", url), (int)sizeof(db));
    const char *const argv[] = {"astro-admin", "migrate", NULL};
    const char *const set[] = {db, "ASTRO_LOG_LEVEL=warn", NULL};
    pid_t pid = harness_spawn(admin, argv, set, NULL, NULL);
    ck_assert_int_ge(pid, 0);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "astro-admin migrate failed");
}

void
arc_env_start(struct arc_env *e)
{
    memset(e, 0, sizeof(*e));
    e->redis = harness_redis_start(NULL);
    ck_assert_msg(e->redis != NULL, "redis-server did not start");
    e->pg = harness_pg_start();
    ck_assert_msg(e->pg != NULL, "postgres did not start");
    ck_assert_int_eq(harness_pg_create_db(e->pg, "arc", e->db_url, sizeof(e->db_url)), 0);
    migrate(e->db_url);
    e->rc = redisConnect("127.0.0.1", harness_server_port(e->redis));
    ck_assert_msg(e->rc != NULL && e->rc->err == 0, "redis probe connect");
    e->db = PQconnectdb(e->db_url);
    ck_assert_msg(PQstatus(e->db) == CONNECTION_OK, "%s", PQerrorMessage(e->db));
    PQsetNoticeProcessor(e->db, quiet, NULL);
}

void
arc_env_stop(struct arc_env *e)
{
    for (int i = 0; i < ARC_IT_MAX_CHILDREN; i++)
        if (e->children[i] > 0) {
            kill(e->children[i], SIGKILL);
            waitpid(e->children[i], NULL, 0);
            e->children[i] = 0;
        }
    if (e->rc != NULL)
        redisFree(e->rc);
    if (e->db != NULL)
        PQfinish(e->db);
    harness_server_free(e->redis);
    harness_server_free(e->pg);
    memset(e, 0, sizeof(*e));
}

static void
remember(struct arc_env *e, pid_t pid)
{
    for (int i = 0; i < ARC_IT_MAX_CHILDREN; i++)
        if (e->children[i] == 0) {
            e->children[i] = pid;
            return;
        }
    ck_abort_msg("too many archiver children");
}

static void
forget(struct arc_env *e, pid_t pid)
{
    for (int i = 0; i < ARC_IT_MAX_CHILDREN; i++)
        if (e->children[i] == pid)
            e->children[i] = 0;
}

pid_t
arc_start(struct arc_env *e, const char *const *extra)
{
    const char *bin = getenv("ASTRO_ARCHIVER_BIN");
    ck_assert_msg(bin != NULL, "ASTRO_ARCHIVER_BIN is not set");
    enum { FIXED = 11, MAX_EXTRA = 16 };
    char redis[320], db[320], parts[32], level[64];
    const char *arc_log = getenv("ARC_IT_LOG");
    snprintf(redis, sizeof(redis), "ASTRO_REDIS_URL=%s", harness_server_url(e->redis));
    snprintf(db, sizeof(db), "ASTRO_DATABASE_URL=%s", e->db_url);
    snprintf(parts, sizeof(parts), "ASTRO_PARTITIONS=%d", ARC_IT_P);
    snprintf(level, sizeof(level), "ASTRO_LOG_LEVEL=%s", arc_log != NULL ? arc_log : "warn");
    const char *set[FIXED + MAX_EXTRA + 1] = {
        redis, db, parts, "ASTRO_HTTP_PORT=0", "ASTRO_HTTP_BIND=127.0.0.1",
        "ASTRO_HTTP_THREADS=1", level, "ASTRO_BATCH_AGE=50ms", "ASTRO_BATCH_SIZE=500",
        "ASTRO_CLAIM_IDLE=1s", "ASTRO_SHUTDOWN_TIMEOUT=20s"};
    size_t n = FIXED;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        ck_assert_msg(n < FIXED + MAX_EXTRA, "too many extra archiver variables");
        set[n++] = extra[i];
    }
    const char *const unset[] = {"ASTRO_ADMIN", "ASTRO_ARCHIVER_BIN", NULL};
    const char *const argv[] = {"astro-archiver", NULL};
    pid_t pid = harness_spawn(bin, argv, set, unset, NULL);
    ck_assert_int_ge(pid, 0);
    remember(e, pid);
    return pid;
}

int
arc_wait_exit(struct arc_env *e, pid_t pid, int ms)
{
    int st;
    for (int t = 0; t <= ms; t += 20) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            forget(e, pid);
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        arc_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    forget(e, pid);
    return -1;
}

int
arc_stop(struct arc_env *e, pid_t pid)
{
    kill(pid, SIGTERM);
    return arc_wait_exit(e, pid, 25000);
}

static void
xadd_event(struct arc_env *e, const char *key, const struct astro_event *ev)
{
    struct astro_stream_fields f;
    astro_stream_fields_init(&f);
    ck_assert_int_eq(astro_stream_fields_push(&f, "XADD", 4), ASTRO_OK);
    ck_assert_int_eq(astro_stream_fields_push(&f, key, strlen(key)), ASTRO_OK);
    ck_assert_int_eq(astro_stream_fields_push(&f, "*", 1), ASTRO_OK);
    ck_assert_int_eq(astro_event_stream_encode(ev, &f), ASTRO_OK);
    redisAppendCommandArgv(e->rc, f.argc, f.argv, f.argvlen);
    astro_stream_fields_cleanup(&f);
}

static void
drain_replies(struct arc_env *e, int n)
{
    for (int i = 0; i < n; i++) {
        redisReply *r;
        ck_assert_int_eq(redisGetReply(e->rc, (void **)&r), REDIS_OK);
        ck_assert_msg(r->type == REDIS_REPLY_STRING, "XADD failed");
        freeReplyObject(r);
    }
}

void
arc_produce_mono(struct arc_env *e, const char *tag, int from, int n, int64_t ts_us)
{
    for (int i = from; i < from + n; i++) {
        char id[64], key[32], src[16];
        snprintf(id, sizeof(id), "%s-%d", tag, i);
        snprintf(key, sizeof(key), "user_%d", i % 37);
        snprintf(src, sizeof(src), "axon_%d", i % 3);
        struct astro_event ev = {.ts_us = ts_us + i * 1000, .src = src, .key = key,
                                 .type = (i % 2) ? "A" : "B", .value = i * 0.5,
                                 .meta_json = (i % 5) ? NULL : "{\"ch\":[1,2,3]}"};
        snprintf(ev.id, sizeof(ev.id), "%s", id);
        char sk[48];
        ck_assert_int_eq(astro_stream_key(sk, sizeof(sk), "mono",
                                          astro_partition_of(key, strlen(key), ARC_IT_P)),
                         ASTRO_OK);
        xadd_event(e, sk, &ev);
    }
    drain_replies(e, n);
}

void
arc_produce_multi(struct arc_env *e, const char *tag, int n, int64_t ts_us)
{
    for (int i = 0; i < n; i++) {
        struct astro_lineage_item lin[2] = {
            {.ts_us = ts_us, .value = 1.0}, {.ts_us = ts_us + 5, .value = 2.0}};
        for (int k = 0; k < 2; k++) {
            snprintf(lin[k].id, sizeof(lin[k].id), "%s-src-%d-%d", tag, i, k);
            snprintf(lin[k].stream, sizeof(lin[k].stream), "axon_%d", k);
            snprintf(lin[k].type, sizeof(lin[k].type), "A");
        }
        char key[32];
        snprintf(key, sizeof(key), "user_%d", i % 11);
        struct astro_event ev = {.ts_us = ts_us + i * 1000, .src = "leaflet", .key = key,
                                 .type = "pair", .value = 3.0, .is_multi = true,
                                 .rule = (i % 2) ? "r_sum" : "r_max", .integrated_value = 3.0,
                                 .confidence = 0.75, .n_sources = 2, .lineage = lin};
        snprintf(ev.id, sizeof(ev.id), "%s-%d", tag, i);
        char sk[48];
        ck_assert_int_eq(astro_stream_key(sk, sizeof(sk), "multi",
                                          astro_partition_of(key, strlen(key), ARC_IT_P)),
                         ASTRO_OK);
        xadd_event(e, sk, &ev);
    }
    drain_replies(e, n);
}

const char *
arc_xadd_raw(struct arc_env *e, const char *key, int nwords, const char **words)
{
    static char id[64];
    const char *argv[40];
    ck_assert_int_le(nwords, 36);
    argv[0] = "XADD";
    argv[1] = key;
    argv[2] = "*";
    memcpy(argv + 3, words, (size_t)nwords * sizeof(*words));
    redisReply *r = redisCommandArgv(e->rc, nwords + 3, argv, NULL);
    ck_assert_msg(r != NULL && r->type == REDIS_REPLY_STRING, "XADD raw failed");
    snprintf(id, sizeof(id), "%s", r->str);
    freeReplyObject(r);
    return id;
}

long long
arc_sql_int(struct arc_env *e, const char *sql)
{
    if (PQstatus(e->db) != CONNECTION_OK)
        PQreset(e->db);
    PGresult *r = PQexec(e->db, sql);
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        v = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

long long
arc_wait_sql(struct arc_env *e, const char *sql, long long want, int ms)
{
    long long v = -1;
    for (int t = 0; t <= ms; t += 50) {
        v = arc_sql_int(e, sql);
        if (v == want)
            return v;
        arc_sleep_ms(50);
    }
    return v;
}

long long
arc_redis_int(struct arc_env *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(e->rc, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL, "redis probe: %s", e->rc->errstr);
    long long v = -1;
    if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    freeReplyObject(r);
    return v;
}

long long
arc_pending(struct arc_env *e)
{
    long long n = 0;
    for (int p = 0; p < ARC_IT_P; p++)
        for (int k = 0; k < 2; k++) {
            redisReply *r = redisCommand(e->rc, "XPENDING astro:%s:{%d} archiver",
                                         k ? "multi" : "mono", p);
            ck_assert_msg(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 4,
                          "XPENDING");
            n += r->element[0]->integer;
            freeReplyObject(r);
        }
    return n;
}

void
arc_check_rollups(struct arc_env *e)
{
    /* Every (minute, source, type[, rule]) group: rollup count == rows; and no stray rollup. */
    ck_assert_int_eq(
        arc_sql_int(e, "SELECT count(*) FROM (SELECT date_trunc('minute', ts, 'UTC') m,"
                       " source_stream, event_type, count(*) c FROM mono_events GROUP BY 1,2,3) t"
                       " FULL JOIN (SELECT * FROM event_rollups WHERE kind = 'mono') r"
                       " ON r.minute = t.m AND r.source_stream = t.source_stream"
                       " AND r.event_type = t.event_type"
                       " WHERE t.c IS DISTINCT FROM r.count"),
        0);
    ck_assert_int_eq(
        arc_sql_int(e, "SELECT count(*) FROM (SELECT date_trunc('minute', ts, 'UTC') m,"
                       " source_stream, event_type, correlation_rule, count(*) c"
                       " FROM multi_events GROUP BY 1,2,3,4) t"
                       " FULL JOIN (SELECT * FROM event_rollups WHERE kind = 'multi') r"
                       " ON r.minute = t.m AND r.source_stream = t.source_stream"
                       " AND r.event_type = t.event_type"
                       " AND r.correlation_rule = t.correlation_rule"
                       " WHERE t.c IS DISTINCT FROM r.count"),
        0);
    ck_assert_int_eq(arc_sql_int(e, "SELECT coalesce(sum(count), 0) FROM event_rollups"),
                     arc_sql_int(e, "SELECT (SELECT count(*) FROM mono_events) +"
                                    " (SELECT count(*) FROM multi_events)"));
}

int
arc_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

int
arc_http_get(int port, const char *path, char *body, size_t size)
{
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Connection: close\r\n\r\n", path);
    for (int t = 0; t < 100; t++) {
        struct wsraw *w = wsraw_connect("127.0.0.1", port, 500);
        if (w != NULL) {
            int status = wsraw_http(w, req, (size_t)n, body, size, 3000);
            wsraw_close(w);
            if (status > 0)
                return status;
        }
        arc_sleep_ms(50);
    }
    return -1;
}

/* astro-query, the real daemon as a child process, against a private redis-server and
 * PostgreSQL (migrated by astro-admin, filled with rows in the archive's schema and recent
 * buffers in ingest's format): every endpoint and filter against the rows expected, keyset
 * pagination while rows arrive, lineage, 50+ hostile requests, auth, rate limit, SIGTERM. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "astro/agg.h"
#include "astro/apikey.h"
#include "astro/event.h"
#include "astro/partition.h"
#include "astro/pg.h"
#include "astro/redis.h"
#include "astro/time.h"
#include "servers.h"
#include "spawn.h"
#include "wsraw.h"

#define READ_KEY "reader-key-0123456789"
#define INGEST_KEY "ingest-key-0123456789"
#define BASE "2026-11-30T00:00:00Z"
#define BODY_MAX (4u << 20)

static struct harness_server *rs, *ps;
static char db_url[512];
static pid_t daemon_pid;
static int daemon_port;
static char *body;

/* GET path with the given extra header lines; returns the status, body in body, head in head
 * (may be NULL). */
static int
http_get(int port, const char *path, const char *headers, char *head, size_t head_size)
{
    struct wsraw *w = wsraw_connect("127.0.0.1", port, 3000);
    if (w == NULL)
        return -1;
    size_t size = strlen(path) + (headers != NULL ? strlen(headers) : 0) + 128;
    char *req = malloc(size);
    int n = snprintf(req, size, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n",
                     path, headers != NULL ? headers : "");
    int st = wsraw_send_bytes(w, req, (size_t)n) == 0
                 ? wsraw_read_response(w, head, head_size, body, BODY_MAX, 10000)
                 : -1;
    free(req);
    wsraw_close(w);
    return st;
}

static int
get(const char *path)
{
    return http_get(daemon_port, path, "Authorization: Bearer " READ_KEY "\r\n", NULL, 0);
}

static cJSON *
get_json(const char *path, int want)
{
    int st = get(path);
    ck_assert_msg(st == want, "%s: status %d, body %s", path, st, body);
    cJSON *j = cJSON_Parse(body);
    ck_assert_msg(j != NULL, "%s: not JSON: %s", path, body);
    return j;
}

static double
num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    ck_assert_msg(cJSON_IsNumber(v), "no number %s", name);
    return v->valuedouble;
}

static const char *
str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    ck_assert_msg(cJSON_IsString(v), "no string %s", name);
    return v->valuestring;
}

static pid_t
start_daemon(int port, const char *rate_limit, const char *window)
{
    const char *bin = getenv("ASTRO_QUERY_BIN");
    ck_assert_msg(bin != NULL, "ASTRO_QUERY_BIN is not set");
    char p[32], db[560], redis[320], limit[96], win[96];
    snprintf(p, sizeof(p), "ASTRO_HTTP_PORT=%d", port);
    snprintf(db, sizeof(db), "ASTRO_DATABASE_URL=%s", db_url);
    snprintf(redis, sizeof(redis), "ASTRO_REDIS_URL=%s", harness_server_url(rs));
    snprintf(limit, sizeof(limit), "ASTRO_QUERY_RATE_LIMIT=%s", rate_limit);
    snprintf(win, sizeof(win), "ASTRO_QUERY_RATE_WINDOW=%s", window);
    const char *const set[] = {p, "ASTRO_HTTP_BIND=127.0.0.1", db, redis,
                               "ASTRO_QUERY_THREADS=4", limit, win,
                               "ASTRO_QUERY_KEY_CACHE_TTL=0", "ASTRO_LOG_LEVEL=warn", NULL};
    const char *const argv[] = {"astro-query", NULL};
    pid_t pid = harness_spawn(bin, argv, set, NULL, NULL);
    ck_assert_int_ge(pid, 0);
    for (int i = 0; i < 200; i++) {
        if (http_get(port, "/health", NULL, NULL, 0) == 200)
            return pid;
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_abort_msg("astro-query did not answer /health");
    return -1;
}

/* Exit status after SIGTERM, or -1 when it took longer than timeout_ms (then SIGKILLed). */
static int
stop_daemon(pid_t pid, int timeout_ms)
{
    int status;
    kill(pid, SIGTERM);
    for (int i = 0; i < timeout_ms / 10; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void
sql(const char *q)
{
    char err[512];
    struct astro_pg *pg = astro_pg_connect(db_url, NULL, err, sizeof(err));
    ck_assert_msg(pg != NULL, "%s", err);
    ck_assert_msg(astro_pg_exec_ok(pg, q, err, sizeof(err)) == ASTRO_OK, "%s: %s", q, err);
    astro_pg_free(pg);
}

static void
migrate(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "ASTRO_DATABASE_URL='%s' '%s' migrate >/dev/null 2>&1", db_url,
             getenv("ASTRO_ADMIN"));
    ck_assert_int_eq(system(cmd), 0);
}

/* 300 mono events m000..m299 one second apart; 20 multi events x00..x19 ten seconds apart,
 * each made of m(10i), m(10i+1) and one id the archive never saw; rollups as the archiver
 * writes them. */
static void
fill_pg(void)
{
    sql("INSERT INTO mono_events (event_id, ts, source_stream, key, event_type, value, metadata)"
        " SELECT 'm' || lpad(i::text, 3, '0'), '" BASE "'::timestamptz + i * interval '1 s',"
        " 's' || (i % 3), 'k' || (i % 5), 't' || (i % 2), i, jsonb_build_object('i', i)"
        " FROM generate_series(0, 299) i");
    sql("INSERT INTO multi_events (event_id, ts, source_stream, key, event_type, value,"
        " correlation_rule, integrated_value, confidence, source_events)"
        " SELECT 'x' || lpad(i::text, 2, '0'), '" BASE "'::timestamptz + i * interval '10 s',"
        " 'cep', 'k0', 'combo', i, 'r' || (i % 2), i * 2, i / 20.0,"
        " ARRAY['m' || lpad((10 * i)::text, 3, '0'), 'm' || lpad((10 * i + 1)::text, 3, '0'),"
        " 'gone-' || i] FROM generate_series(0, 19) i");
    sql("INSERT INTO event_rollups SELECT date_trunc('minute', ts), 'mono', source_stream,"
        " event_type, '', count(*) FROM mono_events GROUP BY 1, 2, 3, 4, 5");
    sql("INSERT INTO event_rollups SELECT date_trunc('minute', ts), 'multi', source_stream,"
        " event_type, correlation_rule, count(*) FROM multi_events GROUP BY 1, 2, 3, 4, 5");
}

/* Issue 9 aggregates as the archiver stores them (sql/0005_candles.sql), key k-agg: 1m trade
 * candles at minutes 0..9 of BASE (open 100+n, high 102+n, low 99+n, close 101.25+n, volume
 * 10+n, count 5+n, vwap 100.5+n), 1m quote candles at minutes 0..2 (minute 2 without vwap), one
 * 5m trade candle; indicators of the 1m trade series: sma_2 from minute 1 (ready), ema_3 from
 * minute 2 (ready), rsi_14 from minute 5 (not ready), and one quote sma_2 at minute 1. */
static void
fill_candles(void)
{
    sql("INSERT INTO candles (key, event_type, \"interval\", bucket_start, open, high, low,"
        " close, volume, trades, vwap) SELECT 'k-agg', 'trade', '1m', '" BASE "'::timestamptz"
        " + n * interval '1 minute', 100 + n, 102 + n, 99 + n, 101.25 + n, 10 + n, 5 + n,"
        " 100.5 + n FROM generate_series(0, 9) n");
    sql("INSERT INTO candles (key, event_type, \"interval\", bucket_start, open, high, low,"
        " close, volume, trades, vwap) SELECT 'k-agg', 'quote', '1m', '" BASE "'::timestamptz"
        " + n * interval '1 minute', 1 + n, 2 + n, 0.5 + n, 1.5 + n, 0, 1, CASE WHEN n = 2 THEN"
        " NULL ELSE 1.25 + n END FROM generate_series(0, 2) n");
    sql("INSERT INTO candles (key, event_type, \"interval\", bucket_start, open, high, low,"
        " close, volume, trades, vwap) VALUES ('k-agg', 'trade', '5m', '" BASE "', 100, 111, 99,"
        " 105.25, 60, 35, 104)");
    sql("INSERT INTO indicators (key, event_type, name, \"interval\", ts, value, ready)"
        " SELECT 'k-agg', 'trade', 'sma_2', '1m', '" BASE "'::timestamptz + n * interval"
        " '1 minute', 100.75 + n, true FROM generate_series(1, 9) n UNION ALL"
        " SELECT 'k-agg', 'trade', 'ema_3', '1m', '" BASE "'::timestamptz + n * interval"
        " '1 minute', 1.5 * n, true FROM generate_series(2, 9) n UNION ALL"
        " SELECT 'k-agg', 'trade', 'rsi_14', '1m', '" BASE "'::timestamptz + n * interval"
        " '1 minute', 50 + n, false FROM generate_series(5, 9) n UNION ALL"
        " SELECT 'k-agg', 'quote', 'sma_2', '1m', '" BASE "'::timestamptz + interval"
        " '1 minute', 2, true");
}

/* One mono event XADDed in the real stream format to its key's partition (of 16). */
static void
xadd(struct astro_redis *r, const char *id, int64_t ts_us, const char *src, char *key,
     double value)
{
    char err[256], stream[48];
    struct astro_event ev = {.ts_us = ts_us, .src = (char *)src, .key = key, .type = "t",
                             .value = value};
    struct astro_stream_fields f;
    snprintf(ev.id, sizeof(ev.id), "%s", id);
    ck_assert_int_eq(astro_stream_key(stream, sizeof(stream), "mono",
                                      astro_partition_of(key, strlen(key), 16)), ASTRO_OK);
    astro_stream_fields_init(&f);
    ck_assert_int_eq(astro_stream_fields_push(&f, "XADD", 4), ASTRO_OK);
    ck_assert_int_eq(astro_stream_fields_push(&f, stream, strlen(stream)), ASTRO_OK);
    ck_assert_int_eq(astro_stream_fields_push(&f, "*", 1), ASTRO_OK);
    ck_assert_int_eq(astro_event_stream_encode(&ev, &f), ASTRO_OK);
    redisReply *rep = astro_redis_command(r, f.argc, f.argv, f.argvlen, err, sizeof(err));
    ck_assert_msg(rep != NULL && rep->type == REDIS_REPLY_STRING, "XADD: %s", err);
    freeReplyObject(rep);
    astro_stream_fields_cleanup(&f);
}

/* Recent buffer of key "room/1" as ingest writes it: LPUSH of compact JSON, newest first. */
static void
fill_redis(void)
{
    char err[256], rkey[128], json[5][256];
    struct astro_redis *r = astro_redis_connect(harness_server_url(rs), NULL, err, sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    ck_assert_int_eq(astro_apikey_store(r, READ_KEY, "reader", ASTRO_SCOPE_READ, false, err,
                                        sizeof(err)), ASTRO_OK);
    ck_assert_int_eq(astro_apikey_store(r, INGEST_KEY, "producer", ASTRO_SCOPE_INGEST, false,
                                        err, sizeof(err)), ASTRO_OK);
    snprintf(rkey, sizeof(rkey), "astro:recent:{%u}:room/1", astro_partition_of("room/1", 6, 16));
    for (int i = 0; i < 5; i++) {
        snprintf(json[i], sizeof(json[i]),
                 "{\"event_id\":\"b%d\",\"timestamp\":\"2026-11-30T00:00:0%d.000000Z\","
                 "\"source_stream\":\"s\",\"key\":\"room/1\",\"event_type\":\"t\",\"value\":%d}",
                 i, i, 10 * (i + 1));
        const char *argv[] = {"LPUSH", rkey, json[i]};
        freeReplyObject(astro_redis_command(r, 3, argv, NULL, err, sizeof(err)));
    }
    const char *x[] = {"XGROUP", "CREATE", "astro:mono:{0}", "archiver", "0", "MKSTREAM"};
    freeReplyObject(astro_redis_command(r, 6, x, NULL, err, sizeof(err)));
    char k0[] = "k0-9", id[16]; /* a key of partition 0 */
    ck_assert_int_eq(astro_partition_of(k0, strlen(k0), 16), 0);
    for (int i = 0; i < 3; i++) { /* 3 entries the group has not read: lag 3 */
        snprintf(id, sizeof(id), "xa%d", i);
        xadd(r, id, INT64_C(1796083200000000) + i, "s", k0, i);
    }
    astro_redis_free(r);
}

static void
setup(void)
{
    body = malloc(BODY_MAX);
    rs = harness_redis_start(NULL);
    ps = harness_pg_start();
    ck_assert(rs != NULL && ps != NULL);
    ck_assert_int_eq(harness_pg_create_db(ps, "astro", db_url, sizeof(db_url)), 0);
    migrate();
    fill_pg();
    fill_candles();
    fill_redis();
    daemon_port = harness_free_port();
    daemon_pid = start_daemon(daemon_port, "0", "1s");
}

static void
teardown(void)
{
    if (daemon_pid > 0)
        stop_daemon(daemon_pid, 10000);
    harness_server_free(rs);
    harness_server_free(ps);
    free(body);
}

/* ---- health, docs ---- */

START_TEST(test_health)
{
    static const char *const paths[] = {"/health", "/health/", "/health/ready", "/health/redis",
                                        "/health/database"};
    for (size_t i = 0; i < 5; i++) {
        int st = http_get(daemon_port, paths[i], NULL, NULL, 0);
        ck_assert_msg(st == 200, "%s: %d %s", paths[i], st, body);
    }
    cJSON *j = get_json("/health/full", 200);
    ck_assert_str_eq(str(j, "redis"), "ok");
    ck_assert_str_eq(str(j, "database"), "ok");
    const cJSON *g = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "consumer_groups"), "mono");
    ck_assert_msg(cJSON_GetObjectItem(g, "archiver") != NULL, "no archiver group: %s", body);
    ck_assert(num(cJSON_GetObjectItem(g, "archiver"), "lag") == 3);
    ck_assert(num(cJSON_GetObjectItem(g, "archiver"), "pending") == 0);
    ck_assert(cJSON_GetArraySize(cJSON_GetObjectItem(j, "partition_owners")) == 16);
    cJSON_Delete(j);
    ck_assert_int_eq(http_get(daemon_port, "/metrics", NULL, NULL, 0), 200);
    ck_assert_ptr_nonnull(strstr(body, "astro_query_requests_total"));
}
END_TEST

/* Every path the OpenAPI document lists answers 200 with its placeholders filled. */
START_TEST(test_openapi_paths_answer)
{
    cJSON *doc = get_json("/openapi.json", 200);
    const cJSON *p;
    int n = 0;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(doc, "paths")) {
        char path[256], out[256] = "";
        snprintf(path, sizeof(path), "%s", p->string);
        const char *id = strstr(path, "multi") ? "x03" : "m007";
        for (char *t = strtok(path, "/"); t != NULL; t = strtok(NULL, "/")) {
            const char *seg = strcmp(t, "{id}") == 0 ? id : strcmp(t, "{key}") == 0 ? "room%2F1"
                            : strcmp(t, "{n}") == 0 ? "3" : t;
            strcat(out, "/");
            strcat(out, seg);
        }
        int st = get(out);
        ck_assert_msg(st == 200, "%s (%s): %d %s", p->string, out, st, body);
        n++;
    }
    ck_assert_int_ge(n, 17);
    cJSON_Delete(doc);
    ck_assert_int_eq(http_get(daemon_port, "/", NULL, NULL, 0), 200);
    ck_assert_ptr_nonnull(strstr(body, "/events/mono"));
}
END_TEST

/* ---- events ---- */

static int
count_where(const char *path, const char *field, const char *value)
{
    cJSON *j = get_json(path, 200), *e;
    int n = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "events")) {
        if (field != NULL)
            ck_assert_msg(strcmp(str(e, field), value) == 0, "%s: %s=%s", path, field,
                          str(e, field));
        n++;
    }
    ck_assert_int_eq(n, (int)num(j, "count"));
    cJSON_Delete(j);
    return n;
}

START_TEST(test_mono_filters)
{
    ck_assert_int_eq(count_where("/events/mono?source_stream=s1&limit=1000", "source_stream",
                                 "s1"), 100);
    ck_assert_int_eq(count_where("/events/mono?event_type=t0&key=k2&limit=1000", "key", "k2"),
                     30);
    ck_assert_int_eq(count_where("/events/mono?key=k4&limit=1000", "key", "k4"), 60);
    ck_assert_int_eq(count_where("/events/mono?start_time=2026-11-30T00:00:10Z"
                                 "&end_time=2026-11-30T00:00:20Z", NULL, NULL), 10);
    /* epoch ms works the same: 2026-11-30T00:00:10Z = 1795996810000 */
    ck_assert_int_eq(count_where("/events/mono?start_time=1795996810000"
                                 "&end_time=1795996820000", NULL, NULL), 10);
    ck_assert_int_eq(count_where("/events/mono?source_stream=nope", NULL, NULL), 0);
    cJSON *j = get_json("/events/mono?start_time=2026-11-30T00:00:10Z&limit=5&offset=2", 200);
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "events"), 0);
    ck_assert_str_eq(str(first, "event_id"), "m012");
    ck_assert_str_eq(str(first, "timestamp"), "2026-11-30T00:00:12.000000Z");
    ck_assert(num(first, "value") == 12);
    ck_assert(num(cJSON_GetObjectItem(first, "metadata"), "i") == 12);
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(j, "next_cursor")));
    cJSON_Delete(j);
    j = get_json("/events/mono/m007", 200);
    ck_assert_str_eq(str(j, "key"), "k2");
    ck_assert(num(j, "value") == 7);
    cJSON_Delete(j);
    cJSON_Delete(get_json("/events/mono/m999", 404));
}
END_TEST

START_TEST(test_multi_filters_and_lineage)
{
    ck_assert_int_eq(count_where("/events/multi?correlation_rule=r1", "correlation_rule", "r1"),
                     10);
    ck_assert_int_eq(count_where("/events/multi?min_confidence=0.5", NULL, NULL), 10);
    ck_assert_int_eq(count_where("/events/multi?min_confidence=0.5&correlation_rule=r0"
                                 "&key=k0&end_time=2026-11-30T00:02:40Z", NULL, NULL), 3);
    cJSON *j = get_json("/events/multi/x03", 200);
    ck_assert_str_eq(str(j, "correlation_rule"), "r1");
    ck_assert(num(j, "confidence") == 0.15);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "source_events")), 3);
    cJSON_Delete(j);
    j = get_json("/events/multi/x03/lineage", 200);
    const cJSON *ev = cJSON_GetObjectItem(j, "events");
    ck_assert_int_eq(cJSON_GetArraySize(ev), 2); /* gone-3 is not in the archive */
    ck_assert_str_eq(str(cJSON_GetArrayItem(ev, 0), "event_id"), "m030");
    ck_assert_str_eq(str(cJSON_GetArrayItem(ev, 1), "event_id"), "m031");
    cJSON_Delete(j);
    cJSON_Delete(get_json("/events/multi/x99/lineage", 404));
    cJSON_Delete(get_json("/events/multi/x99", 404));
}
END_TEST

START_TEST(test_stats_from_rollups)
{
    cJSON *j = get_json("/events/stats?start_time=2026-11-30T00:00:00Z"
                        "&end_time=2026-11-30T01:00:00Z", 200);
    ck_assert(num(j, "mono_total") == 300);
    ck_assert(num(j, "multi_total") == 20);
    ck_assert(num(cJSON_GetObjectItem(j, "by_source"), "s0") == 100);
    ck_assert(num(cJSON_GetObjectItem(j, "by_type"), "t1") == 150);
    ck_assert(num(cJSON_GetObjectItem(j, "by_rule"), "r0") == 10);
    ck_assert(num(j, "integration_ratio") == 20.0 / 300.0);
    ck_assert(num(j, "mono_per_second") == 300.0 / 3600.0);
    ck_assert_str_eq(str(j, "first_minute"), "2026-11-30T00:00:00.000000Z");
    ck_assert_str_eq(str(j, "last_minute"), "2026-11-30T00:04:00.000000Z");
    cJSON_Delete(j);
    j = get_json("/events/stats?start_time=2026-11-30T02:00:00Z"
                 "&end_time=2026-11-30T03:00:00Z", 200);
    ck_assert(num(j, "mono_total") == 0);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "integration_ratio")));
    cJSON_Delete(j);
}
END_TEST

/* Keyset pagination visits every row exactly once while rows keep arriving (later ts). */
START_TEST(test_cursor_pagination_while_inserting)
{
    char path[512], q[512];
    char *seen = calloc(1000, 1);
    int pages = 0, total = 0, inserted = 0;
    snprintf(path, sizeof(path), "/events/mono?limit=37");
    for (;;) {
        cJSON *j = get_json(path, 200), *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "events")) {
            const char *id = str(e, "event_id");
            int n = atoi(id + 1) + (id[0] == 'n' ? 500 : 0);
            ck_assert_msg(id[0] == 'm' || id[0] == 'n', "%s", id);
            ck_assert_msg(!seen[n], "%s seen twice", id);
            seen[n] = 1;
            total++;
        }
        const cJSON *cur = cJSON_GetObjectItem(j, "next_cursor");
        if (!cJSON_IsString(cur)) {
            cJSON_Delete(j);
            break;
        }
        snprintf(path, sizeof(path), "/events/mono?limit=37&cursor=%s", cur->valuestring);
        cJSON_Delete(j);
        if (inserted < 40) { /* 4 new rows per page, later than every existing one */
            snprintf(q, sizeof(q),
                     "INSERT INTO mono_events (event_id, ts, source_stream, key, event_type, value)"
                     " SELECT 'n' || lpad(i::text, 3, '0'), '" BASE "'::timestamptz + "
                     " interval '1 hour' + i * interval '1 s', 'late', 'late', 't', i"
                     " FROM generate_series(%d, %d) i", inserted, inserted + 3);
            sql(q);
            inserted += 4;
        }
        ck_assert_int_lt(++pages, 100);
    }
    for (int i = 0; i < 300; i++)
        ck_assert_msg(seen[i], "m%03d never seen", i);
    ck_assert_int_eq(total, 300 + inserted);
    free(seen);
}
END_TEST

/* ---- hot tier ---- */

START_TEST(test_buffer)
{
    cJSON *j = get_json("/buffer/room%2F1/latest", 200);
    ck_assert_str_eq(str(j, "event_id"), "b4");
    cJSON_Delete(j);
    j = get_json("/buffer/room%2F1/last/3", 200);
    const cJSON *ev = cJSON_GetObjectItem(j, "events");
    ck_assert_int_eq(cJSON_GetArraySize(ev), 3);
    ck_assert_str_eq(str(cJSON_GetArrayItem(ev, 0), "event_id"), "b4");
    ck_assert_str_eq(str(cJSON_GetArrayItem(ev, 2), "event_id"), "b2");
    cJSON_Delete(j);
    j = get_json("/buffer/room%2F1/stats", 200);
    ck_assert(num(j, "count") == 5);
    ck_assert(num(j, "min") == 10);
    ck_assert(num(j, "max") == 50);
    ck_assert(num(j, "mean") == 30);
    cJSON_Delete(j);
    cJSON_Delete(get_json("/buffer/nobody/latest", 404));
    cJSON_Delete(get_json("/stats", 200));
}
END_TEST

/* ---- hostile input: each a 400 JSON error naming the parameter ---- */

struct hostile {
    const char *path;
    const char *param;
};

static const struct hostile hostile[] = {
    {"/events/mono?foo=1", "foo"},
    {"/events/mono?LIMIT=1", "LIMIT"},
    {"/events/mono?correlation_rule=r0", "correlation_rule"},
    {"/events/multi?source_stream=s0", "source_stream"},
    {"/events/stats?key=k0", "key"},
    {"/events/mono/m001?x=1", "x"},
    {"/buffer/room%2F1/latest?limit=2", "limit"},
    {"/events/mono?limit=5&limit=6", "limit"},
    {"/events/mono?key=a&key=a", "key"},
    {"/events/mono?limit=", "limit"},
    {"/events/mono?limit", "limit"},
    {"/events/mono?key=a&&limit=1", "(query)"},
    {"/events/mono?limit=0", "limit"},
    {"/events/mono?limit=1001", "limit"},
    {"/events/mono?limit=-5", "limit"},
    {"/events/mono?limit=ten", "limit"},
    {"/events/mono?limit=1e2", "limit"},
    {"/events/mono?limit=18446744073709551617", "limit"},
    {"/events/mono?limit=5%20OR%201=1", "limit"},
    {"/events/mono?offset=-1", "offset"},
    {"/events/mono?offset=999999999", "offset"},
    {"/events/multi?limit=1;DROP%20TABLE%20multi_events", "limit"},
    {"/events/mono?start_time=yesterday", "start_time"},
    {"/events/mono?start_time=2026-13-01T00:00:00Z", "start_time"},
    {"/events/mono?start_time=2026-02-29T00:00:00Z", "start_time"},
    {"/events/mono?start_time=2026-11-30", "start_time"},
    {"/events/mono?end_time=2026-11-30T24:00:01Z", "end_time"},
    {"/events/mono?end_time=2026-11-30T00:00:00%2B25:00", "end_time"},
    {"/events/mono?start_time=1e12", "start_time"},
    {"/events/mono?start_time=99999999999999999", "start_time"},
    {"/events/mono?start_time=2026-11-30T00:00:00Z'%20OR%20'1'='1", "start_time"},
    {"/events/mono?start_time=2026-11-30T01:00:00Z&end_time=2026-11-30T00:00:00Z", "end_time"},
    {"/events/stats?start_time=2026-11-30T01:00:00Z&end_time=2026-11-30T01:00:00Z", "end_time"},
    {"/events/stats?end_time=soon", "end_time"},
    {"/events/mono?source_stream=a%20b", "source_stream"},
    {"/events/mono?source_stream=x'%3B%20DELETE%20FROM%20mono_events%3B--", "source_stream"},
    {"/events/mono?event_type=%3Cscript%3E", "event_type"},
    {"/events/mono?event_type=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "event_type"},
    {"/events/multi?correlation_rule=r%0D%0A1", "correlation_rule"},
    {"/events/mono?key=%01", "key"},
    {"/events/mono?key=%ff%fe%fd", "key"},
    {"/events/mono?key=%c3%28", "key"},
    {"/events/mono?key=%ed%a0%80", "key"},
    {"/events/mono?key=%e0%80%af", "key"},
    {"/events/mono?key=%00abc", "key"},
    {"/events/mono?key=%zz", "key"},
    {"/events/mono?key=%4", "key"},
    {"/events/mono?%ff%fe=1", "(name)"},
    {"/events/multi?min_confidence=2", "min_confidence"},
    {"/events/multi?min_confidence=-0.01", "min_confidence"},
    {"/events/multi?min_confidence=NaN", "min_confidence"},
    {"/events/multi?min_confidence=0x1p-1", "min_confidence"},
    {"/events/multi?min_confidence=0.5abc", "min_confidence"},
    {"/events/mono?cursor=abc", "cursor"},
    {"/events/mono?cursor=AQAGR0hGIEAAA2FiYx", "cursor"},
    {"/events/mono?cursor=AgAGR0hGIEAAA2FiYw", "cursor"},
    {"/events/mono?cursor=%27%20OR%201%3D1%20--", "cursor"},
    {"/events/mono?cursor=AQAGR0hGIEAAA2FiYw&offset=3", "offset"},
    {"/events/mono/bad%20id", "id"},
    {"/events/mono/%27%3BDROP%20TABLE%20mono_events", "id"},
    {"/events/multi/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "/lineage", "id"},
    {"/buffer/room%2F1/last/0", "n"},
    {"/buffer/room%2F1/last/1001", "n"},
    {"/buffer/room%2F1/last/abc", "n"},
    {"/buffer/a%01b/latest", "key"},
    {"/candles/k-agg?timeframe=7m", "timeframe"},
    {"/candles/k-agg?timeframe=1x", "timeframe"},
    {"/candles/k-agg?timeframe=60", "timeframe"},
    {"/candles/k-agg?start_time=noon", "start_time"},
    {"/candles/k-agg?limit=0", "limit"},
    {"/candles/k-agg?limit=5000", "limit"},
    {"/candles/k-agg?names=sma_20", "names"},
    {"/candles/k-agg?type=x'%3B--", "type"},
    {"/candles/", "key"},
    {"/candles/a%01b", "key"},
    {"/indicators/k-agg?names=sma_20,sma_x", "names"},
    {"/indicators/k-agg?names=foo_1", "names"},
    {"/indicators/k-agg?names=sma_20,sma_20", "names"},
    {"/indicators/k-agg?names=sma_1,sma_2,sma_3,sma_4,sma_5,sma_6,sma_7,sma_8,sma_9,sma_10,"
     "sma_11,sma_12,sma_13,sma_14,sma_15,sma_16,sma_17,sma_18,sma_19,sma_20,sma_21,sma_22,"
     "sma_23,sma_24,sma_25", "names"},
    {"/indicators/k-agg?timeframe=1d&limit=-1", "limit"},
    {"/indicators/k-agg?start_time=2026-11-30T00:01:00Z&end_time=2026-11-30T00:01:00Z",
     "end_time"},
};

START_TEST(test_hostile_parameters)
{
    const struct hostile *h = &hostile[_i];
    int st = get(h->path);
    ck_assert_msg(st == 400, "%s: %d %s", h->path, st, body);
    cJSON *j = cJSON_Parse(body);
    ck_assert_msg(j != NULL, "%s: not JSON: %s", h->path, body);
    ck_assert_str_eq(str(j, "error"), "bad_parameter");
    ck_assert_msg(strcmp(str(j, "parameter"), h->param) == 0, "%s: named %s, wanted %s",
                  h->path, str(j, "parameter"), h->param);
    cJSON_Delete(j);
}
END_TEST

START_TEST(test_huge_query_string)
{
    char *path = malloc(20000);
    strcpy(path, "/events/mono?key=");
    memset(path + 17, 'a', 9000);
    path[9017] = '\0';
    int st = get(path);
    ck_assert_msg(st == 400 || st == 413 || st == 414 || st == 431, "%d", st);
    free(path);
    ck_assert_int_eq(get("/health"), 200); /* still serving */
}
END_TEST

/* ---- auth and rate limit ---- */

START_TEST(test_auth)
{
    ck_assert_int_eq(http_get(daemon_port, "/events/mono", NULL, NULL, 0), 401);
    ck_assert_ptr_nonnull(strstr(body, "\"unauthorized\""));
    ck_assert_int_eq(http_get(daemon_port, "/events/mono",
                              "Authorization: Bearer not-a-real-key-000000\r\n", NULL, 0), 401);
    ck_assert_int_eq(http_get(daemon_port, "/events/mono", "Authorization: Bearer short\r\n",
                              NULL, 0), 401);
    ck_assert_int_eq(http_get(daemon_port, "/events/mono",
                              "Authorization: Bearer " INGEST_KEY "\r\n", NULL, 0), 403);
    ck_assert_int_eq(http_get(daemon_port, "/events/mono", "X-API-Key: " READ_KEY "\r\n", NULL,
                              0), 200);
    ck_assert_int_eq(http_get(daemon_port, "/buffer/room%2F1/latest", NULL, NULL, 0), 401);
}
END_TEST

START_TEST(test_rate_limit)
{
    int port = harness_free_port();
    pid_t pid = start_daemon(port, "3", "2s");
    char head[4096];
    const char *auth = "Authorization: Bearer " READ_KEY "\r\n";
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(http_get(port, "/events/mono?limit=1", auth, NULL, 0), 200);
    ck_assert_int_eq(http_get(port, "/events/mono?limit=1", auth, head, sizeof(head)), 429);
    const char *ra = strcasestr(head, "Retry-After: ");
    ck_assert_msg(ra != NULL, "%s", head);
    int secs = atoi(ra + 13);
    ck_assert_msg(secs >= 1 && secs <= 2, "Retry-After %d", secs);
    /* another key is not affected: the ingest key gets 403, not 429 */
    ck_assert_int_eq(http_get(port, "/events/mono", "X-API-Key: " INGEST_KEY "\r\n", NULL, 0),
                     403);
    ck_assert_int_eq(http_get(port, "/health", NULL, NULL, 0), 200); /* health stays open */
    sleep((unsigned)secs);
    usleep(200000);
    ck_assert_int_eq(http_get(port, "/events/mono?limit=1", auth, NULL, 0), 200);
    ck_assert_int_eq(stop_daemon(pid, 10000), 0);
}
END_TEST

START_TEST(test_sigterm_exits_cleanly)
{
    int port = harness_free_port();
    pid_t pid = start_daemon(port, "0", "1s");
    ck_assert_int_eq(http_get(port, "/events/mono?limit=1",
                              "Authorization: Bearer " READ_KEY "\r\n", NULL, 0), 200);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    ck_assert_int_eq(stop_daemon(pid, 10000), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ck_assert_int_lt(b.tv_sec - a.tv_sec, 5);
}
END_TEST

/* Runs in its own TCase and starts its own servers: a forked test may stop only servers it
 * started itself. */
START_TEST(test_database_down_then_back)
{
    setup();
    ck_assert_int_eq(harness_server_stop(ps, 0), 0);
    int st = get("/events/mono?limit=1");
    ck_assert_msg(st == 503, "%d %s", st, body);
    ck_assert_int_eq(http_get(daemon_port, "/health/database", NULL, NULL, 0), 503);
    ck_assert_int_eq(harness_server_restart(ps), 0);
    for (int i = 0; i < 50 && get("/events/mono?limit=1") != 200; i++)
        usleep(100000);
    ck_assert_int_eq(get("/events/mono/m007"), 200);
    ck_assert_int_eq(http_get(daemon_port, "/health/ready", NULL, NULL, 0), 200);
    teardown();
}
END_TEST

/* The archiver path: events XADDed as producers' events are, archived by the real
 * astro-archiver (rows and rollups), then read back through astro-query. */
START_TEST(test_through_the_archiver)
{
    setup();
    char err[256], id[16];
    struct astro_redis *r = astro_redis_connect(harness_server_url(rs), NULL, err, sizeof(err));
    ck_assert_ptr_nonnull(r);
    char *keys[] = {"alpha", "beta", "gamma", "delta"};
    for (int i = 0; i < 120; i++) {
        snprintf(id, sizeof(id), "arc%03d", i);
        xadd(r, id, INT64_C(1796083200000000) + i * INT64_C(1000000), "arcsrc", keys[i % 4], i);
    }
    astro_redis_free(r);
    const char *bin = getenv("ASTRO_ARCHIVER_BIN");
    ck_assert_msg(bin != NULL, "ASTRO_ARCHIVER_BIN is not set");
    char db[560], redis[320];
    snprintf(db, sizeof(db), "ASTRO_DATABASE_URL=%s", db_url);
    snprintf(redis, sizeof(redis), "ASTRO_REDIS_URL=%s", harness_server_url(rs));
    const char *const set[] = {db, redis, "ASTRO_HTTP_PORT=0", "ASTRO_HTTP_BIND=127.0.0.1",
                               "ASTRO_BATCH_AGE=50ms", "ASTRO_LOG_LEVEL=warn", NULL};
    const char *const argv[] = {"astro-archiver", NULL};
    pid_t arc = harness_spawn(bin, argv, set, NULL, NULL);
    ck_assert_int_ge(arc, 0);
    int n = 0;
    for (int i = 0; i < 200 && n < 120; i++) {
        usleep(100000);
        n = count_where("/events/mono?source_stream=arcsrc&limit=1000", NULL, NULL);
    }
    ck_assert_int_eq(n, 120);
    ck_assert_int_eq(count_where("/events/mono?source_stream=arcsrc&key=gamma", "key", "gamma"),
                     30);
    cJSON *j = get_json("/events/mono/arc005", 200);
    ck_assert(num(j, "value") == 5);
    ck_assert_str_eq(str(j, "key"), "beta");
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(j, "stream_entry_id")));
    cJSON_Delete(j);
    j = get_json("/events/stats?start_time=2026-12-01T00:00:00Z&end_time=2026-12-01T01:00:00Z",
                 200);
    ck_assert(num(cJSON_GetObjectItem(j, "by_source"), "arcsrc") == 120);
    cJSON_Delete(j);
    ck_assert_int_eq(stop_daemon(arc, 20000), 0);
    teardown();
}
END_TEST

/* ---- candles and indicators (issue 9) ---- */

/* The 1m trade candle of minute n as fill_candles() stored it, shaped by the contract's own
 * astro_candle_to_json(): what the endpoint must answer. */
static cJSON *
expected_trade_candle(int n)
{
    struct astro_candle c;
    char err[128];
    memset(&c, 0, sizeof(c));
    c.key = strdup("k-agg");
    snprintf(c.type, sizeof(c.type), "trade");
    snprintf(c.tf, sizeof(c.tf), "1m");
    c.tf_us = 60000000;
    ck_assert_int_eq(astro_time_parse_rfc3339(BASE, strlen(BASE), &c.bucket_us, err,
                                              sizeof(err)), ASTRO_OK);
    c.bucket_us += n * c.tf_us;
    c.open = 100 + n, c.high = 102 + n, c.low = 99 + n, c.close = 101.25 + n;
    c.volume = 10 + n, c.count = 5 + n, c.vwap = 100.5 + n;
    struct astro_indicator_value ema = {"ema_3", 1.5 * n, true, true};
    struct astro_indicator_value rsi = {"rsi_14", 50 + n, true, false};
    struct astro_indicator_value sma = {"sma_2", 100.75 + n, true, true};
    if (n >= 2)
        c.ind[c.n_ind++] = ema;
    if (n >= 5)
        c.ind[c.n_ind++] = rsi;
    if (n >= 1)
        c.ind[c.n_ind++] = sma;
    cJSON *j = astro_candle_to_json(&c);
    astro_candle_cleanup(&c);
    ck_assert_ptr_nonnull(j);
    return j;
}

/* The page's candles are the 1m trade candles of minutes first.. in order. */
static void
expect_trade_candles(const char *path, int first, int n)
{
    cJSON *j = get_json(path, 200), *c;
    ck_assert_msg(num(j, "count") == n, "%s: %s", path, body);
    int i = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "candles")) {
        /* compared as parsed JSON: astro_candle_to_json holds its numbers as raw text */
        cJSON *built = expected_trade_candle(first + i++);
        char *got_text = cJSON_PrintUnformatted(c), *want_text = cJSON_PrintUnformatted(built);
        cJSON *want = cJSON_Parse(want_text);
        ck_assert_msg(cJSON_Compare(c, want, true), "%s: candle %d\n got %s\nwant %s", path,
                      i - 1, got_text, want_text);
        free(got_text);
        free(want_text);
        cJSON_Delete(want);
        cJSON_Delete(built);
    }
    ck_assert_int_eq(i, n);
    cJSON_Delete(j);
}

START_TEST(test_candles)
{
    /* the newest 3, oldest first; the default timeframe is 1m */
    expect_trade_candles("/candles/k-agg?timeframe=1m&type=trade&limit=3", 7, 3);
    expect_trade_candles("/candles/k-agg?type=trade&start_time=2026-11-30T00:02:00Z"
                         "&end_time=1795997100000", 2, 3);
    cJSON *j = get_json("/candles/k-agg?type=trade&timeframe=1m&limit=1", 200);
    ck_assert_str_eq(str(j, "key"), "k-agg");
    ck_assert_str_eq(str(j, "timeframe"), "1m");
    ck_assert_str_eq(str(j, "event_type"), "trade");
    ck_assert(num(j, "limit") == 1);
    cJSON_Delete(j);
    /* every event type of the key: by bucket, then type; quote minute 2 has no vwap */
    j = get_json("/candles/k-agg?limit=1000", 200);
    cJSON *a = cJSON_GetObjectItem(j, "candles");
    ck_assert_int_eq(cJSON_GetArraySize(a), 13);
    ck_assert_str_eq(str(cJSON_GetArrayItem(a, 0), "event_type"), "quote");
    ck_assert_str_eq(str(cJSON_GetArrayItem(a, 1), "event_type"), "trade");
    ck_assert_str_eq(str(cJSON_GetArrayItem(a, 4), "bucket_start"), "2026-11-30T00:02:00.000000Z");
    ck_assert_str_eq(str(cJSON_GetArrayItem(a, 4), "event_type"), "quote");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(a, 4), "vwap")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "event_type")));
    cJSON_Delete(j);
    /* another timeframe is another series */
    j = get_json("/candles/k-agg?timeframe=5m", 200);
    a = cJSON_GetObjectItem(j, "candles");
    ck_assert_int_eq(cJSON_GetArraySize(a), 1);
    ck_assert_str_eq(str(cJSON_GetArrayItem(a, 0), "bucket_end"), "2026-11-30T00:05:00.000000Z");
    ck_assert(num(cJSON_GetArrayItem(a, 0), "close") == 105.25);
    cJSON_Delete(j);
    j = get_json("/candles/no-such-key", 200);
    ck_assert(num(j, "count") == 0);
    cJSON_Delete(j);
    /* the read scope, like every data endpoint */
    ck_assert_int_eq(http_get(daemon_port, "/candles/k-agg", NULL, NULL, 0), 401);
    ck_assert_int_eq(http_get(daemon_port, "/indicators/k-agg",
                              "Authorization: Bearer " INGEST_KEY "\r\n", NULL, 0), 403);
}
END_TEST

/* Bucket i of an /indicators page: its start, type and the names it holds. */
static const cJSON *
bucket(const cJSON *j, int i, const char *start, const char *type, int names)
{
    const cJSON *b = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "indicators"), i);
    ck_assert_msg(b != NULL, "no bucket %d: %s", i, body);
    ck_assert_str_eq(str(b, "bucket_start"), start);
    ck_assert_str_eq(str(b, "event_type"), type);
    ck_assert_str_eq(str(b, "key"), "k-agg");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(b, "indicators")), names);
    return cJSON_GetObjectItem(b, "indicators");
}

START_TEST(test_indicators)
{
    cJSON *j = get_json("/indicators/k-agg?timeframe=1m&type=trade&names=sma_2,rsi_14&limit=2",
                        200);
    ck_assert(num(j, "count") == 2);
    const cJSON *ind = bucket(j, 0, "2026-11-30T00:08:00.000000Z", "trade", 2);
    ck_assert(num(cJSON_GetObjectItem(ind, "sma_2"), "value") == 108.75);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(ind, "sma_2"), "ready")));
    ck_assert(num(cJSON_GetObjectItem(ind, "rsi_14"), "value") == 58);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(ind, "rsi_14"), "ready")));
    bucket(j, 1, "2026-11-30T00:09:00.000000Z", "trade", 2);
    cJSON_Delete(j);
    /* no names: every stored indicator of each bucket; minute 0 has none */
    j = get_json("/indicators/k-agg?type=trade&start_time=2026-11-30T00:00:00Z"
                 "&end_time=2026-11-30T00:03:00Z", 200);
    ck_assert(num(j, "count") == 2);
    bucket(j, 0, "2026-11-30T00:01:00.000000Z", "trade", 1);
    ind = bucket(j, 1, "2026-11-30T00:02:00.000000Z", "trade", 2);
    ck_assert(num(cJSON_GetObjectItem(ind, "ema_3"), "value") == 3);
    ck_assert_str_eq(str(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "indicators"), 1),
                         "bucket_end"), "2026-11-30T00:03:00.000000Z");
    cJSON_Delete(j);
    /* no type: the quote and trade buckets of minute 1, by type */
    j = get_json("/indicators/k-agg?names=sma_2&end_time=2026-11-30T00:02:00Z", 200);
    ck_assert(num(j, "count") == 2);
    ind = bucket(j, 0, "2026-11-30T00:01:00.000000Z", "quote", 1);
    ck_assert(num(cJSON_GetObjectItem(ind, "sma_2"), "value") == 2);
    bucket(j, 1, "2026-11-30T00:01:00.000000Z", "trade", 1);
    cJSON_Delete(j);
    j = get_json("/indicators/k-agg?timeframe=4h", 200);
    ck_assert(num(j, "count") == 0);
    cJSON_Delete(j);
}
END_TEST

static Suite *
query_suite(void)
{
    Suite *s = suite_create("query");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_health);
    tcase_add_test(tc, test_openapi_paths_answer);
    tcase_add_test(tc, test_mono_filters);
    tcase_add_test(tc, test_multi_filters_and_lineage);
    tcase_add_test(tc, test_stats_from_rollups);
    tcase_add_test(tc, test_buffer);
    tcase_add_test(tc, test_candles);
    tcase_add_test(tc, test_indicators);
    tcase_add_loop_test(tc, test_hostile_parameters, 0,
                        (int)(sizeof(hostile) / sizeof(hostile[0])));
    tcase_add_test(tc, test_huge_query_string);
    tcase_add_test(tc, test_auth);
    tcase_add_test(tc, test_rate_limit);
    tcase_add_test(tc, test_sigterm_exits_cleanly);
    tcase_add_test(tc, test_cursor_pagination_while_inserting);
    suite_add_tcase(s, tc);
    TCase *outage = tcase_create("outage");
    tcase_set_timeout(outage, 120);
    tcase_add_test(outage, test_database_down_then_back);
    tcase_add_test(outage, test_through_the_archiver);
    suite_add_tcase(s, outage);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(query_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

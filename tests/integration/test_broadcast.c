/* astro-broadcast end to end: the real daemon (ASTRO_BROADCAST_BIN) as a child process against a
 * private redis-server; events are XADDed in the stream layout ingest and leaflet write, and
 * subscribers are raw wsraw clients and civetweb's WebSocket client. The prediction round trip
 * goes through the real astro-ingest (ASTRO_INGEST_BIN) to an edge connection. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "astro/agg.h"
#include "astro/apikey.h"
#include "astro/common.h"
#include "astro/event.h"
#include "astro/partition.h"
#include "astro/redis.h"
#include "astro/time.h"
#include "servers.h"
#include "spawn.h"
#include "cwclient.h"
#include "wsraw.h"

#define KEY "bc-read-key-0123456789abcdef"
#define INGEST_ONLY_KEY "bc-ingest-key-0123456789abcdef"
#define T_MS 3000
#define PARTS 16

static struct harness_server *rs;
static redisContext *rc;
static pid_t bc_pid, ing_pid;
static int port, ing_port;

static int
http_status(int p, const char *req, char *body, size_t body_size)
{
    struct wsraw *w = wsraw_connect("127.0.0.1", p, 500);
    if (w == NULL)
        return -1;
    int st = wsraw_http(w, req, strlen(req), body, body_size, T_MS);
    wsraw_close(w);
    return st;
}

/* Starts the daemon named by $binvar on port p with the base settings plus env ("NAME=value",
 * NULL-ended) and waits until it is ready. */
static pid_t
spawn(const char *binvar, int p, const char *const *env)
{
    enum { FIXED = 5, MAX_EXTRA = 8 };
    char url[320], portbuf[32];
    const char *bin = getenv(binvar);
    ck_assert_msg(bin != NULL, "%s not set", binvar);
    snprintf(url, sizeof(url), "ASTRO_REDIS_URL=%s", harness_server_url(rs));
    snprintf(portbuf, sizeof(portbuf), "ASTRO_HTTP_PORT=%d", p);
    const char *set[FIXED + MAX_EXTRA + 1] = {url, portbuf, "ASTRO_HTTP_BIND=127.0.0.1",
                                              "ASTRO_HTTP_THREADS=2", "ASTRO_LOG_LEVEL=warn"};
    size_t n = FIXED;
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        ck_assert_msg(n < FIXED + MAX_EXTRA, "too many extra variables for %s", bin);
        set[n++] = env[i];
    }
    const char *const unset[] = {"ASTRO_BROADCAST_BIN", "ASTRO_INGEST_BIN", NULL};
    const char *const argv[] = {bin, NULL};
    pid_t pid = harness_spawn(bin, argv, set, unset, NULL);
    ck_assert(pid >= 0);
    long until = harness_now_ms() + 15000;
    while (harness_now_ms() < until) {
        if (http_status(p, "GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n", NULL, 0) == 200)
            return pid;
        usleep(50000);
    }
    ck_abort_msg("%s did not become ready on port %d", bin, p);
    return -1;
}

/* Sends SIGTERM and returns the exit status (-1 if it had to be killed). */
static int
stop_child(pid_t *pid, int timeout_ms)
{
    int status = 0;
    if (*pid <= 0)
        return 0;
    kill(*pid, SIGTERM);
    long until = harness_now_ms() + timeout_ms;
    while (harness_now_ms() < until) {
        if (waitpid(*pid, &status, WNOHANG) == *pid) {
            *pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        usleep(10000);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, &status, 0);
    *pid = 0;
    return -1;
}

static void
start_broadcast(void)
{
    static const char *const env[] = {"ASTRO_AUTH_TIMEOUT=700ms", "ASTRO_WS_MAX_QUEUE_BYTES=64KiB",
                                      "ASTRO_APIKEY_CACHE_TTL=200ms",
                                      "ASTRO_BROADCAST_BACKFILL_PAGE=7", NULL};
    port = harness_free_port();
    bc_pid = spawn("ASTRO_BROADCAST_BIN", port, env);
}

static void
setup(void)
{
    char err[256];
    rs = harness_redis_start(NULL);
    ck_assert_msg(rs != NULL, "redis-server did not start");
    rc = redisConnect("127.0.0.1", harness_server_port(rs));
    ck_assert(rc != NULL && rc->err == 0);
    struct astro_redis *r = astro_redis_connect(harness_server_url(rs), NULL, err, sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    ck_assert_int_eq(astro_apikey_store(r, KEY, "reader", ASTRO_SCOPE_READ, false, err,
                                        sizeof(err)), ASTRO_OK);
    ck_assert_int_eq(astro_apikey_store(r, INGEST_ONLY_KEY, "producer", ASTRO_SCOPE_INGEST,
                                        false, err, sizeof(err)), ASTRO_OK);
    astro_redis_free(r);
    start_broadcast();
}

static void
teardown(void)
{
    stop_child(&ing_pid, 10000);
    stop_child(&bc_pid, 10000);
    if (rc != NULL)
        redisFree(rc);
    rc = NULL;
    harness_server_free(rs);
    rs = NULL;
}

/* ---- helpers ---- */

struct ev_spec {
    bool multi;
    const char *id, *src, *key, *type, *rule;
    size_t pad; /* metadata bytes, to make big events */
};

/* XADDs one event where ingest (mono) or leaflet (multi) would put it. */
static void
xadd(const struct ev_spec *e)
{
    struct astro_event ev;
    struct astro_lineage_item li = {.ts_us = 1, .value = 1};
    struct astro_stream_fields f;
    char stream[40], *meta = NULL;
    memset(&ev, 0, sizeof(ev));
    snprintf(ev.id, sizeof(ev.id), "%s", e->id);
    ev.ts_us = astro_now_us();
    ev.src = (char *)e->src;
    ev.key = (char *)e->key;
    ev.type = (char *)e->type;
    ev.value = 1.5;
    if (e->pad > 0) {
        meta = malloc(e->pad + 16);
        int n = snprintf(meta, e->pad + 16, "{\"p\":\"");
        memset(meta + n, 'x', e->pad);
        strcpy(meta + n + e->pad, "\"}");
        ev.meta_json = meta;
    }
    if (e->multi) {
        ev.is_multi = true;
        ev.rule = (char *)e->rule;
        ev.integrated_value = 2;
        ev.confidence = 0.5;
        ev.n_sources = 1;
        snprintf(li.id, sizeof(li.id), "src-of-%s", e->id);
        snprintf(li.stream, sizeof(li.stream), "%s", e->src);
        snprintf(li.type, sizeof(li.type), "%s", e->type);
        ev.lineage = &li;
    }
    uint32_t p = astro_partition_of(e->key, strlen(e->key), PARTS);
    ck_assert_int_eq(astro_stream_key(stream, sizeof(stream), e->multi ? "multi" : "mono", p),
                     ASTRO_OK);
    astro_stream_fields_init(&f);
    ck_assert_int_eq(astro_stream_fields_push(&f, "XADD", 4), ASTRO_OK);
    ck_assert_int_eq(astro_stream_fields_push(&f, stream, strlen(stream)), ASTRO_OK);
    ck_assert_int_eq(astro_stream_fields_push(&f, "*", 1), ASTRO_OK);
    ck_assert_int_eq(astro_event_stream_encode(&ev, &f), ASTRO_OK);
    redisReply *rep = redisCommandArgv(rc, f.argc, f.argv, f.argvlen);
    ck_assert_msg(rep != NULL && rep->type == REDIS_REPLY_STRING, "XADD failed");
    freeReplyObject(rep);
    astro_stream_fields_cleanup(&f);
    free(meta);
}

static void
xadd_mono(const char *id, const char *key, const char *type)
{
    struct ev_spec e = {.id = id, .src = "s1", .key = key, .type = type};
    xadd(&e);
}

/* The next text frame (pings skipped), parsed; NULL on timeout or close. */
static cJSON *
recv_json(struct wsraw *w, int timeout_ms)
{
    long until = harness_now_ms() + timeout_ms;
    for (;;) {
        int op = 0;
        char *payload = NULL;
        long left = until - harness_now_ms();
        if (left < 0 || wsraw_recv_frame(w, (int)left, &op, NULL, &payload, NULL) != 0)
            return NULL;
        if (op == WSRAW_OP_TEXT) {
            cJSON *j = cJSON_Parse(payload);
            free(payload);
            return j;
        }
        free(payload);
        if (op == WSRAW_OP_CLOSE)
            return NULL;
    }
}

static const char *
jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static const char *
event_id(const cJSON *msg)
{
    return jstr(cJSON_GetObjectItemCaseSensitive(msg, "event"), "event_id");
}

/* Opens path and waits for {"type":"subscribed"} (the key is in the query). */
static struct wsraw *
subscribe(const char *path)
{
    struct wsraw *w = wsraw_connect("127.0.0.1", port, T_MS);
    ck_assert(w != NULL);
    ck_assert_int_eq(wsraw_handshake(w, path, NULL, NULL, 0, T_MS), 101);
    cJSON *m = recv_json(w, T_MS);
    ck_assert_msg(m != NULL, "no subscribed message on %s", path);
    ck_assert_str_eq(jstr(m, "type"), "subscribed");
    cJSON_Delete(m);
    return w;
}

/* Reads event messages until quiet_ms pass without one; writes their ids joined by ','. */
static void
collect_ids(struct wsraw *w, int quiet_ms, char *out, size_t size, char *last_pos, size_t possz)
{
    out[0] = '\0';
    cJSON *m;
    while ((m = recv_json(w, quiet_ms)) != NULL) {
        ck_assert_str_eq(jstr(m, "type"), "event");
        ck_assert_msg(jstr(m, "position")[0] != '\0', "message without position");
        size_t n = strlen(out);
        snprintf(out + n, size - n, "%s%s", n ? "," : "", event_id(m));
        if (last_pos != NULL)
            snprintf(last_pos, possz, "%s", jstr(m, "position"));
        cJSON_Delete(m);
    }
}

/* ---- endpoints and filters ---- */

START_TEST(filters_each_subscriber_gets_what_it_asked_for)
{
    struct wsraw *all = subscribe("/stream/ws?api_key=" KEY);
    struct wsraw *mono_u1 = subscribe("/stream/ws?api_key=" KEY "&stream=mono&key=u1");
    struct wsraw *rule = subscribe("/stream/ws?api_key=" KEY "&stream=multi&correlation_rule=r1");
    struct wsraw *typ = subscribe("/stream/ws?api_key=" KEY "&source=s2&event_type=B");
    struct wsraw *user = subscribe("/subscribe/u1?api_key=" KEY);
    const struct ev_spec evs[] = {
        {false, "e1", "s1", "u1", "A", NULL, 0}, {false, "e2", "s2", "u2", "B", NULL, 0},
        {true, "m1", "s2", "u1", "B", "r1", 0},  {true, "m2", "s1", "u3", "A", "r2", 0},
        {false, "e3", "s2", "u1", "B", NULL, 0}, {false, "e4", "s1", "u9", "A", NULL, 0},
    };
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(evs); i++)
        xadd(&evs[i]);
    char ids[512];
    collect_ids(all, 600, ids, sizeof(ids), NULL, 0);
    /* all six, each once (order across partitions is per stream, so compare as a set) */
    ck_assert_int_eq((int)strlen(ids), (int)strlen("e1,e2,m1,m2,e3,e4"));
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(evs); i++)
        ck_assert_msg(strstr(ids, evs[i].id) != NULL, "all: %s missing from %s", evs[i].id, ids);
    collect_ids(mono_u1, 300, ids, sizeof(ids), NULL, 0);
    ck_assert_str_eq(ids, "e1,e3"); /* same key: one partition, stream order */
    collect_ids(rule, 300, ids, sizeof(ids), NULL, 0);
    ck_assert_str_eq(ids, "m1");
    collect_ids(typ, 300, ids, sizeof(ids), NULL, 0);
    ck_assert_msg(strstr(ids, "e2") && strstr(ids, "m1") && strstr(ids, "e3") &&
                      strlen(ids) == 8, "source+type: %s", ids);
    collect_ids(user, 300, ids, sizeof(ids), NULL, 0);
    ck_assert_msg(strlen(ids) == 8 && strstr(ids, "e1") && strstr(ids, "m1") && strstr(ids, "e3"),
                  "user u1: %s", ids);
    wsraw_close(all);
    wsraw_close(mono_u1);
    wsraw_close(rule);
    wsraw_close(typ);
    wsraw_close(user);
}
END_TEST

START_TEST(first_message_auth_and_message_shape)
{
    struct wsraw *w = wsraw_connect("127.0.0.1", port, T_MS);
    ck_assert_int_eq(wsraw_handshake(w, "/stream/ws?stream=mono", NULL, NULL, 0, T_MS), 101);
    ck_assert_int_eq(wsraw_send_text(w, "{\"type\":\"auth\",\"api_key\":\"" KEY "\"}"), 0);
    cJSON *m = recv_json(w, T_MS);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(jstr(m, "type"), "subscribed");
    cJSON_Delete(m);
    xadd_mono("shape-1", "k1", "A");
    m = recv_json(w, T_MS);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(jstr(m, "type"), "event");
    ck_assert_str_eq(jstr(m, "stream"), "mono");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(m, "event");
    ck_assert_str_eq(jstr(e, "event_id"), "shape-1");
    ck_assert_str_eq(jstr(e, "source_stream"), "s1");
    ck_assert_str_eq(jstr(e, "key"), "k1");
    ck_assert_str_eq(jstr(e, "event_type"), "A");
    ck_assert(cJSON_GetObjectItemCaseSensitive(e, "value")->valuedouble == 1.5);
    cJSON_Delete(m);
    /* a second auth is an error frame; the subscription stays */
    ck_assert_int_eq(wsraw_send_text(w, "{\"type\":\"auth\",\"api_key\":\"" KEY "\"}"), 0);
    m = recv_json(w, T_MS);
    ck_assert_str_eq(jstr(m, "code"), "already_authenticated");
    cJSON_Delete(m);
    xadd_mono("shape-2", "k1", "A");
    m = recv_json(w, T_MS);
    ck_assert_str_eq(event_id(m), "shape-2");
    cJSON_Delete(m);
    wsraw_close(w);
}
END_TEST

/* ---- auth and hostile parameters ---- */

static int
ws_close_code(const char *path, const char *first, char *reason, size_t rsize)
{
    struct wsraw *w = wsraw_connect("127.0.0.1", port, T_MS);
    ck_assert_int_eq(wsraw_handshake(w, path, NULL, NULL, 0, T_MS), 101);
    if (first != NULL)
        ck_assert_int_eq(wsraw_send_text(w, first), 0);
    int code = wsraw_expect_close(w, T_MS, reason, rsize);
    wsraw_close(w);
    return code;
}

START_TEST(auth_failures_close_1008)
{
    char reason[128];
    ck_assert_int_eq(ws_close_code("/stream/ws?api_key=wrong-key-0123456789", NULL, reason,
                                   sizeof(reason)), 1008);
    ck_assert_str_eq(reason, "invalid api key");
    ck_assert_int_eq(ws_close_code("/stream/ws?api_key=" INGEST_ONLY_KEY, NULL, reason,
                                   sizeof(reason)), 1008);
    ck_assert_str_eq(reason, "api key lacks read scope");
    ck_assert_int_eq(ws_close_code("/stream/ws/stats", "{\"type\":\"hello\"}", reason,
                                   sizeof(reason)), 1008);
    long t0 = harness_now_ms();
    ck_assert_int_eq(ws_close_code("/subscribe/u1", NULL, reason, sizeof(reason)), 1008);
    ck_assert_int_ge(harness_now_ms() - t0, 600); /* ASTRO_AUTH_TIMEOUT=700ms */
    /* a refused subscriber got no event: nothing is sent before the key is accepted */
    struct wsraw *w = wsraw_connect("127.0.0.1", port, T_MS);
    ck_assert_int_eq(wsraw_handshake(w, "/stream/ws", NULL, NULL, 0, T_MS), 101);
    xadd_mono("secret-1", "k", "A");
    int op = 0;
    char *p = NULL;
    ck_assert_int_eq(wsraw_recv_frame(w, 1500, &op, NULL, &p, NULL), 0);
    ck_assert_int_eq(op, WSRAW_OP_CLOSE); /* the deadline's close, not the event */
    free(p);
    wsraw_close(w);
}
END_TEST

static const struct {
    const char *path;
    const char *reason; /* substring of the 400 body */
} hostile[] = {
    {"/stream/ws?stream=astro:dead", "stream"},
    {"/stream/ws?stream=mono&stream=all", "more than once"},
    {"/stream/ws?streams=mono", "unknown parameter"},
    {"/stream/ws?source_stream=..%2F..%2Fetc", "source_stream"},
    {"/stream/ws?key=a%0Ab", "key"},
    {"/stream/ws?event_type=*", "event_type"},
    {"/stream/ws?since=not-a-token", "since"},
    {"/stream/ws?since=", "since"},
    {"/stream/ws?since=AQQAAAAAAAAAAA", "since"},
    {"/stream/ws?stream=mono&correlation_rule=r1", "correlation_rule"},
    {"/stream/ws?stream=candles&timeframe=7m", "timeframe"},
    {"/stream/ws?timeframe=1m", "timeframe"},
    {"/stream/ws/stats?key=u1", "unknown parameter"},
    {"/subscribe/u1?key=u2", "unknown parameter"},
    {"/subscribe/u%0A1", "key"},
};

START_TEST(hostile_parameters_400_before_upgrade)
{
    struct wsraw *w = wsraw_connect("127.0.0.1", port, T_MS);
    int st = wsraw_handshake(w, hostile[_i].path, NULL, NULL, 0, T_MS);
    ck_assert_msg(st == 400, "%s -> %d", hostile[_i].path, st);
    wsraw_close(w);
    /* the body names the parameter */
    char req[512], body[512];
    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
             hostile[_i].path);
    ck_assert_int_eq(http_status(port, req, body, sizeof(body)), 400);
    ck_assert_msg(strstr(body, hostile[_i].reason) != NULL, "%s: %s", hostile[_i].path, body);
}
END_TEST

/* ---- resume ---- */

struct producer {
    int from, to;
};

static void *
produce(void *arg)
{
    struct producer *p = arg;
    redisContext *c = redisConnect("127.0.0.1", harness_server_port(rs));
    redisContext *save = rc;
    (void)save;
    for (int i = p->from; i < p->to; i++) {
        char id[32];
        snprintf(id, sizeof(id), "r%04d", i);
        /* this thread has its own connection: the event is built here like xadd() does */
        struct astro_event ev;
        struct astro_stream_fields f;
        char stream[40];
        memset(&ev, 0, sizeof(ev));
        snprintf(ev.id, sizeof(ev.id), "%s", id);
        ev.ts_us = astro_now_us();
        ev.src = "s1";
        ev.key = "resume-key";
        ev.type = "A";
        uint32_t part = astro_partition_of(ev.key, strlen(ev.key), PARTS);
        if (astro_stream_key(stream, sizeof(stream), "mono", part) != ASTRO_OK)
            break;
        astro_stream_fields_init(&f);
        if (astro_stream_fields_push(&f, "XADD", 4) == ASTRO_OK &&
            astro_stream_fields_push(&f, stream, strlen(stream)) == ASTRO_OK &&
            astro_stream_fields_push(&f, "*", 1) == ASTRO_OK &&
            astro_event_stream_encode(&ev, &f) == ASTRO_OK) {
            redisReply *rep = redisCommandArgv(c, f.argc, f.argv, f.argvlen);
            if (rep != NULL)
                freeReplyObject(rep);
        }
        astro_stream_fields_cleanup(&f);
        usleep(2000);
    }
    redisFree(c);
    return NULL;
}

static void
expect_sequence(const char *ids, int from, int to)
{
    char want[8192] = "";
    for (int i = from; i < to; i++) {
        size_t n = strlen(want);
        snprintf(want + n, sizeof(want) - n, "%sr%04d", n ? "," : "", i);
    }
    ck_assert_msg(strcmp(ids, want) == 0, "got  %s\nwant %s", ids, want);
}

START_TEST(resume_after_disconnect_no_gap_no_duplicate)
{
    struct wsraw *w = subscribe("/stream/ws?api_key=" KEY "&key=resume-key");
    struct producer p1 = {0, 20};
    produce(&p1);
    char ids[8192], pos[4096], path[4600];
    /* read 12 of them, keep the 12th's position, drop the connection */
    for (int i = 0; i < 12; i++) {
        cJSON *m = recv_json(w, T_MS);
        ck_assert_ptr_nonnull(m);
        snprintf(pos, sizeof(pos), "%s", jstr(m, "position"));
        cJSON_Delete(m);
    }
    wsraw_close(w);
    /* more events while away, and more while the resume runs (the page size is 7, so the
     * backfill takes several XRANGE pages and live events arrive during it) */
    struct producer p2 = {20, 60};
    produce(&p2);
    struct producer p3 = {60, 160};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, produce, &p3), 0);
    snprintf(path, sizeof(path), "/stream/ws?api_key=" KEY "&key=resume-key&since=%s", pos);
    usleep(20000);
    w = subscribe(path);
    pthread_join(th, NULL);
    collect_ids(w, 800, ids, sizeof(ids), pos, sizeof(pos));
    expect_sequence(ids, 12, 160);
    wsraw_close(w);
    /* and once more from the last position: nothing new, nothing repeated */
    snprintf(path, sizeof(path), "/stream/ws?api_key=" KEY "&key=resume-key&since=%s", pos);
    w = subscribe(path);
    struct producer p4 = {160, 163};
    produce(&p4);
    collect_ids(w, 500, ids, sizeof(ids), NULL, 0);
    expect_sequence(ids, 160, 163);
    wsraw_close(w);
}
END_TEST

/* ---- candles (issue 9) ---- */

/* XADDs a closed candle where astro-leaflet puts it (astro:agg:{p} of the key). */
static void
xadd_candle(const char *key, const char *tf, int64_t bucket_us, double close)
{
    struct astro_candle c;
    struct astro_stream_fields f;
    char stream[40], err[128];
    memset(&c, 0, sizeof(c));
    c.key = (char *)key;
    snprintf(c.type, sizeof(c.type), "trade");
    snprintf(c.tf, sizeof(c.tf), "%s", tf);
    ck_assert_int_eq(astro_tf_parse(tf, strlen(tf), &c.tf_us, err, sizeof(err)), ASTRO_OK);
    c.bucket_us = bucket_us;
    c.open = c.low = 100;
    c.high = 110;
    c.close = close;
    c.volume = 3;
    c.vwap = 104.5;
    c.count = 3;
    c.n_ind = 1;
    snprintf(c.ind[0].name, sizeof(c.ind[0].name), "sma_2");
    c.ind[0].value = close - 1;
    c.ind[0].has_value = c.ind[0].ready = true;
    uint32_t p = astro_partition_of(key, strlen(key), PARTS);
    ck_assert_int_eq(astro_stream_key(stream, sizeof(stream), "agg", p), ASTRO_OK);
    astro_stream_fields_init(&f);
    ck_assert_int_eq(astro_stream_fields_push(&f, "XADD", 4), ASTRO_OK);
    ck_assert_int_eq(astro_stream_fields_push(&f, stream, strlen(stream)), ASTRO_OK);
    ck_assert_int_eq(astro_stream_fields_push(&f, "*", 1), ASTRO_OK);
    ck_assert_int_eq(astro_candle_stream_encode(&c, &f), ASTRO_OK);
    redisReply *rep = redisCommandArgv(rc, f.argc, f.argv, f.argvlen);
    ck_assert_msg(rep != NULL && rep->type == REDIS_REPLY_STRING, "XADD candle failed");
    freeReplyObject(rep);
    astro_stream_fields_cleanup(&f);
}

/* Reads candle messages until quiet: "key/tf/close" joined by ','; the last position. */
static void
collect_candles(struct wsraw *w, int quiet_ms, char *out, size_t size, char *pos, size_t possz)
{
    cJSON *m;
    out[0] = '\0';
    while ((m = recv_json(w, quiet_ms)) != NULL) {
        ck_assert_str_eq(jstr(m, "type"), "candle");
        ck_assert_str_eq(jstr(m, "stream"), "candles");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "candle");
        const cJSON *close = cJSON_GetObjectItemCaseSensitive(c, "close");
        const cJSON *sma = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "indicators"),
                                             "sma_2"),
            "value");
        ck_assert(cJSON_IsNumber(close) && cJSON_IsNumber(sma));
        ck_assert(sma->valuedouble == close->valuedouble - 1);
        ck_assert_str_eq(jstr(c, "event_type"), "trade");
        size_t n = strlen(out);
        snprintf(out + n, size - n, "%s%s/%s/%g", n ? "," : "", jstr(c, "key"),
                 jstr(c, "timeframe"), close->valuedouble);
        if (pos != NULL)
            snprintf(pos, possz, "%s", jstr(m, "position"));
        cJSON_Delete(m);
    }
}

START_TEST(candles_filtered_by_key_and_timeframe_and_resumed)
{
    const int64_t b = INT64_C(1796090400000000); /* 2026-12-01T02:00:00Z */
    struct wsraw *btc1m = subscribe("/stream/ws?api_key=" KEY "&stream=candles&key=BTC&timeframe=1m");
    struct wsraw *every = subscribe("/stream/ws?api_key=" KEY "&stream=candles");
    struct wsraw *events = subscribe("/stream/ws?api_key=" KEY);
    xadd_candle("BTC", "1m", b, 101);
    xadd_candle("BTC", "5m", b, 102);
    xadd_candle("ETH", "1m", b, 103);
    xadd_candle("BTC", "1m", b + 60000000, 104);
    xadd_mono("e-after-candles", "BTC", "trade");
    char got[512], pos[4096], path[4600];
    collect_candles(btc1m, 500, got, sizeof(got), pos, sizeof(pos));
    ck_assert_str_eq(got, "BTC/1m/101,BTC/1m/104");
    collect_candles(every, 300, got, sizeof(got), NULL, 0);
    ck_assert_msg(strlen(got) == strlen("BTC/1m/101,BTC/5m/102,ETH/1m/103,BTC/1m/104") &&
                      strstr(got, "ETH/1m/103") && strstr(got, "BTC/5m/102"), "%s", got);
    /* the event subscriber (no stream=) gets the event and no candle */
    cJSON *m = recv_json(events, T_MS);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(jstr(m, "type"), "event");
    ck_assert_str_eq(event_id(m), "e-after-candles");
    cJSON_Delete(m);
    ck_assert_ptr_null(recv_json(events, 300));
    /* resume from the last position seen: the candle added while away comes once, then live */
    wsraw_close(btc1m);
    xadd_candle("BTC", "1m", b + 120000000, 105);
    snprintf(path, sizeof(path),
             "/stream/ws?api_key=" KEY "&stream=candles&key=BTC&timeframe=1m&since=%s", pos);
    btc1m = subscribe(path);
    xadd_candle("BTC", "1m", b + 180000000, 106);
    collect_candles(btc1m, 500, got, sizeof(got), NULL, 0);
    ck_assert_str_eq(got, "BTC/1m/105,BTC/1m/106");
    wsraw_close(btc1m);
    wsraw_close(every);
    wsraw_close(events);
}
END_TEST

/* ---- stats ---- */

START_TEST(stats_once_a_second)
{
    redisReply *rep = redisCommand(rc, "XADD astro:late * reason too_late id x");
    freeReplyObject(rep);
    rep = redisCommand(rc, "XADD astro:dead * reason bad");
    freeReplyObject(rep);
    rep = redisCommand(rc, "XADD astro:dead * reason bad2");
    freeReplyObject(rep);
    rep = redisCommand(rc, "XGROUP CREATE astro:mono:{0} archiver 0 MKSTREAM");
    freeReplyObject(rep);
    struct wsraw *w = subscribe("/stream/ws/stats?api_key=" KEY);
    struct wsraw *other = subscribe("/stream/ws?api_key=" KEY);
    long t0 = harness_now_ms();
    cJSON *a = recv_json(w, 2500), *b = recv_json(w, 2500);
    long dt = harness_now_ms() - t0;
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_msg(dt >= 700 && dt < 2600, "two stats in %ld ms", dt);
    ck_assert_str_eq(jstr(b, "type"), "stats");
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(b, "late")->valueint, 1);
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(b, "dead")->valueint, 2);
    ck_assert_int_ge(cJSON_GetObjectItemCaseSensitive(b, "subscribers")->valueint, 2);
    ck_assert_int_ge(cJSON_GetObjectItemCaseSensitive(b, "connections")->valueint, 2);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(b, "events_per_second")));
    const cJSON *lag = cJSON_GetObjectItemCaseSensitive(b, "lag");
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(lag, "archiver")));
    cJSON_Delete(a);
    cJSON_Delete(b);
    /* the event subscriber got no stats message */
    ck_assert_ptr_null(recv_json(other, 300));
    wsraw_close(w);
    wsraw_close(other);
}
END_TEST

/* ---- slow consumers ---- */

#define NFAST 500
#define NTICKS 60

struct fast {
    struct wsraw *w;
    int got;
    long worst_ms;
};

static void *
fast_reader(void *arg)
{
    struct fast *f = arg;
    while (f->got < NTICKS) {
        cJSON *m = recv_json(f->w, 15000);
        if (m == NULL)
            break;
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(m, "event");
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(e, "metadata");
        const cJSON *sent = cJSON_GetObjectItemCaseSensitive(md, "sent_ms");
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long now = ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
        if (cJSON_IsNumber(sent) && now - (long)sent->valuedouble > f->worst_ms)
            f->worst_ms = now - (long)sent->valuedouble;
        f->got++;
        cJSON_Delete(m);
    }
    return NULL;
}

static void
xadd_tick(int i)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char meta[64], id[32];
    snprintf(meta, sizeof(meta), "{\"sent_ms\":%ld}", ts.tv_sec * 1000L + ts.tv_nsec / 1000000L);
    snprintf(id, sizeof(id), "tick-%d", i);
    redisReply *rep = redisCommand(rc, "XADD astro:mono:{0} * id %s ts %lld src s1 key k "
                                   "type tick val 1 meta %s", id,
                                   (long long)astro_now_us(), meta);
    ck_assert(rep != NULL && rep->type == REDIS_REPLY_STRING);
    freeReplyObject(rep);
}

START_TEST(stalled_subscriber_cut_off_others_in_time)
{
    static struct fast fast[NFAST];
    static pthread_t th[NFAST];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    struct wsraw *stalled = wsraw_connect("127.0.0.1", port, T_MS);
    int small = 4096;
    setsockopt(wsraw_fd(stalled), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    ck_assert_int_eq(wsraw_handshake(stalled, "/stream/ws?api_key=" KEY, NULL, NULL, 0, T_MS),
                     101);
    for (int i = 0; i < NFAST; i++) {
        fast[i].w = subscribe("/stream/ws?api_key=" KEY "&event_type=tick");
        ck_assert_int_eq(pthread_create(&th[i], &attr, fast_reader, &fast[i]), 0);
    }
    /* The stalled subscriber takes everything: 11 MiB of bulk against a 64 KiB queue; the 500
     * others take the ticks interleaved with the bulk. */
    for (int i = 0; i < NTICKS; i++) {
        for (int k = 0; k < 12; k++) {
            char id[32];
            snprintf(id, sizeof(id), "bulk-%d-%d", i, k);
            struct ev_spec e = {.id = id, .src = "s1", .key = "k", .type = "bulk", .pad = 16384};
            xadd(&e);
        }
        xadd_tick(i);
        usleep(10000);
    }
    long worst = 0;
    for (int i = 0; i < NFAST; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(fast[i].got == NTICKS, "subscriber %d got %d of %d", i, fast[i].got,
                      NTICKS);
        if (fast[i].worst_ms > worst)
            worst = fast[i].worst_ms;
        wsraw_close(fast[i].w);
    }
    /* The cut-off is counted while the client still stalls (the kernel's buffers hold a
     * few MiB before the layer's queue overflows); then the client reads what is left, with a
     * big receive buffer, and finds the close code and reason at the end. */
    long until = harness_now_ms() + 15000;
    int slow = 0;
    while (slow < 1 && harness_now_ms() < until) {
        char body[65536];
        ck_assert_int_eq(http_status(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", body,
                                     sizeof(body)), 200);
        const char *q = strstr(body, "\nastro_broadcast_slow_disconnects_total ");
        ck_assert_ptr_nonnull(q);
        slow = atoi(q + strlen("\nastro_broadcast_slow_disconnects_total "));
        if (slow < 1)
            usleep(100000);
    }
    ck_assert_int_eq(slow, 1);
    /* Reads what the layer still flushes, up to the close frame: code and reason. */
    char reason[128] = "";
    int cc = -1, op = 0;
    char *pl = NULL;
    size_t ln = 0;
    while (wsraw_recv_frame(stalled, 15000, &op, NULL, &pl, &ln) == 0) {
        if (op == WSRAW_OP_CLOSE && ln >= 2) {
            cc = ((unsigned char)pl[0] << 8) | (unsigned char)pl[1];
            snprintf(reason, sizeof(reason), "%.*s", (int)(ln - 2), pl + 2);
        }
        free(pl);
        if (op == WSRAW_OP_CLOSE)
            break;
    }
    ck_assert_int_eq(cc, 1008);
    ck_assert_str_eq(reason, "slow consumer");
    wsraw_close(stalled);
    /* generous for ASan on 2 shared cores; the point is that nobody waited for the stalled */
    ck_assert_msg(worst < 3000, "worst tick latency %ld ms", worst);
    pthread_attr_destroy(&attr);
}
END_TEST

/* ---- predictions: subscriber -> broadcast -> Redis -> ingest -> edge connection ---- */

START_TEST(prediction_round_trip_to_the_edge)
{
    static const char *const env[] = {"ASTRO_BOOTSTRAP_API_KEY=ingest-boot-key-0123456789",
                                      NULL};
    ing_port = harness_free_port();
    ing_pid = spawn("ASTRO_INGEST_BIN", ing_port, env);
    struct wsraw *edge = wsraw_connect("127.0.0.1", ing_port, T_MS);
    ck_assert_int_eq(wsraw_handshake(edge, "/stream", NULL, NULL, 0, T_MS), 101);
    ck_assert_int_eq(wsraw_send_text(edge, "{\"type\":\"auth\",\"api_key\":"
                                           "\"ingest-boot-key-0123456789\",\"user_id\":\"u7\"}"),
                     0);
    cJSON *m = recv_json(edge, T_MS);
    ck_assert_str_eq(jstr(m, "type"), "auth_ok");
    cJSON_Delete(m);
    /* ingest subscribes astro:edge:u7 asynchronously after auth_ok */
    long until = harness_now_ms() + T_MS;
    long long subs = 0;
    while (subs < 1 && harness_now_ms() < until) {
        redisReply *rep = redisCommand(rc, "PUBSUB NUMSUB astro:edge:u7");
        subs = rep->element[1]->integer;
        freeReplyObject(rep);
        usleep(10000);
    }
    ck_assert_int_eq(subs, 1);
    struct wsraw *sub = subscribe("/subscribe/u7?api_key=" KEY);
    /* a bad prediction is refused with a reason and stores nothing */
    ck_assert_int_eq(wsraw_send_text(sub, "{\"type\":\"prediction\",\"prediction_type\":"
                                          "\"emotion\",\"classifier_name\":\"svm\",\"version\":"
                                          "\"1\",\"data\":[1]}"), 0);
    m = recv_json(sub, T_MS);
    ck_assert_str_eq(jstr(m, "code"), "invalid_prediction");
    ck_assert_msg(strstr(jstr(m, "message"), "data") != NULL, "%s", jstr(m, "message"));
    cJSON_Delete(m);
    ck_assert_int_eq(wsraw_send_text(sub, "{\"type\":\"prediction\",\"prediction_type\":"
                                          "\"emotion\",\"classifier_name\":\"svm\",\"version\":"
                                          "\"1.2\",\"data\":{\"valence\":0.7}}"), 0);
    m = recv_json(sub, T_MS);
    ck_assert_str_eq(jstr(m, "type"), "prediction_ack");
    char pid[64];
    snprintf(pid, sizeof(pid), "%s", jstr(m, "prediction_id"));
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(m, "receivers")->valueint, 1);
    cJSON_Delete(m);
    /* the edge device gets it through ingest */
    m = recv_json(edge, T_MS);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(jstr(m, "type"), "prediction");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "payload");
    ck_assert_str_eq(jstr(p, "prediction_id"), pid);
    ck_assert_str_eq(jstr(p, "user_id"), "u7");
    ck_assert_str_eq(jstr(p, "classifier_name"), "svm");
    ck_assert(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "data"),
                                               "valence")->valuedouble == 0.7);
    cJSON_Delete(m);
    /* and the archiver's stream has it in its layout */
    redisReply *rep = redisCommand(rc, "XRANGE astro:predictions - +");
    ck_assert_int_eq((int)rep->elements, 1);
    redisReply *fields = rep->element[0]->element[1];
    ck_assert_int_eq((int)fields->elements, 8);
    ck_assert_str_eq(fields->element[0]->str, "id");
    ck_assert_str_eq(fields->element[1]->str, pid);
    ck_assert_str_eq(fields->element[3]->str, "u7");
    ck_assert_str_eq(fields->element[6]->str, "payload");
    freeReplyObject(rep);
    wsraw_close(sub);
    wsraw_close(edge);
}
END_TEST

/* ---- civetweb's client, SIGTERM ---- */

START_TEST(civetweb_client_then_sigterm_1001)
{
    char err[256] = "";
    struct cwclient *c =
        cwclient_connect(port, "/stream/ws?api_key=" KEY "&stream=mono&key=cw", err, sizeof(err));
    ck_assert_msg(c != NULL, "civetweb: %s", err);
    ck_assert_int_eq(cwclient_wait(c, 1, T_MS), 1);
    ck_assert_msg(strstr(cwclient_message(c, 0), "\"subscribed\"") != NULL, "%s",
                  cwclient_message(c, 0));
    xadd_mono("cw-1", "cw", "A");
    ck_assert_int_eq(cwclient_wait(c, 2, T_MS), 2);
    ck_assert_msg(strstr(cwclient_message(c, 1), "\"event_id\":\"cw-1\"") != NULL, "%s",
                  cwclient_message(c, 1));
    cwclient_close(c);
    /* SIGTERM: a subscriber is closed 1001 and the daemon exits 0 */
    struct wsraw *w = subscribe("/stream/ws?api_key=" KEY);
    kill(bc_pid, SIGTERM);
    ck_assert_int_eq(wsraw_expect_close(w, 5000, NULL, 0), 1001);
    wsraw_close(w);
    ck_assert_int_eq(stop_child(&bc_pid, 10000), 0);
}
END_TEST

/* ---- Redis restart: the tail resumes ---- */

START_TEST(redis_restart_tail_resumes)
{
    struct wsraw *w = subscribe("/stream/ws?api_key=" KEY "&key=rr");
    xadd_mono("rr-1", "rr", "A");
    cJSON *m = recv_json(w, T_MS);
    ck_assert_str_eq(event_id(m), "rr-1");
    cJSON_Delete(m);
    redisFree(rc);
    rc = NULL;
    ck_assert_int_eq(harness_server_stop(rs, 0), 0);
    usleep(300000);
    ck_assert_int_eq(harness_server_restart(rs), 0);
    rc = redisConnect("127.0.0.1", harness_server_port(rs));
    ck_assert(rc != NULL && rc->err == 0);
    xadd_mono("rr-2", "rr", "A");
    m = recv_json(w, 8000);
    ck_assert_msg(m != NULL, "no event after the Redis restart");
    ck_assert_str_eq(event_id(m), "rr-2");
    cJSON_Delete(m);
    wsraw_close(w);
}
END_TEST

static Suite *
broadcast_suite(void)
{
    Suite *s = suite_create("broadcast");
    const struct {
        const char *name;
        const TTest *test;
        int timeout, loops;
    } cases[] = {
        {"filters", filters_each_subscriber_gets_what_it_asked_for, 20, 1},
        {"first_message_auth", first_message_auth_and_message_shape, 20, 1},
        {"auth_failures", auth_failures_close_1008, 20, 1},
        {"hostile", hostile_parameters_400_before_upgrade, 20, (int)ASTRO_ARRAY_LEN(hostile)},
        {"resume", resume_after_disconnect_no_gap_no_duplicate, 30, 1},
        {"candles", candles_filtered_by_key_and_timeframe_and_resumed, 30, 1},
        {"stats", stats_once_a_second, 20, 1},
        {"slow_consumer", stalled_subscriber_cut_off_others_in_time, 90, 1},
        {"prediction", prediction_round_trip_to_the_edge, 30, 1},
        {"civetweb_sigterm", civetweb_client_then_sigterm_1001, 30, 1},
        {"redis_restart", redis_restart_tail_resumes, 30, 1},
    };
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(cases); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, cases[i].timeout);
        tcase_add_loop_test(tc, cases[i].test, 0, cases[i].loops);
        suite_add_tcase(s, tc);
    }
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(broadcast_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* astro-ingest end to end: the real daemon (ASTRO_INGEST_BIN) as a child process against a
 * private redis-server from the harness; clients are the raw wsraw client, civetweb's
 * WebSocket client and curl. Every acknowledged id is looked up in the stream itself. Each test
 * starts its own redis-server and daemon (checked fixture: they belong to the forked test). */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "astro/apikey.h"
#include "astro/common.h"
#include "astro/redis.h"
#include "servers.h"
#include "spawn.h"
#include "cwclient.h"
#include "wsraw.h"

#define KEY "test-bootstrap-key-0123456789"
#define T_MS 3000
#define PARTS 16

static struct harness_server *rs;
static redisContext *rc;
static pid_t ing_pid;
static int port;

static int
http_status(const char *req, char *body, size_t body_size)
{
    struct wsraw *w = wsraw_connect("127.0.0.1", port, 500);
    if (w == NULL)
        return -1;
    int st = wsraw_http(w, req, strlen(req), body, body_size, T_MS);
    wsraw_close(w);
    return st;
}

/* Starts astro-ingest on port with the base settings plus extra_env ("NAME=value", NULL-ended)
 * and waits until it is ready. */
static void
spawn_ingest(const char *const *extra_env)
{
    enum { FIXED = 14, MAX_EXTRA = 8 };
    char url[320], portbuf[32];
    const char *bin = getenv("ASTRO_INGEST_BIN");
    ck_assert_msg(bin != NULL, "ASTRO_INGEST_BIN not set");
    snprintf(url, sizeof(url), "ASTRO_REDIS_URL=%s", harness_server_url(rs));
    snprintf(portbuf, sizeof(portbuf), "ASTRO_HTTP_PORT=%d", port);
    const char *set[FIXED + MAX_EXTRA + 1] = {
        url, portbuf, "ASTRO_HTTP_BIND=127.0.0.1", "ASTRO_HTTP_THREADS=2",
        "ASTRO_BOOTSTRAP_API_KEY=" KEY, "ASTRO_AUTH_TIMEOUT=1s", "ASTRO_BACKPRESSURE_POLL=100ms",
        "ASTRO_BACKPRESSURE_HIGH=1000", "ASTRO_BACKPRESSURE_LOW=500",
        "ASTRO_WS_MAX_MESSAGE_BYTES=64KiB", "ASTRO_HTTP_MAX_BODY_BYTES=256KiB",
        "ASTRO_MAX_BATCH_ITEMS=100", "ASTRO_APIKEY_CACHE_TTL=200ms", "ASTRO_LOG_LEVEL=warn"};
    size_t n = FIXED;
    for (size_t i = 0; extra_env != NULL && extra_env[i] != NULL; i++) {
        ck_assert_msg(n < FIXED + MAX_EXTRA, "too many extra astro-ingest variables");
        set[n++] = extra_env[i];
    }
    const char *const unset[] = {"ASTRO_INGEST_BIN", "ASTRO_ADMIN", NULL};
    const char *const argv[] = {bin, NULL};
    ing_pid = harness_spawn(bin, argv, set, unset, NULL);
    ck_assert(ing_pid >= 0);
    long until = harness_now_ms() + 15000;
    while (harness_now_ms() < until) {
        if (http_status("GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n", NULL, 0) == 200)
            return;
        usleep(50000);
    }
    ck_abort_msg("astro-ingest did not become ready on port %d", port);
}

/* Sends SIGTERM and returns the exit status (-1 if it had to be killed). */
static int
stop_ingest(int timeout_ms)
{
    int status = 0;
    if (ing_pid <= 0)
        return 0;
    kill(ing_pid, SIGTERM);
    long until = harness_now_ms() + timeout_ms;
    while (harness_now_ms() < until) {
        if (waitpid(ing_pid, &status, WNOHANG) == ing_pid) {
            ing_pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        usleep(10000);
    }
    kill(ing_pid, SIGKILL);
    waitpid(ing_pid, &status, 0);
    ing_pid = 0;
    return -1;
}

static void
setup(void)
{
    rs = harness_redis_start(NULL);
    ck_assert_msg(rs != NULL, "redis-server did not start");
    rc = redisConnect("127.0.0.1", harness_server_port(rs));
    ck_assert(rc != NULL && rc->err == 0);
    port = harness_free_port();
    spawn_ingest(NULL);
}

static void
teardown(void)
{
    stop_ingest(10000);
    if (rc != NULL)
        redisFree(rc);
    rc = NULL;
    harness_server_free(rs);
    rs = NULL;
}

/* ---- helpers ---- */

static redisReply *
r_cmd(const char *fmt, const char *a)
{
    redisReply *rep = redisCommand(rc, fmt, a);
    ck_assert(rep != NULL);
    return rep;
}

static int
stream_has_id(const char *id, cJSON **fields_out)
{
    char key[32];
    for (int p = 0; p < PARTS; p++) {
        snprintf(key, sizeof(key), "astro:mono:{%d}", p);
        redisReply *rep = r_cmd("XRANGE %s - +", key);
        int found = 0;
        for (size_t i = 0; i < rep->elements && !found; i++) {
            redisReply *f = rep->element[i]->element[1];
            if (f->elements >= 2 && strcmp(f->element[1]->str, id) == 0) {
                found = 1;
                if (fields_out != NULL) {
                    *fields_out = cJSON_CreateObject();
                    for (size_t k = 0; k + 1 < f->elements; k += 2)
                        cJSON_AddStringToObject(*fields_out, f->element[k]->str,
                                                f->element[k + 1]->str);
                }
            }
        }
        freeReplyObject(rep);
        if (found)
            return 1;
    }
    return 0;
}

static long long
total_entries(void)
{
    char key[32];
    long long n = 0;
    for (int p = 0; p < PARTS; p++) {
        snprintf(key, sizeof(key), "astro:mono:{%d}", p);
        redisReply *rep = r_cmd("XLEN %s", key);
        n += rep->integer;
        freeReplyObject(rep);
    }
    return n;
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

static struct wsraw *
ws_open(void)
{
    struct wsraw *w = wsraw_connect("127.0.0.1", port, T_MS);
    ck_assert(w != NULL);
    ck_assert_int_eq(wsraw_handshake(w, "/stream", NULL, NULL, 0, T_MS), 101);
    return w;
}

static struct wsraw *
ws_auth(const char *user, char *sid, size_t sid_size)
{
    char msg[512];
    struct wsraw *w = ws_open();
    snprintf(msg, sizeof(msg),
             "{\"type\":\"auth\",\"api_key\":\"" KEY "\",\"user_id\":\"%s\",\"device_info\":"
             "{\"device_type\":\"Emotiv EPOC\",\"sampling_rate\":128,\"channel_names\":"
             "[\"AF3\",\"F7\"],\"channel_count\":2}}", user);
    ck_assert_int_eq(wsraw_send_text(w, msg), 0);
    cJSON *r = recv_json(w, T_MS);
    ck_assert_msg(r != NULL, "no auth answer");
    ck_assert_str_eq(jstr(r, "type"), "auth_ok");
    if (sid != NULL)
        snprintf(sid, sid_size, "%s", jstr(r, "session_id"));
    cJSON_Delete(r);
    return w;
}

/* Sends text and returns the answer (ack or error). */
static cJSON *
roundtrip(struct wsraw *w, const char *text)
{
    ck_assert_int_eq(wsraw_send_text(w, text), 0);
    cJSON *r = recv_json(w, T_MS);
    ck_assert_msg(r != NULL, "no answer to %.80s", text);
    return r;
}

static void
assert_acked_in_stream(const cJSON *ack, int want)
{
    ck_assert_str_eq(jstr(ack, "type"), "ack");
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(ack, "event_ids");
    ck_assert_int_eq(cJSON_GetArraySize(ids), want);
    for (const cJSON *id = ids->child; id != NULL; id = id->next)
        ck_assert_msg(stream_has_id(id->valuestring, NULL), "acked %s not in stream",
                      id->valuestring);
}

/* ---- auth ---- */

START_TEST(auth_ok_starts_session)
{
    char sid[64];
    struct wsraw *w = ws_auth("user_123", sid, sizeof(sid));
    ck_assert_int_eq((int)strlen(sid), 36);
    redisReply *rep = r_cmd("XRANGE %s - +", "astro:sessions");
    ck_assert_int_eq((int)rep->elements, 1);
    redisReply *f = rep->element[0]->element[1];
    char all[2048] = "";
    for (size_t i = 0; i < f->elements; i++) {
        strncat(all, f->element[i]->str, sizeof(all) - strlen(all) - 2);
        strcat(all, "|");
    }
    freeReplyObject(rep);
    ck_assert_msg(strstr(all, "kind|start|") && strstr(all, sid) && strstr(all, "user_123") &&
                  strstr(all, "Emotiv EPOC"), "session start: %s", all);
    wsraw_send_close(w, 1000, NULL);
    wsraw_expect_close(w, T_MS, NULL, 0);
    wsraw_close(w);
    long until = harness_now_ms() + T_MS;
    long long n = 0;
    while (n < 2 && harness_now_ms() < until) {
        rep = r_cmd("XLEN %s", "astro:sessions");
        n = rep->integer;
        freeReplyObject(rep);
        usleep(20000);
    }
    ck_assert_int_eq(n, 2); /* kind=end written on disconnect */
}
END_TEST

START_TEST(auth_bad_key_closes_1008)
{
    char reason[128] = "";
    struct wsraw *w = ws_open();
    ck_assert_int_eq(wsraw_send_text(w, "{\"type\":\"auth\",\"api_key\":\"wrong-key-0000000000"
                                        "\",\"user_id\":\"u1\"}"), 0);
    ck_assert_int_eq(wsraw_expect_close(w, T_MS, reason, sizeof(reason)), 1008);
    ck_assert_str_eq(reason, "invalid api key");
    wsraw_close(w);
    /* a malformed auth message closes 1008 naming the field */
    w = ws_open();
    ck_assert_int_eq(wsraw_send_text(w, "{\"type\":\"auth\",\"api_key\":\"" KEY "\"}"), 0);
    ck_assert_int_eq(wsraw_expect_close(w, T_MS, reason, sizeof(reason)), 1008);
    ck_assert_msg(strncmp(reason, "user_id:", 8) == 0, "%s", reason);
    wsraw_close(w);
}
END_TEST

START_TEST(auth_deadline_closes_1008)
{
    char reason[128] = "";
    struct wsraw *w = ws_open();
    long t0 = harness_now_ms();
    ck_assert_int_eq(wsraw_expect_close(w, T_MS, reason, sizeof(reason)), 1008);
    long took = harness_now_ms() - t0;
    ck_assert_msg(took >= 800 && took < 2500, "closed after %ld ms (deadline 1 s)", took);
    ck_assert_str_eq(reason, "no auth message in time");
    wsraw_close(w);
}
END_TEST

START_TEST(auth_scope_and_second_auth)
{
    char err[256];
    struct astro_redis *r = astro_redis_connect(harness_server_url(rs), NULL, err, sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    ck_assert_int_eq(astro_apikey_store(r, "read-only-key-0123456789", "reader", ASTRO_SCOPE_READ,
                                        false, err, sizeof(err)), ASTRO_OK);
    astro_redis_free(r);
    char reason[128] = "";
    struct wsraw *w = ws_open();
    ck_assert_int_eq(wsraw_send_text(w, "{\"type\":\"auth\",\"api_key\":\"read-only-key-"
                                        "0123456789\",\"user_id\":\"u1\"}"), 0);
    ck_assert_int_eq(wsraw_expect_close(w, T_MS, reason, sizeof(reason)), 1008);
    ck_assert_str_eq(reason, "api key lacks the ingest scope");
    wsraw_close(w);
    /* a second auth on a good connection is an error frame; the connection stays usable */
    w = ws_auth("u2", NULL, 0);
    cJSON *e = roundtrip(w, "{\"type\":\"auth\",\"api_key\":\"" KEY "\",\"user_id\":\"u2\"}");
    ck_assert_str_eq(jstr(e, "code"), "already_authenticated");
    cJSON_Delete(e);
    cJSON *a = roundtrip(w, "{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\","
                            "\"value\":1}");
    assert_acked_in_stream(a, 1);
    cJSON_Delete(a);
    wsraw_close(w);
}
END_TEST

/* ---- message types ---- */

START_TEST(each_message_type_acked_after_xadd)
{
    struct wsraw *w = ws_auth("user_123", NULL, 0);
    cJSON *fields = NULL;
    cJSON *a = roundtrip(w, "{\"type\":\"event\",\"seq\":7,\"source_stream\":\"axon_1\","
                            "\"event_type\":\"A\",\"value\":10.5,\"metadata\":{\"x\":1}}");
    ck_assert_int_eq(cJSON_GetObjectItem(a, "seq")->valueint, 7);
    assert_acked_in_stream(a, 1);
    ck_assert(stream_has_id(cJSON_GetObjectItem(a, "event_ids")->child->valuestring, &fields));
    ck_assert_str_eq(jstr(fields, "key"), "user_123"); /* key defaults to the user */
    ck_assert_str_eq(jstr(fields, "val"), "10.5");
    cJSON_Delete(fields);
    cJSON_Delete(a);

    a = roundtrip(w, "{\"type\":\"features\",\"seq\":8,\"workload\":0.65,\"confidence\":0.89,"
                     "\"band_powers\":{\"alpha\":1.5},\"metrics\":{\"m\":2}}");
    assert_acked_in_stream(a, 1);
    ck_assert(stream_has_id(cJSON_GetObjectItem(a, "event_ids")->child->valuestring, &fields));
    ck_assert_str_eq(jstr(fields, "type"), "features");
    ck_assert_str_eq(jstr(fields, "val"), "0.65");
    ck_assert_msg(strstr(jstr(fields, "meta"), "\"band_powers\":{\"alpha\":1.5}") != NULL,
                  "meta %s", jstr(fields, "meta"));
    cJSON_Delete(fields);
    cJSON_Delete(a);

    a = roundtrip(w, "{\"type\":\"raw\",\"channels\":[0.1,0.2,0.3]}");
    assert_acked_in_stream(a, 1);
    ck_assert(stream_has_id(cJSON_GetObjectItem(a, "event_ids")->child->valuestring, &fields));
    ck_assert_str_eq(jstr(fields, "type"), "raw");
    ck_assert_str_eq(jstr(fields, "meta"), "{\"channels\":[0.1,0.2,0.3]}");
    cJSON_Delete(fields);
    cJSON_Delete(a);

    /* recent buffer: newest first, the event's JSON */
    redisReply *rep = r_cmd("KEYS %s", "astro:recent:*");
    ck_assert_int_eq((int)rep->elements, 1);
    redisReply *l = redisCommand(rc, "LRANGE %s 0 -1", rep->element[0]->str);
    ck_assert_int_eq((int)l->elements, 3);
    ck_assert_ptr_nonnull(strstr(l->element[0]->str, "\"event_type\":\"raw\""));
    freeReplyObject(l);
    freeReplyObject(rep);
    wsraw_close(w);
}
END_TEST

START_TEST(batches_all_or_nothing)
{
    struct wsraw *w = ws_auth("u_batch", NULL, 0);
    char msg[8192];
    int n = snprintf(msg, sizeof(msg), "{\"type\":\"events\",\"seq\":1,\"items\":[");
    for (int i = 0; i < 50; i++)
        n += snprintf(msg + n, sizeof(msg) - (size_t)n, "%s{\"source_stream\":\"s\",\"key\":"
                      "\"k%d\",\"event_type\":\"T\",\"value\":%d}", i ? "," : "", i, i);
    snprintf(msg + n, sizeof(msg) - (size_t)n, "]}");
    cJSON *a = roundtrip(w, msg);
    assert_acked_in_stream(a, 50);
    cJSON_Delete(a);
    ck_assert_int_eq(total_entries(), 50);
    cJSON *e = roundtrip(w, "{\"type\":\"events\",\"seq\":2,\"items\":[{\"source_stream\":\"s\","
                            "\"event_type\":\"T\",\"value\":1},{\"source_stream\":\"bad name\","
                            "\"event_type\":\"T\",\"value\":1},{\"event_type\":\"T\","
                            "\"value\":1}]}");
    ck_assert_str_eq(jstr(e, "code"), "invalid_event");
    ck_assert_int_eq(cJSON_GetObjectItem(e, "seq")->valueint, 2);
    const cJSON *items = cJSON_GetObjectItem(e, "items");
    ck_assert_int_eq(cJSON_GetArraySize(items), 2);
    ck_assert_int_eq(cJSON_GetArrayItem(items, 0)->child->valueint, 1);
    ck_assert_str_eq(jstr(cJSON_GetArrayItem(items, 0), "field"), "source_stream");
    ck_assert_int_eq(cJSON_GetArrayItem(items, 1)->child->valueint, 2);
    cJSON_Delete(e);
    ck_assert_int_eq(total_entries(), 50); /* nothing of the bad batch was written */
    wsraw_close(w);
}
END_TEST

START_TEST(duplicate_ids_written_once)
{
    struct wsraw *w = ws_auth("u_dup", NULL, 0);
    const char *ev = "{\"type\":\"event\",\"event_id\":\"5B8F6E3A-1C2D-4E5F-8A9B-0C1D2E3F4A5B\","
                     "\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1}";
    cJSON *a = roundtrip(w, ev);
    assert_acked_in_stream(a, 1);
    cJSON_Delete(a);
    a = roundtrip(w, ev);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(a, "event_ids")), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(a, "duplicates")->child->valuestring,
                     "5b8f6e3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b");
    cJSON_Delete(a);
    /* also within one batch, and over HTTP */
    a = roundtrip(w, "{\"type\":\"events\",\"items\":[{\"event_id\":\"d-1\",\"source_stream\":"
                     "\"s\",\"event_type\":\"A\",\"value\":1},{\"event_id\":\"d-1\","
                     "\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1}]}");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(a, "event_ids")), 1);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(a, "duplicates")), 1);
    cJSON_Delete(a);
    ck_assert_int_eq(total_entries(), 2);
    wsraw_close(w);
}
END_TEST

/* How many stream entries carry event id id (field "id", across all partitions). */
static int
stream_count_id(const char *id)
{
    char key[32];
    int n = 0;
    for (int p = 0; p < PARTS; p++) {
        snprintf(key, sizeof(key), "astro:mono:{%d}", p);
        redisReply *rep = r_cmd("XRANGE %s - +", key);
        for (size_t i = 0; i < rep->elements; i++) {
            redisReply *f = rep->element[i]->element[1];
            n += f->elements >= 2 && strcmp(f->element[1]->str, id) == 0;
        }
        freeReplyObject(rep);
    }
    return n;
}

/* 1 if the ack lists id under event_ids, 0 under duplicates, -1 if under neither. */
static int
ack_written(const cJSON *ack, const char *id)
{
    const char *lists[] = {"duplicates", "event_ids"};
    for (int k = 0; k < 2; k++)
        for (const cJSON *it = cJSON_GetObjectItem(ack, lists[k])->child; it; it = it->next)
            if (strcmp(it->valuestring, id) == 0)
                return k;
    return -1;
}

/* Dedup markers live in time buckets of window / 2: an id stays a duplicate when the repeat
 * falls in a later bucket than the first write, and is new again once the window (plus at most
 * one bucket) has passed; the bucket sets expire on their own. */
START_TEST(duplicate_window_across_buckets)
{
    static const char *const env[] = {"ASTRO_DEDUP_WINDOW=2s", NULL};
    const char *ev = "{\"type\":\"event\",\"event_id\":\"win-1\",\"source_stream\":\"s\","
                     "\"event_type\":\"A\",\"value\":1}";
    stop_ingest(10000);
    spawn_ingest(env);
    struct wsraw *w = ws_auth("u_win", NULL, 0);
    cJSON *a = roundtrip(w, ev);
    long acked = harness_now_ms();
    ck_assert_int_eq(ack_written(a, "win-1"), 1);
    cJSON_Delete(a);
    usleep(1100 * 1000); /* more than a bucket (1 s): the repeat is checked from a later one */
    a = roundtrip(w, ev);
    ck_assert_int_eq(ack_written(a, "win-1"), 0);
    cJSON_Delete(a);
    ck_assert_int_eq(stream_count_id("win-1"), 1);
    redisReply *keys = r_cmd("KEYS %s", "astro:dedupset:*");
    ck_assert_int_ge((int)keys->elements, 1);
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *ttl = r_cmd("PTTL %s", keys->element[i]->str);
        ck_assert_msg(ttl->integer > 0 && ttl->integer <= 3000, "%s pttl %lld",
                      keys->element[i]->str, ttl->integer);
        freeReplyObject(ttl);
    }
    freeReplyObject(keys);
    long wait = acked + 3100 - harness_now_ms(); /* window + one bucket after the first write */
    if (wait > 0)
        usleep((useconds_t)wait * 1000);
    a = roundtrip(w, ev);
    ck_assert_int_eq(ack_written(a, "win-1"), 1);
    cJSON_Delete(a);
    ck_assert_int_eq(stream_count_id("win-1"), 2);
    wsraw_close(w);
}
END_TEST

/* Two ingest instances on one Redis get the same ids at the same time: each id is written
 * once, acknowledged as written by exactly one instance and as a duplicate by the other. */
START_TEST(duplicates_across_two_instances)
{
    enum { ROUNDS = 20, PER = 25 };
    int first_port = port;
    pid_t first_pid = ing_pid;
    port = harness_free_port();
    spawn_ingest(NULL);
    pid_t second_pid = ing_pid;
    struct wsraw *w2 = ws_auth("u_two", NULL, 0);
    port = first_port;
    ing_pid = first_pid;
    struct wsraw *w1 = ws_auth("u_two", NULL, 0);
    for (int r = 0; r < ROUNDS; r++) {
        char msg[8192], id[32];
        int n = snprintf(msg, sizeof(msg), "{\"type\":\"events\",\"items\":[");
        for (int i = 0; i < PER; i++)
            n += snprintf(msg + n, sizeof(msg) - (size_t)n, "%s{\"event_id\":\"two-%d-%d\","
                          "\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":%d}",
                          i ? "," : "", r, i, i);
        snprintf(msg + n, sizeof(msg) - (size_t)n, "]}");
        ck_assert_int_eq(wsraw_send_text(w1, msg), 0);
        ck_assert_int_eq(wsraw_send_text(w2, msg), 0);
        cJSON *a1 = recv_json(w1, T_MS), *a2 = recv_json(w2, T_MS);
        ck_assert(a1 != NULL && a2 != NULL);
        for (int i = 0; i < PER; i++) {
            snprintf(id, sizeof(id), "two-%d-%d", r, i);
            int k1 = ack_written(a1, id), k2 = ack_written(a2, id);
            ck_assert_msg(k1 >= 0 && k2 >= 0 && k1 + k2 == 1, "%s: written %d and %d", id, k1,
                          k2);
        }
        cJSON_Delete(a1);
        cJSON_Delete(a2);
    }
    ck_assert_int_eq(total_entries(), ROUNDS * PER);
    ck_assert_int_eq(stream_count_id("two-7-3"), 1);
    wsraw_close(w1);
    wsraw_close(w2);
    ing_pid = second_pid;
    ck_assert_int_eq(stop_ingest(10000), 0);
    ing_pid = first_pid;
}
END_TEST

/* ---- 40+ bad messages, each with its code, the connection still usable ---- */

static const struct {
    const char *msg;
    const char *code;
} bad_cases[] = {
    {"not json", "invalid_json"},
    {"{", "invalid_json"},
    {"[]", "invalid_json"},
    {"42", "invalid_json"},
    {"\"str\"", "invalid_json"},
    {"null", "invalid_json"},
    {"{\"type\":\"event\",\"type\":\"event\"}", "invalid_json"},
    {"{\"type\":\"event\",\"value\":1,}", "invalid_json"},
    {"{\"type\":\"event\"} trailing", "invalid_json"},
    {"{}", "unknown_type"},
    {"{\"type\":1}", "unknown_type"},
    {"{\"type\":\"nope\"}", "unknown_type"},
    {"{\"type\":\"EVENT\"}", "unknown_type"},
    {"{\"type\":null}", "unknown_type"},
    {"{\"type\":\"event\"}", "invalid_event"},
    {"{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\"}", "invalid_event"},
    {"{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":\"1\"}",
     "invalid_event"},
    {"{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1e999}",
     "invalid_event"},
    {"{\"type\":\"event\",\"source_stream\":\"a b\",\"event_type\":\"A\",\"value\":1}",
     "invalid_event"},
    {"{\"type\":\"event\",\"source_stream\":\"\",\"event_type\":\"A\",\"value\":1}",
     "invalid_event"},
    {"{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A/B\",\"value\":1}",
     "invalid_event"},
    {"{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1,"
     "\"foo\":1}", "invalid_event"},
    {"{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1,"
     "\"timestamp\":\"yesterday\"}", "invalid_event"},
    {"{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1,"
     "\"timestamp\":\"2099-01-01T00:00:00Z\"}", "invalid_event"},
    {"{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1,"
     "\"timestamp\":\"1999-01-01T00:00:00Z\"}", "invalid_event"},
    {"{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1,"
     "\"event_id\":\"has space\"}", "invalid_event"},
    {"{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1,"
     "\"metadata\":[1]}", "invalid_event"},
    {"{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1,"
     "\"key\":\"a\\u0001b\"}", "invalid_event"},
    {"{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1,"
     "\"correlation_rule\":\"r\"}", "invalid_event"},
    {"{\"type\":\"event\",\"seq\":-1,\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1}",
     "invalid_event"},
    {"{\"type\":\"event\",\"seq\":1.5,\"source_stream\":\"s\",\"event_type\":\"A\","
     "\"value\":1}", "invalid_event"},
    {"{\"type\":\"event\",\"seq\":\"1\",\"source_stream\":\"s\",\"event_type\":\"A\","
     "\"value\":1}", "invalid_event"},
    {"{\"type\":\"events\"}", "invalid_event"},
    {"{\"type\":\"events\",\"items\":{}}", "invalid_event"},
    {"{\"type\":\"events\",\"items\":[]}", "invalid_event"},
    {"{\"type\":\"events\",\"items\":[1]}", "invalid_event"},
    {"{\"type\":\"events\",\"items\":[],\"extra\":1}", "invalid_event"},
    {"{\"type\":\"features\",\"workload\":\"high\"}", "invalid_event"},
    {"{\"type\":\"features\",\"confidence\":1.5}", "invalid_event"},
    {"{\"type\":\"features\",\"band_powers\":[1]}", "invalid_event"},
    {"{\"type\":\"features\",\"unknown\":1}", "invalid_event"},
    {"{\"type\":\"raw\"}", "invalid_event"},
    {"{\"type\":\"raw\",\"channels\":[]}", "invalid_event"},
    {"{\"type\":\"raw\",\"channels\":[\"a\"]}", "invalid_event"},
    {"{\"type\":\"raw\",\"channels\":[1],\"x\":2}", "invalid_event"},
    {"{\"type\":\"auth\",\"api_key\":\"" KEY "\",\"user_id\":\"x\"}", "already_authenticated"},
};

START_TEST(bad_messages_answered_connection_usable)
{
    struct wsraw *w = ws_auth("u_bad", NULL, 0);
    ck_assert_int_ge((int)ASTRO_ARRAY_LEN(bad_cases), 40);
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(bad_cases); i++) {
        cJSON *e = roundtrip(w, bad_cases[i].msg);
        ck_assert_msg(strcmp(jstr(e, "type"), "error") == 0 &&
                      strcmp(jstr(e, "code"), bad_cases[i].code) == 0 &&
                      jstr(e, "message")[0] != '\0',
                      "case %zu %s: got %s %s", i, bad_cases[i].msg, jstr(e, "code"),
                      jstr(e, "message"));
        cJSON_Delete(e);
    }
    /* too many items */
    char big[16384];
    int n = snprintf(big, sizeof(big), "{\"type\":\"events\",\"items\":[");
    for (int i = 0; i < 101; i++)
        n += snprintf(big + n, sizeof(big) - (size_t)n, "%s{}", i ? "," : "");
    snprintf(big + n, sizeof(big) - (size_t)n, "]}");
    cJSON *e = roundtrip(w, big);
    ck_assert_str_eq(jstr(e, "code"), "too_many_items");
    cJSON_Delete(e);
    ck_assert_int_eq(total_entries(), 0);
    cJSON *a = roundtrip(w, "{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\","
                            "\"value\":1}");
    assert_acked_in_stream(a, 1);
    cJSON_Delete(a);
    wsraw_close(w);
}
END_TEST

START_TEST(not_authenticated_then_auth)
{
    struct wsraw *w = ws_open();
    cJSON *e = roundtrip(w, "{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\","
                            "\"value\":1}");
    ck_assert_str_eq(jstr(e, "code"), "not_authenticated");
    cJSON_Delete(e);
    cJSON *ok = roundtrip(w, "{\"type\":\"auth\",\"api_key\":\"" KEY "\",\"user_id\":\"u\"}");
    ck_assert_str_eq(jstr(ok, "type"), "auth_ok");
    cJSON_Delete(ok);
    ck_assert_int_eq(total_entries(), 0);
    wsraw_close(w);
}
END_TEST

/* ---- protocol abuse ---- */

START_TEST(protocol_abuse_close_codes)
{
    struct wsraw *w = ws_auth("u_abuse", NULL, 0);
    /* declared 1 MiB, over the 64 KiB limit: closed from the header alone */
    ck_assert_int_eq(wsraw_send_frame_header(w, 1, 0, WSRAW_OP_TEXT, 1, 1u << 20), 0);
    ck_assert_int_eq(wsraw_expect_close(w, T_MS, NULL, 0), 1009);
    wsraw_close(w);
    w = ws_auth("u_abuse", NULL, 0);
    ck_assert_int_eq(wsraw_send_frame(w, 1, 0, WSRAW_OP_BINARY, 1, "\x01\x02", 2), 0);
    ck_assert_int_eq(wsraw_expect_close(w, T_MS, NULL, 0), 1003);
    wsraw_close(w);
    w = ws_auth("u_abuse", NULL, 0);
    ck_assert_int_eq(wsraw_send_frame(w, 1, 0, WSRAW_OP_TEXT, 1, "{\"a\":\"\xc3\x28\"}", 10), 0);
    ck_assert_int_eq(wsraw_expect_close(w, T_MS, NULL, 0), 1007);
    wsraw_close(w);
    w = ws_auth("u_abuse", NULL, 0);
    ck_assert_int_eq(wsraw_send_frame(w, 1, 0, WSRAW_OP_TEXT, 0, "{}", 2), 0); /* unmasked */
    ck_assert_int_eq(wsraw_expect_close(w, T_MS, NULL, 0), 1002);
    wsraw_close(w);
}
END_TEST

/* ---- 200 concurrent producers ---- */

START_TEST(two_hundred_concurrent_producers)
{
    enum { N = 200 };
    struct wsraw *ws[N];
    char msg[256], user[32];
    for (int i = 0; i < N; i++) {
        snprintf(user, sizeof(user), "prod_%d", i);
        ws[i] = ws_auth(user, NULL, 0);
    }
    for (int i = 0; i < N; i++) { /* all sent before any ack is read */
        snprintf(msg, sizeof(msg), "{\"type\":\"events\",\"seq\":%d,\"items\":["
                 "{\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":%d},"
                 "{\"source_stream\":\"s\",\"event_type\":\"B\",\"value\":%d}]}", i, i, i);
        ck_assert_int_eq(wsraw_send_text(ws[i], msg), 0);
    }
    for (int i = 0; i < N; i++) {
        cJSON *a = recv_json(ws[i], T_MS * 2);
        ck_assert_msg(a != NULL, "no ack on connection %d", i);
        ck_assert_int_eq(cJSON_GetObjectItem(a, "seq")->valueint, i);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(a, "event_ids")), 2);
        cJSON_Delete(a);
        wsraw_close(ws[i]);
    }
    ck_assert_int_eq(total_entries(), 2 * N);
}
END_TEST

/* ---- backpressure ---- */

static int
curl_post(const char *body, const char *key, char *out, size_t outlen)
{
    char cmd[1024], path[] = "/tmp/ingt-body-XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    ck_assert(write(fd, body, strlen(body)) == (ssize_t)strlen(body));
    close(fd);
    snprintf(cmd, sizeof(cmd), "curl -s -m 5 -D - -o /dev/stderr -X POST "
             "-H 'Content-Type: application/json' -H 'X-API-Key: %s' --data-binary @%s "
             "http://127.0.0.1:%d/events 2>&1", key, path, port);
    FILE *p = popen(cmd, "r");
    ck_assert(p != NULL);
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    pclose(p);
    unlink(path);
    int status = 0;
    if (sscanf(out, "HTTP/1.1 %d", &status) != 1)
        return -1;
    return status;
}

static cJSON *
wait_code(struct wsraw *w, const char *ev, const char *want_type, const char *want_code)
{
    long until = harness_now_ms() + T_MS;
    while (harness_now_ms() < until) {
        cJSON *r = roundtrip(w, ev);
        if (strcmp(jstr(r, "type"), want_type) == 0 &&
            (want_code == NULL || strcmp(jstr(r, "code"), want_code) == 0))
            return r;
        cJSON_Delete(r);
        usleep(50000);
    }
    ck_abort_msg("never got %s %s", want_type, want_code ? want_code : "");
    return NULL;
}

START_TEST(backpressure_on_and_off)
{
    const char *ev = "{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\","
                     "\"value\":1}";
    char out[4096];
    struct wsraw *w = ws_auth("u_bp", NULL, 0);
    freeReplyObject(r_cmd("SET astro:hot:unarchived %s PX 10000", "5000"));
    cJSON *e = wait_code(w, ev, "error", "backpressure");
    ck_assert_int_eq(cJSON_GetObjectItem(e, "retry_after_ms")->valueint, 1000);
    cJSON_Delete(e);
    long long before = total_entries();
    ck_assert_int_eq(curl_post("{\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1}", KEY,
                               out, sizeof(out)), 503);
    ck_assert_msg(strstr(out, "Retry-After: 1") != NULL, "%s", out);
    ck_assert_int_eq(total_entries(), before);
    /* between the marks: still refused (hysteresis) */
    freeReplyObject(r_cmd("SET astro:hot:unarchived %s PX 10000", "800"));
    usleep(300000);
    e = roundtrip(w, ev);
    ck_assert_str_eq(jstr(e, "code"), "backpressure");
    cJSON_Delete(e);
    freeReplyObject(r_cmd("SET astro:hot:unarchived %s PX 10000", "100"));
    cJSON *a = wait_code(w, ev, "ack", NULL);
    assert_acked_in_stream(a, 1);
    cJSON_Delete(a);
    ck_assert_int_eq(curl_post("{\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1}", KEY,
                               out, sizeof(out)), 202);
    /* the time spent is a metric */
    char body[65536];
    ck_assert_int_eq(http_status("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", body,
                                 sizeof(body)), 200);
    const char *m = strstr(body, "\nastro_ingest_backpressure_seconds ");
    ck_assert_ptr_nonnull(m);
    ck_assert_msg(strtod(m + 35, NULL) > 0.2, "backpressure seconds %.40s", m);
    wsraw_close(w);
}
END_TEST

/* ---- HTTP with curl ---- */

START_TEST(http_post_events_with_curl)
{
    char out[8192];
    ck_assert_int_eq(curl_post("{\"event_id\":\"h-1\",\"source_stream\":\"s\",\"key\":\"k\","
                               "\"event_type\":\"A\",\"value\":1}", KEY, out, sizeof(out)), 202);
    ck_assert(stream_has_id("h-1", NULL));
    ck_assert_int_eq(curl_post("[{\"event_id\":\"h-2\",\"source_stream\":\"s\",\"event_type\":"
                               "\"A\",\"value\":1},{\"event_id\":\"h-3\",\"source_stream\":\"s\","
                               "\"event_type\":\"A\",\"value\":2}]", KEY, out, sizeof(out)), 202);
    ck_assert(stream_has_id("h-2", NULL) && stream_has_id("h-3", NULL));
    ck_assert_int_eq(curl_post("{\"event_id\":\"h-4\",\"source_stream\":\"s\",\"event_type\":"
                               "\"A\",\"value\":1}\n{\"event_id\":\"h-1\",\"source_stream\":\"s\","
                               "\"key\":\"k\",\"event_type\":\"A\",\"value\":1}\n", KEY, out,
                               sizeof(out)), 202);
    ck_assert_msg(strstr(out, "\"duplicates\":[\"h-1\"]") != NULL, "%s", out);
    ck_assert_int_eq(total_entries(), 4);
    ck_assert_int_eq(curl_post("[{\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1},"
                               "{\"source_stream\":\"s\",\"value\":1}]", KEY, out, sizeof(out)),
                     400);
    ck_assert_msg(strstr(out, "\"index\":1,\"field\":\"event_type\"") != NULL, "%s", out);
    ck_assert_int_eq(curl_post("{}", "not-a-valid-key-000000", out, sizeof(out)), 401);
    ck_assert_int_eq(http_status("POST /events?limit=5 HTTP/1.1\r\nHost: x\r\nX-API-Key: " KEY
                                 "\r\nContent-Length: 2\r\n\r\n{}", out, sizeof(out)), 400);
    ck_assert_msg(strstr(out, "limit") != NULL, "%s", out);
    char err[256];
    struct astro_redis *r = astro_redis_connect(harness_server_url(rs), NULL, err, sizeof(err));
    ck_assert(r != NULL);
    ck_assert_int_eq(astro_apikey_store(r, "reader-key-0123456789", "reader", ASTRO_SCOPE_READ,
                                        false, err, sizeof(err)), ASTRO_OK);
    astro_redis_free(r);
    ck_assert_int_eq(curl_post("{}", "reader-key-0123456789", out, sizeof(out)), 403);
    /* 101 items over the 100 limit -> 413; a body over 256 KiB -> 413 */
    char *big = malloc(300 * 1024);
    size_t n = (size_t)sprintf(big, "[");
    for (int i = 0; i < 101; i++)
        n += (size_t)sprintf(big + n, "%s{}", i ? "," : "");
    strcpy(big + n, "]");
    ck_assert_int_eq(curl_post(big, KEY, out, sizeof(out)), 413);
    memset(big, ' ', 290 * 1024);
    strcpy(big + 290 * 1024, "{}");
    ck_assert_int_eq(curl_post(big, KEY, out, sizeof(out)), 413);
    free(big);
    ck_assert_int_eq(total_entries(), 4);
}
END_TEST

/* ---- Redis restart ---- */

START_TEST(redis_restart_refused_then_recovers)
{
    const char *ev = "{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\","
                     "\"value\":1}";
    char out[4096];
    struct wsraw *w = ws_auth("u_restart", NULL, 0);
    cJSON *a = roundtrip(w, ev);
    assert_acked_in_stream(a, 1);
    cJSON_Delete(a);
    redisFree(rc);
    rc = NULL;
    ck_assert_int_eq(harness_server_stop(rs, 1), 0);
    cJSON *e = roundtrip(w, ev); /* nothing acked while Redis is away: a retryable error */
    ck_assert_str_eq(jstr(e, "code"), "unavailable");
    ck_assert_int_eq(cJSON_GetObjectItem(e, "retry_after_ms")->valueint, 1000);
    cJSON_Delete(e);
    ck_assert_int_eq(curl_post("{\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1}",
                               KEY, out, sizeof(out)), 503);
    ck_assert_int_eq(harness_server_restart(rs), 0);
    rc = redisConnect("127.0.0.1", harness_server_port(rs));
    ck_assert(rc != NULL && rc->err == 0);
    /* reconnect with backoff; the empty Redis has no script cache: SCRIPT LOAD on connect */
    long until = harness_now_ms() + 10000;
    cJSON *ack = NULL;
    while (ack == NULL && harness_now_ms() < until) {
        cJSON *r = roundtrip(w, ev);
        if (strcmp(jstr(r, "type"), "ack") == 0)
            ack = r;
        else
            cJSON_Delete(r), usleep(100000);
    }
    ck_assert_msg(ack != NULL, "no ack after the restart");
    assert_acked_in_stream(ack, 1);
    cJSON_Delete(ack);
    wsraw_close(w);
}
END_TEST

/* ---- astro-admin keys ---- */

static int
admin(const char *args, char *out, size_t outlen)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "ASTRO_REDIS_URL='%s' '%s' keys %s 2>&1", harness_server_url(rs),
             getenv("ASTRO_ADMIN"), args);
    FILE *p = popen(cmd, "r");
    ck_assert(p != NULL);
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(admin_keys_create_list_revoke)
{
    char out[4096], key[128] = "";
    ck_assert_int_eq(admin("create --name producer1 --scopes ingest,read", out, sizeof(out)), 0);
    const char *k = strstr(out, "\nak_");
    ck_assert_msg(k != NULL, "%s", out);
    sscanf(k + 1, "%127s", key);
    ck_assert_int_eq((int)strlen(key), ASTRO_APIKEY_GEN_LEN);
    ck_assert_int_eq(admin("create --name producer1 --scopes ingest", out, sizeof(out)), 1);
    ck_assert_int_eq(admin("create --name p2 --scopes root", out, sizeof(out)), 2);
    char body[8192];
    ck_assert_int_eq(curl_post("{\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1}",
                               key, body, sizeof(body)), 202);
    ck_assert_int_eq(admin("list", out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "producer1") && strstr(out, "ingest,read") &&
                  strstr(out, "bootstrap") && strstr(out, "active") && !strstr(out, key),
                  "%s", out);
    ck_assert_int_eq(admin("revoke producer1", out, sizeof(out)), 0);
    ck_assert_int_eq(admin("revoke producer1", out, sizeof(out)), 1);
    usleep(400000); /* the daemon's key cache TTL is 200 ms here */
    ck_assert_int_eq(curl_post("{\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1}",
                               key, body, sizeof(body)), 401);
    /* the secret is in no Redis key or value */
    redisReply *rep = r_cmd("KEYS %s", "*");
    for (size_t i = 0; i < rep->elements; i++)
        ck_assert_ptr_null(strstr(rep->element[i]->str, key + 3));
    freeReplyObject(rep);
}
END_TEST

/* ---- predictions ---- */

START_TEST(prediction_forwarded_to_the_right_user)
{
    struct wsraw *a1 = ws_auth("alice", NULL, 0);
    struct wsraw *a2 = ws_auth("alice", NULL, 0);
    struct wsraw *b = ws_auth("bob", NULL, 0);
    long long receivers = 0;
    long until = harness_now_ms() + T_MS;
    /* subscriptions are per loop: wait until alice's are in place */
    while (harness_now_ms() < until && receivers < 1) {
        redisReply *rep = r_cmd("PUBSUB NUMSUB %s", "astro:edge:alice");
        receivers = rep->element[1]->integer;
        freeReplyObject(rep);
        usleep(20000);
    }
    ck_assert_int_ge(receivers, 1);
    usleep(100000);
    freeReplyObject(r_cmd("PUBLISH astro:edge:alice %s", "{\"workload\":0.9}"));
    for (int i = 0; i < 2; i++) {
        cJSON *p = recv_json(i == 0 ? a1 : a2, T_MS);
        ck_assert_msg(p != NULL, "alice connection %d got nothing", i);
        ck_assert_str_eq(jstr(p, "type"), "prediction");
        ck_assert(cJSON_GetObjectItem(cJSON_GetObjectItem(p, "payload"), "workload") != NULL);
        cJSON_Delete(p);
    }
    ck_assert_ptr_null(recv_json(b, 300)); /* bob gets nothing */
    freeReplyObject(r_cmd("PUBLISH astro:edge:bob %s", "plain text"));
    cJSON *p = recv_json(b, T_MS);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(jstr(p, "payload"), "plain text");
    cJSON_Delete(p);
    wsraw_close(a1);
    wsraw_close(a2);
    wsraw_close(b);
}
END_TEST

/* ---- civetweb's WebSocket client ---- */

START_TEST(civetweb_client_auth_event_ack)
{
    char err[256] = "";
    struct cwclient *c = cwclient_connect(port, "/stream", err, sizeof(err));
    ck_assert_msg(c != NULL, "civetweb: %s", err);
    ck_assert_int_eq(cwclient_send_text(c, "{\"type\":\"auth\",\"api_key\":\"" KEY
                                           "\",\"user_id\":\"cw_user\"}"), 0);
    ck_assert_int_eq(cwclient_wait(c, 1, T_MS), 1);
    ck_assert_msg(strstr(cwclient_message(c, 0), "\"auth_ok\"") != NULL, "%s",
                  cwclient_message(c, 0));
    ck_assert_int_eq(cwclient_send_text(c, "{\"type\":\"event\",\"seq\":1,\"event_id\":"
                                           "\"cw-1\",\"source_stream\":\"s\",\"event_type\":"
                                           "\"A\",\"value\":1}"), 0);
    ck_assert_int_eq(cwclient_wait(c, 2, T_MS), 2);
    ck_assert_msg(strstr(cwclient_message(c, 1), "\"event_ids\":[\"cw-1\"]") != NULL, "%s",
                  cwclient_message(c, 1));
    ck_assert(stream_has_id("cw-1", NULL));
    cwclient_close(c);
}
END_TEST

/* ---- SIGTERM with events in flight ---- */

struct producer {
    int idx;
    struct wsraw *w;
    cJSON *acked;  /* every id acked, in order */
    int closed_code;
};

static void *
produce(void *arg)
{
    struct producer *p = arg;
    char msg[1024];
    p->acked = cJSON_CreateArray();
    for (int b = 0; b < 100000; b++) {
        int n = snprintf(msg, sizeof(msg), "{\"type\":\"events\",\"seq\":%d,\"items\":[", b);
        for (int i = 0; i < 5; i++)
            n += snprintf(msg + n, sizeof(msg) - (size_t)n, "%s{\"event_id\":\"p%d-%d-%d\","
                          "\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":%d}",
                          i ? "," : "", p->idx, b, i, i);
        snprintf(msg + n, sizeof(msg) - (size_t)n, "]}");
        if (wsraw_send_text(p->w, msg) != 0)
            break;
        int op = 0;
        char *payload = NULL;
        if (wsraw_recv_frame(p->w, 5000, &op, NULL, &payload, NULL) != 0)
            break;
        if (op == WSRAW_OP_CLOSE) {
            p->closed_code = payload != NULL ? ((unsigned char)payload[0] << 8 |
                                                (unsigned char)payload[1]) : 0;
            free(payload);
            break;
        }
        cJSON *r = cJSON_Parse(payload);
        free(payload);
        const cJSON *ids = cJSON_GetObjectItem(r, "event_ids");
        for (const cJSON *id = ids != NULL ? ids->child : NULL; id != NULL; id = id->next)
            cJSON_AddItemToArray(p->acked, cJSON_CreateString(id->valuestring));
        cJSON_Delete(r);
    }
    return NULL;
}

START_TEST(sigterm_with_events_in_flight)
{
    enum { NP = 8 };
    struct producer ps[NP];
    pthread_t th[NP];
    char user[32];
    /* an archiver keeping up: no backpressure from the XLEN fallback while producers run */
    freeReplyObject(r_cmd("SET astro:hot:unarchived %s PX 60000", "0"));
    usleep(300000);
    for (int i = 0; i < NP; i++) {
        snprintf(user, sizeof(user), "term_%d", i);
        ps[i] = (struct producer){.idx = i, .w = ws_auth(user, NULL, 0)};
        ck_assert_int_eq(pthread_create(&th[i], NULL, produce, &ps[i]), 0);
    }
    usleep(500000);
    int status = stop_ingest(15000);
    for (int i = 0; i < NP; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(status, 0);
    int total = 0, closed_1001 = 0;
    cJSON *seen = cJSON_CreateObject();
    for (int i = 0; i < NP; i++) {
        closed_1001 += ps[i].closed_code == 1001;
        for (const cJSON *id = ps[i].acked->child; id != NULL; id = id->next) {
            ck_assert_msg(cJSON_GetObjectItem(seen, id->valuestring) == NULL, "%s acked twice",
                          id->valuestring);
            cJSON_AddTrueToObject(seen, id->valuestring);
            total++;
        }
        cJSON_Delete(ps[i].acked);
        wsraw_close(ps[i].w);
    }
    ck_assert_int_gt(total, 0);
    ck_assert_int_eq(closed_1001, NP);
    /* every acked id is in the stream */
    char key[32];
    long long found = 0;
    for (int p = 0; p < PARTS; p++) {
        snprintf(key, sizeof(key), "astro:mono:{%d}", p);
        redisReply *rep = r_cmd("XRANGE %s - +", key);
        for (size_t i = 0; i < rep->elements; i++)
            found += cJSON_GetObjectItem(seen, rep->element[i]->element[1]->element[1]->str) !=
                     NULL;
        freeReplyObject(rep);
    }
    ck_assert_int_eq(found, total);
    cJSON_Delete(seen);
    redisReply *rep = r_cmd("XLEN %s", "astro:sessions");
    ck_assert_int_eq(rep->integer, 2 * NP); /* every session ended */
    freeReplyObject(rep);
}
END_TEST

static Suite *
ingest_suite(void)
{
    Suite *s = suite_create("ingest");
    const struct {
        const char *name;
        const TTest *test;
        int timeout;
    } cases[] = {
        {"auth_ok", auth_ok_starts_session, 20},
        {"auth_bad_key", auth_bad_key_closes_1008, 20},
        {"auth_deadline", auth_deadline_closes_1008, 20},
        {"auth_scope", auth_scope_and_second_auth, 20},
        {"message_types", each_message_type_acked_after_xadd, 20},
        {"batches", batches_all_or_nothing, 20},
        {"duplicates", duplicate_ids_written_once, 20},
        {"dup_window", duplicate_window_across_buckets, 30},
        {"dup_two_instances", duplicates_across_two_instances, 40},
        {"bad_messages", bad_messages_answered_connection_usable, 30},
        {"not_authenticated", not_authenticated_then_auth, 20},
        {"protocol_abuse", protocol_abuse_close_codes, 20},
        {"concurrent_200", two_hundred_concurrent_producers, 60},
        {"backpressure", backpressure_on_and_off, 30},
        {"http_curl", http_post_events_with_curl, 30},
        {"predictions", prediction_forwarded_to_the_right_user, 20},
        {"admin_keys", admin_keys_create_list_revoke, 30},
        {"redis_restart", redis_restart_refused_then_recovers, 40},
        {"civetweb", civetweb_client_auth_event_ack, 20},
        {"sigterm", sigterm_with_events_in_flight, 40},
    };
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(cases); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, cases[i].timeout);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ingest_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

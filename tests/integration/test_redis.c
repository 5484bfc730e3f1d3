/* Redis wrappers against a real redis-server started by the harness.
 *
 * Servers are started inside each test (they belong to Check's forked test process), because
 * these tests stop, restart and freeze them. */
#include <check.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "astro/apikey.h"
#include "astro/redis.h"
#include "servers.h"

static struct harness_server *srv;

static void
start_plain(void)
{
    srv = harness_redis_start(NULL);
    ck_assert_msg(srv != NULL, "redis-server did not start");
}

static void
stop_server(void)
{
    harness_server_free(srv);
    srv = NULL;
}

static const struct astro_redis_options patient = {
    .connect_timeout_ms = 500, .command_timeout_ms = 2000, .client_name = "astro-test",
    .max_attempts = 100, .deadline_ms = 10000, .backoff_initial_ms = 20, .backoff_max_ms = 200,
};

/* Runs a command given as words and returns its reply (caller frees). */
static redisReply *
cmd(struct astro_redis *r, const char *a0, const char *a1, const char *a2, char *err,
    size_t errlen)
{
    const char *argv[] = { a0, a1, a2 };
    int argc = a2 ? 3 : (a1 ? 2 : 1);
    return astro_redis_command(r, argc, argv, NULL, err, errlen);
}

static void
ck_reply_str(struct astro_redis *r, const char *a0, const char *a1, const char *a2,
             const char *want)
{
    char err[256] = "";
    redisReply *rep = cmd(r, a0, a1, a2, err, sizeof(err));
    ck_assert_msg(rep != NULL, "%s: %s", a0, err);
    ck_assert_msg(rep->str != NULL && strcmp(rep->str, want) == 0, "%s: got %s, want %s", a0,
                  rep->str ? rep->str : "(nil)", want);
    freeReplyObject(rep);
}

START_TEST(test_sync_command_survives_restart)
{
    char err[256] = "";
    struct astro_redis *r = astro_redis_connect(harness_server_url(srv), &patient, err,
                                                sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    ck_reply_str(r, "SET", "k", "v", "OK");
    ck_reply_str(r, "CLIENT", "GETNAME", NULL, "astro-test");
    ck_assert_int_eq(harness_server_restart(srv), 0);
    /* The old socket is dead; the wrapper reconnects, handshakes again and resends. */
    ck_reply_str(r, "SET", "k2", "v2", "OK");
    ck_assert_uint_eq(r->reconnects, 1);
    ck_reply_str(r, "GET", "k2", NULL, "v2");
    ck_reply_str(r, "CLIENT", "GETNAME", NULL, "astro-test");
    /* While the server is down, a bounded retry gives up with a reason naming the server. */
    ck_assert_int_eq(harness_server_stop(srv, 0), 0);
    r->opt.deadline_ms = 300;
    r->opt.max_attempts = 0;
    uint64_t t0 = astro_backoff_now_ms();
    ck_assert_ptr_null(cmd(r, "PING", NULL, NULL, err, sizeof(err)));
    ck_assert_uint_lt(astro_backoff_now_ms() - t0, 3000);
    char where[64];
    snprintf(where, sizeof(where), "redis 127.0.0.1:%d", harness_server_port(srv));
    ck_assert_msg(strstr(err, where) != NULL && strstr(err, "refused") != NULL, "%s", err);
    ck_assert_int_eq(harness_server_restart(srv), 0);
    ck_reply_str(r, "PING", NULL, NULL, "PONG");
    astro_redis_free(r);
}
END_TEST

START_TEST(test_group_create_is_idempotent)
{
    char err[256] = "";
    struct astro_redis *r = astro_redis_connect(harness_server_url(srv), &patient, err,
                                                sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    ck_assert_int_eq(astro_redis_group_create(r, "astro:mono:{0}", "archiver", "0", err,
                                              sizeof(err)), ASTRO_OK);
    ck_assert_int_eq(astro_redis_group_create(r, "astro:mono:{0}", "archiver", "0", err,
                                              sizeof(err)), ASTRO_OK);
    redisReply *rep = cmd(r, "XINFO", "GROUPS", "astro:mono:{0}", err, sizeof(err));
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(rep->elements, 1);
    freeReplyObject(rep);
    /* A real error still fails, with the server's reason. */
    ck_reply_str(r, "SET", "plain", "x", "OK");
    ck_assert_int_eq(astro_redis_group_create(r, "plain", "g", "$", err, sizeof(err)),
                     ASTRO_ERR);
    ck_assert_msg(strstr(err, "XGROUP CREATE plain g: WRONGTYPE") != NULL, "%s", err);
    astro_redis_free(r);
}
END_TEST

static const struct astro_redis_options arena = {
    .connect_timeout_ms = 500, .command_timeout_ms = 2000, .max_attempts = 100,
    .deadline_ms = 10000, .backoff_initial_ms = 20, .backoff_max_ms = 200, .arena_replies = true,
};

/* Runs a command through an arena connection and checks the reply's type. */
static redisReply *
arena_cmd(struct astro_redis *r, int type, int argc, const char **argv)
{
    char err[256] = "";
    redisReply *rep = astro_redis_command(r, argc, argv, NULL, err, sizeof(err));
    ck_assert_msg(rep != NULL, "%s: %s", argv[0], err);
    ck_assert_msg(rep->type == type, "%s: reply type %d, want %d", argv[0], rep->type, type);
    return rep;
}

/* XREADGROUP through an arena connection: [[stream, [[id, [field, value, ...]], ...]]]. */
static void
check_arena_xreadgroup(struct astro_redis *r)
{
    char err[256] = "";
    ck_assert_int_eq(astro_redis_group_create(r, "s", "g", "0", err, sizeof(err)), ASTRO_OK);
    char v[3][8];
    for (int i = 0; i < 3; i++) {
        snprintf(v[i], sizeof(v[i]), "v%d", i);
        const char *xadd[] = { "XADD", "s", "*", "kind", "trade", "value", v[i] };
        astro_redis_reply_free(r, arena_cmd(r, REDIS_REPLY_STRING, 7, xadd));
    }
    const char *read[] = { "XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "STREAMS", "s", ">" };
    redisReply *rep = arena_cmd(r, REDIS_REPLY_ARRAY, 9, read);
    ck_assert_uint_eq(rep->elements, 1);
    const redisReply *st = rep->element[0];
    ck_assert_uint_eq(st->elements, 2);
    ck_assert_str_eq(st->element[0]->str, "s");
    ck_assert_uint_eq(st->element[1]->elements, 3);
    for (size_t i = 0; i < 3; i++) {
        const redisReply *e = st->element[1]->element[i];
        ck_assert_int_eq(e->element[0]->type, REDIS_REPLY_STRING);
        ck_assert_ptr_nonnull(strchr(e->element[0]->str, '-'));
        const redisReply *f = e->element[1];
        ck_assert_uint_eq(f->elements, 4);
        ck_assert_str_eq(f->element[1]->str, "trade");
        ck_assert_uint_eq(f->element[3]->len, strlen(v[i]));
        ck_assert_str_eq(f->element[3]->str, v[i]);
    }
    astro_redis_reply_free(r, rep);
}

/* Status, integer, nil (alone and inside an array) and error replies. */
static void
check_arena_scalars(struct astro_redis *r)
{
    const char *set[] = { "SET", "n", "41" }, *incr[] = { "INCR", "n" };
    const char *get[] = { "GET", "missing" }, *mget[] = { "MGET", "n", "missing" };
    const char *bad[] = { "HGET", "n", "f" };
    redisReply *rep = arena_cmd(r, REDIS_REPLY_STATUS, 3, set);
    ck_assert_str_eq(rep->str, "OK");
    astro_redis_reply_free(r, rep);
    rep = arena_cmd(r, REDIS_REPLY_INTEGER, 2, incr);
    ck_assert_int_eq(rep->integer, 42);
    astro_redis_reply_free(r, rep);
    astro_redis_reply_free(r, arena_cmd(r, REDIS_REPLY_NIL, 2, get));
    rep = arena_cmd(r, REDIS_REPLY_ARRAY, 3, mget);
    ck_assert_uint_eq(rep->elements, 2);
    ck_assert_str_eq(rep->element[0]->str, "42");
    ck_assert_int_eq(rep->element[1]->type, REDIS_REPLY_NIL);
    astro_redis_reply_free(r, rep);
    rep = arena_cmd(r, REDIS_REPLY_ERROR, 3, bad);
    ck_assert_msg(strncmp(rep->str, "WRONGTYPE", 9) == 0, "%s", rep->str);
    astro_redis_reply_free(r, rep);
}

/* A reply larger than the first chunks: 5000 list items of 200 bytes, and a 3 MiB string that
 * needs a chunk of its own, all intact. */
static void
check_arena_large(struct astro_redis *r)
{
    enum { ITEMS = 5000, ITEM = 200, BIG = 3 * 1024 * 1024 };
    char item[ITEM + 1];
    for (int i = 0; i < ITEMS; i++) {
        snprintf(item, sizeof(item), "%06d%0194d", i, 0);
        const char *rpush[] = { "RPUSH", "l", item };
        astro_redis_reply_free(r, arena_cmd(r, REDIS_REPLY_INTEGER, 3, rpush));
    }
    char *big = malloc(BIG + 1);
    ck_assert_ptr_nonnull(big);
    memset(big, 'b', BIG);
    big[BIG] = '\0';
    const char *set[] = { "SET", "big", big };
    astro_redis_reply_free(r, arena_cmd(r, REDIS_REPLY_STATUS, 3, set));
    const char *lrange[] = { "LRANGE", "l", "0", "-1" };
    redisReply *rep = arena_cmd(r, REDIS_REPLY_ARRAY, 4, lrange);
    ck_assert_uint_eq(rep->elements, ITEMS);
    for (int i = 0; i < ITEMS; i++) {
        snprintf(item, sizeof(item), "%06d%0194d", i, 0);
        ck_assert_uint_eq(rep->element[i]->len, ITEM);
        ck_assert_str_eq(rep->element[i]->str, item);
    }
    astro_redis_reply_free(r, rep);
    const char *mget[] = { "MGET", "n", "big" };
    rep = arena_cmd(r, REDIS_REPLY_ARRAY, 3, mget);
    ck_assert_uint_eq(rep->element[1]->len, BIG);
    ck_assert_int_eq(memcmp(rep->element[1]->str, big, BIG + 1), 0);
    astro_redis_reply_free(r, rep);
    free(big);
}

/* hiredis frees an unfinished reply through the arena on a protocol error and when the reader
 * is freed (the sanitizer build checks for leaks and bad frees). */
static void
check_arena_unfinished(void)
{
    char err[256] = "";
    struct astro_redis *r = astro_redis_connect(harness_server_url(srv), &arena, err,
                                                sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    const char bad[] = "*2\r\n*2\r\n$1\r\na\r\n:7\r\n?\r\n";
    void *rep = NULL;
    ck_assert_int_eq(redisReaderFeed(r->c->reader, bad, sizeof(bad) - 1), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(r->c->reader, &rep), REDIS_ERR);
    ck_assert_ptr_null(rep);
    astro_redis_free(r);
    r = astro_redis_connect(harness_server_url(srv), &arena, err, sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    const char part[] = "*3\r\n$5\r\nhello\r\n*1\r\n$-1\r\n";
    ck_assert_int_eq(redisReaderFeed(r->c->reader, part, sizeof(part) - 1), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(r->c->reader, &rep), REDIS_OK);
    ck_assert_ptr_null(rep);
    astro_redis_free(r);
}

START_TEST(test_arena_replies)
{
    char err[256] = "";
    struct astro_redis *r = astro_redis_connect(harness_server_url(srv), &arena, err,
                                                sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    check_arena_xreadgroup(r);
    check_arena_scalars(r);
    check_arena_large(r);
    /* A reconnection installs the arena again: freeing a plain reply as an arena one would be
     * an invalid free. */
    ck_assert_int_eq(harness_server_restart(srv), 0);
    const char *ping[] = { "PING" };
    astro_redis_reply_free(r, arena_cmd(r, REDIS_REPLY_STATUS, 1, ping));
    ck_assert_uint_eq(r->reconnects, 1);
    ck_assert(r->c->reader->fn->freeObject != freeReplyObject);
    astro_redis_free(r);
    check_arena_unfinished();
}
END_TEST

/* The key record is written whole by one script: a bootstrap store (only_if_missing) creates
 * it, completes a record left with a name and no scopes (by a crash or a lost reply between the
 * two commands of older versions), and leaves a complete or revoked one alone. */
START_TEST(test_apikey_store_is_whole)
{
    char err[256] = "", hex[ASTRO_APIKEY_HEX_LEN + 1], rkey[96];
    const char *key = "ak_store_test_0123456789abcdef";
    struct astro_redis *r = astro_redis_connect(harness_server_url(srv), &patient, err,
                                                sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    ck_assert_int_eq(astro_apikey_hash(key, strlen(key), hex), ASTRO_OK);
    ck_assert_int_eq(astro_apikey_redis_key(rkey, sizeof(rkey), hex), ASTRO_OK);
    const char *partial[] = {"HSET", rkey, "name", "boot"};
    redisReply *rep = astro_redis_command(r, 4, partial, NULL, err, sizeof(err));
    ck_assert_ptr_nonnull(rep);
    freeReplyObject(rep);
    ck_assert_int_eq(astro_apikey_store(r, key, "boot", ASTRO_SCOPE_INGEST, true, err,
                                        sizeof(err)), ASTRO_OK);
    ck_reply_str(r, "HGET", rkey, "scopes", "ingest");
    /* complete and revoked: a bootstrap store changes nothing */
    const char *revoke[] = {"HSET", rkey, "revoked", "1"};
    rep = astro_redis_command(r, 4, revoke, NULL, err, sizeof(err));
    ck_assert_ptr_nonnull(rep);
    freeReplyObject(rep);
    ck_assert_int_eq(astro_apikey_store(r, key, "other", ASTRO_SCOPE_READ, true, err,
                                        sizeof(err)), ASTRO_OK);
    ck_reply_str(r, "HGET", rkey, "scopes", "ingest");
    ck_reply_str(r, "HGET", rkey, "name", "boot");
    ck_reply_str(r, "HGET", rkey, "revoked", "1");
    /* without only_if_missing the fields are replaced */
    ck_assert_int_eq(astro_apikey_store(r, key, "other", ASTRO_SCOPE_READ, false, err,
                                        sizeof(err)), ASTRO_OK);
    ck_reply_str(r, "HGET", rkey, "scopes", "read");
    ck_reply_str(r, "HGET", rkey, "name", "other");
    astro_redis_free(r);
}
END_TEST

START_TEST(test_auth_password_acl_and_db)
{
    struct harness_server *s = harness_redis_start("s3cret");
    ck_assert(s != NULL);
    char url[256], err[256] = "";
    int port = harness_server_port(s);
    struct astro_redis *r = astro_redis_connect(harness_server_url(s), &patient, err,
                                                sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    ck_reply_str(r, "PING", NULL, NULL, "PONG");
    /* An ACL user, and a database other than 0. */
    const char *acl[] = { "ACL", "SETUSER", "app", "on", ">apppw", "~*", "&*", "+@all" };
    redisReply *rep = astro_redis_command(r, 8, acl, NULL, err, sizeof(err));
    ck_assert(rep != NULL && rep->type == REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    snprintf(url, sizeof(url), "redis://app:apppw@127.0.0.1:%d/3", port);
    struct astro_redis *app = astro_redis_connect(url, &patient, err, sizeof(err));
    ck_assert_msg(app != NULL, "%s", err);
    ck_reply_str(app, "ACL", "WHOAMI", NULL, "app");
    ck_reply_str(app, "SET", "in3", "yes", "OK");
    ck_reply_str(r, "SELECT", "3", NULL, "OK");
    ck_reply_str(r, "GET", "in3", NULL, "yes");
    astro_redis_free(app);
    astro_redis_free(r);
    /* Wrong and missing passwords are refused at connect with the server's reason. */
    snprintf(url, sizeof(url), "redis://:wrong@127.0.0.1:%d/0", port);
    ck_assert_ptr_null(astro_redis_connect(url, &patient, err, sizeof(err)));
    ck_assert_msg(strstr(err, "AUTH failed: WRONGPASS") != NULL, "%s", err);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", port);
    ck_assert_ptr_null(astro_redis_connect(url, &patient, err, sizeof(err)));
    ck_assert_msg(strstr(err, "NOAUTH") != NULL, "%s", err);
    harness_server_free(s);
}
END_TEST

/* ---- async -------------------------------------------------------------------------- */

struct async_state {
    int connected_calls;
    int set_ok;
    int null_replies;
    struct astro_redis_async *ra;
};

static void
on_connected(struct astro_redis_async *ra, void *arg)
{
    struct async_state *st = arg;
    (void)ra;
    st->connected_calls++;
}

static void
on_set(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct async_state *st = privdata;
    redisReply *reply = r;
    if (reply == NULL)
        st->null_replies++;
    else if (reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0)
        st->set_ok++;
}

/* Frees the wrapper from inside its own reply callback (must be deferred safely). */
static void
on_reply_free(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac, (void)r;
    struct async_state *st = privdata;
    astro_redis_async_free(st->ra);
    st->ra = NULL;
}

/* Runs the loop until *flag reaches want or timeout_ms passes; returns whether it did. */
static bool
run_until(struct event_base *base, const int *flag, int want, uint64_t timeout_ms)
{
    uint64_t deadline = astro_backoff_now_ms() + timeout_ms;
    while (*flag < want && astro_backoff_now_ms() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    return *flag >= want;
}

static void
send_set(struct async_state *st, redisCallbackFn *fn)
{
    const char *argv[] = { "SET", "ak", "av" };
    ck_assert_int_eq(astro_redis_async_command(st->ra, fn, st, 3, argv, NULL), ASTRO_OK);
}

START_TEST(test_async_reconnects_and_calls_on_connected_again)
{
    struct event_base *base = event_base_new();
    struct async_state st = { 0 };
    struct astro_redis_async_options opt = {
        .client_name = "astro-async", .backoff_initial_ms = 20, .backoff_max_ms = 200,
        .ping_interval_ms = 100, .ping_timeout_ms = 500, .on_connected = on_connected,
        .arg = &st,
    };
    char err[256] = "";
    st.ra = astro_redis_async_new(base, harness_server_url(srv), &opt, err, sizeof(err));
    ck_assert_msg(st.ra != NULL, "%s", err);
    const char *argv[] = { "PING" };
    ck_assert_int_eq(astro_redis_async_command(st.ra, NULL, NULL, 1, argv, NULL), ASTRO_ERR);
    ck_assert(run_until(base, &st.connected_calls, 1, 5000));
    ck_assert(astro_redis_async_connected(st.ra));
    send_set(&st, on_set);
    ck_assert(run_until(base, &st.set_ok, 1, 5000));

    /* Restart: the connection drops, commands fail fast, then it comes back by itself. */
    ck_assert_int_eq(harness_server_restart(srv), 0);
    ck_assert(run_until(base, &st.connected_calls, 2, 10000));
    ck_assert_uint_eq(astro_redis_async_connect_count(st.ra), 2);
    send_set(&st, on_set);
    ck_assert(run_until(base, &st.set_ok, 2, 5000));

    /* A frozen server answers nothing: the PING watchdog drops the connection; once the
     * server thaws the wrapper reconnects. */
    ck_assert_int_eq(kill(harness_server_pid(srv), SIGSTOP), 0);
    int disconnected = 0;
    uint64_t deadline = astro_backoff_now_ms() + 5000;
    while (astro_redis_async_connected(st.ra) && astro_backoff_now_ms() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    disconnected = !astro_redis_async_connected(st.ra);
    ck_assert_int_eq(kill(harness_server_pid(srv), SIGCONT), 0);
    ck_assert_msg(disconnected, "watchdog did not notice the frozen server");
    ck_assert_int_eq(astro_redis_async_command(st.ra, NULL, NULL, 1, argv, NULL), ASTRO_ERR);
    ck_assert(run_until(base, &st.connected_calls, 3, 10000));

    /* Freeing from inside a reply callback is deferred until hiredis is done with it. */
    send_set(&st, on_set);
    const char *argv2[] = { "PING" };
    ck_assert_int_eq(astro_redis_async_command(st.ra, on_reply_free, &st, 1, argv2, NULL),
                     ASTRO_OK);
    int gone = 0;
    deadline = astro_backoff_now_ms() + 5000;
    while (st.ra != NULL && astro_backoff_now_ms() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    gone = st.ra == NULL;
    ck_assert(gone);
    ck_assert_int_eq(st.set_ok, 3);
    event_base_loop(base, EVLOOP_NONBLOCK);
    event_base_free(base);
}
END_TEST

START_TEST(test_async_free_while_disconnected_and_pending)
{
    struct event_base *base = event_base_new();
    struct async_state st = { 0 };
    struct astro_redis_async_options opt = { .on_connected = on_connected, .arg = &st };
    char err[256];
    st.ra = astro_redis_async_new(base, harness_server_url(srv), &opt, err, sizeof(err));
    ck_assert_ptr_nonnull(st.ra);
    ck_assert(run_until(base, &st.connected_calls, 1, 5000));
    /* Pending replies are failed with NULL on free, never lost silently. */
    send_set(&st, on_set);
    astro_redis_async_free(st.ra);
    ck_assert_int_eq(st.null_replies, 1);
    /* A bad URL is reported before anything starts. */
    ck_assert_ptr_null(astro_redis_async_new(base, "rediss://h", &opt, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "TLS not supported"));
    event_base_free(base);
}
END_TEST

/* A subscriber connection: on_connected SUBSCRIBEs; messages are counted. */
struct sub_state {
    int connected_calls;
    int messages;
};

static void
on_sub_message(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct sub_state *st = privdata;
    redisReply *rep = r;
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
        strcmp(rep->element[0]->str, "message") == 0 && strcmp(rep->element[2]->str, "hi") == 0)
        st->messages++;
}

static void
on_sub_connected(struct astro_redis_async *ra, void *arg)
{
    struct sub_state *st = arg;
    const char *argv[] = { "SUBSCRIBE", "astro:test:ch" };
    st->connected_calls++;
    ck_assert_int_eq(astro_redis_async_command(ra, on_sub_message, st, 2, argv, NULL), ASTRO_OK);
}

/* hiredis 0.14 drops PONG in subscribe mode: a watchdog that PINGs there would drop a healthy
 * subscriber after ping_timeout_ms (and lose what is published meanwhile). With subscriber set
 * the connection stays up through many ping intervals and still gets every message. */
START_TEST(test_async_subscriber_is_not_dropped_by_the_watchdog)
{
    struct event_base *base = event_base_new();
    struct sub_state st = { 0 };
    struct astro_redis_async_options opt = {
        .ping_interval_ms = 50, .ping_timeout_ms = 200, .subscriber = true,
        .on_connected = on_sub_connected, .arg = &st,
    };
    char err[256] = "";
    struct astro_redis_async *ra =
        astro_redis_async_new(base, harness_server_url(srv), &opt, err, sizeof(err));
    ck_assert_msg(ra != NULL, "%s", err);
    ck_assert(run_until(base, &st.connected_calls, 1, 5000));
    struct astro_redis *pub = astro_redis_connect(harness_server_url(srv), &patient, err,
                                                  sizeof(err));
    ck_assert_msg(pub != NULL, "%s", err);
    for (int round = 1; round <= 3; round++) {
        int never = 0;
        run_until(base, &never, 1, 400); /* two ping timeouts pass */
        redisReply *rep = cmd(pub, "PUBLISH", "astro:test:ch", "hi", err, sizeof(err));
        ck_assert_msg(rep != NULL && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1,
                      "round %d: subscriber not subscribed", round);
        freeReplyObject(rep);
        ck_assert(run_until(base, &st.messages, round, 2000));
    }
    ck_assert_uint_eq(astro_redis_async_connect_count(ra), 1);
    ck_assert_int_eq(st.connected_calls, 1);
    astro_redis_free(pub);
    astro_redis_async_free(ra);
    event_base_loop(base, EVLOOP_NONBLOCK);
    event_base_free(base);
}
END_TEST

static Suite *
redis_suite(void)
{
    Suite *s = suite_create("redis");
    TCase *tc = tcase_create("server");
    tcase_add_checked_fixture(tc, start_plain, stop_server);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sync_command_survives_restart);
    tcase_add_test(tc, test_group_create_is_idempotent);
    tcase_add_test(tc, test_arena_replies);
    tcase_add_test(tc, test_apikey_store_is_whole);
    tcase_add_test(tc, test_auth_password_acl_and_db);
    tcase_add_test(tc, test_async_reconnects_and_calls_on_connected_again);
    tcase_add_test(tc, test_async_free_while_disconnected_and_pending);
    tcase_add_test(tc, test_async_subscriber_is_not_dropped_by_the_watchdog);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(redis_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

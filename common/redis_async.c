/* Asynchronous Redis connection on a caller's libevent loop: handshake (AUTH, SELECT,
 * CLIENT SETNAME), reconnect with backoff, a PING watchdog, and a free that is safe from
 * inside hiredis callbacks.
 *
 * Lifecycle of one connection: start_connect -> on_connect -> handshake replies ->
 * connected (on_connected called) -> ... -> on_disconnect -> reconnect timer -> start_connect.
 * ra->ac is NULL whenever no hiredis context exists. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>

#include "astro/log.h"
#include "astro/redis.h"

struct astro_redis_async {
    struct event_base *base;
    redisAsyncContext *ac;
    struct astro_redis_url url;
    struct astro_redis_async_options opt;
    char client_name[64];
    struct astro_backoff backoff;
    struct event *reconnect_timer;
    struct event *watchdog;
    bool connected;          /* handshake done, commands accepted */
    bool closing;            /* astro_redis_async_free() was called */
    bool free_on_disconnect; /* free was called inside a hiredis callback */
    bool handshake_failed;
    bool dropping; /* inside drop_connection's redisAsyncFree */
    int handshake_pending;
    uint64_t connects;
    uint64_t connect_started_ms;
    uint64_t ping_sent_ms; /* 0: no PING outstanding */
};

static void start_connect(struct astro_redis_async *ra);

static struct timeval
tv_ms(uint32_t ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (long)(ms % 1000) * 1000L };
    return tv;
}

static void
free_now(struct astro_redis_async *ra)
{
    if (ra->reconnect_timer != NULL)
        event_free(ra->reconnect_timer);
    if (ra->watchdog != NULL)
        event_free(ra->watchdog);
    memset(ra->url.password, 0, sizeof(ra->url.password));
    free(ra);
}

static void
schedule_reconnect(struct astro_redis_async *ra)
{
    if (ra->closing)
        return;
    uint32_t delay = astro_backoff_next(&ra->backoff);
    astro_log_info("redis %s:%d: reconnecting in %u ms", ra->url.host, ra->url.port, delay);
    struct timeval tv = tv_ms(delay);
    evtimer_add(ra->reconnect_timer, &tv);
}

static void
on_reconnect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    start_connect(arg);
}

/* hiredis calls this when an established connection ends, after failing every pending
 * callback with a NULL reply; it frees ac itself right after we return. */
static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    struct astro_redis_async *ra = ac->data;
    if (status != REDIS_OK && !ra->closing)
        astro_log_warn("redis %s:%d: connection lost: %s", ra->url.host, ra->url.port,
                       ac->errstr);
    ra->ac = NULL;
    ra->connected = false;
    ra->ping_sent_ms = 0;
    if (ra->free_on_disconnect && !ra->dropping) {
        /* ra is ours: hiredis does not touch it after this callback returns. */
        free_now(ra);
        return;
    }
    schedule_reconnect(ra);
}

static void
on_handshake_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct astro_redis_async *ra = privdata;
    redisReply *reply = r;
    if (reply == NULL)
        return; /* the connection is going down; on_disconnect takes over */
    ra->handshake_pending--;
    if (reply->type == REDIS_REPLY_ERROR && !ra->handshake_failed) {
        ra->handshake_failed = true;
        astro_log_error("redis %s:%d: handshake failed: %s", ra->url.host, ra->url.port,
                        reply->str);
        redisAsyncDisconnect(ac); /* deferred by hiredis until this callback returns */
        return;
    }
    if (ra->handshake_pending > 0 || ra->handshake_failed)
        return;
    ra->connected = true;
    ra->connects++;
    astro_backoff_reset(&ra->backoff);
    astro_log_info("redis %s:%d: connected (db %d)", ra->url.host, ra->url.port, ra->url.db);
    if (ra->opt.on_connected != NULL)
        ra->opt.on_connected(ra, ra->opt.arg);
}

static void
send_handshake(struct astro_redis_async *ra)
{
    const struct astro_redis_url *u = &ra->url;
    char db[16];
    snprintf(db, sizeof(db), "%d", u->db);
    const char *auth3[] = { "AUTH", u->user, u->password };
    const char *auth2[] = { "AUTH", u->password };
    const char *select[] = { "SELECT", db };
    const char *setname[] = { "CLIENT", "SETNAME", ra->client_name };
    ra->handshake_pending = 0;
    ra->handshake_failed = false;
    /* PING last, so the handshake completes on a reply even when nothing else is sent. */
    const char *ping[] = { "PING" };
    struct { int argc; const char **argv; bool use; } steps[] = {
        { 3, auth3, u->has_password && u->user[0] },
        { 2, auth2, u->has_password && !u->user[0] },
        { 2, select, u->db != 0 },
        { 3, setname, ra->client_name[0] != '\0' },
        { 1, ping, true },
    };
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(steps); i++) {
        if (!steps[i].use)
            continue;
        if (redisAsyncCommandArgv(ra->ac, on_handshake_reply, ra, steps[i].argc,
                                  steps[i].argv, NULL) == REDIS_OK)
            ra->handshake_pending++;
    }
}

/* On failure hiredis frees ac right after this callback (without on_disconnect). */
static void
on_connect(const redisAsyncContext *ac, int status)
{
    struct astro_redis_async *ra = ac->data;
    if (status != REDIS_OK) {
        astro_log_warn("redis %s:%d: connect failed: %s", ra->url.host, ra->url.port,
                       ac->errstr);
        ra->ac = NULL;
        schedule_reconnect(ra);
        return;
    }
    if (ra->opt.subscriber && redisEnableKeepAlive((redisContext *)&ac->c) != REDIS_OK)
        astro_log_warn("redis %s:%d: cannot enable TCP keepalive on the subscriber",
                       ra->url.host, ra->url.port);
    send_handshake(ra);
}

static void
start_connect(struct astro_redis_async *ra)
{
    if (ra->closing || ra->ac != NULL)
        return;
    ra->connect_started_ms = astro_backoff_now_ms();
    redisAsyncContext *ac = redisAsyncConnect(ra->url.host, ra->url.port);
    if (ac == NULL || ac->err) {
        astro_log_warn("redis %s:%d: connect failed: %s", ra->url.host, ra->url.port,
                       ac ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        schedule_reconnect(ra);
        return;
    }
    ac->data = ra;
    ra->ac = ac;
    redisLibeventAttach(ac, ra->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

/* Drops the current context from outside any hiredis callback (a timer). */
static void
drop_connection(struct astro_redis_async *ra, const char *why)
{
    astro_log_warn("redis %s:%d: %s: dropping the connection", ra->url.host, ra->url.port, why);
    bool established = ra->connected;
    ra->dropping = true;
    redisAsyncFree(ra->ac); /* runs on_disconnect when hiredis saw the connect complete */
    ra->dropping = false;
    if (ra->free_on_disconnect) {
        free_now(ra); /* a NULL-reply callback freed the wrapper meanwhile */
        return;
    }
    if (ra->ac != NULL || !established) {
        ra->ac = NULL;
        ra->connected = false;
        ra->ping_sent_ms = 0;
        if (!evtimer_pending(ra->reconnect_timer, NULL))
            schedule_reconnect(ra);
    }
}

static void
on_pong(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct astro_redis_async *ra = privdata;
    if (reply != NULL)
        ra->ping_sent_ms = 0;
}

static void
on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct astro_redis_async *ra = arg;
    uint64_t now = astro_backoff_now_ms();
    if (ra->ac == NULL)
        return;
    if (!ra->connected) {
        if (now - ra->connect_started_ms > ra->opt.ping_timeout_ms)
            drop_connection(ra, "connect or handshake timed out");
        return;
    }
    if (ra->opt.subscriber)
        return;
    if (ra->ping_sent_ms != 0) {
        if (now - ra->ping_sent_ms > ra->opt.ping_timeout_ms)
            drop_connection(ra, "no reply to PING");
        return;
    }
    const char *argv[] = { "PING" };
    if (redisAsyncCommandArgv(ra->ac, on_pong, ra, 1, argv, NULL) == REDIS_OK)
        ra->ping_sent_ms = now;
}

static void
apply_defaults(struct astro_redis_async *ra, const struct astro_redis_async_options *opt)
{
    if (opt != NULL)
        ra->opt = *opt;
    if (opt != NULL && opt->client_name != NULL)
        snprintf(ra->client_name, sizeof(ra->client_name), "%s", opt->client_name);
    ra->opt.client_name = NULL;
    if (ra->opt.backoff_max_ms == 0)
        ra->opt.backoff_max_ms = 5000;
    if (ra->opt.ping_interval_ms == 0)
        ra->opt.ping_interval_ms = 1000;
    if (ra->opt.ping_timeout_ms == 0)
        ra->opt.ping_timeout_ms = 5000;
    astro_backoff_init(&ra->backoff, ra->opt.backoff_initial_ms, ra->opt.backoff_max_ms, 0.2);
}

struct astro_redis_async *
astro_redis_async_new(struct event_base *base, const char *url,
                      const struct astro_redis_async_options *opt, char *err, size_t errlen)
{
    struct astro_redis_async *ra = calloc(1, sizeof(*ra));
    if (ra == NULL) {
        astro_fail(err, errlen, "redis: out of memory");
        return NULL;
    }
    ra->base = base;
    if (astro_redis_url_parse(url, &ra->url, err, errlen) != ASTRO_OK)
        goto fail;
    apply_defaults(ra, opt);
    ra->reconnect_timer = evtimer_new(base, on_reconnect_timer, ra);
    ra->watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, ra);
    if (ra->reconnect_timer == NULL || ra->watchdog == NULL) {
        astro_fail(err, errlen, "redis: out of memory");
        goto fail;
    }
    struct timeval tv = tv_ms(ra->opt.ping_interval_ms);
    evtimer_add(ra->watchdog, &tv);
    start_connect(ra);
    return ra;
fail:
    free_now(ra);
    return NULL;
}

bool
astro_redis_async_connected(const struct astro_redis_async *ra)
{
    return ra->connected;
}

uint64_t
astro_redis_async_connect_count(const struct astro_redis_async *ra)
{
    return ra->connects;
}

int
astro_redis_async_command(struct astro_redis_async *ra, redisCallbackFn *fn, void *privdata,
                          int argc, const char **argv, const size_t *argvlen)
{
    if (!ra->connected || ra->closing || ra->ac == NULL)
        return ASTRO_ERR;
    return redisAsyncCommandArgv(ra->ac, fn, privdata, argc, argv, argvlen) == REDIS_OK
               ? ASTRO_OK
               : ASTRO_ERR;
}

int
astro_redis_async_formatted(struct astro_redis_async *ra, redisCallbackFn *fn, void *privdata,
                            const char *cmd, size_t len)
{
    if (!ra->connected || ra->closing || ra->ac == NULL)
        return ASTRO_ERR;
    return redisAsyncFormattedCommand(ra->ac, fn, privdata, cmd, len) == REDIS_OK ? ASTRO_OK
                                                                                : ASTRO_ERR;
}

void
astro_redis_async_free(struct astro_redis_async *ra)
{
    if (ra == NULL || ra->closing)
        return;
    ra->closing = true;
    event_del(ra->reconnect_timer);
    event_del(ra->watchdog);
    if (ra->ac == NULL) {
        free_now(ra);
        return;
    }
    if (ra->ac->c.flags & REDIS_IN_CALLBACK) {
        /* hiredis frees the context once the running callback returns and then calls
         * on_disconnect, which releases ra. */
        ra->free_on_disconnect = true;
        redisAsyncFree(ra->ac);
        return;
    }
    redisAsyncFree(ra->ac); /* fails pending callbacks with NULL, may run on_disconnect */
    free_now(ra);
}

/* Redis connections: URL parsing, a synchronous wrapper that reconnects with backoff, an
 * asynchronous wrapper on a caller's libevent loop, and consumer-group helpers.
 *
 * URLs: redis://[user:password@]host[:port][/db]   (also redis://:password@host)
 *   port defaults to 6379, db to 0; user and password may be percent-encoded; [v6] hosts work.
 *   rediss:// is refused: hiredis 0.14 has no TLS, terminate TLS in a proxy (stunnel, envoy).
 * Authentication: "user:password" sends AUTH user password (Redis 6+ ACL), ":password" sends
 * AUTH password (requirepass). Then SELECT db (when db != 0) and CLIENT SETNAME. */
#ifndef ASTRO_REDIS_H
#define ASTRO_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "astro/backoff.h"
#include "astro/common.h"

struct event_base;

struct astro_redis_url {
    char host[256];
    int port;
    int db;
    char user[128];     /* "" when absent */
    char password[256]; /* "" when absent */
    bool has_password;
};

/* Parses url into *out (caller's storage). Returns ASTRO_OK, or ASTRO_ERR with a reason that
 * names the offending part in err. */
int astro_redis_url_parse(const char *url, struct astro_redis_url *out, char *err,
                          size_t errlen) ASTRO_MUST_CHECK;

/* Writes "redis://[user:***@]host:port/db" (password masked) for logs. */
void astro_redis_url_format_masked(const struct astro_redis_url *u, char *buf, size_t buflen);

/* ---- synchronous ---------------------------------------------------------------------- */

struct astro_redis_options {
    uint32_t connect_timeout_ms; /* 0 means 2000 */
    uint32_t command_timeout_ms; /* 0 means 5000; a command blocking longer is an I/O error */
    const char *client_name;     /* CLIENT SETNAME value (copied); NULL skips it */
    /* Reconnect policy after an I/O error: at most max_attempts connection attempts and no
     * longer than deadline_ms in total (0 means no limit for that bound; if both are 0 a
     * single attempt is made). Delays come from astro_backoff(backoff_initial_ms, max, 0.2). */
    uint32_t max_attempts;
    uint32_t deadline_ms;
    uint32_t backoff_initial_ms;
    uint32_t backoff_max_ms;
    /* Build each reply in one arena (a few malloc/free calls instead of two per element, for
     * connections that read large replies such as XREADGROUP batches). Then every reply from
     * this connection, including those read with redisGetReply(r->c, ...), must be freed with
     * astro_redis_reply_free(), never freeReplyObject(); helpers that take the bare r->c free
     * with the reader's own function (c->reader->fn->freeObject), as common/partition.c does. */
    bool arena_replies;
};

struct astro_redis {
    redisContext *c; /* NULL while disconnected */
    struct astro_redis_url url;
    struct astro_redis_options opt;
    char client_name[64];
    struct astro_backoff backoff;
    uint64_t reconnects; /* successful reconnections since creation */
};

/* Parses url and connects once (connect, AUTH, SELECT, CLIENT SETNAME). Returns a new
 * connection (free with astro_redis_free()) or NULL with the reason in err. opt may be NULL
 * for defaults; it is copied. */
struct astro_redis *astro_redis_connect(const char *url, const struct astro_redis_options *opt,
                                        char *err, size_t errlen) ASTRO_MUST_CHECK;

/* Sends one command (argvlen may be NULL for NUL-terminated arguments). On an I/O error
 * (connection lost, timeout) the connection is re-established with backoff within the
 * options' bounds and the command is sent again, so use it for idempotent commands or accept
 * at-least-once (never for XREADGROUP ... >: see astro_redis_command_once()). Returns the
 * reply (caller frees with astro_redis_reply_free(); a REDIS_REPLY_ERROR reply is returned as
 * is) or NULL when every attempt failed, with the reason in err. */
redisReply *astro_redis_command(struct astro_redis *r, int argc, const char **argv,
                                const size_t *argvlen, char *err, size_t errlen)
    ASTRO_MUST_CHECK;

/* Same, but sent at most once: the connection is re-established first only if it is already
 * down; an I/O error drops it and returns NULL with the reason in err, without resending.
 * Redis may have executed the command whose reply was lost, so use this for commands whose
 * repetition is not equivalent and whose effect the caller must learn about, above all
 * XREADGROUP ... > (a resend returns the NEXT entries while the lost ones sit pending
 * unseen): on NULL, recover from Redis' state (re-read or claim the pending entries). */
redisReply *astro_redis_command_once(struct astro_redis *r, int argc, const char **argv,
                                     const size_t *argvlen, char *err, size_t errlen)
    ASTRO_MUST_CHECK;

/* Closes and frees r; NULL is a no-op. Arena replies outlive the connection: free them with
 * astro_redis_reply_free() before or after. */
void astro_redis_free(struct astro_redis *r);

/* Frees a reply received on r (by any of the functions above or redisGetReply(r->c, ...)),
 * built in an arena or not as r->opt.arena_replies says; r is only read, and may be
 * disconnected. NULL is a no-op. */
void astro_redis_reply_free(const struct astro_redis *r, redisReply *rep);

/* XGROUP CREATE stream group start_id MKSTREAM; an existing group (BUSYGROUP) is success, so
 * it is safe on every start. Returns ASTRO_OK or ASTRO_ERR with the reason in err. */
int astro_redis_group_create(struct astro_redis *r, const char *stream, const char *group,
                             const char *start_id, char *err, size_t errlen) ASTRO_MUST_CHECK;

/* ---- asynchronous (libevent) ---------------------------------------------------------- */

struct astro_redis_async;

/* Called (inside the loop) every time the connection is (re)established and authenticated:
 * re-issue blocking reads (XREADGROUP BLOCK) here. It may call astro_redis_async_free(). */
typedef void (*astro_redis_on_connected)(struct astro_redis_async *ra, void *arg);

struct astro_redis_async_options {
    const char *client_name;     /* copied; NULL skips CLIENT SETNAME */
    uint32_t backoff_initial_ms; /* 0 means 100 */
    uint32_t backoff_max_ms;     /* 0 means 5000 */
    /* hiredis 0.14 has no timeouts on async connections: a server that stops answering (or a
     * connect that never completes) is detected by a watchdog that sends PING every
     * ping_interval_ms and drops the connection (then reconnects) when the PING, or the
     * connect, is still unanswered after ping_timeout_ms. Replies on one connection come in
     * order, so on a connection carrying XREADGROUP BLOCK t, ping_timeout_ms must exceed t. */
    uint32_t ping_interval_ms; /* 0 means 1000 */
    uint32_t ping_timeout_ms;  /* 0 means 5000 */
    /* A connection that will SUBSCRIBE: hiredis 0.14 drops every reply in subscribe mode that
     * is not a (p)message or (un)subscribe confirmation, PONG included, so the watchdog only
     * times the connect and handshake, and TCP keepalive (redisEnableKeepAlive: probes after
     * 15 s idle) detects a peer that went away. A Redis that hangs with the socket open is
     * noticed by the publishers' own connections, not here. */
    bool subscriber;
    astro_redis_on_connected on_connected;
    void *arg;
};

/* Parses url and starts connecting on base (borrowed; must outlive the wrapper). Connection
 * failures are retried forever with backoff. Returns a new wrapper (free with
 * astro_redis_async_free()) or NULL with the reason in err (bad URL, allocation). */
struct astro_redis_async *astro_redis_async_new(struct event_base *base, const char *url,
                                                const struct astro_redis_async_options *opt,
                                                char *err, size_t errlen) ASTRO_MUST_CHECK;

/* True once AUTH/SELECT succeeded and until the connection is lost. */
bool astro_redis_async_connected(const struct astro_redis_async *ra);

/* Number of times the connection has been established (first connect included). */
uint64_t astro_redis_async_connect_count(const struct astro_redis_async *ra);

/* Queues a command. fn (may be NULL) gets the reply, which lives only during the call, or a
 * NULL reply if the connection drops first. Returns ASTRO_ERR at once while disconnected so
 * callers can shed or retry instead of queueing unboundedly. */
int astro_redis_async_command(struct astro_redis_async *ra, redisCallbackFn *fn, void *privdata,
                              int argc, const char **argv, const size_t *argvlen)
    ASTRO_MUST_CHECK;

/* Same, for a command already in the Redis protocol (an array of bulk strings, cmd[0..len),
 * copied): for callers that build large commands in one buffer instead of an argv. */
int astro_redis_async_formatted(struct astro_redis_async *ra, redisCallbackFn *fn,
                                void *privdata, const char *cmd, size_t len) ASTRO_MUST_CHECK;

/* Disconnects and frees ra; pending command callbacks get a NULL reply. Safe to call from any
 * callback, including a hiredis reply callback: then the context is only marked and the memory
 * is released once the callback has returned. NULL is a no-op. */
void astro_redis_async_free(struct astro_redis_async *ra);

#endif

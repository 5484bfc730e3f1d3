/* Synchronous Redis connection with reconnect-on-I/O-error, and consumer-group helpers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "astro/log.h"
#include "astro/redis.h"
#include "redis_arena.h"

static struct timeval
ms_to_tv(uint32_t ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (long)(ms % 1000) * 1000L };
    return tv;
}

/* Runs one handshake command on a fresh context; a NULL or error reply fails the handshake. */
static int
handshake_step(redisContext *c, const char *what, int argc, const char **argv, char *err,
               size_t errlen)
{
    redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
    if (rep == NULL)
        return astro_fail(err, errlen, "%s: %s", what, c->errstr);
    int rc = ASTRO_OK;
    if (rep->type == REDIS_REPLY_ERROR)
        rc = astro_fail(err, errlen, "%s failed: %s", what, rep->str);
    freeReplyObject(rep);
    return rc;
}

static int
handshake(struct astro_redis *r, char *err, size_t errlen)
{
    const struct astro_redis_url *u = &r->url;
    if (u->has_password) {
        const char *a2[] = { "AUTH", u->password };
        const char *a3[] = { "AUTH", u->user, u->password };
        int rc = u->user[0] ? handshake_step(r->c, "AUTH", 3, a3, err, errlen)
                            : handshake_step(r->c, "AUTH", 2, a2, err, errlen);
        if (rc != ASTRO_OK)
            return ASTRO_ERR;
    }
    if (u->db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", u->db);
        const char *argv[] = { "SELECT", db };
        if (handshake_step(r->c, "SELECT", 2, argv, err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
    }
    if (r->client_name[0]) {
        const char *argv[] = { "CLIENT", "SETNAME", r->client_name };
        if (handshake_step(r->c, "CLIENT SETNAME", 3, argv, err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
    }
    return ASTRO_OK;
}

/* One connection attempt; on failure r->c is NULL and err says why, prefixed by the address. */
static int
connect_once(struct astro_redis *r, char *err, size_t errlen)
{
    char msg[256] = "";
    redisFree(r->c);
    r->c = redisConnectWithTimeout(r->url.host, r->url.port, ms_to_tv(r->opt.connect_timeout_ms));
    if (r->c == NULL) {
        snprintf(msg, sizeof(msg), "out of memory");
        goto fail;
    }
    if (r->c->err) {
        snprintf(msg, sizeof(msg), "connect: %s", r->c->errstr);
        goto fail;
    }
    if (redisSetTimeout(r->c, ms_to_tv(r->opt.command_timeout_ms)) != REDIS_OK) {
        snprintf(msg, sizeof(msg), "setting the command timeout: %s", r->c->errstr);
        goto fail;
    }
    if (handshake(r, msg, sizeof(msg)) != ASTRO_OK)
        goto fail;
    /* after the handshake, whose replies handshake_step() frees the plain way */
    if (r->opt.arena_replies)
        astro_redis_arena_install(r->c);
    return ASTRO_OK;
fail:
    redisFree(r->c);
    r->c = NULL;
    return astro_fail(err, errlen, "redis %s:%d: %s", r->url.host, r->url.port, msg);
}

/* Reconnects within the caller's attempt and deadline bounds, sleeping the backoff delay
 * between attempts. The first attempt is immediate: most drops are a server restart or an
 * idle-timeout close, which a single reconnect fixes. */
static int
reconnect(struct astro_redis *r, char *err, size_t errlen)
{
    uint64_t start = astro_backoff_now_ms();
    astro_backoff_reset(&r->backoff);
    for (uint32_t attempt = 1;; attempt++) {
        if (connect_once(r, err, errlen) == ASTRO_OK) {
            r->reconnects++;
            astro_log_info("redis %s:%d: reconnected after %u attempt(s)", r->url.host,
                           r->url.port, attempt);
            return ASTRO_OK;
        }
        uint32_t delay = astro_backoff_next(&r->backoff);
        uint64_t now = astro_backoff_now_ms();
        bool out_of_attempts = r->opt.max_attempts ? attempt >= r->opt.max_attempts
                                                   : r->opt.deadline_ms == 0;
        bool out_of_time = r->opt.deadline_ms && now + delay - start > r->opt.deadline_ms;
        if (out_of_attempts || out_of_time) {
            astro_log_warn("redis %s:%d: giving up after %u attempt(s) in %llu ms: %s",
                           r->url.host, r->url.port, attempt,
                           (unsigned long long)(now - start), err ? err : "");
            return ASTRO_ERR;
        }
        astro_log_warn("redis %s:%d: reconnect attempt %u failed, retrying in %u ms: %s",
                       r->url.host, r->url.port, attempt, delay, err ? err : "");
        astro_backoff_sleep_ms(delay);
    }
}

struct astro_redis *
astro_redis_connect(const char *url, const struct astro_redis_options *opt, char *err,
                    size_t errlen)
{
    struct astro_redis *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        astro_fail(err, errlen, "redis: out of memory");
        return NULL;
    }
    if (astro_redis_url_parse(url, &r->url, err, errlen) != ASTRO_OK)
        goto fail;
    if (opt != NULL)
        r->opt = *opt;
    if (r->opt.connect_timeout_ms == 0)
        r->opt.connect_timeout_ms = 2000;
    if (r->opt.command_timeout_ms == 0)
        r->opt.command_timeout_ms = 5000;
    if (opt != NULL && opt->client_name != NULL)
        snprintf(r->client_name, sizeof(r->client_name), "%s", opt->client_name);
    r->opt.client_name = NULL; /* never keep the caller's pointer */
    astro_backoff_init(&r->backoff, r->opt.backoff_initial_ms, r->opt.backoff_max_ms, 0.2);
    if (connect_once(r, err, errlen) != ASTRO_OK)
        goto fail;
    return r;
fail:
    astro_redis_free(r);
    return NULL;
}

/* Only transport failures are worth a reconnect; protocol errors mean a bug or a server we
 * cannot talk to, and retrying would repeat them. */
static bool
is_io_error(const redisContext *c)
{
    return c->err == REDIS_ERR_IO || c->err == REDIS_ERR_EOF;
}

/* Sends the command at most `passes` times: each pass reconnects first if the connection is
 * down, and an I/O error drops the connection and moves on to the next pass. */
static redisReply *
command_passes(struct astro_redis *r, int passes, int argc, const char **argv,
               const size_t *argvlen, char *err, size_t errlen)
{
    for (int pass = 0; pass < passes; pass++) {
        if (r->c == NULL && reconnect(r, err, errlen) != ASTRO_OK)
            return NULL;
        redisReply *rep = redisCommandArgv(r->c, argc, argv, argvlen);
        if (rep != NULL)
            return rep;
        bool io = is_io_error(r->c);
        astro_fail(err, errlen, "redis %s:%d: %s: %s", r->url.host, r->url.port, argv[0],
                   r->c->errstr);
        astro_log_warn("%s", err ? err : "redis: command failed");
        redisFree(r->c);
        r->c = NULL;
        if (!io)
            return NULL;
    }
    return NULL;
}

redisReply *
astro_redis_command(struct astro_redis *r, int argc, const char **argv, const size_t *argvlen,
                    char *err, size_t errlen)
{
    return command_passes(r, 2, argc, argv, argvlen, err, errlen);
}

redisReply *
astro_redis_command_once(struct astro_redis *r, int argc, const char **argv,
                         const size_t *argvlen, char *err, size_t errlen)
{
    return command_passes(r, 1, argc, argv, argvlen, err, errlen);
}

void
astro_redis_free(struct astro_redis *r)
{
    if (r == NULL)
        return;
    redisFree(r->c);
    memset(r->url.password, 0, sizeof(r->url.password));
    free(r);
}

void
astro_redis_reply_free(const struct astro_redis *r, redisReply *rep)
{
    if (rep == NULL)
        return;
    if (r->opt.arena_replies)
        astro_redis_arena_free(rep);
    else
        freeReplyObject(rep);
}

int
astro_redis_group_create(struct astro_redis *r, const char *stream, const char *group,
                         const char *start_id, char *err, size_t errlen)
{
    const char *argv[] = { "XGROUP", "CREATE", stream, group, start_id, "MKSTREAM" };
    redisReply *rep = astro_redis_command(r, 6, argv, NULL, err, errlen);
    if (rep == NULL)
        return ASTRO_ERR;
    int rc = ASTRO_OK;
    if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "BUSYGROUP", 9) != 0)
        rc = astro_fail(err, errlen, "XGROUP CREATE %s %s: %s", stream, group, rep->str);
    astro_redis_reply_free(r, rep);
    return rc;
}

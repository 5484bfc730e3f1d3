/* Edge sessions: auth starts one, disconnect ends it; both are entries of the astro:sessions
 * stream (kind start|end, sid, user, dev (device_info JSON, start only), ts in epoch µs), which
 * the archiver turns into rows of the sessions table. */
#include <stdio.h>
#include <stdlib.h>

#include <hiredis/hiredis.h>

#include "astro/log.h"
#include "astro/metrics.h"
#include "astro/redis.h"
#include "astro/time.h"
#include "ingest.h"

#define SESSIONS_STREAM "astro:sessions"

struct start_req {
    struct ing_loop *lp;
    ing_session_done_fn done;
    void *arg;
};

static void
on_started(redisAsyncContext *ac, void *r, void *priv)
{
    struct start_req *sr = priv;
    redisReply *rep = r;
    (void)ac;
    bool ok = rep != NULL && rep->type == REDIS_REPLY_STRING;
    if (ok)
        astro_counter_inc(sr->lp->ctx->m.sessions_started);
    else
        astro_counter_inc(sr->lp->ctx->m.redis_errors);
    sr->lp->inflight--;
    sr->done(sr->lp, ok, sr->arg);
    ing_drain_check(sr->lp);
    free(sr);
}

int
ing_session_start(struct ing_loop *lp, const char *sid, const char *user, const char *dev,
                  ing_session_done_fn done, void *arg)
{
    char ts[24];
    struct start_req *sr = malloc(sizeof(*sr));
    if (sr == NULL)
        return ASTRO_ERR;
    *sr = (struct start_req){lp, done, arg};
    snprintf(ts, sizeof(ts), "%lld", (long long)astro_now_us());
    const char *argv[] = {"XADD", SESSIONS_STREAM, "*", "kind", "start", "sid", sid, "user",
                          user, "ts", ts, "dev", dev != NULL ? dev : "{}"};
    if (astro_redis_async_command(lp->rw, on_started, sr, (int)ASTRO_ARRAY_LEN(argv), argv,
                                  NULL) != ASTRO_OK) {
        free(sr);
        return ASTRO_ERR;
    }
    lp->inflight++;
    return ASTRO_OK;
}

static void
on_ended(redisAsyncContext *ac, void *r, void *priv)
{
    struct ing_loop *lp = priv;
    redisReply *rep = r;
    (void)ac;
    if (rep != NULL && rep->type == REDIS_REPLY_STRING)
        astro_counter_inc(lp->ctx->m.sessions_ended);
    else
        astro_counter_inc(lp->ctx->m.redis_errors);
    lp->inflight--;
    ing_drain_check(lp);
}

/* Best effort: a session whose end cannot be written stays open in the stream; a reader
 * may close it from its own timeout (see docs/ingest.md). */
void
ing_session_end(struct ing_loop *lp, const char *sid, const char *user)
{
    char ts[24];
    snprintf(ts, sizeof(ts), "%lld", (long long)astro_now_us());
    const char *argv[] = {"XADD", SESSIONS_STREAM, "*", "kind", "end", "sid", sid, "user", user,
                          "ts", ts};
    if (astro_redis_async_command(lp->rw, on_ended, lp, (int)ASTRO_ARRAY_LEN(argv), argv,
                                  NULL) != ASTRO_OK) {
        astro_counter_inc(lp->ctx->m.redis_errors);
        astro_log_warn("session %s: end not recorded (redis down)", sid);
        return;
    }
    lp->inflight++;
}

/* Backpressure: the archiver SETs astro:hot:unarchived (PX 10000) every second with the number
 * of mono/multi entries it has not acknowledged yet. Above ASTRO_BACKPRESSURE_HIGH new events
 * are refused with a retryable error; below ASTRO_BACKPRESSURE_LOW they are accepted again.
 * Without the key (archiver down or not deployed) the sum of XLEN over astro:mono:{0..P-1} is
 * used instead: it over-counts what is archived but not yet trimmed, which errs on the side of
 * refusing rather than letting the hot tier grow unbounded. Runs on the main event_base. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "astro/backoff.h"
#include "astro/log.h"
#include "astro/metrics.h"
#include "astro/partition.h"
#include "astro/redis.h"
#include "ingest.h"

#define HOT_KEY "astro:hot:unarchived"

struct ing_bp {
    struct ing_ctx *ctx;
    struct astro_redis_async *r;
    struct event *timer;
    bool busy;              /* a poll is in flight */
    long long sum;          /* XLEN fallback: running sum */
    unsigned xlen_pending;
    uint64_t on_since_ms;   /* when the current backpressure period began */
    double total_s;         /* finished periods */
};

bool
ing_bp_next(bool on, long long v, long long high, long long low)
{
    if (!on && v > high)
        return true;
    if (on && v < low)
        return false;
    return on;
}

static void
apply(struct ing_bp *bp, long long v)
{
    struct ing_ctx *ctx = bp->ctx;
    bool on = atomic_load(&ctx->backpressure);
    bool next = ing_bp_next(on, v, ctx->cfg->bp_high, ctx->cfg->bp_low);
    uint64_t now = astro_backoff_now_ms();
    if (next && !on) {
        bp->on_since_ms = now;
        astro_log_warn("backpressure on: %lld unarchived entries (high %lld)", v,
                       (long long)ctx->cfg->bp_high);
    } else if (!next && on) {
        bp->total_s += (double)(now - bp->on_since_ms) / 1000.0;
        astro_log_info("backpressure off: %lld unarchived entries (low %lld)", v,
                       (long long)ctx->cfg->bp_low);
    }
    atomic_store(&ctx->backpressure, next);
    astro_gauge_set(ctx->m.backpressure, next ? 1 : 0);
    double current = next ? (double)(now - bp->on_since_ms) / 1000.0 : 0;
    astro_gauge_set(ctx->m.backpressure_seconds, bp->total_s + current);
}

static void
on_xlen(redisAsyncContext *ac, void *r, void *priv)
{
    struct ing_bp *bp = priv;
    redisReply *rep = r;
    (void)ac;
    if (rep != NULL && rep->type == REDIS_REPLY_INTEGER)
        bp->sum += rep->integer;
    if (--bp->xlen_pending > 0)
        return;
    bp->busy = false;
    if (rep != NULL)
        apply(bp, bp->sum);
}

static void
poll_xlen(struct ing_bp *bp)
{
    char key[32];
    bp->sum = 0;
    bp->xlen_pending = 0;
    for (uint32_t p = 0; p < (uint32_t)bp->ctx->cfg->partitions; p++) {
        if (astro_stream_key(key, sizeof(key), "mono", p) != ASTRO_OK)
            break;
        const char *argv[] = {"XLEN", key};
        if (astro_redis_async_command(bp->r, on_xlen, bp, 2, argv, NULL) != ASTRO_OK)
            break;
        bp->xlen_pending++;
    }
    if (bp->xlen_pending == 0)
        bp->busy = false;
}

static void
on_hot(redisAsyncContext *ac, void *r, void *priv)
{
    struct ing_bp *bp = priv;
    redisReply *rep = r;
    (void)ac;
    if (rep == NULL) {
        bp->busy = false;
        return;
    }
    if (rep->type == REDIS_REPLY_STRING) {
        char *end;
        long long v = strtoll(rep->str, &end, 10);
        bp->busy = false;
        if (*end == '\0' && end != rep->str)
            apply(bp, v);
        return;
    }
    poll_xlen(bp); /* nil: no archiver report */
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct ing_bp *bp = arg;
    const char *argv[] = {"GET", HOT_KEY};
    (void)fd, (void)what;
    if (bp->busy)
        return;
    if (astro_redis_async_command(bp->r, on_hot, bp, 2, argv, NULL) == ASTRO_OK)
        bp->busy = true;
    else if (atomic_load(&bp->ctx->backpressure))
        apply(bp, bp->ctx->cfg->bp_high); /* keep the time gauge moving while Redis is away */
}

struct ing_bp *
ing_bp_start(struct ing_ctx *ctx, struct event_base *base, char *err, size_t errlen)
{
    struct ing_bp *bp = calloc(1, sizeof(*bp));
    if (bp == NULL) {
        astro_fail(err, errlen, "out of memory");
        return NULL;
    }
    bp->ctx = ctx;
    struct astro_redis_async_options o = {.client_name = "astro-ingest-backpressure"};
    bp->r = astro_redis_async_new(base, ctx->cfg->svc.redis_url, &o, err, errlen);
    bp->timer = event_new(base, -1, EV_PERSIST, on_tick, bp);
    int64_t ms = ctx->cfg->bp_poll_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (bp->r == NULL || bp->timer == NULL || event_add(bp->timer, &tv) != 0) {
        if (bp->r != NULL)
            astro_fail(err, errlen, "cannot start the backpressure poller");
        ing_bp_free(bp);
        return NULL;
    }
    return bp;
}

void
ing_bp_free(struct ing_bp *bp)
{
    if (bp == NULL)
        return;
    if (bp->timer != NULL)
        event_free(bp->timer);
    astro_redis_async_free(bp->r);
    free(bp);
}

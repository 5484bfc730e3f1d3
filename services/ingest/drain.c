/* Graceful stop. SIGTERM (main thread) sets `stopping` and posts a drain to every loop. On
 * each loop: new events are refused (retryable "unavailable"); once the batches, key lookups
 * and session writes already sent to Redis have all answered, and their acks are queued, every
 * /stream connection is closed 1001 and its session end is written; when those replies are in
 * too, the loop reports drained. The main thread polls the count and then lets
 * astro_service_run() shut the HTTP server down (which flushes queued frames). */
#include <event2/event.h>

#include "astro/log.h"
#include "astro/loop.h"
#include "ingest.h"

#define DRAIN_POLL_MS 20

void
ing_drain_check(struct ing_loop *lp)
{
    if (!lp->draining || lp->inflight > 0 || lp->reported)
        return;
    if (!lp->closed_all) {
        lp->closed_all = true;
        ing_stream_close_all(lp); /* session ends go out from on_close: inflight again */
        if (lp->inflight > 0 || lp->conns != NULL)
            return;
    }
    if (lp->conns != NULL)
        return;
    lp->reported = true;
    atomic_fetch_add(&lp->ctx->loops_drained, 1);
}

static void
drain_on_loop(void *arg)
{
    struct ing_loop *lp = arg;
    lp->draining = true;
    ing_drain_check(lp);
}

static void
on_drain_poll(evutil_socket_t fd, short what, void *arg)
{
    struct ing_ctx *ctx = arg;
    (void)fd, (void)what;
    if (atomic_load(&ctx->loops_drained) < ctx->nloops)
        return;
    astro_log_info("drained: every acknowledged event is in Redis");
    event_del(ctx->drain_timer);
    astro_service_drained(ctx->svc);
}

void
ing_drain_start(void *arg)
{
    struct ing_ctx *ctx = arg;
    atomic_store(&ctx->stopping, true);
    ing_bp_free(ctx->bp);
    ctx->bp = NULL;
    for (unsigned i = 0; i < ctx->nloops; i++)
        if (astro_loop_post(ctx->loops[i].loop, drain_on_loop, &ctx->loops[i]) != ASTRO_OK)
            astro_log_error("loop %u: cannot post the drain", i);
    struct timeval tv = {0, DRAIN_POLL_MS * 1000};
    ctx->drain_timer = event_new(astro_service_base(ctx->svc), -1, EV_PERSIST, on_drain_poll,
                                 ctx);
    if (ctx->drain_timer == NULL || event_add(ctx->drain_timer, &tv) != 0)
        astro_log_error("cannot arm the drain poll; the deadline will end the run");
}

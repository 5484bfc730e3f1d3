/* The reader side of the archive pipeline, on its own thread and Redis connection: fills a
 * batch with claims of idle entries, then XREADGROUP until ASTRO_BATCH_SIZE entries or
 * ASTRO_BATCH_AGE, and hands it to the writer. On SIGTERM it stops reading at once: what it
 * has read is still written by the writer before the process exits. */
#include <stdio.h>
#include <stdlib.h>

#include "pipeline.h"
#include "astro/backoff.h"
#include "astro/log.h"
#include "astro/time.h"

struct reader {
    struct arc_pipe *pipe;
    struct astro_redis *r;
    struct astro_backoff backoff;
    int64_t last_claim_us;
};

static bool
leaving(const struct arc_ctx *ctx)
{
    return atomic_load(&ctx->stop) || atomic_load(&ctx->abort_now);
}

static size_t
batch_total(const struct arc_batch *b)
{
    return b->n + b->nrej;
}

static int
fill(struct reader *rd, struct arc_batch *b)
{
    struct arc_ctx *ctx = rd->pipe->ctx;
    size_t want = (size_t)ctx->cfg->batch_size;
    int64_t now = astro_now_us();
    int64_t claim_every = ctx->cfg->claim_idle_ms * 500; /* half the idle time, in µs */
    if (now - rd->last_claim_us >= claim_every) {
        rd->last_claim_us = now;
        if (arc_claim_idle(ctx, rd->r, rd->pipe->streams, rd->pipe->nstreams, b, want) !=
            ASTRO_OK)
            return ASTRO_ERR;
    }
    while (batch_total(b) < want && !leaving(ctx)) {
        int64_t left = ctx->cfg->batch_age_ms;
        if (b->first_us != 0)
            left -= (astro_now_us() - b->first_us) / 1000;
        if (left <= 0)
            break;
        size_t before = batch_total(b);
        if (arc_read_new(ctx, rd->r, rd->pipe->streams, rd->pipe->nstreams, b, want - before,
                         left) != ASTRO_OK)
            return ASTRO_ERR;
        if (batch_total(b) == before)
            break; /* BLOCK ran out: hand over what we have */
    }
    return ASTRO_OK;
}

/* Waits for the next slot to be free; NULL when leaving. */
static struct arc_batch *
free_slot(struct arc_pipe *p)
{
    struct arc_batch *b = NULL;
    pthread_mutex_lock(&p->mu);
    while (p->full[p->next_fill] && !leaving(p->ctx)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &until);
    }
    if (!p->full[p->next_fill] && !leaving(p->ctx))
        b = &p->slot[p->next_fill];
    pthread_mutex_unlock(&p->mu);
    return b;
}

static void
hand_over(struct arc_pipe *p)
{
    pthread_mutex_lock(&p->mu);
    p->full[p->next_fill] = true;
    p->next_fill ^= 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void
read_loop(struct reader *rd)
{
    struct arc_pipe *p = rd->pipe;
    struct arc_batch *b;
    while ((b = free_slot(p)) != NULL) {
        if (fill(rd, b) != ASTRO_OK) {
            (void)arc_nap(p->ctx, astro_backoff_next(&rd->backoff));
            if (atomic_load(&p->ctx->need_groups) && arc_groups_ensure(p->ctx, rd->r) != ASTRO_OK)
                continue;
        } else
            astro_backoff_reset(&rd->backoff);
        if (batch_total(b) > 0)
            hand_over(p);
    }
}

void *
arc_reader_main(void *arg)
{
    struct reader rd = {.pipe = arg};
    struct arc_ctx *ctx = rd.pipe->ctx;
    char err[512];
    struct astro_redis_options ro = {
        .connect_timeout_ms = 2000,
        .command_timeout_ms = (uint32_t)ctx->cfg->batch_age_ms + 5000,
        .client_name = ctx->consumer, .deadline_ms = 2000,
        .backoff_initial_ms = 100, .backoff_max_ms = 1000,
    };
    astro_backoff_init(&rd.backoff, 100, 5000, 0.2);
    while (rd.r == NULL && !leaving(ctx)) {
        rd.r = astro_redis_connect(ctx->cfg->svc.redis_url, &ro, err, sizeof(err));
        if (rd.r == NULL) {
            astro_log_warn("reader: cannot connect to redis yet: %s", err);
            (void)arc_nap(ctx, astro_backoff_next(&rd.backoff));
        }
    }
    if (rd.r != NULL)
        read_loop(&rd);
    astro_redis_free(rd.r);
    pthread_mutex_lock(&rd.pipe->mu);
    rd.pipe->reader_done = true;
    pthread_cond_broadcast(&rd.pipe->cv);
    pthread_mutex_unlock(&rd.pipe->mu);
    return NULL;
}

/* The writer side of the archive pipeline, on its own thread with its own sync connections:
 * takes the batches the reader filled (reader.c), writes each in one transaction and XACKs it
 * after COMMIT. A batch PostgreSQL refuses is bisected so that only the bad row stays behind; a
 * lost connection keeps the batch in hand and retries with backoff (the reader then waits, as
 * both slots are full, so nothing more is taken from Redis). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline.h"
#include "astro/backoff.h"
#include "astro/log.h"
#include "astro/time.h"

struct worker {
    struct arc_ctx *ctx;
    struct arc_pipe *pipe;
    struct astro_redis *r; /* XACK, XPENDING, astro:dead */
    struct arc_store st;
    struct arc_batch *b;   /* the slot being written */
    struct astro_backoff backoff;
};

bool
arc_nap(struct arc_ctx *ctx, uint32_t ms)
{
    for (uint32_t t = 0; t < ms; t += 20) {
        if (atomic_load(&ctx->abort_now))
            return false;
        astro_backoff_sleep_ms(20);
    }
    return !atomic_load(&ctx->abort_now);
}

/* Age of the oldest entry of rows[lo, hi) in the hot tier (its id's milliseconds). */
static double
lag_seconds(const struct arc_batch *b, size_t lo, size_t hi)
{
    uint64_t oldest = UINT64_MAX;
    for (size_t i = lo; i < hi; i++) {
        struct arc_id id;
        if (arc_id_parse(b->rows[i].entry_id, &id) == ASTRO_OK && id.ms < oldest)
            oldest = id.ms;
    }
    if (oldest == UINT64_MAX)
        return 0;
    double d = (double)astro_now_us() / 1000.0 - (double)oldest;
    return d > 0 ? d / 1000.0 : 0;
}

static void
committed(struct worker *w, size_t lo, size_t hi, const struct arc_store_counts *c)
{
    struct arc_ctx *ctx = w->ctx;
    for (int k = 0; k < ARC_TABLES; k++) {
        astro_counter_add(ctx->m.rows[k], c->inserted[k]);
        astro_counter_add(ctx->m.duplicates[k], c->offered[k] - c->inserted[k]);
    }
    astro_gauge_set(ctx->m.lag_seconds, lag_seconds(w->b, lo, hi));
    uint64_t n = atomic_fetch_add(&ctx->commits, 1) + 1;
    if (ctx->cfg->test_crash_after_commit > 0 &&
        n == (uint64_t)ctx->cfg->test_crash_after_commit) {
        astro_log_warn("ASTRO_TEST_CRASH_AFTER_COMMIT: exiting after commit %llu, before XACK",
                       (unsigned long long)n);
        _exit(3);
    }
    if (arc_ack(ctx, w->r, w->b, lo, hi) != ASTRO_OK)
        astro_log_warn("XACK after commit failed: the entries stay pending and are re-archived "
                       "idempotently after %lld ms", (long long)ctx->cfg->claim_idle_ms);
}

/* A single row PostgreSQL refused: dead after ASTRO_DEAD_AFTER deliveries, else left pending
 * for a later attempt (XAUTOCLAIM redelivers it). */
static void
refused_row(struct worker *w, size_t i, const char *why)
{
    struct arc_ctx *ctx = w->ctx;
    const struct arc_row *row = &w->b->rows[i];
    int64_t tries = arc_deliveries(ctx, w->r, row->stream, row->entry_id);
    if (tries < ctx->cfg->dead_after) {
        astro_log_warn("entry %s %s refused (delivery %lld of %lld): %s",
                       ctx->streams[row->stream].key, row->entry_id, (long long)tries,
                       (long long)ctx->cfg->dead_after, why);
        return;
    }
    if (arc_dead_entry(ctx, w->r, w->st.pg, row->stream, row->entry_id, row->fields, why,
                       tries) == ASTRO_OK)
        astro_counter_inc(ctx->m.dead_refused);
}

/* Writes rows[lo, hi): retried while PostgreSQL is unavailable, split when it refuses data. */
static void
write_range(struct worker *w, size_t lo, size_t hi)
{
    struct arc_ctx *ctx = w->ctx;
    char err[512];
    struct arc_store_counts c;
    for (;;) {
        enum arc_store_result r =
            arc_store_write(&w->st, w->b->rows, lo, hi, ctx->streams, &c, err, sizeof(err));
        if (r == ARC_STORE_OK) {
            if (!atomic_exchange(&ctx->pg_ok, true))
                astro_log_info("postgresql: writing again");
            astro_backoff_reset(&w->backoff);
            committed(w, lo, hi, &c);
            return;
        }
        if (r == ARC_STORE_DATA)
            break;
        astro_counter_inc(ctx->m.retries);
        astro_counter_inc(ctx->m.pg_errors);
        if (atomic_exchange(&ctx->pg_ok, false))
            astro_log_warn("postgresql: batch of %zu rows not written, retrying: %s", hi - lo,
                           err);
        if (!arc_nap(ctx, astro_backoff_next(&w->backoff)))
            return; /* deadline: the entries stay pending for the next archiver */
    }
    if (hi - lo == 1) {
        refused_row(w, lo, err);
        return;
    }
    astro_counter_inc(ctx->m.splits);
    size_t mid = lo + (hi - lo) / 2;
    write_range(w, lo, mid);
    write_range(w, mid, hi);
}

static void
process(struct worker *w)
{
    struct arc_ctx *ctx = w->ctx;
    for (size_t i = 0; i < w->b->nrej; i++) {
        const struct arc_reject *rj = &w->b->rejects[i];
        if (rj->marker) {
            if (arc_ack_one(ctx, w->r, rj->stream, rj->entry_id) == ASTRO_OK)
                astro_counter_inc(ctx->m.markers);
            continue;
        }
        /* Decoding is deterministic: another attempt cannot succeed. */
        if (arc_dead_entry(ctx, w->r, w->st.pg, rj->stream, rj->entry_id, rj->fields, rj->reason,
                           1) == ASTRO_OK)
            astro_counter_inc(ctx->m.dead_decode);
    }
    if (w->b->n == 0)
        return;
    int64_t t0 = astro_now_us();
    astro_histogram_observe(ctx->m.batch_rows, (double)w->b->n);
    write_range(w, 0, w->b->n);
    astro_histogram_observe(ctx->m.batch_seconds, (double)(astro_now_us() - t0) / 1e6);
}

/* Connections are (re)tried until they work or the run is cut short. */
static int
connect_all(struct worker *w)
{
    struct arc_ctx *ctx = w->ctx;
    char err[512];
    struct astro_redis_options ro = {
        .connect_timeout_ms = 2000, .command_timeout_ms = 5000,
        .client_name = ctx->consumer, .deadline_ms = 2000,
        .backoff_initial_ms = 100, .backoff_max_ms = 1000,
    };
    struct astro_pg_options po = {
        .application_name = "astro-archiver", .connect_timeout_s = 5, .deadline_ms = 2000,
        .backoff_initial_ms = 100, .backoff_max_ms = 1000,
    };
    while (w->r == NULL || w->st.pg == NULL) {
        if (w->r == NULL)
            w->r = astro_redis_connect(ctx->cfg->svc.redis_url, &ro, err, sizeof(err));
        if (w->r != NULL && w->st.pg == NULL)
            w->st.pg = astro_pg_connect(ctx->cfg->database_url, &po, err, sizeof(err));
        if (w->r != NULL && w->st.pg != NULL)
            break;
        atomic_store(&ctx->pg_ok, false);
        astro_log_warn("writer: cannot connect yet: %s", err);
        /* Nothing has been read yet: a stop needs no drain. */
        if (atomic_load(&ctx->stop) || !arc_nap(ctx, astro_backoff_next(&w->backoff)))
            return ASTRO_ERR;
    }
    astro_backoff_reset(&w->backoff);
    atomic_store(&ctx->redis_ok, true);
    atomic_store(&ctx->pg_ok, true);
    return ASTRO_OK;
}

/* The next slot the reader filled; NULL when the reader is done and nothing is left, or at
 * the deadline. */
static struct arc_batch *
full_slot(struct arc_pipe *p)
{
    struct arc_batch *b = NULL;
    pthread_mutex_lock(&p->mu);
    while (!p->full[p->next_write] && !p->reader_done && !atomic_load(&p->ctx->abort_now)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &until);
    }
    if (p->full[p->next_write] && !atomic_load(&p->ctx->abort_now))
        b = &p->slot[p->next_write];
    pthread_mutex_unlock(&p->mu);
    return b;
}

static void
release_slot(struct arc_pipe *p)
{
    arc_batch_reset(&p->slot[p->next_write]);
    pthread_mutex_lock(&p->mu);
    p->full[p->next_write] = false;
    p->next_write ^= 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void
write_loop(struct worker *w)
{
    while ((w->b = full_slot(w->pipe)) != NULL) {
        int64_t t0 = astro_now_us();
        process(w);
        astro_log_debug("batch: %zu rows, %zu undecodable, written in %lld us", w->b->n,
                        w->b->nrej, (long long)(astro_now_us() - t0));
        release_slot(w->pipe);
    }
}

static void *
worker_main(void *arg)
{
    struct arc_pipe *p = arg;
    struct worker w = {.ctx = p->ctx, .pipe = p};
    struct arc_ctx *ctx = w.ctx;
    astro_backoff_init(&w.backoff, 100, 5000, 0.2);
    /* The reader starts only once the writer can write: nothing is read that cannot be
     * committed soon; and after the day partitions of today exist, so that rows are not
     * written to the DEFAULT partition and moved while the keeper creates them (bounded
     * wait: the keeper gives up on a PostgreSQL that is down and says so). */
    for (int t = 0; t < 500 && !atomic_load(&ctx->parts_ready) && !atomic_load(&ctx->stop); t++)
        astro_backoff_sleep_ms(20);
    if (connect_all(&w) == ASTRO_OK &&
        pthread_create(&p->reader, NULL, arc_reader_main, p) == 0) {
        p->reader_started = true;
        astro_log_info("worker: archiving %zu of %zu streams as consumer %s", p->nstreams,
                       ctx->nstreams, ctx->consumer);
        write_loop(&w);
    }
    if (p->reader_started)
        pthread_join(p->reader, NULL);
    astro_redis_free(w.r);
    astro_pg_free(w.st.pg);
    /* The last writer to finish tells the drain poll that everything read was written. */
    if (atomic_fetch_sub(&ctx->writers_running, 1) == 1) {
        astro_log_info("worker: stopped after %llu commits",
                       (unsigned long long)atomic_load(&ctx->commits));
        atomic_store(&ctx->worker_done, true);
    }
    return NULL;
}

static void
pipe_free(struct arc_pipe *p)
{
    if (p == NULL)
        return;
    arc_batch_cleanup(&p->slot[0]);
    arc_batch_cleanup(&p->slot[1]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->streams);
    free(p);
}

/* Pipeline `which` of n: the streams i with i % n == which. */
static struct arc_pipe *
pipe_new(struct arc_ctx *ctx, size_t which, size_t n)
{
    struct arc_pipe *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->ctx = ctx;
    p->streams = calloc(ctx->nstreams / n + 1, sizeof(*p->streams));
    if (p->streams == NULL) {
        free(p);
        return NULL;
    }
    for (size_t i = which; i < ctx->nstreams; i += n)
        p->streams[p->nstreams++] = i;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    arc_batch_init(&p->slot[0]);
    arc_batch_init(&p->slot[1]);
    return p;
}

/* ASTRO_WRITERS pipelines, each a writer thread that starts its reader once connected. On a
 * failure the pipelines already started keep running; the caller stops and joins them. */
int
arc_worker_start(struct arc_ctx *ctx)
{
    size_t n = (size_t)ctx->cfg->writers;
    if (n > ctx->nstreams)
        n = ctx->nstreams;
    ctx->pipes = calloc(n, sizeof(*ctx->pipes));
    if (ctx->pipes == NULL)
        return ASTRO_ERR;
    /* Counted up front: a writer that stops early must not look like the last one. */
    atomic_store(&ctx->writers_running, (unsigned)n);
    for (size_t i = 0; i < n; i++) {
        struct arc_pipe *p = pipe_new(ctx, i, n);
        if (p != NULL)
            ctx->pipes[ctx->npipes++] = p;
        if (p == NULL || pthread_create(&p->writer, NULL, worker_main, p) != 0) {
            if (atomic_fetch_sub(&ctx->writers_running, (unsigned)(n - i)) == n - i)
                atomic_store(&ctx->worker_done, true);
            return ASTRO_ERR;
        }
        p->writer_started = true;
    }
    return ASTRO_OK;
}

void
arc_workers_join(struct arc_ctx *ctx)
{
    for (size_t i = 0; i < ctx->npipes; i++) {
        if (ctx->pipes[i]->writer_started)
            pthread_join(ctx->pipes[i]->writer, NULL);
        pipe_free(ctx->pipes[i]);
    }
    free(ctx->pipes);
    ctx->pipes = NULL;
    ctx->npipes = 0;
}

/* The worker thread: lease ticks, one XREADGROUP over every owned partition (between ticks the
 * next one is read ahead while the current reply is matched), a batch per partition, idle
 * markers; on stop it finishes the batch in hand (already committed when the
 * loop checks the flag), releases its leases and leaves the membership. Redis failures drop the
 * owned partitions' state; it is rebuilt from Redis once the connection is back. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "astro/log.h"
#include "astro/partition.h"
#include "astro/time.h"
#include "leaflet.h"

static void
nap(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void
reload_rules(struct cep_ctx *ctx)
{
    struct cep_ruleset rs;
    char err[512];
    atomic_store(&ctx->reload, false);
    if (cep_rules_load(ctx->cfg->rules_file, &rs, err, sizeof(err)) != ASTRO_OK) {
        astro_log_error("rules reload refused, keeping %zu rules: %s", ctx->rules.n, err);
        return;
    }
    /* the state of the old rules is meaningless for the new ones: rebuild it from the streams */
    for (uint32_t p = 0; p < ctx->nparts; p++)
        cep_part_drop(&ctx->parts[p]);
    cep_ruleset_free(&ctx->rules);
    ctx->rules = rs;
    if (cep_metrics_rules(ctx) != ASTRO_OK)
        astro_log_error("rules reload: cannot register the per-rule metrics");
    astro_counter_inc(ctx->met.reloads);
    astro_log_info("rules reloaded: %zu rules from %s", rs.n, ctx->cfg->rules_file);
    ctx->next_tick_ms = 0;
}

static struct cep_partition *
part_of(struct cep_ctx *ctx, const char *key)
{
    for (uint32_t p = 0; p < ctx->nparts; p++)
        if (ctx->parts[p].owned && strcmp(ctx->parts[p].mono, key) == 0)
            return &ctx->parts[p];
    return NULL;
}

/* Matches every partition's batch of the reply and writes each one's commit as soon as it is
 * built (Redis runs it while the next partition is matched), then reads the replies: first the
 * read-ahead XREADGROUP's when ahead (it was sent before these commits), returned to the caller,
 * then the commits'. */
static redisReply *
commit_all(struct cep_ctx *ctx, const redisReply *rep, bool ahead)
{
    struct cep_partition *sent[ASTRO_PARTITIONS_MAX];
    size_t n = 0;
    redisContext *c = ctx->r->c;
    redisReply *next = NULL;
    for (size_t i = 0; i < rep->elements && n < ASTRO_PARTITIONS_MAX; i++) {
        const redisReply *s = rep->element[i];
        struct cep_partition *pp = part_of(ctx, s->element[0]->str);
        if (pp == NULL || cep_part_prepare(pp, s->element[1]) != ASTRO_OK)
            continue;
        if (c == NULL || cep_part_send(pp, c) != ASTRO_OK) {
            cep_part_drop(pp);
            continue;
        }
        sent[n++] = pp;
    }
    astro_gauge_set(ctx->met.pending, (double)n);
    bool io = ahead && redisGetReply(c, (void **)&next) != REDIS_OK;
    for (size_t i = 0; i < n; i++)
        if (io || cep_part_finish(sent[i], c) != ASTRO_OK)
            io = io || c->err != 0;
    if (io) {
        /* unknown which scripts ran: drop everything, rebuild from Redis on the next tick */
        astro_log_warn("commit pipeline failed: %s", c->errstr);
        for (uint32_t p = 0; p < ctx->nparts; p++)
            cep_part_drop(&ctx->parts[p]);
        redisFree(ctx->r->c);
        ctx->r->c = NULL;
        astro_redis_reply_free(ctx->r, next);
        next = NULL;
    }
    if (io || n < rep->elements)
        ctx->next_tick_ms = 0; /* re-take dropped partitions (rebuild) on the next tick */
    astro_gauge_set(ctx->met.pending, 0);
    return next;
}

/* XREADGROUP over the owned partitions, with BLOCK or without. Returns its argument count (0:
 * no partition owned) and *out (free it), or -1 on allocation failure. */
static int
read_argv(struct cep_ctx *ctx, bool block, char count[24], char blk[24], const char ***out)
{
    int argc = 0, n = 0;
    snprintf(count, 24, "%" PRId64, ctx->cfg->batch);
    snprintf(blk, 24, "%" PRId64, ctx->cfg->block_ms);
    const char *head[] = {"XREADGROUP", "GROUP", CEP_GROUP, ctx->instance, "COUNT", count,
                          "BLOCK", blk, "STREAMS"};
    const char **argv = malloc((ASTRO_ARRAY_LEN(head) + 2 * (size_t)ctx->nparts) * sizeof(*argv));
    if (argv == NULL)
        return -1;
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(head); i++)
        if (block || (i != 6 && i != 7))
            argv[argc++] = head[i];
    for (uint32_t p = 0; p < ctx->nparts; p++)
        if (ctx->parts[p].owned)
            argv[argc + n++] = ctx->parts[p].mono;
    for (int i = 0; i < n; i++)
        argv[argc + n + i] = ">";
    *out = argv;
    return n ? argc + 2 * n : 0;
}

/* Writes the next XREADGROUP (no BLOCK, so the commits queued behind it are not held up) before
 * the current reply is matched: Redis builds the next reply while the worker matches. Only
 * between lease ticks and with no reload or stop pending, because the reply is processed in
 * the same read_once(), before any partition can be taken; entries of a partition dropped in
 * between are skipped and stay pending for its rebuild, like a crashed owner's. */
static bool
read_ahead(struct cep_ctx *ctx)
{
    char count[24], blk[24];
    const char **argv = NULL;
    redisContext *c = ctx->r->c;
    int done = 0;
    if (c == NULL || atomic_load(&ctx->stop) || atomic_load(&ctx->reload) ||
        cep_mono_ms() >= ctx->next_tick_ms)
        return false;
    int argc = read_argv(ctx, false, count, blk, &argv);
    bool ok = argc > 0 && redisAppendCommandArgv(c, argc, argv, NULL) == REDIS_OK;
    free(argv);
    while (ok && !done)
        ok = redisBufferWrite(c, &done) == REDIS_OK;
    return ok;
}

static void
read_failed(struct cep_ctx *ctx, const char *why)
{
    astro_log_warn("XREADGROUP: %s", why);
    astro_counter_inc(ctx->met.redis_errors);
    for (uint32_t p = 0; p < ctx->nparts; p++)
        cep_part_drop(&ctx->parts[p]);
    ctx->next_tick_ms = cep_mono_ms() + 200;
}

/* One blocking XREADGROUP over the owned partitions and a batch for each that returned
 * entries; then, while entries keep coming and no lease tick is due, the batches read ahead.
 * The read is sent once: after a lost reply Redis may have delivered entries we never saw, and
 * a resend would return the next ones; read_failed()'s rebuild claims the pending ones. */
static void
read_once(struct cep_ctx *ctx)
{
    char count[24], blk[24], err[256];
    const char **argv = NULL;
    int argc = read_argv(ctx, true, count, blk, &argv);
    redisReply *rep =
        argc > 0 ? astro_redis_command_once(ctx->r, argc, argv, NULL, err, sizeof(err)) : NULL;
    free(argv);
    if (argc <= 0) {
        nap(ctx->cfg->block_ms);
        return;
    }
    if (rep == NULL) {
        read_failed(ctx, err);
        return;
    }
    while (rep != NULL && rep->type == REDIS_REPLY_ARRAY) {
        redisReply *next = commit_all(ctx, rep, read_ahead(ctx));
        astro_redis_reply_free(ctx->r, rep);
        rep = next;
    }
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
        read_failed(ctx, rep->str);
    astro_redis_reply_free(ctx->r, rep);
}

static void
update_gauges(struct cep_ctx *ctx, int64_t now_ms)
{
    int64_t oldest = INT64_MAX;
    size_t held = 0;
    for (uint32_t p = 0; p < ctx->nparts; p++) {
        struct cep_partition *pp = &ctx->parts[p];
        if (!pp->owned)
            continue;
        struct cep_matcher_stats st;
        cep_matcher_stats(pp->m, &st);
        held += st.held;
        int64_t wm = cep_matcher_watermark(pp->m);
        if (wm != INT64_MIN && wm < oldest)
            oldest = wm;
        cep_part_idle(pp, now_ms);
    }
    astro_gauge_set(ctx->met.held, (double)held);
    astro_gauge_set(ctx->met.wm_lag,
                    oldest == INT64_MAX ? 0 : (double)(astro_now_us() - oldest) / 1e6);
}

static void *
worker_main(void *arg)
{
    struct cep_ctx *ctx = arg;
    while (!atomic_load(&ctx->stop)) {
        int64_t now = cep_mono_ms();
        if (atomic_load(&ctx->reload))
            reload_rules(ctx);
        if (now >= ctx->next_tick_ms) {
            cep_lease_tick(ctx);
            ctx->next_tick_ms = now + ctx->cfg->lease_ms / 3;
            if (!atomic_load(&ctx->redis_ok))
                ctx->next_tick_ms = now + 200;
        }
        read_once(ctx);
        update_gauges(ctx, cep_mono_ms());
    }
    cep_lease_release_all(ctx);
    astro_gauge_set(ctx->met.owned, 0);
    astro_log_info("worker stopped: batches committed, leases released");
    atomic_store(&ctx->done, true);
    return NULL;
}

int
cep_worker_start(struct cep_ctx *ctx)
{
    if (pthread_create(&ctx->thread, NULL, worker_main, ctx) != 0)
        return ASTRO_ERR;
    ctx->thread_started = true;
    return ASTRO_OK;
}

void
cep_worker_join(struct cep_ctx *ctx)
{
    if (!ctx->thread_started)
        return;
    atomic_store(&ctx->stop, true);
    pthread_join(ctx->thread, NULL);
    ctx->thread_started = false;
}

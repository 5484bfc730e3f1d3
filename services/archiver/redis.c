/* The worker's Redis side (sync hiredis): XREADGROUP over every stream in one call, XAUTOCLAIM
 * of entries left idle by dead consumers, XACK after COMMIT, XPENDING delivery counts. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archiver.h"
#include "astro/log.h"
#include "astro/time.h"

/* Counts and logs a failed command (NULL rep, reason in err) or error reply (freed; NULL is
 * returned); notes NOGROUP for the reader and the connection's state for the health check. */
static redisReply *
checked(struct arc_ctx *ctx, const char *what, redisReply *rep, const char *err)
{
    if (rep == NULL) {
        if (atomic_exchange(&ctx->redis_ok, false))
            astro_log_warn("redis: %s failed: %s", what, err);
        astro_counter_inc(ctx->m.redis_errors);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        astro_log_warn("redis: %s: %s", what, rep->str);
        if (strncmp(rep->str, "NOGROUP", 7) == 0)
            atomic_store(&ctx->need_groups, true);
        astro_counter_inc(ctx->m.redis_errors);
        freeReplyObject(rep);
        return NULL;
    }
    if (!atomic_exchange(&ctx->redis_ok, true))
        astro_log_info("redis: connected");
    return rep;
}

redisReply *
arc_redis_cmd(struct arc_ctx *ctx, struct astro_redis *r, int argc, const char **argv,
              const size_t *argvlen)
{
    char err[256];
    return checked(ctx, argv[0], astro_redis_command(r, argc, argv, argvlen, err, sizeof(err)),
                   err);
}

static int
stream_index(const struct arc_ctx *ctx, const char *key)
{
    for (size_t i = 0; i < ctx->nstreams; i++)
        if (strcmp(ctx->streams[i].key, key) == 0)
            return (int)i;
    return -1;
}

static void
note_first(struct arc_batch *b)
{
    if (b->first_us == 0 && (b->n > 0 || b->nrej > 0))
        b->first_us = astro_now_us();
}

/* Raises s->seen to the last entry of entries (replies list entries in id order). */
static void
note_seen(struct arc_stream *s, const redisReply *entries)
{
    struct arc_id id;
    for (size_t i = entries->type == REDIS_REPLY_ARRAY ? entries->elements : 0; i-- > 0;) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
            e->element[0]->type != REDIS_REPLY_STRING ||
            arc_id_parse(e->element[0]->str, &id) != ASTRO_OK)
            continue;
        if (arc_id_cmp(id, s->seen) > 0)
            s->seen = id;
        return;
    }
}

/* Adds each [key, entries] of an XREADGROUP reply (owned by the batch from here). */
static int
take_read_reply(struct arc_ctx *ctx, struct arc_batch *b, redisReply *rep)
{
    if (arc_batch_add_entries(b, rep, NULL, 0, ARC_MONO) < 0)
        return ASTRO_ERR;
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        const redisReply *s = rep->element[i];
        if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
            s->element[0]->type != REDIS_REPLY_STRING)
            continue;
        int idx = stream_index(ctx, s->element[0]->str);
        if (idx < 0)
            continue;
        note_seen(&ctx->streams[idx], s->element[1]);
        if (arc_batch_add_entries(b, NULL, s->element[1], idx, ctx->streams[idx].kind) < 0)
            return ASTRO_ERR;
    }
    note_first(b);
    return ASTRO_OK;
}

/* XREADGROUP of this consumer's own history after each lost stream's seen id: argv and the
 * ids it points to in one allocation (free it); its argument count in *argc, NULL when out of
 * memory. */
static const char **
history_argv(struct arc_ctx *ctx, const size_t *idx, size_t n, size_t nlost, int *argc)
{
    const char *head[] = {"XREADGROUP", "GROUP", ARC_GROUP, ctx->consumer, "STREAMS"};
    size_t nhead = ASTRO_ARRAY_LEN(head), k = 0;
    size_t nargs = nhead + 2 * nlost;
    const char **argv = malloc(nargs * sizeof(*argv) + nlost * ARC_ENTRY_ID_MAX);
    if (argv == NULL)
        return NULL;
    char *ids = (char *)(argv + nargs);
    memcpy(argv, head, sizeof(head));
    for (size_t i = 0; i < n; i++) {
        const struct arc_stream *s = &ctx->streams[idx[i]];
        if (!s->lost)
            continue;
        char *id = ids + k * ARC_ENTRY_ID_MAX;
        arc_id_format(s->seen, id, ARC_ENTRY_ID_MAX);
        argv[nhead + k] = s->key;
        argv[nhead + nlost + k++] = id;
    }
    *argc = (int)nargs;
    return argv;
}

/* After a lost XREADGROUP reply, Redis may have delivered entries that this consumer never
 * saw: they are in its own pending list above the highest id it has seen on their stream (a
 * read returns only ids above everything the group delivered before; entries being archived
 * are all at or below it). Reads them back from that history at once, rather than leaving
 * them to arc_claim_idle() after ASTRO_CLAIM_IDLE. They are marked redelivered so the writer
 * probes them: one may be a dead consumer's entry from an XAUTOCLAIM whose reply was lost,
 * archived already. Repeating a history read returns the same entries, so arc_redis_cmd() may
 * resend it. */
static int
recover_lost(struct arc_ctx *ctx, struct astro_redis *r, const size_t *idx, size_t n,
             struct arc_batch *b)
{
    size_t nlost = 0;
    for (size_t i = 0; i < n; i++)
        nlost += ctx->streams[idx[i]].lost;
    if (nlost == 0)
        return ASTRO_OK;
    int argc = 0;
    const char **argv = history_argv(ctx, idx, n, nlost, &argc);
    if (argv == NULL)
        return ASTRO_ERR;
    size_t before = b->n;
    redisReply *rep = arc_redis_cmd(ctx, r, argc, argv, NULL);
    free(argv);
    if (rep == NULL || take_read_reply(ctx, b, rep) != ASTRO_OK)
        return ASTRO_ERR;
    for (size_t j = before; j < b->n; j++)
        b->rows[j].redelivered = true;
    for (size_t i = 0; i < n; i++)
        ctx->streams[idx[i]].lost = false;
    if (b->n > before)
        astro_log_info("read back %zu entries delivered with a lost XREADGROUP reply",
                       b->n - before);
    return ASTRO_OK;
}

int
arc_read_new(struct arc_ctx *ctx, struct astro_redis *r, const size_t *idx, size_t n,
             struct arc_batch *b, size_t want, int64_t block_ms)
{
    if (recover_lost(ctx, r, idx, n, b) != ASTRO_OK)
        return ASTRO_ERR;
    size_t argc = 0;
    const char **argv = calloc(9 + 2 * n, sizeof(*argv));
    if (argv == NULL)
        return ASTRO_ERR;
    char count[24], block[24];
    /* COUNT is per stream: spread the wish so one call stays near the batch size. */
    size_t per = (want + n - 1) / n;
    snprintf(count, sizeof(count), "%zu", per < 64 ? 64 : per);
    snprintf(block, sizeof(block), "%" PRId64, block_ms < 1 ? 1 : block_ms);
    const char *head[] = {"XREADGROUP", "GROUP", ARC_GROUP, ctx->consumer, "COUNT", count,
                          "BLOCK", block, "STREAMS"};
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(head); i++)
        argv[argc++] = head[i];
    for (size_t i = 0; i < n; i++)
        argv[argc++] = ctx->streams[idx[i]].key;
    for (size_t i = 0; i < n; i++)
        argv[argc++] = ">";
    /* Sent once: a resend after a lost reply would return the next entries and nothing would
     * say that the lost ones are pending here; recover_lost() reads them back instead. */
    char err[256];
    redisReply *rep = astro_redis_command_once(r, (int)argc, argv, NULL, err, sizeof(err));
    for (size_t i = 0; rep == NULL && i < n; i++)
        ctx->streams[idx[i]].lost = true;
    rep = checked(ctx, "XREADGROUP", rep, err);
    free(argv);
    if (rep == NULL)
        return ASTRO_ERR;
    if (rep->type == REDIS_REPLY_NIL) {
        freeReplyObject(rep);
        return ASTRO_OK;
    }
    return take_read_reply(ctx, b, rep);
}

/* One XAUTOCLAIM on stream i; returns entries claimed or -1. */
static long
claim_stream(struct arc_ctx *ctx, struct astro_redis *r, struct arc_batch *b, size_t i,
             size_t want)
{
    struct arc_stream *s = &ctx->streams[i];
    char idle[24], count[24];
    snprintf(idle, sizeof(idle), "%" PRId64, ctx->cfg->claim_idle_ms);
    snprintf(count, sizeof(count), "%zu", want);
    const char *argv[] = {"XAUTOCLAIM", s->key, ARC_GROUP, ctx->consumer, idle,
                          s->claim_cursor, "COUNT", count};
    redisReply *rep = arc_redis_cmd(ctx, r, (int)ASTRO_ARRAY_LEN(argv), argv, NULL);
    if (rep == NULL)
        return -1;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING) {
        freeReplyObject(rep);
        return -1;
    }
    snprintf(s->claim_cursor, sizeof(s->claim_cursor), "%s", rep->element[0]->str);
    const redisReply *entries = rep->element[1];
    note_seen(s, entries);
    size_t before = b->n;
    long got = arc_batch_add_entries(b, rep, entries, (int)i, s->kind);
    /* A dead consumer may have committed these before its XACK: the writer probes them. */
    for (size_t j = before; j < b->n; j++)
        b->rows[j].redelivered = true;
    return got;
}

int
arc_claim_idle(struct arc_ctx *ctx, struct astro_redis *r, const size_t *idx, size_t n,
               struct arc_batch *b, size_t want)
{
    long total = 0;
    for (size_t i = 0; i < n && (size_t)total < want; i++) {
        long got = claim_stream(ctx, r, b, idx[i], want - (size_t)total);
        if (got < 0)
            return ASTRO_ERR;
        total += got;
    }
    if (total > 0) {
        astro_counter_add(ctx->m.claimed, (uint64_t)total);
        astro_log_info("claimed %ld idle entries from other consumers", total);
    }
    note_first(b);
    return ASTRO_OK;
}

int
arc_ack_one(struct arc_ctx *ctx, struct astro_redis *r, int stream, const char *entry_id)
{
    const char *argv[] = {"XACK", ctx->streams[stream].key, ARC_GROUP, entry_id};
    redisReply *rep = arc_redis_cmd(ctx, r, 4, argv, NULL);
    if (rep == NULL)
        return ASTRO_ERR;
    freeReplyObject(rep);
    return ASTRO_OK;
}

/* XACK of rows[lo, hi), one command per stream. */
int
arc_ack(struct arc_ctx *ctx, struct astro_redis *r, const struct arc_batch *b, size_t lo,
        size_t hi)
{
    const char **argv = malloc((3 + hi - lo) * sizeof(*argv));
    if (argv == NULL)
        return ASTRO_ERR;
    int rc = ASTRO_OK;
    for (size_t s = 0; s < ctx->nstreams && rc == ASTRO_OK; s++) {
        int argc = 3;
        for (size_t i = lo; i < hi; i++)
            if (b->rows[i].stream == (int)s)
                argv[argc++] = b->rows[i].entry_id;
        if (argc == 3)
            continue;
        argv[0] = "XACK";
        argv[1] = ctx->streams[s].key;
        argv[2] = ARC_GROUP;
        redisReply *rep = arc_redis_cmd(ctx, r, argc, argv, NULL);
        if (rep == NULL)
            rc = ASTRO_ERR;
        else
            freeReplyObject(rep);
    }
    free(argv);
    return rc;
}

int64_t
arc_deliveries(struct arc_ctx *ctx, struct astro_redis *r, int stream, const char *entry_id)
{
    const char *argv[] = {"XPENDING", ctx->streams[stream].key, ARC_GROUP, entry_id, entry_id,
                          "1"};
    redisReply *rep = arc_redis_cmd(ctx, r, 6, argv, NULL);
    if (rep == NULL)
        return -1;
    int64_t n = 0;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
        rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 4 &&
        rep->element[0]->element[3]->type == REDIS_REPLY_INTEGER)
        n = rep->element[0]->element[3]->integer;
    freeReplyObject(rep);
    return n;
}

int
arc_groups_ensure(struct arc_ctx *ctx, struct astro_redis *r)
{
    char err[256];
    for (size_t i = 0; i < ctx->nstreams; i++)
        if (astro_redis_group_create(r, ctx->streams[i].key, ARC_GROUP, "0", err, sizeof(err)) !=
            ASTRO_OK) {
            astro_log_warn("redis: recreating group on %s: %s", ctx->streams[i].key, err);
            return ASTRO_ERR;
        }
    astro_log_warn("redis: consumer groups were missing (data lost by Redis?): recreated");
    atomic_store(&ctx->need_groups, false);
    return ASTRO_OK;
}

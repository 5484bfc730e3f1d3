/* One partition's batch: match the entries, then commit outputs, late events, dead letters, the
 * acks and the checkpoint in one atomic script that first checks the partition's lease, so a
 * worker that lost its lease cannot commit and a crash leaves either all of it or none. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "astro/log.h"
#include "astro/time.h"
#include "leaflet.h"

int
cep_part_record(struct cep_partition *pp, const char *kind, int nfields)
{
    char n[16];
    snprintf(n, sizeof(n), "%d", nfields);
    if (cep_cmdbuf_begin(&pp->out) != ASTRO_OK || cep_cmdbuf_arg(&pp->out, kind, 1) != ASTRO_OK)
        return ASTRO_ERR;
    return cep_cmdbuf_arg(&pp->out, n, strlen(n));
}

static void
on_match(void *arg, size_t rule, const struct astro_event *multi)
{
    struct cep_partition *pp = arg;
    struct astro_stream_fields f;
    astro_stream_fields_init(&f);
    if (pp->ctx->met.matches != NULL && rule < pp->ctx->met.nmatches)
        astro_counter_inc(pp->ctx->met.matches[rule]);
    if (astro_event_stream_encode(multi, &f) != ASTRO_OK ||
        cep_part_record(pp, "m", f.argc) != ASTRO_OK ||
        cep_cmdbuf_args(&pp->out, f.argc, f.argv, f.argvlen) != ASTRO_OK)
        pp->failed = true;
    astro_stream_fields_cleanup(&f);
}

static void
on_late(void *arg, const struct astro_event *ev, struct cep_sid sid, int64_t wm)
{
    struct cep_partition *pp = arg;
    struct astro_stream_fields f;
    char reason[96], sidbuf[CEP_SID_STR], wmtext[ASTRO_TIME_RFC3339_LEN + 1] = "?";
    (void)!astro_time_format(wm, wmtext, sizeof(wmtext));
    snprintf(reason, sizeof(reason), "later than the watermark %s", wmtext);
    cep_sid_format(sid, sidbuf);
    astro_counter_inc(pp->ctx->met.late);
    astro_stream_fields_init(&f);
    if (astro_event_stream_encode(ev, &f) != ASTRO_OK ||
        cep_part_record(pp, "l", f.argc + 6) != ASTRO_OK ||
        cep_cmdbuf_args(&pp->out, f.argc, f.argv, f.argvlen) != ASTRO_OK ||
        cep_cmdbuf_args(&pp->out, 6,
                        (const char *const[]){"reason", reason, "stream", pp->mono, "entry",
                                              sidbuf},
                        NULL) != ASTRO_OK)
        pp->failed = true;
    astro_stream_fields_cleanup(&f);
}

struct cep_matcher *
cep_part_matcher_new(struct cep_partition *pp)
{
    static const struct cep_sink proto = {on_match, on_late, NULL};
    struct cep_sink sink = proto;
    sink.arg = pp;
    struct cep_matcher_opts opt = {.lateness_us = pp->ctx->cfg->lateness_ms * 1000,
                                   .max_held = (size_t)pp->ctx->cfg->max_held};
    return cep_matcher_new(&pp->ctx->rules, &opt, &sink);
}

void
cep_part_drop(struct cep_partition *pp)
{
    cep_matcher_free(pp->m);
    pp->m = NULL;
    cep_agg_drop(pp);
    free(pp->pos);
    pp->pos = NULL;
    pp->npos = pp->cappos = 0;
    pp->owned = false;
}

static void
dead_letter(struct cep_partition *pp, const char *sid, const char *reason)
{
    astro_counter_inc(pp->ctx->met.dead);
    astro_log_warn("partition %u: entry %s to %s: %s", pp->p, sid, CEP_DEAD_STREAM, reason);
    if (cep_part_record(pp, "d", 6) != ASTRO_OK ||
        cep_cmdbuf_args(&pp->out, 6,
                        (const char *const[]){"stream", pp->mono, "entry", sid, "reason", reason},
                        NULL) != ASTRO_OK)
        pp->failed = true;
}

/* Feeds one stream entry ([id, [field, value, ...]]) to the matcher. */
static int
feed_entry(struct cep_partition *pp, const redisReply *e, struct cep_sid *sid)
{
    char err[256];
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING ||
        cep_sid_parse(e->element[0]->str, e->element[0]->len, sid) != ASTRO_OK)
        return ASTRO_ERR;
    const redisReply *fv = e->element[1];
    if (fv->type != REDIS_REPLY_ARRAY) /* deleted while pending: nothing to match */
        return ASTRO_OK;
    if (fv->elements == 2 && fv->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(fv->element[0]->str, CEP_MARK_FIELD) == 0) {
        int64_t wm = strtoll(fv->element[1]->str, NULL, 10);
        return cep_agg_mark(pp, wm, *sid);
    }
    struct astro_event ev;
    if (astro_event_stream_decode(fv->element, fv->elements, &ev, err, sizeof(err)) !=
        ASTRO_OK) {
        dead_letter(pp, e->element[0]->str, err);
        return ASTRO_OK;
    }
    pp->last_event_ms = cep_mono_ms();
    int rc = cep_agg_push(pp, &ev, *sid); /* the matcher, then the candles */
    astro_event_cleanup(&ev);
    return rc;
}

/* Remembers where astro:multi:{p} stood before the batch starting at first, and forgets
 * positions older than the rebuild point (only the newest at or before it is needed). */
static int
note_batch(struct cep_partition *pp, struct cep_sid first)
{
    if (pp->npos == pp->cappos) {
        size_t cap = pp->cappos ? pp->cappos * 2 : 16;
        struct cep_batchpos *v = realloc(pp->pos, cap * sizeof(*v));
        if (v == NULL)
            return ASTRO_ERR;
        pp->pos = v;
        pp->cappos = cap;
    }
    pp->pos[pp->npos].first = first;
    memcpy(pp->pos[pp->npos].out_pos, pp->last_out, CEP_SID_STR);
    pp->npos++;
    return ASTRO_OK;
}

static const char *
out_pos_for(struct cep_partition *pp, struct cep_sid r)
{
    size_t k = 0;
    while (k + 1 < pp->npos && cep_sid_cmp(pp->pos[k + 1].first, r) <= 0)
        k++;
    if (k > 0) {
        memmove(pp->pos, pp->pos + k, (pp->npos - k) * sizeof(*pp->pos));
        pp->npos -= k;
    }
    return pp->npos ? pp->pos[0].out_pos : pp->last_out;
}

/* The commit: one Lua script per partition batch, atomic like MULTI/EXEC (nothing else runs
 * between its commands, and it is replicated and persisted as one transaction), with the lease
 * check inside it, so a worker that lost its lease writes nothing. Unlike WATCH + MULTI/EXEC
 * (WATCH is per connection), the scripts of all partitions pipeline in one round trip.
 * Outputs are written before the XACK: should a write fail mid-script, the inputs stay pending
 * and their replay rewrites the same deterministic ids (never a loss).
 *   KEYS: lease multi mono late dead rebuild ckpt agg aggstate outliers
 *   ARGV: instance rebuild_value ckpt_value n_acks ack_ids... then records
 *         (kind m|l|d|a|o, n, n field/value strings; kind h, 2, hash field, value: candle
 *         state; kind x, n, hash fields: state deleted (an expired series); kind p, 1,
 *         message: an open candle for the live channel) to the end.
 *   Returns the last multi id or "". */
static const char commit_lua[] =
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then return redis.error_reply('LEASE lost') end\n"
    "local na = tonumber(ARGV[4])\n"
    "local i = 5 + na\n"
    "local last = ''\n"
    "while i <= #ARGV do\n"
    "  local kind, c = ARGV[i], tonumber(ARGV[i + 1])\n"
    "  local key = KEYS[2]\n"
    "  if kind == 'l' then key = KEYS[4] elseif kind == 'd' then key = KEYS[5]\n"
    "  elseif kind == 'a' then key = KEYS[8] elseif kind == 'o' then key = KEYS[10] end\n"
    "  if kind == 'h' then redis.call('hset', KEYS[9], ARGV[i + 2], ARGV[i + 3])\n"
    "  elseif kind == 'x' then redis.call('hdel', KEYS[9], unpack(ARGV, i + 2, i + 1 + c))\n"
    "  elseif kind == 'p' then redis.call('publish', '" CEP_LIVE_CHANNEL "', ARGV[i + 2]) else\n"
    "  local id = redis.call('xadd', key, '*', unpack(ARGV, i + 2, i + 1 + c))\n"
    "  if kind == 'm' then last = id end\n"
    "  end\n"
    "  i = i + 2 + c\n"
    "end\n"
    "if na > 0 then redis.call('xack', KEYS[3], '" CEP_GROUP "', unpack(ARGV, 5, 4 + na)) end\n"
    "if ARGV[2] ~= '' then\n"
    "  redis.call('set', KEYS[6], ARGV[2])\n"
    "  redis.call('set', KEYS[7], ARGV[3])\n"
    "end\n"
    "return last\n";

/* The checkpoint values: astro:rebuild:{p} = R (for the trimmer) and astro:leaflet:ckpt:{p} =
 * "R wm out_pos last_acked" (for the next owner); empty before any entry. */
static void
checkpoint(struct cep_partition *pp, struct cep_sid last, char *rs, char *ck, size_t cklen)
{
    struct cep_sid r;
    int64_t wm;
    char ls[CEP_SID_STR];
    rs[0] = ck[0] = '\0';
    if (!cep_matcher_checkpoint(pp->m, &r, &wm))
        return;
    cep_sid_format(r, rs);
    cep_sid_format(last, ls);
    snprintf(ck, cklen, "%s %" PRId64 " %s %s", rs, wm, out_pos_for(pp, r), ls);
}

static int
build_commit(struct cep_partition *pp, const redisReply *entries, struct cep_sid last)
{
    struct cep_cmdbuf *b = &pp->commit;
    char rs[CEP_SID_STR], ck[160], nacks[24];
    checkpoint(pp, last, rs, ck, sizeof(ck));
    snprintf(nacks, sizeof(nacks), "%zu", entries->elements);
    cep_cmdbuf_reset(b);
    const char *head[] = {"EVAL", commit_lua, "10", pp->lease, pp->multi, pp->mono,
                          CEP_LATE_STREAM, CEP_DEAD_STREAM, pp->rebuild, pp->ckpt, pp->agg,
                          pp->aggstate, CEP_OUTLIER_STREAM, pp->ctx->instance, rs, ck, nacks};
    if (cep_cmdbuf_begin(b) != ASTRO_OK ||
        cep_cmdbuf_args(b, (int)ASTRO_ARRAY_LEN(head), head, NULL) != ASTRO_OK)
        return ASTRO_ERR;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *id = entries->element[i]->element[0];
        if (cep_cmdbuf_arg(b, id->str, id->len) != ASTRO_OK)
            return ASTRO_ERR;
    }
    for (size_t i = 0; i < pp->out.nargs; i++)
        if (cep_cmdbuf_arg(b, pp->out.arena + pp->out.off[i], pp->out.len[i]) != ASTRO_OK)
            return ASTRO_ERR;
    return ASTRO_OK;
}

int
cep_part_prepare(struct cep_partition *pp, const redisReply *entries)
{
    struct cep_sid sid = {0, 0}, first = {0, 0};
    cep_matcher_stats(pp->m, &pp->before);
    cep_cmdbuf_reset(&pp->out);
    cep_cmdbuf_reset(&pp->commit);
    pp->nentries = entries->elements;
    pp->failed = false;
    if (entries->elements == 0)
        return ASTRO_OK;
    for (size_t i = 0; i < entries->elements; i++) {
        if (feed_entry(pp, entries->element[i], &sid) != ASTRO_OK)
            goto fail;
        if (i == 0)
            first = sid;
    }
    if (pp->failed) {
        astro_log_error("partition %u: out of memory building a batch's outputs", pp->p);
        goto fail;
    }
    if (cep_agg_prepare(pp) != ASTRO_OK || note_batch(pp, first) != ASTRO_OK ||
        build_commit(pp, entries, sid) != ASTRO_OK)
        goto fail;
    pp->batch_last = sid;
    return ASTRO_OK;
fail:
    /* the state has moved past what was committed: the next owner (maybe us) rebuilds it */
    cep_part_drop(pp);
    return ASTRO_ERR;
}

int
cep_part_send(struct cep_partition *pp, redisContext *c)
{
    const char *cmd;
    size_t len;
    int done = 0;
    if (pp->commit.ncmds == 0)
        return ASTRO_OK;
    if (cep_cmdbuf_resp(&pp->commit, 0, &cmd, &len) != ASTRO_OK ||
        redisAppendFormattedCommand(c, cmd, len) != REDIS_OK)
        return ASTRO_ERR;
    /* Write it now (the reply is read later): Redis runs this partition's commit while the
     * worker matches the next partition's batch, instead of all of them after the last. */
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK)
            return ASTRO_ERR;
    return ASTRO_OK;
}

static void
committed(struct cep_partition *pp, const redisReply *rep)
{
    struct cep_matcher_stats after;
    if (rep->len > 0)
        snprintf(pp->last_out, sizeof(pp->last_out), "%s", rep->str);
    pp->last_acked = pp->batch_last;
    cep_matcher_stats(pp->m, &after);
    astro_counter_inc(pp->ctx->met.commits);
    astro_counter_add(pp->ctx->met.events_in, pp->nentries);
    astro_counter_add(pp->ctx->met.duplicates, after.duplicates - pp->before.duplicates);
    astro_counter_add(pp->ctx->met.evicted, after.evicted - pp->before.evicted);
}

int
cep_part_finish(struct cep_partition *pp, redisContext *c)
{
    redisReply *rep = NULL;
    if (pp->commit.ncmds == 0)
        return ASTRO_OK;
    cep_cmdbuf_reset(&pp->commit);
    if (redisGetReply(c, (void **)&rep) != REDIS_OK) {
        astro_counter_inc(pp->ctx->met.redis_errors);
        cep_part_drop(pp);
        return ASTRO_ERR;
    }
    int rc = ASTRO_OK;
    if (rep->type == REDIS_REPLY_STRING) {
        committed(pp, rep);
    } else {
        bool lost = rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "LEASE") != NULL;
        astro_counter_inc(lost ? pp->ctx->met.aborts : pp->ctx->met.redis_errors);
        astro_log_warn("partition %u: batch not committed: %s", pp->p,
                       rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        cep_part_drop(pp);
        rc = ASTRO_ERR;
    }
    astro_redis_reply_free(pp->ctx->r, rep);
    return rc;
}

/* A connection failure while commits were in flight: whether they ran is unknown, so every
 * partition involved is dropped and rebuilt from what Redis holds. */
static int
io_failed(struct cep_partition *pp)
{
    struct astro_redis *r = pp->ctx->r;
    astro_counter_inc(pp->ctx->met.redis_errors);
    astro_log_warn("partition %u: commit failed: %s", pp->p, r->c ? r->c->errstr : "no connection");
    redisFree(r->c);
    r->c = NULL;
    cep_part_drop(pp);
    return ASTRO_ERR;
}

int
cep_part_batch(struct cep_partition *pp, const redisReply *entries)
{
    if (cep_part_prepare(pp, entries) != ASTRO_OK)
        return ASTRO_ERR;
    if (pp->commit.ncmds == 0)
        return ASTRO_OK;
    redisContext *c = pp->ctx->r->c;
    if (c == NULL || cep_part_send(pp, c) != ASTRO_OK)
        return io_failed(pp);
    if (cep_part_finish(pp, c) != ASTRO_OK)
        return pp->ctx->r->c && pp->ctx->r->c->err ? io_failed(pp) : ASTRO_ERR;
    return ASTRO_OK;
}

void
cep_part_idle(struct cep_partition *pp, int64_t now_ms)
{
    const struct cep_config *cfg = pp->ctx->cfg;
    if (!pp->owned || now_ms - pp->last_event_ms < cfg->idle_ms ||
        now_ms - pp->last_marker_ms < cfg->idle_ms || cep_matcher_max_ts(pp->m) == INT64_MIN)
        return;
    int64_t wm = cep_matcher_max_ts(pp->m) - cfg->lateness_ms * 1000 +
                 (now_ms - pp->last_event_ms) * 1000;
    /* worth a marker: open windows, or an open candle it closes (a quiet key's last candle) */
    if ((!cep_matcher_busy(pp->m) && wm < cep_agg_next_close(pp)) ||
        wm <= cep_matcher_watermark(pp->m))
        return;
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, wm);
    const char *argv[] = {"XADD", pp->mono, "*", CEP_MARK_FIELD, buf};
    char err[256];
    redisReply *rep = astro_redis_command(pp->ctx->r, 5, argv, NULL, err, sizeof(err));
    if (rep != NULL && rep->type == REDIS_REPLY_STRING) {
        astro_counter_inc(pp->ctx->met.markers);
        pp->last_marker_ms = now_ms;
        astro_log_debug("partition %u: idle, watermark marker %s at %s", pp->p, buf, rep->str);
    }
    astro_redis_reply_free(pp->ctx->r, rep);
}

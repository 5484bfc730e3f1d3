/* The one stream read path of the process: a thread with its own synchronous Redis connection
 * tails every mono, multi and candle (astro:agg) stream with XREAD BLOCK (no group: broadcast is a tail, it acks
 * nothing), encodes each entry once and posts one batch per reply to every HTTP loop. Between
 * reads it builds the stats message once a second. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "astro/event.h"
#include "astro/backoff.h"
#include "astro/http.h"
#include "astro/log.h"
#include "astro/loop.h"
#include "astro/metrics.h"
#include "astro/partition.h"
#include "astro/time.h"
#include "astro/redis.h"
#include "astro/ws.h"
#include "broadcast.h"

struct reader {
    struct bc_ctx *ctx;
    struct astro_redis *r;
    uint32_t parts, nstreams;
    char names[BC_SLOTS][32];
    char ids[BC_SLOTS][48];
    struct bc_pos pos;
    uint64_t last_stats_ms, last_read_count;
};

static uint64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
bc_batch_unref(struct bc_batch *b)
{
    if (b == NULL || atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    for (size_t i = 0; i < b->n; i++) {
        struct bc_item *it = &b->items[i];
        astro_ws_msg_unref(it->msg);
        free(it->src);
        free(it->key);
        free(it->type);
        free(it->rule);
        free(it->tf);
    }
    astro_ws_msg_unref(b->stats);
    free(b);
}

/* Hands b to every loop; the reader's own reference is dropped here. */
static void
post_batch(struct reader *rd, struct bc_batch *b)
{
    struct bc_ctx *ctx = rd->ctx;
    atomic_store(&b->refs, ctx->nloops + 1);
    for (unsigned i = 0; i < ctx->nloops; i++) {
        struct bc_post *p = malloc(sizeof(*p));
        if (p != NULL) {
            p->lp = &ctx->loops[i];
            p->b = b;
        }
        if (p == NULL || astro_loop_post(ctx->loops[i].loop, bc_fanout_deliver, p) != ASTRO_OK) {
            free(p);
            bc_batch_unref(b);
        }
    }
    bc_batch_unref(b);
}

/* Fills it from one entry; ASTRO_ERR (entry skipped, counted) when it does not decode. */
static int
make_item(struct reader *rd, uint32_t slot, const redisReply *entry, struct bc_item *it)
{
    struct bc_entry e;
    char err[256], tok[BC_SLOTS * 30];
    const redisReply *id = entry->element[0], *fields = entry->element[1];
    memset(it, 0, sizeof(*it));
    if (bc_id_parse(id->str, id->len, &it->id) == ASTRO_OK)
        rd->pos.id[slot] = it->id;
    if (fields->type == REDIS_REPLY_ARRAY &&
        astro_event_stream_is_marker(fields->element, fields->elements))
        return ASTRO_ERR; /* astro-leaflet's idle watermark marker: not an event */
    if (bc_entry_decode((int)(slot % BC_KINDS), fields, &e, err, sizeof(err)) != ASTRO_OK) {
        astro_log_warn("%s %s: undecodable, not broadcast: %s", rd->names[slot], id->str, err);
        astro_counter_inc(rd->ctx->m.decode_errors);
        return ASTRO_ERR;
    }
    it->part = slot / BC_KINDS;
    bc_token_encode(&rd->pos, tok, sizeof(tok));
    char *text = bc_entry_message(&e, tok);
    it->msg = text != NULL ? astro_ws_msg_new(ASTRO_WS_TEXT, text, strlen(text)) : NULL;
    free(text);
    bc_entry_take(&e, it);
    bc_entry_cleanup(&e);
    return it->msg != NULL ? ASTRO_OK : ASTRO_ERR;
}

static int
slot_of(const struct reader *rd, const redisReply *name)
{
    for (uint32_t i = 0; i < rd->nstreams; i++)
        if (name->type == REDIS_REPLY_STRING && strcmp(name->str, rd->names[i]) == 0)
            return (int)i;
    return -1;
}

static size_t
count_entries(const redisReply *rep)
{
    size_t n = 0;
    for (size_t i = 0; i < rep->elements; i++)
        if (rep->element[i]->type == REDIS_REPLY_ARRAY && rep->element[i]->elements == 2)
            n += rep->element[i]->element[1]->elements;
    return n;
}

/* One XREAD reply: [[stream, [[id, [f, v, ...]], ...]], ...]. */
static void
handle_reply(struct reader *rd, const redisReply *rep, uint64_t t0)
{
    size_t total = count_entries(rep);
    struct bc_batch *b = calloc(1, sizeof(*b) + total * sizeof(b->items[0]));
    if (b == NULL)
        return;
    b->t0_ns = t0;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *s = rep->element[i];
        int slot = s->type == REDIS_REPLY_ARRAY && s->elements == 2 ? slot_of(rd, s->element[0])
                                                                    : -1;
        if (slot < 0)
            continue;
        for (size_t j = 0; j < s->element[1]->elements; j++) {
            const redisReply *e = s->element[1]->element[j];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[0]->type != REDIS_REPLY_STRING)
                continue;
            snprintf(rd->ids[slot], sizeof(rd->ids[slot]), "%s", e->element[0]->str);
            if (make_item(rd, (uint32_t)slot, e, &b->items[b->n]) == ASTRO_OK)
                b->n++;
            astro_counter_inc(rd->ctx->m.events_read);
        }
    }
    post_batch(rd, b);
}

static redisReply *
command(struct reader *rd, int argc, const char **argv)
{
    char err[256];
    redisReply *rep = astro_redis_command(rd->r, argc, argv, NULL, err, sizeof(err));
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        if (atomic_exchange(&rd->ctx->reader_ok, false))
            astro_log_warn("reader: redis: %s", rep != NULL ? rep->str : err);
        astro_counter_inc(rd->ctx->m.redis_errors);
        if (rep != NULL)
            freeReplyObject(rep);
        return NULL;
    }
    if (!atomic_exchange(&rd->ctx->reader_ok, true))
        astro_log_info("reader: redis connected");
    return rep;
}

/* Every stream starts at its current last entry: broadcast is live from start. */
static void
init_ids(struct reader *rd)
{
    for (uint32_t i = 0; i < rd->nstreams; i++) {
        const char *argv[] = {"XREVRANGE", rd->names[i], "+", "-", "COUNT", "1"};
        redisReply *rep = NULL;
        while (!atomic_load(&rd->ctx->stop) && (rep = command(rd, 6, argv)) == NULL)
            astro_backoff_sleep_ms(200);
        snprintf(rd->ids[i], sizeof(rd->ids[i]), "0-0");
        if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
            rep->element[0]->elements == 2) {
            snprintf(rd->ids[i], sizeof(rd->ids[i]), "%s", rep->element[0]->element[0]->str);
            if (bc_id_parse(rd->ids[i], strlen(rd->ids[i]), &rd->pos.id[i]) != ASTRO_OK)
                memset(&rd->pos.id[i], 0, sizeof(rd->pos.id[i]));
        }
        if (rep != NULL)
            freeReplyObject(rep);
    }
}

static int64_t
reply_int(struct reader *rd, int argc, const char **argv)
{
    redisReply *rep = command(rd, argc, argv);
    int64_t v = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    if (rep != NULL)
        freeReplyObject(rep);
    return v;
}

/* Sums each group's lag over the mono, multi and candle streams into obj ("leaflet": n,
 * "archiver": n): entries added but not yet delivered to that group. */
static void
add_lags(struct reader *rd, cJSON *obj)
{
    for (uint32_t i = 0; i < rd->nstreams; i++) {
        const char *argv[] = {"XINFO", "GROUPS", rd->names[i]};
        char err[128];
        /* Not through command(): a stream nobody wrote yet answers "no such key". */
        redisReply *rep = astro_redis_command(rd->r, 3, argv, NULL, err, sizeof(err));
        for (size_t g = 0; rep != NULL && rep->type == REDIS_REPLY_ARRAY && g < rep->elements;
             g++) {
            const redisReply *gr = rep->element[g];
            const char *name = NULL;
            long long lag = 0;
            for (size_t k = 0; gr->type == REDIS_REPLY_ARRAY && k + 1 < gr->elements; k += 2) {
                const redisReply *f = gr->element[k], *v = gr->element[k + 1];
                if (f->type != REDIS_REPLY_STRING)
                    continue;
                if (strcmp(f->str, "name") == 0 && v->type == REDIS_REPLY_STRING)
                    name = v->str;
                else if (strcmp(f->str, "lag") == 0 && v->type == REDIS_REPLY_INTEGER)
                    lag = v->integer;
            }
            if (name == NULL)
                continue;
            cJSON *cur = cJSON_GetObjectItemCaseSensitive(obj, name);
            if (cur != NULL)
                cJSON_SetNumberValue(cur, cur->valuedouble + (double)lag);
            else
                cJSON_AddNumberToObject(obj, name, (double)lag);
        }
        if (rep != NULL)
            freeReplyObject(rep);
    }
}

static void
post_stats(struct reader *rd, uint64_t now_ms)
{
    struct bc_ctx *ctx = rd->ctx;
    uint64_t read = astro_counter_get(ctx->m.events_read);
    double secs = (double)(now_ms - rd->last_stats_ms) / 1000.0;
    const char *late[] = {"XLEN", "astro:late"}, *dead[] = {"XLEN", "astro:dead"};
    cJSON *o = cJSON_CreateObject(), *lags = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "stats");
    cJSON_AddNumberToObject(o, "ts", (double)(astro_now_us() / 1000));
    cJSON_AddNumberToObject(o, "events_per_second",
                            secs > 0 ? (double)(read - rd->last_read_count) / secs : 0);
    cJSON_AddNumberToObject(o, "subscribers", astro_gauge_get(ctx->m.subscribers));
    cJSON_AddNumberToObject(o, "connections",
                            astro_http_server_connections(astro_service_http(ctx->svc)));
    cJSON_AddNumberToObject(o, "late", (double)reply_int(rd, 2, late));
    cJSON_AddNumberToObject(o, "dead", (double)reply_int(rd, 2, dead));
    add_lags(rd, lags);
    cJSON_AddItemToObject(o, "lag", lags);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    struct bc_batch *b = calloc(1, sizeof(*b));
    if (text != NULL && b != NULL &&
        (b->stats = astro_ws_msg_new(ASTRO_WS_TEXT, text, strlen(text))) != NULL) {
        b->t0_ns = mono_ns();
        post_batch(rd, b);
    } else {
        free(b);
    }
    free(text);
    rd->last_stats_ms = now_ms;
    rd->last_read_count = read;
}

static void
read_once(struct reader *rd)
{
    char count[24], block[24];
    const char *argv[6 + 2 * BC_SLOTS];
    int argc = 0;
    snprintf(count, sizeof(count), "%" PRId64, rd->ctx->cfg->read_count);
    snprintf(block, sizeof(block), "%" PRId64, rd->ctx->cfg->block_ms);
    argv[argc++] = "XREAD";
    argv[argc++] = "COUNT";
    argv[argc++] = count;
    argv[argc++] = "BLOCK";
    argv[argc++] = block;
    argv[argc++] = "STREAMS";
    for (uint32_t i = 0; i < rd->nstreams; i++)
        argv[argc++] = rd->names[i];
    for (uint32_t i = 0; i < rd->nstreams; i++)
        argv[argc++] = rd->ids[i];
    redisReply *rep = command(rd, argc, argv);
    uint64_t t0 = mono_ns();
    if (rep == NULL) {
        astro_backoff_sleep_ms(200);
        return;
    }
    if (rep->type == REDIS_REPLY_ARRAY)
        handle_reply(rd, rep, t0);
    freeReplyObject(rep);
}

static void *
reader_main(void *arg)
{
    struct reader *rd = arg;
    init_ids(rd);
    rd->last_stats_ms = astro_backoff_now_ms();
    while (!atomic_load(&rd->ctx->stop)) {
        read_once(rd);
        uint64_t now = astro_backoff_now_ms();
        if (now - rd->last_stats_ms >= 1000)
            post_stats(rd, now);
    }
    astro_redis_free(rd->r);
    free(rd);
    return NULL;
}

int
bc_reader_start(struct bc_ctx *ctx, char *err, size_t errlen)
{
    struct reader *rd = calloc(1, sizeof(*rd));
    if (rd == NULL)
        return astro_fail(err, errlen, "out of memory");
    rd->ctx = ctx;
    rd->parts = (uint32_t)ctx->cfg->partitions;
    rd->nstreams = BC_KINDS * rd->parts;
    rd->pos.parts = rd->parts;
    for (uint32_t i = 0; i < rd->nstreams; i++)
        if (bc_slot_stream(i, rd->names[i], sizeof(rd->names[i])) != ASTRO_OK)
            goto fail;
    struct astro_redis_options o = {.command_timeout_ms = (uint32_t)ctx->cfg->block_ms + 5000,
                                    .client_name = "astro-broadcast-reader",
                                    .max_attempts = 2, .deadline_ms = 1000,
                                    .backoff_initial_ms = 100, .backoff_max_ms = 1000};
    if ((rd->r = astro_redis_connect(ctx->cfg->svc.redis_url, &o, err, errlen)) == NULL)
        goto fail;
    atomic_store(&ctx->reader_ok, true);
    if (pthread_create(&ctx->reader, NULL, reader_main, rd) != 0) {
        astro_fail(err, errlen, "cannot start the reader thread");
        goto fail;
    }
    ctx->reader_started = true;
    return ASTRO_OK;
fail:
    astro_redis_free(rd->r);
    free(rd);
    return ASTRO_ERR;
}

void
bc_reader_stop(struct bc_ctx *ctx)
{
    atomic_store(&ctx->stop, true);
    if (ctx->reader_started)
        pthread_join(ctx->reader, NULL);
    ctx->reader_started = false;
}

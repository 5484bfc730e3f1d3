/* The housekeeper thread: every second it publishes the hot tier's unarchived length
 * (astro:hot:unarchived, for ingest's backpressure) and its length; every ASTRO_TRIM_INTERVAL
 * it trims each stream to its trim floor; at start and hourly it keeps the day partitions. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archiver.h"
#include "astro/backoff.h"
#include "astro/log.h"
#include "astro/time.h"

struct keeper {
    struct arc_ctx *ctx;
    struct astro_redis *r;
    struct astro_pg *pg;
    int64_t last_trim_us, last_parts_us;
};

/* The value of field name in a flat [field, value, ...] array reply, or NULL. */
static const redisReply *
field(const redisReply *m, const char *name)
{
    for (size_t i = 0; m->type == REDIS_REPLY_ARRAY && i + 1 < m->elements; i += 2)
        if (m->element[i]->type == REDIS_REPLY_STRING && strcmp(m->element[i]->str, name) == 0)
            return m->element[i + 1];
    return NULL;
}

static redisReply *
cmd(struct keeper *k, int argc, const char **argv)
{
    return arc_redis_cmd(k->ctx, k->r, argc, argv, NULL);
}

static int64_t
int_field(const redisReply *m, const char *name, int64_t dflt)
{
    const redisReply *v = field(m, name);
    return v != NULL && v->type == REDIS_REPLY_INTEGER ? v->integer : dflt;
}

/* Entries of stream s the archiver group has not acknowledged: lag (not yet read) + pending.
 * When Redis cannot tell the lag (nil after deletions) the stream length stands in. */
static int64_t
unarchived_of(struct keeper *k, const char *key, int64_t xlen)
{
    const char *argv[] = {"XINFO", "GROUPS", key};
    redisReply *rep = cmd(k, 3, argv);
    int64_t n = xlen;
    for (size_t i = 0; rep != NULL && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        const redisReply *g = rep->element[i], *name = field(g, "name");
        if (name == NULL || name->type != REDIS_REPLY_STRING || strcmp(name->str, ARC_GROUP) != 0)
            continue;
        int64_t lag = int_field(g, "lag", -1);
        n = lag < 0 ? xlen : lag + int_field(g, "pending", 0);
    }
    if (rep != NULL)
        freeReplyObject(rep);
    return n;
}

static void
report_backlog(struct keeper *k)
{
    int64_t total = 0, unarchived = 0;
    for (size_t i = 0; i < k->ctx->nstreams; i++) {
        const char *argv[] = {"XLEN", k->ctx->streams[i].key};
        redisReply *rep = cmd(k, 2, argv);
        if (rep == NULL)
            return;
        int64_t len = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
        freeReplyObject(rep);
        total += len;
        /* The contract with ingest counts the event streams only. */
        if (k->ctx->streams[i].kind <= ARC_MULTI)
            unarchived += unarchived_of(k, k->ctx->streams[i].key, len);
    }
    char n[24];
    snprintf(n, sizeof(n), "%" PRId64, unarchived);
    const char *argv[] = {"SET", ARC_UNARCHIVED_KEY, n, "PX", "10000"};
    redisReply *rep = cmd(k, 5, argv);
    if (rep != NULL)
        freeReplyObject(rep);
    astro_gauge_set(k->ctx->m.hot_length, (double)total);
    astro_gauge_set(k->ctx->m.unarchived, (double)unarchived);
}

/* Fills g from one XINFO GROUPS item (+ XPENDING summary when something is pending). */
static int
group_info(struct keeper *k, const char *key, const redisReply *item, struct arc_group_info *g)
{
    const redisReply *name = field(item, "name"), *last = field(item, "last-delivered-id");
    if (name == NULL || last == NULL || name->type != REDIS_REPLY_STRING ||
        last->type != REDIS_REPLY_STRING || arc_id_parse(last->str, &g->last_delivered) != ASTRO_OK)
        return ASTRO_ERR;
    g->has_pending = int_field(item, "pending", 0) > 0;
    if (!g->has_pending)
        return ASTRO_OK;
    const char *argv[] = {"XPENDING", key, name->str};
    redisReply *rep = cmd(k, 3, argv);
    int rc = ASTRO_ERR;
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 4 &&
        rep->element[1]->type == REDIS_REPLY_STRING)
        rc = arc_id_parse(rep->element[1]->str, &g->first_pending);
    else if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 4) {
        g->has_pending = false; /* acknowledged in between */
        rc = ASTRO_OK;
    }
    if (rep != NULL)
        freeReplyObject(rep);
    return rc;
}

/* The partition's rebuild point (astro:rebuild:{p}, written by astro-leaflet): 1 and *out when
 * set, 0 when absent, -1 when Redis could not tell (then nothing is trimmed). */
static int
rebuild_point(struct keeper *k, const struct arc_stream *s, struct arc_id *out)
{
    char key[64];
    snprintf(key, sizeof(key), "astro:rebuild:{%" PRIu32 "}", s->partition);
    const char *argv[] = {"GET", key};
    redisReply *rep = cmd(k, 2, argv);
    if (rep == NULL)
        return -1;
    int rc = 0;
    if (rep->type == REDIS_REPLY_STRING)
        rc = arc_id_parse(rep->str, out) == ASTRO_OK ? 1 : -1;
    freeReplyObject(rep);
    return rc;
}

/* Collects every group of the stream; -1 on error (then nothing is trimmed). */
static long
groups_of(struct keeper *k, const char *key, struct arc_group_info *g, size_t max)
{
    const char *argv[] = {"XINFO", "GROUPS", key};
    redisReply *rep = cmd(k, 3, argv);
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        if (rep != NULL)
            freeReplyObject(rep);
        return -1;
    }
    long n = 0;
    for (size_t i = 0; i < rep->elements; i++) {
        if ((size_t)n == max || group_info(k, key, rep->element[i], &g[n]) != ASTRO_OK) {
            n = -1;
            break;
        }
        n++;
    }
    freeReplyObject(rep);
    return n;
}

static void
trim_stream(struct keeper *k, const struct arc_stream *s)
{
    struct arc_group_info groups[64];
    struct arc_id age = {0, 0}, rebuild, minid;
    int64_t horizon_ms = astro_now_us() / 1000 - k->ctx->cfg->hot_retention_ms;
    if (horizon_ms > 0)
        age.ms = (uint64_t)horizon_ms;
    int has_rebuild = s->kind == ARC_MONO ? rebuild_point(k, s, &rebuild) : 0;
    long n = has_rebuild < 0 ? -1 : groups_of(k, s->key, groups, ASTRO_ARRAY_LEN(groups));
    if (n < 0 || !arc_trim_floor(groups, (size_t)n, age, has_rebuild ? &rebuild : NULL, &minid))
        return;
    char id[48];
    arc_id_format(minid, id, sizeof(id));
    const char *argv[] = {"XTRIM", s->key, "MINID", id};
    redisReply *rep = cmd(k, 4, argv);
    if (rep == NULL)
        return;
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer > 0) {
        astro_counter_add(k->ctx->m.trimmed, (uint64_t)rep->integer);
        astro_log_debug("trimmed %lld entries of %s below %s", rep->integer, s->key, id);
    }
    freeReplyObject(rep);
}

static void
keep_partitions(struct keeper *k)
{
    char err[512];
    long created, dropped;
    const struct arc_config *cfg = k->ctx->cfg;
    if (arc_store_partitions(k->pg, cfg->partitions_ahead, cfg->cold_retention_days, &created,
                             &dropped, err, sizeof(err)) != ASTRO_OK) {
        astro_log_warn("partitions: %s (retried in a minute)", err);
        k->last_parts_us -= (3600 - 60) * INT64_C(1000000);
        return;
    }
    astro_counter_add(k->ctx->m.partitions_created, (uint64_t)created);
    astro_counter_add(k->ctx->m.partitions_dropped, (uint64_t)dropped);
    if (created > 0 || dropped > 0)
        astro_log_info("partitions: %ld day partitions created, %ld dropped", created, dropped);
}

/* Redis and PostgreSQL chores are independent: the backlog report matters most exactly when
 * PostgreSQL is down. */
static void
tick(struct keeper *k)
{
    int64_t now = astro_now_us();
    if (k->r != NULL) {
        report_backlog(k);
        if (now - k->last_trim_us >= k->ctx->cfg->trim_interval_ms * 1000) {
            k->last_trim_us = now;
            for (size_t i = 0; i < k->ctx->nstreams; i++)
                trim_stream(k, &k->ctx->streams[i]);
        }
    }
    if (k->pg != NULL && now - k->last_parts_us >= INT64_C(3600000000)) {
        k->last_parts_us = now;
        keep_partitions(k);
    }
    /* Tried once (done, or PostgreSQL is not there yet): the writers may start. */
    atomic_store(&k->ctx->parts_ready, true);
}

static void *
keeper_main(void *arg)
{
    struct keeper k = {.ctx = arg};
    struct arc_ctx *ctx = k.ctx;
    char err[512];
    struct astro_redis_options ro = {.connect_timeout_ms = 2000, .command_timeout_ms = 5000,
                                     .deadline_ms = 1000, .backoff_initial_ms = 100,
                                     .backoff_max_ms = 500};
    struct astro_pg_options po = {.application_name = "astro-archiver-keeper",
                                  .connect_timeout_s = 5, .deadline_ms = 1000};
    k.last_parts_us = -INT64_C(3600000000);
    while (!atomic_load(&ctx->stop)) {
        if (k.r == NULL)
            k.r = astro_redis_connect(ctx->cfg->svc.redis_url, &ro, err, sizeof(err));
        if (k.pg == NULL)
            k.pg = astro_pg_connect(ctx->cfg->database_url, &po, err, sizeof(err));
        tick(&k);
        for (int i = 0; i < 10 && !atomic_load(&ctx->stop); i++)
            astro_backoff_sleep_ms(100);
    }
    astro_redis_free(k.r);
    astro_pg_free(k.pg);
    return NULL;
}

int
arc_keeper_start(struct arc_ctx *ctx)
{
    if (pthread_create(&ctx->keeper, NULL, keeper_main, ctx) != 0)
        return ASTRO_ERR;
    ctx->keeper_started = true;
    return ASTRO_OK;
}

void
arc_threads_join(struct arc_ctx *ctx)
{
    arc_workers_join(ctx);
    if (ctx->keeper_started)
        pthread_join(ctx->keeper, NULL);
    ctx->keeper_started = false;
}

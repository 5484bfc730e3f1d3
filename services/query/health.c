/* Health endpoints, /metrics and /stats. /health/full walks every partition's streams (XINFO
 * GROUPS / CONSUMERS), the leaflet leases and the archive's newest row; it costs O(P) Redis
 * round trips, fine for an operator's probe, not for a load balancer (use /health/ready). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <civetweb.h>

#include "astro/metrics.h"
#include "astro/partition.h"
#include "astro/pg.h"
#include "astro/redis.h"
#include "astro/time.h"
#include "query.h"

#define ALIVE_IDLE_MS 60000 /* a consumer idle longer than this is not counted as alive */

static redisReply *
cmd(struct qry_worker *w, int argc, const char **argv)
{
    char err[256];
    struct astro_redis *r = qry_worker_redis(w, err, sizeof(err));
    redisReply *rep = r != NULL ? astro_redis_command(r, argc, argv, NULL, err, sizeof(err))
                                : NULL;
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

bool
qry_probe_redis(struct qry_worker *w, cJSON *obj)
{
    const char *argv[] = {"PING"};
    redisReply *rep = cmd(w, 1, argv);
    bool ok = rep != NULL;
    freeReplyObject(rep);
    cJSON_AddStringToObject(obj, "redis", ok ? "ok" : "unavailable");
    return ok;
}

bool
qry_probe_pg(struct qry_worker *w, cJSON *obj)
{
    char err[256];
    struct astro_pg *pg = qry_worker_pg(w, err, sizeof(err));
    PGresult *r = pg != NULL ? astro_pg_exec(pg, "SELECT 1", 0, NULL, err, sizeof(err)) : NULL;
    bool ok = r != NULL;
    PQclear(r);
    cJSON_AddStringToObject(obj, "database", ok ? "ok" : "unavailable");
    return ok;
}

/* Value of field name in a flat [name, value, ...] reply, or NULL. */
static const redisReply *
field(const redisReply *r, const char *name)
{
    for (size_t i = 0; r != NULL && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1];
    return NULL;
}

static long long
field_int(const redisReply *r, const char *name)
{
    const redisReply *v = field(r, name);
    return v != NULL && v->type == REDIS_REPLY_INTEGER ? v->integer : -1;
}

/* Consumers of group on stream that were active recently: the services seen alive. */
static void
add_consumers(struct qry_worker *w, const char *stream, const char *group, cJSON *alive)
{
    const char *argv[] = {"XINFO", "CONSUMERS", stream, group};
    redisReply *rep = cmd(w, 4, argv);
    for (size_t i = 0; rep != NULL && i < rep->elements; i++) {
        const redisReply *name = field(rep->element[i], "name");
        long long idle = field_int(rep->element[i], "idle");
        if (name != NULL && name->type == REDIS_REPLY_STRING && idle >= 0 &&
            idle < ALIVE_IDLE_MS && cJSON_GetObjectItemCaseSensitive(alive, name->str) == NULL)
            cJSON_AddNumberToObject(alive, name->str, (double)idle);
    }
    freeReplyObject(rep);
}

/* Lag and pending of each group on stream, summed per group over the partitions in groups. */
static void
add_groups(struct qry_worker *w, const char *stream, cJSON *groups, cJSON *alive)
{
    const char *argv[] = {"XINFO", "GROUPS", stream};
    redisReply *rep = cmd(w, 3, argv);
    for (size_t i = 0; rep != NULL && i < rep->elements; i++) {
        const redisReply *name = field(rep->element[i], "name");
        if (name == NULL || name->type != REDIS_REPLY_STRING)
            continue;
        cJSON *g = cJSON_GetObjectItemCaseSensitive(groups, name->str);
        if (g == NULL) {
            g = cJSON_AddObjectToObject(groups, name->str);
            cJSON_AddNumberToObject(g, "lag", 0);
            cJSON_AddNumberToObject(g, "pending", 0);
            cJSON_AddNumberToObject(g, "streams", 0);
        }
        long long lag = field_int(rep->element[i], "lag");
        long long pending = field_int(rep->element[i], "pending");
        cJSON *l = cJSON_GetObjectItem(g, "lag"), *p = cJSON_GetObjectItem(g, "pending");
        cJSON_SetNumberValue(l, l->valuedouble + (double)(lag > 0 ? lag : 0));
        cJSON_SetNumberValue(p, p->valuedouble + (double)(pending > 0 ? pending : 0));
        cJSON *s = cJSON_GetObjectItem(g, "streams");
        cJSON_SetNumberValue(s, s->valuedouble + 1);
        add_consumers(w, stream, name->str, alive);
    }
    freeReplyObject(rep);
}

void
qry_probe_streams(struct qry_ctx *ctx, struct qry_worker *w, cJSON *obj)
{
    static const char *const kinds[] = {"mono", "multi"};
    cJSON *streams = cJSON_AddObjectToObject(obj, "consumer_groups");
    cJSON *alive = cJSON_AddObjectToObject(obj, "consumers_alive");
    cJSON *leases = cJSON_AddObjectToObject(obj, "partition_owners");
    for (size_t k = 0; k < 2; k++) {
        cJSON *groups = cJSON_AddObjectToObject(streams, kinds[k]);
        for (uint32_t p = 0; p < (uint32_t)ctx->cfg->partitions; p++) {
            char key[48];
            if (astro_stream_key(key, sizeof(key), kinds[k], p) == ASTRO_OK)
                add_groups(w, key, groups, alive);
        }
    }
    for (uint32_t p = 0; p < (uint32_t)ctx->cfg->partitions; p++) {
        char key[48], idx[16];
        snprintf(key, sizeof(key), "astro:lease:{%u}", p);
        snprintf(idx, sizeof(idx), "%u", p);
        const char *argv[] = {"GET", key};
        redisReply *rep = cmd(w, 2, argv);
        if (rep != NULL && rep->type == REDIS_REPLY_STRING)
            cJSON_AddStringToObject(leases, idx, rep->str);
        else
            cJSON_AddNullToObject(leases, idx);
        freeReplyObject(rep);
    }
}

/* Age of the newest archived mono event (served by the ts index). */
static void
add_archive_lag(struct qry_worker *w, cJSON *obj)
{
    char err[256];
    struct astro_pg *pg = qry_worker_pg(w, err, sizeof(err));
    PGresult *r = pg == NULL ? NULL : astro_pg_exec(pg,
        "SELECT (extract(epoch FROM now() - max(ts)) * 1000)::int8 FROM mono_events", 0, NULL,
        err, sizeof(err));
    if (r != NULL && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        cJSON_AddNumberToObject(obj, "archive_lag_ms", (double)strtoll(PQgetvalue(r, 0, 0),
                                                                        NULL, 10));
    else
        cJSON_AddNullToObject(obj, "archive_lag_ms");
    PQclear(r);
}

static void
health_full(struct qry_ctx *ctx, struct mg_connection *c, struct qry_worker *w)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = qry_probe_redis(w, o);
    ok = qry_probe_pg(w, o) && ok;
    if (ok) {
        add_archive_lag(w, o);
        qry_probe_streams(ctx, w, o);
    }
    cJSON_AddStringToObject(o, "status", ok ? "ok" : "degraded");
    cJSON_AddStringToObject(o, "heartbeats",
                            "no heartbeat key yet: alive = stream consumers idle < 60 s");
    qry_reply_json(c, ok ? 200 : 503, o);
}

void
qry_health_route(struct qry_ctx *ctx, struct mg_connection *c, const char *path)
{
    struct qry_worker *w = qry_worker_of(c);
    cJSON *o = cJSON_CreateObject();
    bool ok = true;
    if (strcmp(path, "/health/full") == 0) {
        cJSON_Delete(o);
        health_full(ctx, c, w);
        return;
    }
    if (strcmp(path, "/health/ready") == 0) {
        ok = qry_probe_redis(w, o);
        ok = qry_probe_pg(w, o) && ok && !ctx->stopping;
    } else if (strcmp(path, "/health/redis") == 0) {
        ok = qry_probe_redis(w, o);
    } else if (strcmp(path, "/health/database") == 0) {
        ok = qry_probe_pg(w, o);
    }
    cJSON_AddStringToObject(o, "status", ok ? "ok" : "unavailable");
    qry_reply_json(c, ok ? 200 : 503, o);
}

void
qry_metrics_route(struct qry_ctx *ctx, struct mg_connection *c)
{
    size_t len;
    char *text = astro_metrics_render(ctx->metrics, &len);
    if (text == NULL) {
        qry_reply_error(ctx, c, 500, "internal", NULL, "out of memory");
        return;
    }
    qry_reply_text(c, 200, "text/plain; version=0.0.4", text, len);
    free(text);
}

/* Live figures: this instance's request counters and the pipeline's stream backlog. */
void
qry_stats_route(struct qry_ctx *ctx, struct mg_connection *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "requests_total", (double)astro_counter_get(ctx->m.requests));
    cJSON_AddNumberToObject(o, "requests_in_flight", astro_gauge_get(ctx->m.in_flight));
    cJSON_AddNumberToObject(o, "worker_threads", (double)ctx->cfg->threads);
    struct qry_worker *w = qry_worker_of(c);
    if (qry_probe_redis(w, o))
        qry_probe_streams(ctx, w, o);
    add_archive_lag(w, o);
    qry_reply_json(c, 200, o);
}

/* The hot tier: the recent buffers astro-ingest keeps per key in Redis, the LIST
 * astro:recent:{p}:<key> (LPUSH, newest first, each entry the event as compact JSON). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <civetweb.h>

#include "astro/log.h"
#include "astro/partition.h"
#include "astro/redis.h"
#include "astro/time.h"
#include "query.h"

enum buf_op { BUF_LATEST, BUF_LAST, BUF_STATS };

struct buf_req {
    enum buf_op op;
    int64_t n;
    char key[257];
};

static int
bad(struct qry_ctx *ctx, struct mg_connection *c, const char *param, const char *msg)
{
    struct qry_error e;
    snprintf(e.param, sizeof(e.param), "%s", param);
    snprintf(e.msg, sizeof(e.msg), "%s", msg);
    qry_reply_bad(ctx, c, &e);
    return ASTRO_ERR;
}

/* Parses "/buffer/<key>/latest", ".../last/<n>" and ".../stats"; the key may hold '/'.
 * ASTRO_ERR after answering 400, 1 for a path of another shape. */
static int
parse_path(struct qry_ctx *ctx, struct mg_connection *c, const char *path, struct buf_req *b)
{
    const char *k = path + 8, *end = k + strlen(k), *tail = NULL;
    char why[200];
    size_t tl = strlen("/latest"), ts = strlen("/stats");
    if ((size_t)(end - k) > tl && strcmp(end - tl, "/latest") == 0) {
        b->op = BUF_LATEST;
        tail = end - tl;
    } else if ((size_t)(end - k) > ts && strcmp(end - ts, "/stats") == 0) {
        b->op = BUF_STATS;
        tail = end - ts;
    } else {
        const char *slash = strrchr(k, '/');
        if (slash == NULL || slash - k < 6 || strncmp(slash - 5, "/last/", 6) != 0)
            return 1; /* not a buffer endpoint */
        b->op = BUF_LAST;
        tail = slash - 5;
        if (astro_cfg_parse_int(slash + 1, &b->n, why, sizeof(why)) != ASTRO_OK ||
            b->n < 1 || b->n > QRY_LIMIT_MAX)
            return bad(ctx, c, "n", "must be an integer between 1 and 1000");
    }
    size_t klen = (size_t)(tail - k);
    if (klen == 0 || klen >= sizeof(b->key))
        return bad(ctx, c, "key", "must be 1..256 bytes");
    if (astro_event_check_key(k, klen, sizeof(b->key) - 1, why, sizeof(why)) != ASTRO_OK)
        return bad(ctx, c, "key", why);
    memcpy(b->key, k, klen);
    b->key[klen] = '\0';
    return ASTRO_OK;
}

static redisReply *
lrange(struct qry_ctx *ctx, struct qry_worker *w, const char *key, int64_t n, char *err,
       size_t errlen)
{
    uint32_t p = astro_partition_of(key, strlen(key), (uint32_t)ctx->cfg->partitions);
    char rkey[300], stop[24];
    snprintf(rkey, sizeof(rkey), "astro:recent:{%u}:%s", p, key);
    snprintf(stop, sizeof(stop), "%lld", (long long)(n - 1));
    struct astro_redis *r = qry_worker_redis(w, err, errlen);
    if (r == NULL)
        return NULL;
    const char *argv[] = {"LRANGE", rkey, "0", stop};
    redisReply *rep = astro_redis_command(r, 4, argv, NULL, err, errlen);
    if (rep != NULL && rep->type != REDIS_REPLY_ARRAY) {
        astro_fail(err, errlen, "LRANGE: %s", rep->type == REDIS_REPLY_ERROR ? rep->str : "?");
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

/* Entries as parsed JSON objects, newest first; an entry that is not JSON is skipped (ingest
 * wrote it, so it is not the user's fault, and one bad entry must not hide the rest). */
static cJSON *
entries_json(const redisReply *rep)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        cJSON *o = e->type == REDIS_REPLY_STRING ? cJSON_ParseWithLength(e->str, e->len) : NULL;
        if (o != NULL)
            cJSON_AddItemToArray(a, o);
    }
    return a;
}

static cJSON *
stats_json(const char *key, cJSON *events)
{
    cJSON *o = cJSON_CreateObject(), *ev;
    double n = 0, sum = 0, min = INFINITY, max = -INFINITY;
    cJSON_ArrayForEach(ev, events) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, "value");
        if (!cJSON_IsNumber(v))
            continue;
        n++;
        sum += v->valuedouble;
        min = fmin(min, v->valuedouble);
        max = fmax(max, v->valuedouble);
    }
    cJSON_AddStringToObject(o, "key", key);
    cJSON_AddNumberToObject(o, "count", n);
    if (n > 0) {
        cJSON_AddNumberToObject(o, "min", min);
        cJSON_AddNumberToObject(o, "max", max);
        cJSON_AddNumberToObject(o, "mean", sum / n);
        cJSON *newest = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(events, 0),
                                                         "timestamp");
        cJSON *oldest = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(events, cJSON_GetArraySize(events) - 1), "timestamp");
        if (cJSON_IsString(newest) && cJSON_IsString(oldest)) {
            cJSON_AddStringToObject(o, "newest", newest->valuestring);
            cJSON_AddStringToObject(o, "oldest", oldest->valuestring);
        }
    }
    cJSON_Delete(events);
    return o;
}

void
qry_buffer_route(struct qry_ctx *ctx, struct mg_connection *c, const char *path,
                 const char *qs)
{
    struct buf_req b = {0};
    struct qry_filter f;
    struct qry_error e;
    char err[256];
    if (qry_params_parse(QRY_EP_NONE, qs, &f, &e) != ASTRO_OK) {
        qry_reply_bad(ctx, c, &e);
        return;
    }
    int rc = parse_path(ctx, c, path, &b);
    if (rc != ASTRO_OK) {
        if (rc == 1)
            qry_reply_error(ctx, c, 404, "not_found", NULL, "no such endpoint");
        return;
    }
    int64_t n = b.op == BUF_LATEST ? 1 : b.op == BUF_LAST ? b.n : ctx->cfg->buffer_max;
    redisReply *rep = lrange(ctx, qry_worker_of(c), b.key, n, err, sizeof(err));
    if (rep == NULL) {
        astro_log_warn("buffer: redis: %s", err);
        qry_reply_error(ctx, c, 503, "redis_unavailable", NULL, "Redis did not answer");
        return;
    }
    cJSON *events = entries_json(rep);
    freeReplyObject(rep);
    if (b.op == BUF_STATS) {
        qry_reply_json(c, 200, stats_json(b.key, events));
    } else if (b.op == BUF_LATEST) {
        cJSON *first = cJSON_DetachItemFromArray(events, 0);
        cJSON_Delete(events);
        if (first == NULL)
            qry_reply_error(ctx, c, 404, "not_found", NULL, "no recent events for this key");
        else
            qry_reply_json(c, 200, first);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "key", b.key);
        cJSON_AddNumberToObject(o, "count", cJSON_GetArraySize(events));
        cJSON_AddItemToObject(o, "events", events);
        qry_reply_json(c, 200, o);
    }
}

/* The three WebSocket routes: /stream/ws (filtered events), /stream/ws/stats and
 * /subscribe/{user_id}. Filters are checked before the 101; the key (query or first message,
 * scope read) is looked up after it, and nothing is sent until it is accepted. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>

#include "astro/backoff.h"
#include "astro/event.h"
#include "astro/http.h"
#include "astro/log.h"
#include "astro/loop.h"
#include "astro/metrics.h"
#include "astro/redis.h"
#include "astro/ws.h"
#include "broadcast.h"

#define MAX_PARAMS 16

static const char *const route_names[] = {"stream", "stats", "subscribe"};

static int
upgrade(struct astro_http_req *req, struct bc_ctx *ctx, enum bc_route route, void **user)
{
    struct bc_param params[MAX_PARAMS];
    char err[256];
    size_t n = astro_http_req_query_count(req);
    if (n > MAX_PARAMS) {
        astro_http_req_respond_error(req, 400, "too many query parameters");
        return ASTRO_ERR;
    }
    for (size_t i = 0; i < n; i++)
        astro_http_req_query_at(req, i, &params[i].name, &params[i].value);
    struct bc_sub *s = calloc(1, sizeof(*s));
    const char *uid = route == BC_ROUTE_USER ? astro_http_req_param(req, "user_id") : NULL;
    if (s == NULL || bc_filter_parse(route, uid, params, n, (uint32_t)ctx->cfg->partitions,
                                     &s->f, err, sizeof(err)) != ASTRO_OK) {
        astro_http_req_respond_error(req, s == NULL ? 503 : 400, s == NULL ? "out of memory" : err);
        free(s);
        return ASTRO_ERR;
    }
    if (uid != NULL && (s->user = strdup(uid)) == NULL) {
        bc_filter_cleanup(&s->f);
        free(s);
        astro_http_req_respond_error(req, 503, "out of memory");
        return ASTRO_ERR;
    }
    s->route = route;
    s->refs = 1;
    s->lp = bc_loop_of(ctx, astro_http_req_loop(req));
    s->seen = s->f.since; /* all-zero without since=: nothing is skipped */
    s->seen.parts = (uint32_t)ctx->cfg->partitions;
    *user = s;
    return ASTRO_OK;
}

static int
up_stream(struct astro_http_req *req, void *arg, void **user)
{
    return upgrade(req, arg, BC_ROUTE_STREAM, user);
}

static int
up_stats(struct astro_http_req *req, void *arg, void **user)
{
    return upgrade(req, arg, BC_ROUTE_STATS, user);
}

static int
up_user(struct astro_http_req *req, void *arg, void **user)
{
    return upgrade(req, arg, BC_ROUTE_USER, user);
}

void
bc_sub_unref(struct bc_sub *s)
{
    if (--s->refs > 0)
        return;
    for (size_t i = 0; i < s->nheld; i++)
        bc_batch_unref(s->held[i]);
    free(s->held);
    if (s->auth_timer != NULL)
        event_free(s->auth_timer);
    bc_filter_cleanup(&s->f);
    free(s->user);
    free(s);
}

static void
send_json(struct bc_sub *s, const char *json)
{
    if (s->ws != NULL && astro_ws_send(s->ws, ASTRO_WS_TEXT, json, strlen(json)) != ASTRO_OK)
        astro_log_debug("subscriber %s: closing, message not sent", astro_ws_conn_peer(s->ws));
}

/* The key is good: start sending (after the resume backfill, if any). */
static void
accepted(struct bc_sub *s, const char *key)
{
    s->authed = true;
    if (s->auth_timer != NULL)
        evtimer_del(s->auth_timer);
    if (astro_ws_conn_set_key(s->ws, key) != ASTRO_OK)
        return; /* closed 1013: too many connections for this key */
    char msg[128];
    snprintf(msg, sizeof(msg), "{\"type\":\"subscribed\",\"route\":\"%s\"}", route_names[s->route]);
    send_json(s, msg);
    if (s->route == BC_ROUTE_STATS) {
        s->live = true;
        return;
    }
    bc_index_add(s);
    if (s->f.has_since)
        bc_backfill_start(s);
    else
        s->live = true;
}

static void
judge(struct bc_sub *s, const struct astro_apikey_info *info, bool unavailable, const char *key)
{
    if (s->ws == NULL)
        return;
    if (unavailable) {
        astro_ws_close(s->ws, ASTRO_WS_CLOSE_INTERNAL, "key lookup unavailable, retry");
        return;
    }
    if (!info->found || info->revoked || !(info->scopes & ASTRO_SCOPE_READ)) {
        astro_counter_inc(s->lp->ctx->m.auth_failures);
        astro_ws_close(s->ws, ASTRO_WS_CLOSE_POLICY,
                       info->found && !info->revoked ? "api key lacks read scope"
                                                     : "invalid api key");
        return;
    }
    accepted(s, key);
}

struct lookup {
    struct bc_sub *s;
    char hex[ASTRO_APIKEY_HEX_LEN + 1];
    char key[ASTRO_APIKEY_MAX_LEN + 1];
};

static void
on_record(redisAsyncContext *ac, void *r, void *priv)
{
    struct lookup *lk = priv;
    struct astro_apikey_info info;
    char err[128];
    (void)ac;
    memset(&info, 0, sizeof(info));
    bool unavailable = r == NULL || ((redisReply *)r)->type == REDIS_REPLY_ERROR;
    if (!unavailable && astro_apikey_info_from_reply(r, &info, err, sizeof(err)) == ASTRO_OK)
        astro_apikey_cache_put(lk->s->lp->keys, lk->hex, &info, astro_backoff_now_ms());
    judge(lk->s, &info, unavailable, lk->key);
    bc_sub_unref(lk->s);
    OPENSSL_cleanse(lk, sizeof(*lk));
    free(lk);
}

static void
authenticate(struct bc_sub *s, const char *key)
{
    struct astro_apikey_info info;
    char rkey[96];
    memset(&info, 0, sizeof(info));
    if (key == NULL || astro_apikey_check_format(key, strlen(key), NULL, 0) != ASTRO_OK) {
        judge(s, &info, false, NULL);
        return;
    }
    struct lookup *lk = calloc(1, sizeof(*lk));
    if (lk == NULL || astro_apikey_hash(key, strlen(key), lk->hex) != ASTRO_OK) {
        free(lk);
        judge(s, &info, true, NULL);
        return;
    }
    if (astro_apikey_cache_get(s->lp->keys, lk->hex, astro_backoff_now_ms(), &info)) {
        free(lk);
        judge(s, &info, false, key);
        return;
    }
    lk->s = s;
    snprintf(lk->key, sizeof(lk->key), "%s", key);
    const char *argv[] = {"HGETALL", rkey};
    if (astro_apikey_redis_key(rkey, sizeof(rkey), lk->hex) != ASTRO_OK ||
        astro_redis_async_command(s->lp->rw, on_record, lk, 2, argv, NULL) != ASTRO_OK) {
        free(lk);
        judge(s, &info, true, NULL);
        return;
    }
    s->refs++;
}

static void
on_auth_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct bc_sub *s = arg;
    (void)fd;
    (void)what;
    if (s->ws != NULL && !s->authed) {
        astro_counter_inc(s->lp->ctx->m.auth_failures);
        astro_ws_close(s->ws, ASTRO_WS_CLOSE_POLICY, "no auth message in time");
    }
}

static void
on_open(struct astro_ws_conn *c, void *user)
{
    struct bc_sub *s = user;
    struct bc_ctx *ctx = s->lp->ctx;
    s->ws = c;
    s->linked = true;
    s->next = s->lp->subs;
    if (s->next != NULL)
        s->next->prev = s;
    s->lp->subs = s;
    astro_gauge_add(ctx->m.subscribers, 1);
    astro_ws_conn_set_drop_oldest(c, s->f.drop_oldest);
    if (s->f.api_key != NULL) {
        authenticate(s, s->f.api_key);
        return;
    }
    struct timeval tv = {.tv_sec = ctx->cfg->auth_timeout_ms / 1000,
                         .tv_usec = (ctx->cfg->auth_timeout_ms % 1000) * 1000};
    s->auth_timer = evtimer_new(astro_loop_base(s->lp->loop), on_auth_deadline, s);
    if (s->auth_timer == NULL || evtimer_add(s->auth_timer, &tv) != 0)
        astro_ws_close(c, ASTRO_WS_CLOSE_INTERNAL, "out of memory");
}

static const char *
msg_type(const cJSON *o)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(t) ? t->valuestring : "";
}

static void
on_first_message(struct bc_sub *s, const cJSON *o)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "api_key");
    if (strcmp(msg_type(o), "auth") != 0 || !cJSON_IsString(k)) {
        astro_counter_inc(s->lp->ctx->m.auth_failures);
        astro_ws_close(s->ws, ASTRO_WS_CLOSE_POLICY, "first message must be auth with api_key");
        return;
    }
    s->f.api_key = strdup(k->valuestring); /* marks the lookup as started */
    if (s->f.api_key == NULL)
        astro_ws_close(s->ws, ASTRO_WS_CLOSE_INTERNAL, "out of memory");
    else
        authenticate(s, s->f.api_key);
}

static void
on_message(struct astro_ws_conn *c, enum astro_ws_opcode op, const uint8_t *data, size_t len,
           void *user)
{
    struct bc_sub *s = user;
    char err[160];
    (void)c;
    (void)op;
    cJSON *o = astro_json_parse_strict((const char *)data, len, 32, err, sizeof(err));
    if (o == NULL || !cJSON_IsObject(o)) {
        if (!s->authed && s->f.api_key == NULL)
            astro_ws_close(s->ws, ASTRO_WS_CLOSE_POLICY, "first message must be auth");
        else
            send_json(s, "{\"type\":\"error\",\"code\":\"invalid_json\"}");
    } else if (!s->authed) {
        if (s->f.api_key == NULL)
            on_first_message(s, o);
        /* else: a lookup is running; messages before its answer are ignored */
    } else if (strcmp(msg_type(o), "auth") == 0) {
        send_json(s, "{\"type\":\"error\",\"code\":\"already_authenticated\"}");
    } else if (s->route == BC_ROUTE_USER && strcmp(msg_type(o), "prediction") == 0) {
        bc_predict_handle(s, (const char *)data, len);
    } else {
        send_json(s, "{\"type\":\"error\",\"code\":\"unknown_type\"}");
    }
    cJSON_Delete(o);
}

static void
on_close(struct astro_ws_conn *c, uint16_t code, void *user)
{
    struct bc_sub *s = user;
    (void)c;
    if (s->linked) {
        if (code == ASTRO_WS_CLOSE_POLICY && s->authed)
            astro_counter_inc(s->lp->ctx->m.slow_disconnects);
        bc_index_remove(s);
        if (s->prev != NULL)
            s->prev->next = s->next;
        else
            s->lp->subs = s->next;
        if (s->next != NULL)
            s->next->prev = s->prev;
        astro_gauge_add(s->lp->ctx->m.subscribers, -1);
    }
    s->ws = NULL;
    bc_sub_unref(s);
}

const struct astro_ws_handlers bc_stream_handlers = {
    .on_upgrade = up_stream, .on_open = on_open, .on_message = on_message,
    .on_close = on_close, .accept = ASTRO_WS_ACCEPT_TEXT};
const struct astro_ws_handlers bc_stats_handlers = {
    .on_upgrade = up_stats, .on_open = on_open, .on_message = on_message,
    .on_close = on_close, .accept = ASTRO_WS_ACCEPT_TEXT};
const struct astro_ws_handlers bc_user_handlers = {
    .on_upgrade = up_user, .on_open = on_open, .on_message = on_message,
    .on_close = on_close, .accept = ASTRO_WS_ACCEPT_TEXT};

/* WS /stream: first-message auth within a deadline, then event, events, features and raw
 * messages, each answered with an ack (after Redis accepted every event) or an error frame;
 * the connection stays open after a rejected message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "astro/http.h"
#include "astro/log.h"
#include "astro/loop.h"
#include "astro/metrics.h"
#include "astro/time.h"
#include "astro/uuid.h"
#include "astro/ws.h"
#include "ingest.h"

void
ing_conn_ref(struct ing_conn *c)
{
    c->refs++;
}

void
ing_conn_unref(struct ing_conn *c)
{
    if (c == NULL || --c->refs > 0)
        return;
    free(c->dev_json);
    free(c->query_key);
    free(c);
}

static void
send_text(struct ing_conn *c, const char *text)
{
    if (c->ws != NULL && text != NULL &&
        astro_ws_send(c->ws, ASTRO_WS_TEXT, text, strlen(text)) != ASTRO_OK)
        astro_log_debug("stream %s: send failed (closing)", c->sid);
}

static void
send_error(struct ing_conn *c, enum ing_reason r, const char *msg, const struct ing_parsed *p,
           int64_t retry_ms)
{
    char *text = ing_msg_error_json(r, msg, p, retry_ms);
    ing_reject(c->lp->ctx, r);
    send_text(c, text);
    free(text);
}

/* A close reason holds at most 123 bytes and must stay valid UTF-8: cut before a character
 * that would not fit whole (the reason may quote a client's field name). */
static void
close_conn(struct ing_conn *c, uint16_t code, enum ing_reason r, const char *why)
{
    char reason[124];
    size_t n = strlen(why);
    if (n >= sizeof(reason)) {
        n = sizeof(reason) - 1;
        while (n > 0 && ((unsigned char)why[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(reason, why, n);
    reason[n] = '\0';
    ing_reject(c->lp->ctx, r);
    if (c->ws != NULL)
        astro_ws_close(c->ws, code, reason);
}

/* ---- events ---- */

struct pending_ack {
    struct ing_conn *c;
    bool has_seq;
    double seq;
};

static void
on_batch_done(struct ing_batch *b, void *arg)
{
    struct pending_ack *pa = arg;
    struct ing_conn *c = pa->c;
    struct ing_metrics *m = &c->lp->ctx->m;
    struct ing_parsed seqonly = {.has_seq = pa->has_seq, .seq = pa->seq};
    if (b->failed) {
        send_error(c, ING_R_UNAVAILABLE, "redis write failed; retry (event ids make it exact)",
                   &seqonly, c->lp->ctx->cfg->bp_retry_ms);
        goto out;
    }
    cJSON *o = cJSON_CreateObject();
    if (o != NULL && cJSON_AddStringToObject(o, "type", "ack") != NULL &&
        (!pa->has_seq || cJSON_AddNumberToObject(o, "seq", pa->seq) != NULL) &&
        ing_batch_ids_json(b, o) == ASTRO_OK) {
        char *text = cJSON_PrintUnformatted(o);
        send_text(c, text);
        free(text);
    }
    cJSON_Delete(o);
    size_t dups = 0;
    for (size_t i = 0; i < b->n; i++)
        dups += b->dup[i];
    astro_counter_add(m->accepted, b->n - dups);
    astro_counter_add(m->duplicates, dups);
    astro_counter_inc(m->acks);
out:
    ing_batch_free(b);
    ing_conn_unref(c);
    free(pa);
}

static void
write_events(struct ing_conn *c, struct ing_parsed *p)
{
    struct ing_ctx *ctx = c->lp->ctx;
    struct pending_ack *pa = malloc(sizeof(*pa));
    struct ing_batch *b = ing_batch_new(c->lp, p->ev, p->n);
    p->ev = NULL; /* owned by the batch now */
    p->n = 0;
    if (pa == NULL || b == NULL) {
        free(pa);
        ing_batch_free(b);
        send_error(c, ING_R_UNAVAILABLE, "out of memory", p, ctx->cfg->bp_retry_ms);
        return;
    }
    *pa = (struct pending_ack){c, p->has_seq, p->seq};
    astro_counter_inc(ctx->m.batches);
    ing_conn_ref(c);
    if (ing_batch_submit(b, on_batch_done, pa) != ASTRO_OK) {
        ing_conn_unref(c);
        ing_batch_free(b);
        free(pa);
        astro_counter_inc(ctx->m.redis_errors);
        send_error(c, ING_R_UNAVAILABLE, "redis unavailable; retry", p, ctx->cfg->bp_retry_ms);
    }
}

static void
on_events(struct ing_conn *c, struct ing_parsed *p)
{
    struct ing_ctx *ctx = c->lp->ctx;
    if (atomic_load(&ctx->stopping) || c->lp->draining) {
        send_error(c, ING_R_UNAVAILABLE, "server shutting down; retry elsewhere", p,
                   ctx->cfg->bp_retry_ms);
        return;
    }
    if (atomic_load(&ctx->backpressure)) {
        send_error(c, ING_R_BACKPRESSURE, "archive is behind; retry later", p,
                   ctx->cfg->bp_retry_ms);
        return;
    }
    write_events(c, p);
}

/* ---- auth ---- */

static void
on_session(struct ing_loop *lp, bool ok, void *arg)
{
    struct ing_conn *c = arg;
    (void)lp;
    if (c->ws == NULL) {
        if (ok) /* closed while the start was being written: end it too */
            ing_session_end(c->lp, c->sid, c->user);
        goto out;
    }
    if (!ok) {
        close_conn(c, ASTRO_WS_CLOSE_OVERLOADED, ING_R_UNAVAILABLE, "redis unavailable");
        goto out;
    }
    c->session_open = true;
    c->state = ING_C_READY;
    if (ing_predict_add(c->lp, c, c->user) != ASTRO_OK) {
        close_conn(c, ASTRO_WS_CLOSE_INTERNAL, ING_R_UNAVAILABLE, "out of memory");
        goto out;
    }
    astro_log_info("stream %s: session started for user %s (key %s)", c->sid, c->user, c->fp);
    char text[512];
    snprintf(text, sizeof(text), "{\"type\":\"auth_ok\",\"session_id\":\"%s\"}", c->sid);
    send_text(c, text);
out:
    ing_conn_unref(c);
}

static void
on_key(struct ing_loop *lp, const struct astro_apikey_info *info, bool unavailable, void *arg)
{
    struct ing_conn *c = arg;
    if (c->ws == NULL)
        goto out;
    if (unavailable) {
        close_conn(c, ASTRO_WS_CLOSE_OVERLOADED, ING_R_UNAVAILABLE, "redis unavailable");
    } else if (!info->found || info->revoked) {
        astro_log_info("stream from %s: bad api key", astro_ws_conn_peer(c->ws));
        close_conn(c, ASTRO_WS_CLOSE_POLICY, ING_R_BAD_KEY, "invalid api key");
    } else if (!(info->scopes & ASTRO_SCOPE_INGEST)) {
        close_conn(c, ASTRO_WS_CLOSE_POLICY, ING_R_SCOPE, "api key lacks the ingest scope");
    } else if (astro_ws_conn_set_key(c->ws, info->name) != ASTRO_OK) {
        ing_reject(lp->ctx, ING_R_UNAVAILABLE); /* per-key cap: the layer closed it 1013 */
    } else {
        snprintf(c->fp, sizeof(c->fp), "%s", info->name);
        ing_conn_ref(c);
        if (ing_session_start(lp, c->sid, c->user, c->dev_json, on_session, c) != ASTRO_OK) {
            ing_conn_unref(c);
            close_conn(c, ASTRO_WS_CLOSE_OVERLOADED, ING_R_UNAVAILABLE, "redis unavailable");
        }
    }
out:
    ing_conn_unref(c);
}

static void
on_auth(struct ing_conn *c, struct ing_parsed *p)
{
    char err[256];
    const char *key;
    struct astro_uuid u;
    if (ing_msg_auth(p, &key, c->user, sizeof(c->user), &c->dev_json, err, sizeof(err)) !=
        ASTRO_OK) {
        close_conn(c, ASTRO_WS_CLOSE_POLICY, ING_R_INVALID_EVENT, err);
        return;
    }
    if (astro_uuid_v4(&u) != ASTRO_OK) {
        close_conn(c, ASTRO_WS_CLOSE_INTERNAL, ING_R_UNAVAILABLE, "no randomness");
        return;
    }
    astro_uuid_format(&u, c->sid);
    c->state = ING_C_AUTHING;
    if (c->auth_timer != NULL)
        evtimer_del(c->auth_timer);
    ing_conn_ref(c);
    if (ing_auth_lookup(c->lp, key != NULL ? key : c->query_key, on_key, c) != ASTRO_OK) {
        ing_conn_unref(c);
        close_conn(c, ASTRO_WS_CLOSE_OVERLOADED, ING_R_UNAVAILABLE, "redis unavailable");
    }
}

static void
on_auth_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct ing_conn *c = arg;
    (void)fd, (void)what;
    if (c->state == ING_C_AUTH_WAIT)
        close_conn(c, ASTRO_WS_CLOSE_POLICY, ING_R_AUTH_TIMEOUT, "no auth message in time");
}

/* ---- handlers ---- */

static int
on_upgrade(struct astro_http_req *req, void *route_arg, void **user)
{
    struct ing_ctx *ctx = route_arg;
    if (atomic_load(&ctx->stopping)) {
        astro_http_req_respond_error(req, 503, "shutting down");
        return ASTRO_ERR;
    }
    struct ing_conn *c = calloc(1, sizeof(*c));
    const char *qk = astro_http_req_query(req, "api_key");
    if (c == NULL || (qk != NULL && (c->query_key = strdup(qk)) == NULL)) {
        free(c);
        astro_http_req_respond_error(req, 503, "out of memory");
        return ASTRO_ERR;
    }
    c->refs = 1;
    c->lp = ing_loop_of(ctx, astro_http_req_loop(req));
    *user = c;
    return ASTRO_OK;
}

static void
on_open(struct astro_ws_conn *ws, void *user)
{
    struct ing_conn *c = user;
    struct ing_loop *lp = c->lp;
    c->ws = ws;
    c->next = lp->conns;
    if (lp->conns != NULL)
        lp->conns->prev = c;
    lp->conns = c;
    astro_gauge_add(lp->ctx->m.connections, 1);
    c->auth_timer = evtimer_new(lp->base, on_auth_timeout, c);
    int64_t ms = lp->ctx->cfg->auth_timeout_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (c->auth_timer == NULL || evtimer_add(c->auth_timer, &tv) != 0)
        close_conn(c, ASTRO_WS_CLOSE_INTERNAL, ING_R_UNAVAILABLE, "out of memory");
}

static void
on_message(struct astro_ws_conn *ws, enum astro_ws_opcode op, const uint8_t *data, size_t len,
           void *user)
{
    struct ing_conn *c = user;
    struct ing_ctx *ctx = c->lp->ctx;
    struct ing_parsed p;
    (void)ws, (void)op;
    struct ing_parse_opts o = {&ctx->ws_lim, (size_t)ctx->cfg->max_items, astro_now_us(),
                               c->user};
    if (ing_msg_parse_ws((const char *)data, len, &o, &p) != ASTRO_OK) {
        if (c->state != ING_C_READY && p.reason != ING_R_INVALID_JSON)
            send_error(c, ING_R_NOT_AUTHENTICATED, "send auth first", &p, 0);
        else
            send_error(c, p.reason, p.message, &p, 0);
    } else if (p.kind == ING_MSG_AUTH) {
        if (c->state == ING_C_AUTH_WAIT)
            on_auth(c, &p);
        else
            send_error(c, ING_R_ALREADY_AUTHENTICATED, "this connection is authenticated",
                       &p, 0);
    } else if (c->state != ING_C_READY) {
        send_error(c, ING_R_NOT_AUTHENTICATED, "send auth first", &p, 0);
    } else {
        on_events(c, &p);
    }
    ing_parsed_cleanup(&p);
}

static void
on_close(struct astro_ws_conn *ws, uint16_t code, void *user)
{
    struct ing_conn *c = user;
    struct ing_loop *lp = c->lp;
    if (ws == NULL) { /* the upgrade failed before on_open */
        ing_conn_unref(c);
        return;
    }
    c->ws = NULL;
    if (c->auth_timer != NULL)
        event_free(c->auth_timer);
    c->auth_timer = NULL;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (lp->conns == c)
        lp->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    astro_gauge_add(lp->ctx->m.connections, -1);
    ing_predict_remove(lp, c);
    if (c->session_open) {
        c->session_open = false;
        ing_session_end(lp, c->sid, c->user);
        astro_log_info("stream %s: session ended for user %s (close %u)", c->sid, c->user,
                       (unsigned)code);
    }
    ing_conn_unref(c);
    ing_drain_check(lp);
}

const struct astro_ws_handlers ing_stream_handlers = {
    .on_upgrade = on_upgrade,
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
    .accept = ASTRO_WS_ACCEPT_TEXT,
};

void
ing_stream_close_all(struct ing_loop *lp)
{
    for (struct ing_conn *c = lp->conns; c != NULL; c = c->next)
        if (c->ws != NULL)
            astro_ws_close(c->ws, ASTRO_WS_CLOSE_GOING_AWAY, "server shutting down");
}

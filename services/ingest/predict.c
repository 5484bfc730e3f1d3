/* Predictions back to the edge: each loop has one subscriber connection; the first READY
 * connection of a user on the loop SUBSCRIBEs astro:edge:<user_id>, the last one to leave
 * UNSUBSCRIBEs. A message is framed once and queued by reference to each of the user's
 * connections on this loop as {"type":"prediction","payload":<JSON, or the text as a string>}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "astro/event.h"
#include "astro/log.h"
#include "astro/metrics.h"
#include "astro/redis.h"
#include "astro/ws.h"
#include "ingest.h"

#define EDGE_PREFIX "astro:edge:"

struct ing_user {
    char channel[sizeof(EDGE_PREFIX) + ASTRO_EVENT_ID_MAX * 4 + 1];
    struct ing_conn *conns;
    struct ing_user *next;
};

static struct ing_user *
find_user(struct ing_loop *lp, const char *channel)
{
    for (struct ing_user *u = lp->users; u != NULL; u = u->next)
        if (strcmp(u->channel, channel) == 0)
            return u;
    return NULL;
}

static char *
prediction_json(const char *payload, size_t len)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *p = astro_json_parse_strict(payload, len, 64, NULL, 0);
    if (p == NULL)
        p = cJSON_CreateString(payload);
    char *s = NULL;
    if (o != NULL && p != NULL && cJSON_AddStringToObject(o, "type", "prediction") != NULL) {
        cJSON_AddItemToObject(o, "payload", p);
        p = NULL;
        s = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(p);
    cJSON_Delete(o);
    return s;
}

static void
forward(struct ing_loop *lp, struct ing_user *u, const char *payload, size_t len)
{
    char *text = prediction_json(payload, len);
    struct astro_ws_msg *m = text != NULL ? astro_ws_msg_new(ASTRO_WS_TEXT, text, strlen(text))
                                          : NULL;
    free(text);
    if (m == NULL)
        return;
    for (struct ing_conn *c = u->conns; c != NULL; c = c->unext)
        if (c->ws != NULL && astro_ws_send_shared(c->ws, m) == ASTRO_OK)
            astro_counter_inc(lp->ctx->m.predictions);
    astro_ws_msg_unref(m);
}

/* Every reply on the subscriber connection: subscribe confirmations and messages. */
static void
on_sub_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct ing_loop *lp = priv;
    redisReply *rep = r;
    (void)ac;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(rep->element[0]->str, "message") != 0 ||
        rep->element[1]->type != REDIS_REPLY_STRING ||
        rep->element[2]->type != REDIS_REPLY_STRING)
        return;
    struct ing_user *u = find_user(lp, rep->element[1]->str);
    if (u != NULL)
        forward(lp, u, rep->element[2]->str, rep->element[2]->len);
}

static void
subscribe(struct ing_loop *lp, const char *cmd, const char *channel)
{
    const char *argv[] = {cmd, channel};
    /* While disconnected this fails; on_connected re-subscribes every user. */
    if (astro_redis_async_command(lp->sub, on_sub_reply, lp, 2, argv, NULL) != ASTRO_OK)
        astro_log_debug("%s %s deferred: subscriber not connected", cmd, channel);
}

void
ing_predict_on_connected(struct astro_redis_async *ra, void *arg)
{
    struct ing_loop *lp = arg;
    (void)ra;
    for (struct ing_user *u = lp->users; u != NULL; u = u->next)
        subscribe(lp, "SUBSCRIBE", u->channel);
}

int
ing_predict_add(struct ing_loop *lp, struct ing_conn *c, const char *user)
{
    char channel[sizeof(((struct ing_user *)0)->channel)];
    snprintf(channel, sizeof(channel), EDGE_PREFIX "%s", user);
    struct ing_user *u = find_user(lp, channel);
    if (u == NULL) {
        if ((u = calloc(1, sizeof(*u))) == NULL)
            return ASTRO_ERR;
        memcpy(u->channel, channel, sizeof(channel));
        u->next = lp->users;
        lp->users = u;
        subscribe(lp, "SUBSCRIBE", u->channel);
    }
    c->unext = u->conns;
    u->conns = c;
    c->uent = u;
    return ASTRO_OK;
}

static void
unlink_user(struct ing_loop *lp, struct ing_user *u)
{
    for (struct ing_user **pp = &lp->users; *pp != NULL; pp = &(*pp)->next)
        if (*pp == u) {
            *pp = u->next;
            return;
        }
}

void
ing_predict_remove(struct ing_loop *lp, struct ing_conn *c)
{
    struct ing_user *u = c->uent;
    if (u == NULL)
        return;
    for (struct ing_conn **pp = &u->conns; *pp != NULL; pp = &(*pp)->unext)
        if (*pp == c) {
            *pp = c->unext;
            break;
        }
    c->uent = NULL;
    c->unext = NULL;
    if (u->conns != NULL)
        return;
    subscribe(lp, "UNSUBSCRIBE", u->channel);
    unlink_user(lp, u);
    free(u);
}

void
ing_predict_cleanup(struct ing_loop *lp)
{
    while (lp->users != NULL) {
        struct ing_user *u = lp->users;
        lp->users = u->next;
        free(u);
    }
}

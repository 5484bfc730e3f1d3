/* Predictions from a /subscribe/{user_id} subscriber: validated, then XADD astro:predictions
 * (id, user, ts, payload: the layout the archiver decodes) and PUBLISH astro:edge:<user_id>
 * (ingest forwards the payload to the user's edge connections as
 * {"type":"prediction","payload":...}). Acked to the subscriber once both were accepted. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "astro/event.h"
#include "astro/log.h"
#include "astro/metrics.h"
#include "astro/redis.h"
#include "astro/time.h"
#include "astro/uuid.h"
#include "astro/ws.h"
#include "broadcast.h"

struct pending {
    struct bc_sub *s;
    bool stored;
    bool orphan; /* the PUBLISH could not be queued: the XADD callback frees pd */
    char id[ASTRO_UUID_STR_LEN + 1];
};

static void
reply_error(struct bc_sub *s, const char *code, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "error");
    cJSON_AddStringToObject(o, "code", code);
    cJSON_AddStringToObject(o, "message", message);
    char *t = cJSON_PrintUnformatted(o);
    if (t != NULL && s->ws != NULL && astro_ws_send(s->ws, ASTRO_WS_TEXT, t, strlen(t)) != ASTRO_OK)
        astro_log_debug("prediction error not sent: connection closing");
    free(t);
    cJSON_Delete(o);
}

static int
check_name(const cJSON *o, const char *field, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!cJSON_IsString(v))
        return astro_fail(err, errlen, "%s: required string", field);
    return astro_event_check_name(field, v->valuestring, strlen(v->valuestring),
                                  ASTRO_EVENT_NAME_MAX, err, errlen);
}

/* Validates the message and returns the payload object (new; cJSON_Delete) or NULL. */
static cJSON *
build_payload(const struct bc_sub *s, const cJSON *msg, const char *id, int64_t ts_us,
              char *err, size_t errlen)
{
    static const char *const known[] = {"type", "prediction_type", "classifier_name",
                                        "version", "data"};
    for (const cJSON *f = msg->child; f != NULL; f = f->next) {
        bool ok = false;
        for (size_t i = 0; i < ASTRO_ARRAY_LEN(known); i++)
            ok = ok || strcmp(f->string, known[i]) == 0;
        if (!ok) {
            astro_fail(err, errlen, "unknown field \"%.64s\"", f->string);
            return NULL;
        }
    }
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(msg, "version");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(msg, "data");
    char tsbuf[40];
    if (check_name(msg, "prediction_type", err, errlen) != ASTRO_OK ||
        check_name(msg, "classifier_name", err, errlen) != ASTRO_OK)
        return NULL;
    if (!(cJSON_IsString(ver) && strlen(ver->valuestring) <= 64) && !cJSON_IsNumber(ver)) {
        astro_fail(err, errlen, "version: required string (<= 64 bytes) or number");
        return NULL;
    }
    if (!cJSON_IsObject(data)) {
        astro_fail(err, errlen, "data: required object");
        return NULL;
    }
    if (astro_time_format(ts_us, tsbuf, sizeof(tsbuf)) != ASTRO_OK) {
        astro_fail(err, errlen, "clock out of range");
        return NULL;
    }
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "prediction_id", id);
    cJSON_AddStringToObject(p, "user_id", s->user);
    for (size_t i = 1; i < ASTRO_ARRAY_LEN(known); i++)
        cJSON_AddItemToObject(p, known[i],
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(msg, known[i]),
                                              1));
    cJSON_AddStringToObject(p, "timestamp", tsbuf);
    return p;
}

static void
on_xadd(redisAsyncContext *ac, void *r, void *priv)
{
    struct pending *pd = priv;
    (void)ac;
    pd->stored = r != NULL && ((redisReply *)r)->type == REDIS_REPLY_STRING;
    if (pd->orphan) {
        bc_sub_unref(pd->s);
        free(pd);
    }
}

static void
on_publish(redisAsyncContext *ac, void *r, void *priv)
{
    struct pending *pd = priv;
    redisReply *rep = r;
    (void)ac;
    if (!pd->stored || rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
        astro_counter_inc(pd->s->lp->ctx->m.prediction_errors);
        reply_error(pd->s, "unavailable", "prediction not stored, retry");
    } else if (pd->s->ws != NULL) {
        char ack[160];
        snprintf(ack, sizeof(ack),
                 "{\"type\":\"prediction_ack\",\"prediction_id\":\"%s\",\"receivers\":%lld}",
                 pd->id, rep->integer);
        astro_counter_inc(pd->s->lp->ctx->m.predictions);
        if (astro_ws_send(pd->s->ws, ASTRO_WS_TEXT, ack, strlen(ack)) != ASTRO_OK)
            astro_log_debug("prediction ack not sent: connection closing");
    }
    bc_sub_unref(pd->s);
    free(pd);
}

/* XADD then PUBLISH on the loop's connection; replies come in order, so the PUBLISH callback
 * knows whether the XADD was stored. */
static int
send_both(struct pending *pd, const char *payload, int64_t ts_us)
{
    char ts[24], channel[sizeof("astro:edge:") + 256 * 4];
    snprintf(ts, sizeof(ts), "%" PRId64, ts_us);
    snprintf(channel, sizeof(channel), "astro:edge:%s", pd->s->user);
    const char *xadd[] = {"XADD", "astro:predictions", "*", "id", pd->id, "user",
                          pd->s->user, "ts", ts, "payload", payload};
    const char *pub[] = {"PUBLISH", channel, payload};
    struct astro_redis_async *rw = pd->s->lp->rw;
    if (astro_redis_async_command(rw, on_xadd, pd, 11, xadd, NULL) != ASTRO_OK)
        return ASTRO_ERR;
    if (astro_redis_async_command(rw, on_publish, pd, 3, pub, NULL) != ASTRO_OK) {
        pd->orphan = true; /* the XADD callback still runs and owns pd now */
        pd->s->refs++;
        return ASTRO_ERR;
    }
    pd->s->refs++;
    return ASTRO_OK;
}

void
bc_predict_handle(struct bc_sub *s, const char *text, size_t len)
{
    char err[256];
    struct astro_uuid u;
    int64_t now = astro_now_us();
    cJSON *msg = astro_json_parse_strict(text, len, 32, err, sizeof(err));
    struct pending *pd = calloc(1, sizeof(*pd));
    cJSON *payload = NULL;
    char *ptext = NULL;
    if (msg == NULL || pd == NULL || astro_uuid_v4(&u) != ASTRO_OK)
        goto fail;
    astro_uuid_format(&u, pd->id);
    pd->s = s;
    if ((payload = build_payload(s, msg, pd->id, now, err, sizeof(err))) == NULL) {
        astro_counter_inc(s->lp->ctx->m.prediction_errors);
        reply_error(s, "invalid_prediction", err);
        goto out;
    }
    if ((ptext = cJSON_PrintUnformatted(payload)) == NULL)
        goto fail;
    int rc = send_both(pd, ptext, now);
    bool handed = rc == ASTRO_OK || pd->orphan;
    if (handed)
        pd = NULL;
    if (rc == ASTRO_OK)
        goto out;
fail:
    astro_counter_inc(s->lp->ctx->m.prediction_errors);
    reply_error(s, "unavailable", "prediction not stored, retry");
out:
    free(pd);
    free(ptext);
    cJSON_Delete(payload);
    cJSON_Delete(msg);
}

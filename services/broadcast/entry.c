/* One stream entry, decoded once, for the reader (live) and a resume backfill: mono and multi
 * events through the event codec, closed candles through the candle codec (astro/agg.h). */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "astro/partition.h"
#include "broadcast.h"

static const char *const stream_kinds[BC_KINDS] = {"mono", "multi", "agg"};
static const char *const wire_names[BC_KINDS] = {"mono", "multi", "candles"};

int
bc_slot_stream(uint32_t slot, char *out, size_t size)
{
    return astro_stream_key(out, size, stream_kinds[slot % BC_KINDS], slot / BC_KINDS);
}

int
bc_entry_decode(int kind, const redisReply *fields, struct bc_entry *e, char *err, size_t errlen)
{
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    if (fields->type != REDIS_REPLY_ARRAY)
        return astro_fail(err, errlen, "no fields");
    if (kind == BC_KIND_CANDLE)
        return astro_candle_stream_decode(fields->element, fields->elements, &e->c, err, errlen);
    return astro_event_stream_decode(fields->element, fields->elements, &e->ev, err, errlen);
}

void
bc_entry_view(const struct bc_entry *e, struct bc_item *it)
{
    it->kind = e->kind;
    if (e->kind == BC_KIND_CANDLE) {
        it->src = it->rule = NULL;
        it->key = e->c.key;
        it->type = (char *)e->c.type;
        it->tf = (char *)e->c.tf;
        return;
    }
    it->src = e->ev.src;
    it->key = e->ev.key;
    it->type = e->ev.type;
    it->rule = e->ev.rule;
    it->tf = NULL;
}

void
bc_entry_take(struct bc_entry *e, struct bc_item *it)
{
    if (e->kind == BC_KIND_CANDLE) {
        it->kind = e->kind;
        it->src = it->rule = NULL;
        it->key = e->c.key;
        e->c.key = NULL;
        it->type = strdup(e->c.type);
        it->tf = strdup(e->c.tf);
        return;
    }
    bc_entry_view(e, it);
    e->ev.src = e->ev.key = e->ev.type = e->ev.rule = NULL;
}

char *
bc_entry_message(const struct bc_entry *e, const char *token)
{
    bool candle = e->kind == BC_KIND_CANDLE;
    cJSON *o = cJSON_CreateObject();
    cJSON *body = candle ? astro_candle_to_json(&e->c) : astro_event_to_json(&e->ev);
    char *s = NULL;
    if (o != NULL && body != NULL &&
        cJSON_AddStringToObject(o, "type", candle ? "candle" : "event") != NULL &&
        cJSON_AddStringToObject(o, "stream", wire_names[e->kind]) != NULL &&
        cJSON_AddStringToObject(o, "position", token) != NULL) {
        cJSON_AddItemToObject(o, candle ? "candle" : "event", body);
        body = NULL;
        s = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(body);
    cJSON_Delete(o);
    return s;
}

void
bc_entry_cleanup(struct bc_entry *e)
{
    astro_event_cleanup(&e->ev);
    astro_candle_cleanup(&e->c);
}

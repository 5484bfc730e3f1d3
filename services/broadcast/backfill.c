/* Resume: since= names the last entry the subscriber saw on every stream. Each stream is read
 * from the hot tier after that entry (XRANGE with an exclusive start, in pages), while live
 * batches for the subscriber are held; then the held batches are sent minus every entry at or
 * before the backfill's end on its stream, so nothing is missed and nothing comes twice.
 * Backfilled messages are encoded for this subscriber alone: their position is its own. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "astro/event.h"
#include "astro/log.h"
#include "astro/metrics.h"
#include "astro/partition.h"
#include "astro/redis.h"
#include "astro/ws.h"
#include "broadcast.h"

struct page {
    struct bc_sub *s;
    uint32_t slot;
};

static int request(struct bc_sub *s, uint32_t slot);

/* Sends one backfilled entry if it matches; advances the subscriber's position either way. */
static void
send_entry(struct bc_sub *s, uint32_t slot, const redisReply *e)
{
    struct bc_entry en;
    struct bc_item it = {.kind = (int)(slot % BC_KINDS), .part = slot / BC_KINDS};
    char err[160], tok[BC_SLOTS * 30];
    if (bc_id_parse(e->element[0]->str, e->element[0]->len, &it.id) != ASTRO_OK)
        return;
    s->seen.id[slot] = it.id;
    if (bc_entry_decode(it.kind, e->element[1], &en, err, sizeof(err)) != ASTRO_OK)
        return;
    bc_entry_view(&en, &it);
    if (bc_filter_match(&s->f, &it)) {
        bc_token_encode(&s->seen, tok, sizeof(tok));
        char *text = bc_entry_message(&en, tok);
        struct astro_ws_msg *m =
            text != NULL ? astro_ws_msg_new(ASTRO_WS_TEXT, text, strlen(text)) : NULL;
        free(text);
        if (m != NULL && bc_fanout_send(s, m))
            astro_counter_inc(s->lp->ctx->m.backfilled);
        astro_ws_msg_unref(m);
    }
    bc_entry_cleanup(&en);
}

static void
finish_one(struct bc_sub *s)
{
    if (--s->backfill_pending == 0 && s->ws != NULL)
        bc_sub_go_live(s);
}

static void
on_page(redisAsyncContext *ac, void *r, void *priv)
{
    struct page *pg = priv;
    struct bc_sub *s = pg->s;
    redisReply *rep = r;
    (void)ac;
    if (s->ws == NULL) {
        /* closed meanwhile: nothing to do */
    } else if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        astro_ws_close(s->ws, ASTRO_WS_CLOSE_INTERNAL, "resume unavailable, retry");
    } else {
        for (size_t i = 0; i < rep->elements && s->ws != NULL; i++)
            if (rep->element[i]->type == REDIS_REPLY_ARRAY && rep->element[i]->elements == 2)
                send_entry(s, pg->slot, rep->element[i]);
        /* A full page may have more behind it. */
        if (s->ws != NULL && rep->elements == (size_t)s->lp->ctx->cfg->backfill_max) {
            if (request(s, pg->slot) == ASTRO_OK) {
                bc_sub_unref(s);
                free(pg);
                return;
            }
            astro_ws_close(s->ws, ASTRO_WS_CLOSE_INTERNAL, "resume unavailable, retry");
        }
        finish_one(s);
    }
    bc_sub_unref(s);
    free(pg);
}

/* Asks for the page after s->seen on slot; the page holds a reference to s. */
static int
request(struct bc_sub *s, uint32_t slot)
{
    char name[40], start[64], count[24];
    struct page *pg = malloc(sizeof(*pg));
    if (pg == NULL || bc_slot_stream(slot, name, sizeof(name)) != ASTRO_OK)
        goto fail;
    snprintf(start, sizeof(start), "(%" PRIu64 "-%" PRIu64, s->seen.id[slot].ms,
             s->seen.id[slot].seq);
    snprintf(count, sizeof(count), "%" PRId64, s->lp->ctx->cfg->backfill_max);
    const char *argv[] = {"XRANGE", name, start, "+", "COUNT", count};
    pg->s = s;
    pg->slot = slot;
    if (astro_redis_async_command(s->lp->rw, on_page, pg, 6, argv, NULL) != ASTRO_OK)
        goto fail;
    s->refs++;
    return ASTRO_OK;
fail:
    free(pg);
    return ASTRO_ERR;
}

/* Only streams that can hold a matching event are read: one partition for a key filter. */
static bool
wanted(const struct bc_sub *s, uint32_t slot)
{
    if (!bc_filter_wants_kind(&s->f, (int)(slot % BC_KINDS)))
        return false;
    return s->f.key == NULL ||
           slot / BC_KINDS == astro_partition_of(s->f.key, strlen(s->f.key), s->seen.parts);
}

void
bc_backfill_start(struct bc_sub *s)
{
    uint32_t n = BC_KINDS * s->seen.parts;
    s->backfill_pending = 1; /* held until every request is out */
    for (uint32_t slot = 0; slot < n; slot++) {
        if (!wanted(s, slot))
            continue;
        s->backfill_pending++;
        if (request(s, slot) != ASTRO_OK) {
            astro_ws_close(s->ws, ASTRO_WS_CLOSE_INTERNAL, "resume unavailable, retry");
            return;
        }
    }
    finish_one(s);
}

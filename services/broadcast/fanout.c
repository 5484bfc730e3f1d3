/* Fan-out on a loop thread: each item of a batch from the reader visits only the subscribers
 * that could want it (the loop's index: its key's bucket plus those taking every key); each
 * matching one gets a reference to the frame the reader built, never a copy. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "astro/metrics.h"
#include "astro/partition.h"
#include "astro/ws.h"
#include "broadcast.h"

bool
bc_fanout_send(struct bc_sub *s, struct astro_ws_msg *m)
{
    struct bc_metrics *mt = &s->lp->ctx->m;
    if (s->ws == NULL || astro_ws_send_shared(s->ws, m) != ASTRO_OK)
        return false;
    astro_counter_inc(mt->messages_out);
    astro_counter_add(mt->bytes_out, astro_ws_msg_payload_len(m));
    return true;
}

/* Sends the items of b that s wants and has not had from its resume backfill. */
static void
send_items(struct bc_sub *s, const struct bc_batch *b)
{
    for (size_t i = 0; i < b->n && s->ws != NULL; i++) {
        const struct bc_item *it = &b->items[i];
        uint32_t slot = bc_slot(it->part, it->kind);
        if (!bc_filter_match(&s->f, it) || bc_id_cmp(it->id, s->seen.id[slot]) <= 0)
            continue;
        if (!bc_fanout_send(s, it->msg))
            return;
    }
}

void
bc_sub_offer(struct bc_sub *s, struct bc_batch *b)
{
    if (s->live) {
        send_items(s, b);
        return;
    }
    if (s->nheld == s->capheld) {
        size_t cap = s->capheld ? 2 * s->capheld : 16;
        struct bc_batch **h = cap <= 65536 ? realloc(s->held, cap * sizeof(*h)) : NULL;
        if (h == NULL) {
            astro_ws_close(s->ws, ASTRO_WS_CLOSE_POLICY, "slow consumer");
            return;
        }
        s->held = h;
        s->capheld = cap;
    }
    atomic_fetch_add(&b->refs, 1);
    s->held[s->nheld++] = b;
}

/* After the backfill: the held batches, in order, minus what the backfill already sent. */
void
bc_sub_go_live(struct bc_sub *s)
{
    s->live = true;
    for (size_t i = 0; i < s->nheld; i++) {
        if (s->ws != NULL)
            send_items(s, s->held[i]);
        bc_batch_unref(s->held[i]);
    }
    s->nheld = 0;
}

static double
since_s(uint64_t t0_ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return now > t0_ns ? (double)(now - t0_ns) / 1e9 : 0;
}

static struct bc_sub **
bucket(struct bc_loop *lp, const char *key)
{
    return &lp->buckets[astro_partition_hash(key, strlen(key)) % BC_BUCKETS];
}

void
bc_index_add(struct bc_sub *s)
{
    struct bc_sub **head = s->f.key != NULL ? bucket(s->lp, s->f.key) : &s->lp->unkeyed;
    s->ihead = head;
    s->iprev = NULL;
    s->inext = *head;
    if (*head != NULL)
        (*head)->iprev = s;
    *head = s;
}

void
bc_index_remove(struct bc_sub *s)
{
    if (s->ihead == NULL)
        return;
    if (s->iprev != NULL)
        s->iprev->inext = s->inext;
    else
        *s->ihead = s->inext;
    if (s->inext != NULL)
        s->inext->iprev = s->iprev;
    s->ihead = NULL;
}

/* One item to one indexed subscriber: sent now, or its batch held while a resume runs. */
static void
offer_item(struct bc_sub *s, struct bc_batch *b, const struct bc_item *it)
{
    uint32_t slot = bc_slot(it->part, it->kind);
    if (s->ws == NULL)
        return;
    if (!s->live) {
        if (s->nheld == 0 || s->held[s->nheld - 1] != b)
            bc_sub_offer(s, b);
        return;
    }
    if (bc_filter_match(&s->f, it) && bc_id_cmp(it->id, s->seen.id[slot]) > 0)
        bc_fanout_send(s, it->msg);
}

static void
offer_list(struct bc_sub *head, struct bc_batch *b, const struct bc_item *it)
{
    for (struct bc_sub *s = head, *next; s != NULL; s = next) {
        next = s->inext; /* a send may close s; on_close runs later, from the loop */
        offer_item(s, b, it);
    }
}

void
bc_fanout_deliver(void *arg)
{
    struct bc_post *p = arg;
    struct bc_loop *lp = p->lp;
    struct bc_batch *b = p->b;
    free(p);
    if (b->stats != NULL) {
        for (struct bc_sub *s = lp->subs; s != NULL; s = s->next)
            if (s->authed && s->ws != NULL && s->route == BC_ROUTE_STATS)
                bc_fanout_send(s, b->stats);
    }
    for (size_t i = 0; i < b->n; i++) {
        const struct bc_item *it = &b->items[i];
        offer_list(lp->unkeyed, b, it);
        if (it->key != NULL)
            offer_list(*bucket(lp, it->key), b, it);
    }
    if (b->n > 0)
        astro_histogram_observe(lp->ctx->m.fanout_latency, since_s(b->t0_ns));
    bc_batch_unref(b);
}

/* Taking over a partition. The stream is the changelog: the checkpoint names the oldest entry
 * still held by an open window (R) and the watermark before it; replaying R .. last acked entry
 * silently, minus the events that outputs since R already consumed, rebuilds exactly the state
 * the previous owner had committed (tests/unit/test_leaflet_matcher.c checks this for every cut
 * of random logs). Then the entries it left pending are processed like any batch. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "astro/log.h"
#include "leaflet.h"

#define PAGE "500"

struct consumed {
    char **v; /* "rule\x1fid", sorted */
    size_t n, cap;
    const struct cep_ruleset *rules;
};

static int
cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
consumed_add(struct consumed *cs, const char *rule, const char *id)
{
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? cs->cap * 2 : 256;
        char **v = realloc(cs->v, cap * sizeof(*v));
        if (v == NULL)
            return ASTRO_ERR;
        cs->v = v;
        cs->cap = cap;
    }
    size_t len = strlen(rule) + strlen(id) + 2;
    if ((cs->v[cs->n] = malloc(len)) == NULL)
        return ASTRO_ERR;
    snprintf(cs->v[cs->n++], len, "%s\x1f%s", rule, id);
    return ASTRO_OK;
}

static bool
consumed_has(void *arg, size_t rule, const char *id)
{
    struct consumed *cs = arg;
    if (cs->n == 0) /* bsearch(NULL, 0) is undefined */
        return false;
    char key[ASTRO_EVENT_NAME_MAX + ASTRO_EVENT_ID_MAX + 4];
    snprintf(key, sizeof(key), "%s\x1f%s", cs->rules->rules[rule].name, id);
    const char *k = key;
    return bsearch(&k, cs->v, cs->n, sizeof(*cs->v), cmpstr) != NULL;
}

static void
consumed_free(struct consumed *cs)
{
    for (size_t i = 0; i < cs->n; i++)
        free(cs->v[i]);
    free(cs->v);
}

/* XRANGE key (start end COUNT PAGE, page after page; fn gets each page's entry array. */
static int
scan_range(struct cep_partition *pp, const char *key, const char *start, bool exclusive,
           const char *end, int (*fn)(struct cep_partition *, const redisReply *, void *),
           void *arg, char last[CEP_SID_STR])
{
    char from[CEP_SID_STR + 1], err[256];
    snprintf(from, sizeof(from), "%s%s", exclusive ? "(" : "", start);
    for (;;) {
        const char *argv[] = {"XRANGE", key, from, end, "COUNT", PAGE};
        redisReply *rep = astro_redis_command(pp->ctx->r, 6, argv, NULL, err, sizeof(err));
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
            astro_log_warn("partition %u: XRANGE %s: %s", pp->p, key,
                           rep ? (rep->str ? rep->str : "bad reply") : err);
            astro_redis_reply_free(pp->ctx->r, rep);
            return ASTRO_ERR;
        }
        int rc = rep->elements ? fn(pp, rep, arg) : ASTRO_OK;
        size_t n = rep->elements;
        if (n > 0) {
            const redisReply *id = rep->element[n - 1]->element[0];
            snprintf(from, sizeof(from), "(%s", id->str);
            if (last != NULL)
                snprintf(last, CEP_SID_STR, "%s", id->str);
        }
        astro_redis_reply_free(pp->ctx->r, rep);
        if (rc != ASTRO_OK)
            return ASTRO_ERR;
        if (n < 500)
            return ASTRO_OK;
    }
}

static int
note_outputs(struct cep_partition *pp, const redisReply *page, void *arg)
{
    struct consumed *cs = arg;
    char err[256];
    (void)pp;
    for (size_t i = 0; i < page->elements; i++) {
        const redisReply *fv = page->element[i]->element[1];
        struct astro_event ev;
        if (fv->type != REDIS_REPLY_ARRAY ||
            astro_event_stream_decode(fv->element, fv->elements, &ev, err, sizeof(err)) !=
                ASTRO_OK)
            continue;
        for (size_t k = 0; ev.is_multi && k < ev.n_sources; k++)
            if (consumed_add(cs, ev.rule, ev.lineage[k].id) != ASTRO_OK) {
                astro_event_cleanup(&ev);
                return ASTRO_ERR;
            }
        astro_event_cleanup(&ev);
    }
    return ASTRO_OK;
}

static int
replay_page(struct cep_partition *pp, const redisReply *page, void *arg)
{
    char err[256];
    (void)arg;
    if (cep_lease_renew(pp) != ASTRO_OK)
        return ASTRO_ERR;
    for (size_t i = 0; i < page->elements; i++) {
        const redisReply *e = page->element[i], *fv = e->element[1];
        struct cep_sid sid;
        if (cep_sid_parse(e->element[0]->str, e->element[0]->len, &sid) != ASTRO_OK ||
            cep_agg_diverted(pp, sid)) /* never entered the rules (docs/candles.md) */
            continue;
        if (fv->elements == 2 && strcmp(fv->element[0]->str, CEP_MARK_FIELD) == 0) {
            if (cep_matcher_mark(pp->m, strtoll(fv->element[1]->str, NULL, 10), sid) !=
                ASTRO_OK)
                return ASTRO_ERR;
            continue;
        }
        struct astro_event ev;
        if (astro_event_stream_decode(fv->element, fv->elements, &ev, err, sizeof(err)) !=
            ASTRO_OK)
            continue;
        int rc = cep_matcher_push(pp->m, &ev, sid);
        astro_event_cleanup(&ev);
        if (rc != ASTRO_OK)
            return ASTRO_ERR;
        astro_counter_inc(pp->ctx->met.replayed);
    }
    return ASTRO_OK;
}

/* Rebuilds from "R wm out_pos last_acked". */
static int
rebuild(struct cep_partition *pp, const char *ckpt)
{
    char r[CEP_SID_STR], out_pos[CEP_SID_STR], last[CEP_SID_STR];
    int64_t wm;
    struct consumed cs = {.rules = &pp->ctx->rules};
    if (sscanf(ckpt, "%43s %" SCNd64 " %43s %43s", r, &wm, out_pos, last) != 4 ||
        cep_sid_parse(last, strlen(last), &pp->last_acked) != ASTRO_OK) {
        astro_log_error("partition %u: corrupt checkpoint \"%s\", starting empty", pp->p, ckpt);
        return ASTRO_OK;
    }
    snprintf(pp->last_out, sizeof(pp->last_out), "%s", out_pos);
    /* state rebuilt from R may stay held past our first batches: R's output position is the
     * checkpoint's, not the one before our first batch */
    if (cep_sid_parse(r, strlen(r), &pp->pos[0].first) != ASTRO_OK)
        return ASTRO_ERR;
    snprintf(pp->pos[0].out_pos, sizeof(pp->pos[0].out_pos), "%s", out_pos);
    pp->npos = 1;
    if (scan_range(pp, pp->multi, out_pos, true, "+", note_outputs, &cs, pp->last_out) !=
        ASTRO_OK)
        goto fail;
    if (cs.n > 0) /* qsort(NULL, 0) is undefined */
        qsort(cs.v, cs.n, sizeof(*cs.v), cmpstr);
    cep_matcher_set_watermark(pp->m, wm);
    cep_matcher_set_silent(pp->m, true, consumed_has, &cs);
    int rc = scan_range(pp, pp->mono, r, false, last, replay_page, NULL, NULL);
    cep_matcher_set_silent(pp->m, false, NULL, NULL);
    consumed_free(&cs);
    astro_log_info("partition %u: rebuilt from %s to %s (%zu consumed ids)", pp->p, r, last,
                   cs.n);
    return rc;
fail:
    consumed_free(&cs);
    return ASTRO_ERR;
}

/* A fresh partition: outputs continue after the stream's current end. */
static int
last_output(struct cep_partition *pp)
{
    char err[256];
    const char *argv[] = {"XREVRANGE", pp->multi, "+", "-", "COUNT", "1"};
    redisReply *rep = astro_redis_command(pp->ctx->r, 6, argv, NULL, err, sizeof(err));
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        astro_redis_reply_free(pp->ctx->r, rep);
        return ASTRO_ERR;
    }
    snprintf(pp->last_out, sizeof(pp->last_out), "%s",
             rep->elements ? rep->element[0]->element[0]->str : "0-0");
    astro_redis_reply_free(pp->ctx->r, rep);
    return ASTRO_OK;
}

/* XAUTOCLAIM every pending entry of the group (the old owner's and our own) and process them
 * in order as ordinary batches. */
static int
claim_pending(struct cep_partition *pp)
{
    char start[CEP_SID_STR] = "0-0", count[24], err[256];
    snprintf(count, sizeof(count), "%" PRId64, pp->ctx->cfg->batch);
    for (;;) {
        const char *argv[] = {"XAUTOCLAIM", pp->mono, CEP_GROUP, pp->ctx->instance, "0",
                              start, "COUNT", count};
        redisReply *rep = astro_redis_command(pp->ctx->r, 8, argv, NULL, err, sizeof(err));
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 2) {
            astro_redis_reply_free(pp->ctx->r, rep);
            return ASTRO_ERR;
        }
        snprintf(start, sizeof(start), "%s", rep->element[0]->str);
        int rc = cep_lease_renew(pp) == ASTRO_OK ? cep_part_batch(pp, rep->element[1])
                                                  : ASTRO_ERR;
        astro_redis_reply_free(pp->ctx->r, rep);
        if (rc != ASTRO_OK)
            return ASTRO_ERR;
        if (strcmp(start, "0-0") == 0)
            return ASTRO_OK;
    }
}

int
cep_part_take(struct cep_partition *pp)
{
    char err[256] = "";
    redisReply *ck = NULL;
    free(pp->pos);
    pp->npos = 0;
    pp->cappos = 16;
    if ((pp->pos = malloc(pp->cappos * sizeof(*pp->pos))) == NULL ||
        astro_redis_group_create(pp->ctx->r, pp->mono, CEP_GROUP, "0", err, sizeof(err)) !=
            ASTRO_OK ||
        (pp->m = cep_part_matcher_new(pp)) == NULL || cep_agg_take(pp) != ASTRO_OK)
        goto fail;
    const char *argv[] = {"GET", pp->ckpt};
    ck = astro_redis_command(pp->ctx->r, 2, argv, NULL, err, sizeof(err));
    if (ck == NULL)
        goto fail;
    pp->last_acked = (struct cep_sid){0, 0};
    int rc = ck->type == REDIS_REPLY_STRING ? rebuild(pp, ck->str) : last_output(pp);
    astro_redis_reply_free(pp->ctx->r, ck);
    if (rc != ASTRO_OK)
        goto fail;
    pp->owned = true;
    pp->last_event_ms = pp->last_marker_ms = cep_mono_ms();
    astro_counter_inc(pp->ctx->met.rebuilds);
    if (claim_pending(pp) != ASTRO_OK)
        goto fail;
    return ASTRO_OK;
fail:
    astro_counter_inc(pp->ctx->met.redis_errors);
    astro_log_warn("partition %u: takeover failed%s%s", pp->p, err[0] ? ": " : "", err);
    cep_part_drop(pp);
    return ASTRO_ERR;
}

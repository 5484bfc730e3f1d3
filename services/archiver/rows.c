/* A batch of stream entries: decoding XREADGROUP/XAUTOCLAIM replies into events (undecodable
 * entries set aside as rejects, never sent to PostgreSQL) and writing them as COPY rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "archiver.h"
#include "astro/partition.h"
#include "astro/time.h"
#include "astro/utf8.h"

void
arc_batch_init(struct arc_batch *b)
{
    memset(b, 0, sizeof(*b));
}

void
arc_batch_reset(struct arc_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        astro_event_cleanup(&b->rows[i].ev);
        if (b->rows[i].candle != NULL) {
            astro_candle_cleanup(b->rows[i].candle);
            free(b->rows[i].candle);
        }
    }
    for (size_t i = 0; i < b->nrep; i++)
        freeReplyObject(b->replies[i]);
    b->n = b->nrej = b->nrep = 0;
    b->first_us = 0;
}

void
arc_batch_cleanup(struct arc_batch *b)
{
    arc_batch_reset(b);
    free(b->rows);
    free(b->rejects);
    free(b->replies);
    memset(b, 0, sizeof(*b));
}

/* Grows *arr (of elem-sized items) so that one more fits. */
static int
grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return ASTRO_OK;
    size_t ncap = *cap ? *cap * 2 : 256;
    void *p = realloc(*arr, ncap * elem);
    if (p == NULL)
        return ASTRO_ERR;
    *arr = p;
    *cap = ncap;
    return ASTRO_OK;
}

static void
add_reject(struct arc_batch *b, int stream, const char *id, const redisReply *fields,
           const char *reason)
{
    if (grow((void **)&b->rejects, &b->caprej, b->nrej, sizeof(*b->rejects)) != ASTRO_OK)
        return; /* stays pending: retried after ASTRO_CLAIM_IDLE */
    struct arc_reject *r = &b->rejects[b->nrej++];
    r->stream = stream;
    snprintf(r->entry_id, sizeof(r->entry_id), "%s", id);
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
    r->fields = fields;
    r->marker = false;
}

/* Decodes one [id, [f, v, ...]] entry into a row or a reject. */
static int
add_entry(struct arc_batch *b, const redisReply *e, int stream, enum arc_kind kind)
{
    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= ARC_ENTRY_ID_MAX)
        return ASTRO_OK; /* a deleted entry (nil) or not an entry: nothing to archive */
    const char *id = e->element[0]->str;
    const redisReply *f = e->element[1];
    if (f == NULL || f->type != REDIS_REPLY_ARRAY) {
        add_reject(b, stream, id, NULL, "stream entry: no field/value array");
        return ASTRO_OK;
    }
    if (grow((void **)&b->rows, &b->cap, b->n, sizeof(*b->rows)) != ASTRO_OK)
        return ASTRO_ERR;
    struct arc_row *row = &b->rows[b->n];
    memset(row, 0, sizeof(*row));
    char why[160];
    if (kind == ARC_MONO && astro_event_stream_is_marker(f->element, f->elements)) {
        add_reject(b, stream, id, f, "watermark marker");
        if (b->nrej > 0 && strcmp(b->rejects[b->nrej - 1].entry_id, id) == 0)
            b->rejects[b->nrej - 1].marker = true;
        return ASTRO_OK;
    }
    if (kind == ARC_CANDLE) {
        if (arc_candle_decode(f, &row->candle, why, sizeof(why)) != ASTRO_OK) {
            add_reject(b, stream, id, f, why);
            return ASTRO_OK;
        }
        goto keep;
    }
    if (kind > ARC_MULTI) {
        if (arc_side_decode(kind, f, &row->side, why, sizeof(why)) != ASTRO_OK) {
            add_reject(b, stream, id, f, why);
            return ASTRO_OK;
        }
        goto keep;
    }
    if (astro_event_stream_decode(f->element, f->elements, &row->ev, why, sizeof(why)) !=
        ASTRO_OK) {
        add_reject(b, stream, id, f, why);
        return ASTRO_OK;
    }
    if ((kind == ARC_MULTI) != row->ev.is_multi) {
        astro_event_cleanup(&row->ev);
        add_reject(b, stream, id, f,
                   kind == ARC_MULTI ? "stream entry: multi stream entry without multi fields"
                                     : "stream entry: multi fields in a mono stream");
        return ASTRO_OK;
    }
keep:
    row->stream = stream;
    memcpy(row->entry_id, id, e->element[0]->len + 1);
    row->fields = f;
    b->n++;
    return ASTRO_OK;
}

long
arc_batch_add_entries(struct arc_batch *b, redisReply *reply, const redisReply *entries,
                      int stream, enum arc_kind kind)
{
    if (grow((void **)&b->replies, &b->caprep, b->nrep, sizeof(*b->replies)) != ASTRO_OK) {
        freeReplyObject(reply);
        return -1;
    }
    if (reply != NULL)
        b->replies[b->nrep++] = reply;
    if (entries == NULL || entries->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i < entries->elements; i++)
        if (add_entry(b, entries->element[i], stream, kind) != ASTRO_OK)
            return -1;
    return (long)entries->elements;
}

/* Columns of both event tables, in their order: event_id, ts, source_stream, key, event_type,
 * value, metadata, stream_entry_id. Absent metadata is '{}' (the column is NOT NULL). */
static int
copy_common(const struct arc_row *r, struct astro_pg_copybuf *buf)
{
    char ts[40], val[ASTRO_EVENT_DOUBLE_BUF];
    if (astro_time_format(r->ev.ts_us, ts, sizeof(ts)) != ASTRO_OK)
        return ASTRO_ERR;
    astro_event_format_double(r->ev.value, val);
    if (astro_pg_copybuf_str(buf, r->ev.id) != ASTRO_OK ||
        astro_pg_copybuf_str(buf, ts) != ASTRO_OK ||
        astro_pg_copybuf_str(buf, r->ev.src) != ASTRO_OK ||
        astro_pg_copybuf_str(buf, r->ev.key) != ASTRO_OK ||
        astro_pg_copybuf_str(buf, r->ev.type) != ASTRO_OK ||
        astro_pg_copybuf_str(buf, val) != ASTRO_OK ||
        astro_pg_copybuf_str(buf, r->ev.meta_json ? r->ev.meta_json : "{}") != ASTRO_OK)
        return ASTRO_ERR;
    return astro_pg_copybuf_str(buf, r->entry_id);
}

/* source_events as a PostgreSQL array literal: {"id1","id2"} with " and \ escaped. */
static char *
sources_literal(const struct astro_event *ev)
{
    size_t cap = 3 + ev->n_sources * (2 * ASTRO_EVENT_ID_MAX + 3);
    char *s = malloc(cap), *p = s;
    if (s == NULL)
        return NULL;
    *p++ = '{';
    for (size_t i = 0; i < ev->n_sources; i++) {
        if (i > 0)
            *p++ = ',';
        *p++ = '"';
        for (const char *c = ev->lineage[i].id; *c != '\0'; c++) {
            if (*c == '"' || *c == '\\')
                *p++ = '\\';
            *p++ = *c;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return s;
}

/* lineage in its wire (JSON) form, as the query API returns it. */
static char *
lineage_json(const struct astro_event *ev)
{
    cJSON *obj = astro_event_to_json(ev);
    if (obj == NULL)
        return NULL;
    char *s = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(obj, "lineage"));
    cJSON_Delete(obj);
    return s;
}

/* Extra multi_events columns: correlation_rule, integrated_value, confidence, source_events,
 * lineage. */
static int
copy_multi(const struct arc_row *r, struct astro_pg_copybuf *buf)
{
    char ival[ASTRO_EVENT_DOUBLE_BUF], conf[ASTRO_EVENT_DOUBLE_BUF];
    astro_event_format_double(r->ev.integrated_value, ival);
    astro_event_format_double(r->ev.confidence, conf);
    char *srcs = sources_literal(&r->ev), *lin = lineage_json(&r->ev);
    int rc = ASTRO_ERR;
    if (srcs != NULL && lin != NULL && astro_pg_copybuf_str(buf, r->ev.rule) == ASTRO_OK &&
        astro_pg_copybuf_str(buf, ival) == ASTRO_OK &&
        astro_pg_copybuf_str(buf, conf) == ASTRO_OK &&
        astro_pg_copybuf_str(buf, srcs) == ASTRO_OK && astro_pg_copybuf_str(buf, lin) == ASTRO_OK)
        rc = ASTRO_OK;
    free(srcs);
    cJSON_free(lin);
    return rc;
}

/* Key columns: row index, event_id, ts (the same text as the row's). */
static int
copy_key(const struct arc_row *r, size_t idx, struct astro_pg_copybuf *buf)
{
    char i[24], ts[40];
    snprintf(i, sizeof(i), "%zu", idx);
    if (astro_time_format(r->ev.ts_us, ts, sizeof(ts)) != ASTRO_OK)
        return ASTRO_ERR;
    if (astro_pg_copybuf_str(buf, i) != ASTRO_OK || astro_pg_copybuf_str(buf, r->ev.id) != ASTRO_OK ||
        astro_pg_copybuf_str(buf, ts) != ASTRO_OK)
        return ASTRO_ERR;
    return astro_pg_copybuf_end_row(buf);
}

static int
copy_full(const struct arc_row *r, enum arc_kind kind, struct astro_pg_copybuf *buf)
{
    if (copy_common(r, buf) != ASTRO_OK)
        return ASTRO_ERR;
    if (kind == ARC_MULTI && copy_multi(r, buf) != ASTRO_OK)
        return ASTRO_ERR;
    return astro_pg_copybuf_end_row(buf);
}

long
arc_rows_copy(const struct arc_row *rows, size_t lo, size_t hi, enum arc_kind kind,
              const struct arc_stream *streams, const bool *skip, bool keys,
              struct astro_pg_copybuf *buf)
{
    long n = 0;
    for (size_t i = lo; i < hi; i++) {
        const struct arc_row *r = &rows[i];
        if (streams[r->stream].kind != kind || (skip != NULL && skip[i - lo]))
            continue;
        if ((keys ? copy_key(r, i, buf) : copy_full(r, kind, buf)) != ASTRO_OK)
            return -1;
        n++;
    }
    return n;
}

/* Hash of what makes a row unique in its table: kind, event id and time. */
static uint64_t
row_hash(const struct arc_row *r, enum arc_kind kind)
{
    uint64_t h = astro_partition_hash(r->ev.id, strlen(r->ev.id));
    return (h ^ (uint64_t)r->ev.ts_us * UINT64_C(0x9e3779b97f4a7c15)) + (uint64_t)kind;
}

long
arc_rows_mark_dups(const struct arc_row *rows, size_t lo, size_t hi,
                   const struct arc_stream *streams, bool *skip)
{
    size_t n = hi - lo, cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    size_t *slot = malloc(cap * sizeof(*slot)); /* row index + 1; 0 = empty */
    if (slot == NULL)
        return -1;
    memset(slot, 0, cap * sizeof(*slot));
    long dups = 0;
    for (size_t i = lo; i < hi; i++) {
        enum arc_kind k = streams[rows[i].stream].kind;
        if (k > ARC_MULTI)
            continue; /* side rows are upserts: idempotent one by one */
        size_t h = (size_t)row_hash(&rows[i], k) & (cap - 1);
        for (; slot[h] != 0; h = (h + 1) & (cap - 1)) {
            const struct arc_row *o = &rows[slot[h] - 1];
            if (streams[o->stream].kind == k && o->ev.ts_us == rows[i].ev.ts_us &&
                strcmp(o->ev.id, rows[i].ev.id) == 0)
                break;
        }
        if (slot[h] != 0) {
            skip[i - lo] = true;
            dups++;
        } else {
            slot[h] = i + 1;
        }
    }
    free(slot);
    return dups;
}

char *
arc_fields_json(const redisReply *fields)
{
    cJSON *obj = cJSON_CreateObject();
    if (obj == NULL)
        return NULL;
    for (size_t i = 0; fields != NULL && i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        /* jsonb refuses invalid UTF-8 and NUL: keep the record, say what was there. */
        bool kok = astro_utf8_valid(k->str, k->len) && strlen(k->str) == k->len;
        bool vok = astro_utf8_valid(v->str, v->len) && strlen(v->str) == v->len;
        char note[64];
        snprintf(note, sizeof(note), "<%zu bytes, not UTF-8 text>", v->len);
        cJSON_AddItemToObject(obj, kok ? k->str : "<binary field>",
                              cJSON_CreateString(vok ? v->str : note));
    }
    char *s = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    return s;
}

/* Candles inside a partition's batch (issue 9): every entry goes through the matcher first (it
 * decides late and duplicate), accepted events of candle types then update the candle state,
 * and each watermark advance closes buckets. Closed candles become XADDs to astro:agg:{p} and
 * the changed state HSETs to astro:aggstate:{p}, both records of the partition's commit script,
 * so they commit atomically with the XACK of the entries that produced them.
 *
 * Takeover: the new owner restores the state from astro:aggstate:{p} (written by the last
 * commit) and does not feed the silent rebuild replay to the candles (rebuild.c pushes those
 * entries to the matcher directly): every entry up to the last acked one is in the snapshot,
 * every later one is still pending and is processed as an ordinary batch. The snapshot's "@pos"
 * is a second guard: candles ignore entries at or before it.
 *
 * Outlier screening runs first, on arrival: an outlier gets an `o` record (XADD astro:outliers)
 * and, when diverted, goes no further. The diverted ids at or after the rebuild point are part
 * of the snapshot, so a new owner's silent replay skips them too. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "astro/log.h"
#include "astro/partition.h"
#include "candles.h"
#include "leaflet.h"
#include "outliers.h"

static void
count(struct astro_counter *c, uint64_t n)
{
    if (c != NULL && n > 0)
        astro_counter_add(c, n);
}

/* A closed candle: an `a` record (XADD astro:agg:{p}) of the commit. */
static void
on_candle(void *arg, const struct astro_candle *c)
{
    struct cep_partition *pp = arg;
    struct astro_stream_fields f;
    astro_stream_fields_init(&f);
    if (astro_candle_stream_encode(c, &f) != ASTRO_OK ||
        cep_part_record(pp, "a", f.argc) != ASTRO_OK ||
        cep_cmdbuf_args(&pp->out, f.argc, f.argv, f.argvlen) != ASTRO_OK) {
        astro_log_error("partition %u: candle %s %s %s not encodable", pp->p, c->key, c->type,
                        c->tf);
        pp->failed = true;
    }
    astro_stream_fields_cleanup(&f);
    count(pp->ctx->met.candles, 1);
}

/* Brings the leaflet_candle_series gauge (the sum over the owned partitions) up to date. */
static void
report_series(struct cep_partition *pp)
{
    size_t n = pp->cs != NULL ? pp->cs->ngroups : 0;
    if (pp->ctx->met.series != NULL && n != pp->nseries)
        astro_gauge_add(pp->ctx->met.series, (double)n - (double)pp->nseries);
    pp->nseries = n;
}

static int
restore_field(struct cep_partition *pp, const redisReply *f, const redisReply *v, size_t *skipped)
{
    bool handled = false;
    if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
        return ASTRO_ERR;
    if (pp->os != NULL &&
        cep_outliers_restore(pp->os, f->str, f->len, v->str, v->len, &handled) != ASTRO_OK)
        return ASTRO_ERR;
    if (handled)
        return ASTRO_OK;
    if (pp->cs == NULL || f->str[0] == 'o' || strcmp(f->str, "@divert") == 0) {
        (*skipped)++; /* state of a feature now off */
        return ASTRO_OK;
    }
    return cep_candles_restore(pp->cs, f->str, f->len, v->str, v->len, skipped);
}

static int
restore_all(struct cep_partition *pp, const redisReply *rep)
{
    size_t skipped = 0, bad = 0;
    for (size_t i = 0; i + 1 < rep->elements; i += 2)
        if (restore_field(pp, rep->element[i], rep->element[i + 1], &skipped) != ASTRO_OK)
            bad++;
    if (bad > 0) /* a corrupt field loses that series' state, never the partition */
        astro_log_error("partition %u: %zu candle state fields of %s not restorable", pp->p, bad,
                        pp->aggstate);
    astro_log_info("partition %u: aggregate state restored (%zu fields, %zu of another config)",
                   pp->p, rep->elements / 2, skipped);
    return ASTRO_OK;
}

int
cep_agg_take(struct cep_partition *pp)
{
    char err[256];
    const struct cep_agg_cfg *cfg = &pp->ctx->rules.agg;
    cep_agg_drop(pp);
    snprintf(pp->aggstate, sizeof(pp->aggstate), "astro:aggstate:{%" PRIu32 "}", pp->p);
    if (astro_stream_key(pp->agg, sizeof(pp->agg), "agg", pp->p) != ASTRO_OK)
        return ASTRO_ERR;
    if (!cep_agg_cfg_active(cfg))
        return ASTRO_OK;
    int64_t ttl_us = pp->ctx->cfg->series_ttl_ms * 1000;
    if ((cfg->ncandles > 0 && (pp->cs = cep_candles_new(cfg, ttl_us, on_candle, pp)) == NULL) ||
        (cfg->outliers.mode != CEP_OUTLIER_OFF &&
         (pp->os = cep_outliers_new(&cfg->outliers)) == NULL))
        return ASTRO_ERR;
    const char *argv[] = {"HGETALL", pp->aggstate};
    redisReply *rep = astro_redis_command(pp->ctx->r, 2, argv, NULL, err, sizeof(err));
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        astro_log_warn("partition %u: HGETALL %s: %s", pp->p, pp->aggstate,
                       rep ? "unexpected reply" : err);
        astro_redis_reply_free(pp->ctx->r, rep);
        return ASTRO_ERR;
    }
    int rc = restore_all(pp, rep);
    astro_redis_reply_free(pp->ctx->r, rep);
    report_series(pp);
    return rc;
}

void
cep_agg_drop(struct cep_partition *pp)
{
    cep_candles_free(pp->cs);
    pp->cs = NULL;
    report_series(pp);
    cep_outliers_free(pp->os);
    pp->os = NULL;
}

int64_t
cep_agg_next_close(const struct cep_partition *pp)
{
    return pp->cs != NULL && pp->cs->closing.n > 0 ? pp->cs->closing.v[0].at : INT64_MAX;
}

bool
cep_agg_diverted(const struct cep_partition *pp, struct cep_sid sid)
{
    return pp->os != NULL && cep_outliers_was_diverted(pp->os, sid);
}

/* An outlier: an `o` record, the event's fields plus the band and what was done with it. */
static void
outlier_record(struct cep_partition *pp, const struct astro_event *ev, struct cep_sid sid,
               const struct cep_outlier_band *b)
{
    struct astro_stream_fields f;
    char num[4][ASTRO_EVENT_DOUBLE_BUF], sidbuf[CEP_SID_STR];
    const char *mode = pp->os->cfg->mode == CEP_OUTLIER_DIVERT ? "divert" : "flag";
    astro_event_format_double(b->median, num[0]);
    astro_event_format_double(b->mad, num[1]);
    astro_event_format_double(b->lo, num[2]);
    astro_event_format_double(b->hi, num[3]);
    cep_sid_format(sid, sidbuf);
    astro_stream_fields_init(&f);
    const char *extra[] = {"median", num[0], "mad", num[1], "lo", num[2], "hi", num[3],
                           "mode", mode, "stream", pp->mono, "entry", sidbuf};
    if (astro_event_stream_encode(ev, &f) != ASTRO_OK ||
        cep_part_record(pp, "o", f.argc + (int)ASTRO_ARRAY_LEN(extra)) != ASTRO_OK ||
        cep_cmdbuf_args(&pp->out, f.argc, f.argv, f.argvlen) != ASTRO_OK ||
        cep_cmdbuf_args(&pp->out, (int)ASTRO_ARRAY_LEN(extra), extra, NULL) != ASTRO_OK)
        pp->failed = true;
    astro_stream_fields_cleanup(&f);
    count(pp->os->cfg->mode == CEP_OUTLIER_DIVERT ? pp->ctx->met.outliers_diverted
                                                  : pp->ctx->met.outliers_flagged,
          1);
}

/* Screens ev; returns 1 when it is diverted (goes no further), 0 to go on, -1 on failure. */
static int
screen(struct cep_partition *pp, const struct astro_event *ev, struct cep_sid sid)
{
    struct cep_outlier_band band;
    int v = cep_outliers_screen(pp->os, ev->key, ev->type, ev->value, sid, &band);
    if (v <= 0)
        return v;
    outlier_record(pp, ev, sid, &band);
    return pp->os->cfg->mode == CEP_OUTLIER_DIVERT;
}

/* Moves the candles to the matcher's watermark (closing candles, expiring idle series). */
static int
advance(struct cep_partition *pp)
{
    uint64_t expired = pp->cs->st.expired;
    int rc = cep_candles_advance(pp->cs, cep_matcher_watermark(pp->m));
    count(pp->ctx->met.series_expired, pp->cs->st.expired - expired);
    return rc;
}

int
cep_agg_push(struct cep_partition *pp, const struct astro_event *ev, struct cep_sid sid)
{
    if (pp->os != NULL) {
        int v = screen(pp, ev, sid);
        if (v != 0)
            return v > 0 ? ASTRO_OK : ASTRO_ERR;
    }
    if (pp->cs == NULL)
        return cep_matcher_push(pp->m, ev, sid);
    struct cep_matcher_stats a, b;
    cep_matcher_stats(pp->m, &a);
    if (cep_matcher_push(pp->m, ev, sid) != ASTRO_OK)
        return ASTRO_ERR;
    cep_matcher_stats(pp->m, &b);
    if (b.late == a.late && b.duplicates == a.duplicates) {
        uint64_t bad = pp->cs->st.bad_volume;
        if (cep_candles_add(pp->cs, ev->key, ev->type, ev->ts_us, sid, ev->value,
                            ev->meta_json) != ASTRO_OK)
            return ASTRO_ERR;
        count(pp->ctx->met.bad_volume, pp->cs->st.bad_volume - bad);
    } else if (b.late != a.late && cep_agg_cfg_candles(pp->cs->cfg, ev->type) != NULL) {
        count(pp->ctx->met.candle_late, 1);
    }
    return advance(pp);
}

int
cep_agg_mark(struct cep_partition *pp, int64_t wm_us, struct cep_sid sid)
{
    if (cep_matcher_mark(pp->m, wm_us, sid) != ASTRO_OK)
        return ASTRO_ERR;
    return pp->cs ? advance(pp) : ASTRO_OK;
}

/* `publish`: an open candle's running state, JSON as astro_candle_to_json() (no indicators),
 * PUBLISHed by the commit script after the batch's state changes commit. */
static void
on_open(void *arg, const struct astro_candle *c)
{
    struct cep_partition *pp = arg;
    cJSON *o = astro_candle_to_json(c);
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    if (text == NULL || cep_part_record(pp, "p", 1) != ASTRO_OK ||
        cep_cmdbuf_arg(&pp->out, text, strlen(text)) != ASTRO_OK)
        pp->failed = true;
    cJSON_free(text);
    cJSON_Delete(o);
}

/* A snapshot field: an `h` record (HSET), or an `x` record (HDEL) when v is NULL. */
static int
put_field(void *arg, const char *f, size_t flen, const char *v, size_t vlen)
{
    struct cep_partition *pp = arg;
    if (v == NULL)
        return cep_part_record(pp, "x", 1) == ASTRO_OK ? cep_cmdbuf_arg(&pp->out, f, flen)
                                                         : ASTRO_ERR;
    if (cep_part_record(pp, "h", 2) != ASTRO_OK || cep_cmdbuf_arg(&pp->out, f, flen) != ASTRO_OK ||
        cep_cmdbuf_arg(&pp->out, v, vlen) != ASTRO_OK)
        return ASTRO_ERR;
    return ASTRO_OK;
}

int
cep_agg_prepare(struct cep_partition *pp)
{
    int64_t bytes = 0, n = 0;
    if (pp->os != NULL) {
        struct cep_sid r;
        int64_t wm;
        if (cep_matcher_checkpoint(pp->m, &r, &wm)) /* the rebuild point this commit records */
            cep_outliers_prune(pp->os, r);
        if ((bytes = cep_outliers_snapshot(pp->os, put_field, pp)) < 0)
            return ASTRO_ERR;
    }
    if (pp->cs != NULL && pp->cs->cfg->publish)
        cep_candles_each_open(pp->cs, on_open, pp);
    if (pp->failed || (pp->cs != NULL && (n = cep_candles_snapshot(pp->cs, put_field, pp)) < 0))
        return ASTRO_ERR;
    bytes += n;
    count(pp->ctx->met.snap_bytes, (uint64_t)bytes);
    report_series(pp);
    return ASTRO_OK;
}

#define COUNTER(field, name, help)                                                              \
    ((ctx->met.field = astro_metrics_counter(reg, name, help, NULL)) != NULL)
#define GAUGE(field, name, help)                                                                \
    ((ctx->met.field = astro_metrics_gauge(reg, name, help, NULL)) != NULL)

int
cep_agg_metrics(struct cep_ctx *ctx)
{
    struct astro_metrics *reg = astro_service_metrics(ctx->svc);
    bool ok = COUNTER(candles, "leaflet_candles_total", "Closed candles written to astro:agg") &&
              COUNTER(candle_late, "leaflet_candle_late_total",
                      "Events of candle types later than the watermark (astro:late)") &&
              COUNTER(bad_volume, "leaflet_candle_bad_volume_total",
                      "Candle events whose volume field is not a number >= 0 (volume 0)") &&
              COUNTER(snap_bytes, "leaflet_candle_snapshot_bytes_total",
                      "Bytes of candle and outlier state written to astro:aggstate") &&
              COUNTER(outliers_flagged, "leaflet_outliers_flagged_total",
                      "Outliers flagged (processed, and an entry in astro:outliers)") &&
              COUNTER(outliers_diverted, "leaflet_outliers_diverted_total",
                      "Outliers diverted (excluded from rules and candles; astro:outliers)") &&
              COUNTER(series_expired, "leaflet_candle_series_expired_total",
                      "Candle series dropped after ASTRO_LEAFLET_SERIES_TTL without events") &&
              GAUGE(series, "leaflet_candle_series",
                    "Candle series (event type, key) held by the owned partitions");
    return ok ? ASTRO_OK : ASTRO_ERR;
}

/* The command of one write-script call, laid out for the script in write.c and written straight
 * in the Redis protocol.
 *
 * Redis interns every script argument as a Lua string and every redis.call converts them back,
 * so the layout passes each value once and nothing the script can hold as a constant: the
 * stream field names live in the script, the partition's keys and the settings come once per
 * call, an event's key once per run of consecutive events with that key. The command is built
 * in one buffer instead of an argv that hiredis formats again (a printf-style append per
 * argument was a tenth of ingest's CPU). The values are those of astro_event_stream_encode
 * (test_ingest_write checks they stay so). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "astro/partition.h"
#include "astro/time.h"
#include "ingest.h"

/* Per event: id ts src type val meta json (the key comes with its run). */
#define PER_EVENT 7

static size_t
fmt_u64(char *out, unsigned long long v)
{
    char tmp[24];
    size_t n = 0, o = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n > 0)
        out[o++] = tmp[--n];
    out[o] = '\0';
    return o;
}

/* %lld, as the stream encoder writes ts. */
static size_t
fmt_i64(char *out, long long v)
{
    if (v >= 0)
        return fmt_u64(out, (unsigned long long)v);
    out[0] = '-';
    return 1 + fmt_u64(out + 1, 0ULL - (unsigned long long)v);
}

static void
put_bulk(struct ing_text *t, const char *s, size_t len)
{
    char hdr[32];
    size_t h = 1;
    hdr[0] = '$';
    h += fmt_u64(hdr + 1, len);
    hdr[h++] = '\r';
    hdr[h++] = '\n';
    ing_text_put(t, hdr, h);
    ing_text_put(t, s, len);
    ing_text_put(t, "\r\n", 2);
}

static void
put_str(struct ing_text *t, const char *s)
{
    put_bulk(t, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

static void
put_num(struct ing_text *t, unsigned long long v)
{
    char num[24];
    put_bulk(t, num, fmt_u64(num, v));
}

static size_t
count_runs(const struct astro_event *ev, const size_t *idx, size_t n)
{
    size_t runs = n > 0;
    for (size_t i = 1; i < n; i++)
        runs += strcmp(ev[idx[i]].key, ev[idx[i - 1]].key) != 0;
    return runs;
}

/* The seven per-event values. json is scratch space for the recent buffer's text. */
static int
put_event(struct ing_text *t, struct ing_text *json, const struct ing_ctx *ctx,
          const struct astro_event *ev)
{
    char ts[24], val[ASTRO_EVENT_DOUBLE_BUF];
    if (ev->is_multi || ev->ts_us < ASTRO_TIME_MIN_US || ev->ts_us > ASTRO_TIME_MAX_US ||
        !isfinite(ev->value))
        return ASTRO_ERR; /* what the stream encoder refuses */
    size_t tn = fmt_i64(ts, (long long)ev->ts_us);
    astro_event_format_double(ev->value, val);
    put_str(t, ev->id);
    put_bulk(t, ts, tn);
    put_str(t, ev->src);
    put_str(t, ev->type);
    put_str(t, val);
    put_str(t, ev->meta_json); /* "" = no meta field, as NULL makes the encoder omit it */
    if (ctx->cfg->recent_max == 0) { /* no recent buffer: the script ignores the text */
        put_bulk(t, "", 0);
        return ASTRO_OK;
    }
    json->len = 0;
    if (ing_event_json_put(json, ev, val) != ASTRO_OK)
        return ASTRO_ERR;
    put_bulk(t, json->buf, json->len);
    return ASTRO_OK;
}

/* KEYS: the stream, the dedup bucket prefix, one recent buffer per run. */
static int
put_keys(struct ing_text *t, const struct astro_event *ev, const size_t *idx, size_t n,
         uint32_t p)
{
    char buf[64];
    if (astro_stream_key(buf, sizeof(buf), "mono", p) != ASTRO_OK)
        return ASTRO_ERR;
    put_str(t, buf);
    snprintf(buf, sizeof(buf), "astro:dedupset:{%u}:", p);
    put_str(t, buf);
    int plen = snprintf(buf, sizeof(buf), "astro:recent:{%u}:", p);
    for (size_t i = 0; i < n; i++) {
        const char *key = ev[idx[i]].key;
        if (i > 0 && strcmp(key, ev[idx[i - 1]].key) == 0)
            continue;
        char hdr[32];
        size_t klen = strlen(key), h = 1;
        hdr[0] = '$';
        h += fmt_u64(hdr + 1, (size_t)plen + klen);
        hdr[h++] = '\r';
        hdr[h++] = '\n';
        ing_text_put(t, hdr, h);
        ing_text_put(t, buf, (size_t)plen);
        ing_text_put(t, key, klen);
        ing_text_put(t, "\r\n", 2);
    }
    return ASTRO_OK;
}

/* ARGV after the settings: per run its key and event count, then its events. */
static int
put_runs(struct ing_text *t, const struct ing_ctx *ctx, const struct astro_event *ev,
         const size_t *idx, size_t n)
{
    struct ing_text json = {0};
    int rc = ASTRO_OK;
    for (size_t i = 0; i < n && rc == ASTRO_OK;) {
        size_t run = 1;
        while (i + run < n && strcmp(ev[idx[i + run]].key, ev[idx[i]].key) == 0)
            run++;
        put_str(t, ev[idx[i]].key);
        put_num(t, run);
        for (size_t k = 0; k < run && rc == ASTRO_OK; k++)
            rc = put_event(t, &json, ctx, &ev[idx[i + k]]);
        i += run;
    }
    free(json.buf);
    return rc;
}

int
ing_call_cmd_build(struct ing_text *cmd, const struct ing_ctx *ctx, uint32_t p,
                   const struct astro_event *ev, const size_t *idx, size_t n, bool eval_body)
{
    char head[24];
    size_t runs = count_runs(ev, idx, n);
    size_t argc = 3 + (2 + runs) + 3 + 2 * runs + PER_EVENT * n;
    memset(cmd, 0, sizeof(*cmd));
    if ((cmd->buf = malloc(cmd->cap = 512 + 320 * n)) == NULL)
        return ASTRO_ERR;
    head[0] = '*';
    size_t h = 1 + fmt_u64(head + 1, argc);
    ing_text_put(cmd, head, h);
    ing_text_put(cmd, "\r\n", 2);
    put_str(cmd, eval_body ? "EVAL" : "EVALSHA");
    put_str(cmd, eval_body ? ing_write_script : ctx->script_sha);
    put_num(cmd, 2 + runs);
    if (put_keys(cmd, ev, idx, n, p) != ASTRO_OK)
        goto fail;
    put_num(cmd, (unsigned long long)ctx->cfg->dedup_ms);
    put_num(cmd, (unsigned long long)ctx->cfg->recent_max);
    put_num(cmd, ING_DEDUP_BUCKETS);
    if (put_runs(cmd, ctx, ev, idx, n) != ASTRO_OK || cmd->oom)
        goto fail;
    return ASTRO_OK;
fail:
    free(cmd->buf);
    memset(cmd, 0, sizeof(*cmd));
    return ASTRO_ERR;
}

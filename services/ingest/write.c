/* The write path: one Lua script call per partition group of a batch, all pipelined on the
 * loop's Redis connection.
 *
 * A call touches only keys in one partition's slot ({p}), so it also runs on Redis Cluster,
 * and it is atomic: the dedup marker, the stream entry and the recent-buffer entry are
 * written together or not at all, so a crash can never leave a marker without its event (which
 * would turn the producer's retry into a silent loss). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "astro/log.h"
#include "astro/metrics.h"
#include "astro/partition.h"
#include "astro/redis.h"
#include "ingest.h"

/* One call writes up to ING_GROUP_MAX events of one partition. Per event i: KEYS[3i-2..3i] are
 * its dedup marker, stream and recent buffer; ARGV after the dedup window (ms) and recent max
 * holds the number of stream field/value strings, the event JSON for the recent buffer, then
 * the fields. Returns one element per event: the new stream id, or "dup" when the marker
 * existed. SET NX decides the duplicate in one step; recent-buffer entries are pushed and
 * trimmed once per key per call (calls from Lua cost more than the commands themselves). */
const char ing_write_script[] =
    "local px, max = ARGV[1], tonumber(ARGV[2])\n"
    "local out, recent, order, a = {}, {}, {}, 3\n"
    "for i = 1, #KEYS / 3 do\n"
    "  local nf = tonumber(ARGV[a])\n"
    "  if redis.call('SET', KEYS[3 * i - 2], '1', 'NX', 'PX', px) then\n"
    "    out[i] = redis.call('XADD', KEYS[3 * i - 1], '*', unpack(ARGV, a + 2, a + 1 + nf))\n"
    "    local rk = KEYS[3 * i]\n"
    "    if not recent[rk] then recent[rk] = {}; order[#order + 1] = rk end\n"
    "    local l = recent[rk]\n"
    "    l[#l + 1] = ARGV[a + 1]\n"
    "  else\n"
    "    out[i] = 'dup'\n"
    "  end\n"
    "  a = a + 2 + nf\n"
    "end\n"
    "if max > 0 then\n"
    "  for _, rk in ipairs(order) do\n"
    "    local l = recent[rk]\n"
    "    for j = 1, #l, 1000 do\n"
    "      redis.call('LPUSH', rk, unpack(l, j, math.min(j + 999, #l)))\n"
    "    end\n"
    "    redis.call('LTRIM', rk, 0, max - 1)\n"
    "  end\n"
    "end\n"
    "return out\n";

uint64_t
ing_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct ing_batch *
ing_batch_new(struct ing_loop *lp, struct astro_event *ev, size_t n)
{
    struct ing_batch *b = calloc(1, sizeof(*b));
    bool *dup = calloc(n > 0 ? n : 1, sizeof(*dup));
    if (b == NULL || dup == NULL) {
        free(b);
        free(dup);
        for (size_t i = 0; i < n; i++)
            astro_event_cleanup(&ev[i]);
        free(ev);
        return NULL;
    }
    b->lp = lp;
    b->ev = ev;
    b->dup = dup;
    b->n = n;
    return b;
}

void
ing_batch_free(struct ing_batch *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n; i++)
        astro_event_cleanup(&b->ev[i]);
    free(b->ev);
    free(b->dup);
    free(b);
}

/* One script call: which events of the batch it carries (indexes into b->ev). */
struct call {
    struct ing_batch *b;
    size_t n;
    size_t idx[];
};

static int send_call(struct call *c, bool eval_body);

static void
item_done(struct ing_batch *b)
{
    if (--b->pending > 0)
        return;
    struct ing_loop *lp = b->lp;
    astro_histogram_observe(lp->ctx->m.redis_latency, (double)(ing_now_ns() - b->t0_ns) / 1e9);
    lp->inflight--;
    b->done(b, b->arg); /* frees b */
    ing_drain_check(lp);
}

static bool
reply_fits(const redisReply *rep, size_t n)
{
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (rep->element[i]->type != REDIS_REPLY_STRING)
            return false;
    return true;
}

static void
on_call_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct call *c = priv;
    struct ing_batch *b = c->b;
    redisReply *rep = r;
    (void)ac;
    /* The script cache is empty (Redis restarted and the reload has not landed): EVAL. */
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0 &&
        send_call(c, true) == ASTRO_OK)
        return;
    if (reply_fits(rep, c->n)) {
        for (size_t i = 0; i < c->n; i++)
            b->dup[c->idx[i]] = strcmp(rep->element[i]->str, "dup") == 0;
    } else {
        if (!b->failed)
            astro_log_warn("redis write failed: %s",
                           rep == NULL ? "connection lost"
                           : rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        astro_counter_inc(b->lp->ctx->m.redis_errors);
        b->failed = true;
    }
    free(c);
    item_done(b);
}

/* Per-event arguments, kept alive until the command is formatted. */
struct item_args {
    char dedup[128], stream[32], nf[8];
    char *recent, *json;
    struct astro_stream_fields f;
};

static int
item_args_fill(struct item_args *a, const struct ing_ctx *ctx, const struct astro_event *ev)
{
    uint32_t p = astro_partition_of(ev->key, strlen(ev->key), (uint32_t)ctx->cfg->partitions);
    astro_stream_fields_init(&a->f);
    snprintf(a->dedup, sizeof(a->dedup), "astro:dedup:{%u}:%s", p, ev->id);
    if (astro_stream_key(a->stream, sizeof(a->stream), "mono", p) != ASTRO_OK ||
        asprintf(&a->recent, "astro:recent:{%u}:%s", p, ev->key) < 0) {
        a->recent = NULL;
        return ASTRO_ERR;
    }
    if (astro_event_stream_encode(ev, &a->f) != ASTRO_OK)
        return ASTRO_ERR;
    char vbuf[ASTRO_EVENT_DOUBLE_BUF];
    const char *val = NULL; /* reuse the encoder's text: formatting a double is not cheap */
    for (int i = 0; i + 1 < a->f.argc; i += 2)
        if (strcmp(a->f.argv[i], "val") == 0 && a->f.argvlen[i + 1] < sizeof(vbuf)) {
            snprintf(vbuf, sizeof(vbuf), "%.*s", (int)a->f.argvlen[i + 1], a->f.argv[i + 1]);
            val = vbuf;
        }
    if ((a->json = ing_event_json(ev, val)) == NULL)
        return ASTRO_ERR;
    snprintf(a->nf, sizeof(a->nf), "%d", a->f.argc);
    return ASTRO_OK;
}

static void
item_args_cleanup(struct item_args *a)
{
    astro_stream_fields_cleanup(&a->f);
    free(a->recent);
    free(a->json);
}

/* argv: EVAL(SHA) script numkeys keys... px max (nf json fields...)... */
static int
build_argv(const struct call *c, struct item_args *args, const char **argv, size_t *len,
           bool eval_body)
{
    const struct ing_ctx *ctx = c->b->lp->ctx;
    static _Thread_local char px[24], max[24], nkeys[24];
    size_t k = 0;
    snprintf(px, sizeof(px), "%lld", (long long)ctx->cfg->dedup_ms);
    snprintf(max, sizeof(max), "%lld", (long long)ctx->cfg->recent_max);
    snprintf(nkeys, sizeof(nkeys), "%zu", 3 * c->n);
    argv[k++] = eval_body ? "EVAL" : "EVALSHA";
    argv[k++] = eval_body ? ing_write_script : ctx->script_sha;
    argv[k++] = nkeys;
    for (size_t i = 0; i < c->n; i++) {
        argv[k++] = args[i].dedup;
        argv[k++] = args[i].stream;
        argv[k++] = args[i].recent;
    }
    argv[k++] = px;
    argv[k++] = max;
    for (size_t i = 0; i < c->n; i++) {
        argv[k++] = args[i].nf;
        argv[k++] = args[i].json;
        for (int j = 0; j < args[i].f.argc; j++) {
            len[k] = args[i].f.argvlen[j];
            argv[k++] = args[i].f.argv[j];
        }
    }
    for (size_t i = 0; i < k; i++) /* field values carry their lengths; the rest are strings */
        if (argv[i] != NULL && len[i] == 0)
            len[i] = strlen(argv[i]);
    return (int)k;
}

static int
send_call(struct call *c, bool eval_body)
{
    size_t cap = 5 + c->n * (5 + ASTRO_STREAM_MAX_ARGS);
    struct item_args *args = calloc(c->n, sizeof(*args));
    const char **argv = calloc(cap, sizeof(*argv));
    size_t *len = calloc(cap, sizeof(*len));
    size_t filled = 0;
    int rc = ASTRO_ERR;
    if (args == NULL || argv == NULL || len == NULL)
        goto out;
    for (; filled < c->n; filled++)
        if (item_args_fill(&args[filled], c->b->lp->ctx, &c->b->ev[c->idx[filled]]) != ASTRO_OK) {
            filled++;
            goto out;
        }
    int argc = build_argv(c, args, argv, len, eval_body);
    rc = astro_redis_async_command(c->b->lp->rw, on_call_reply, c, argc, argv, len);
out:
    for (size_t i = 0; i < filled; i++)
        item_args_cleanup(&args[i]);
    free(args);
    free(argv);
    free(len);
    return rc;
}

/* Orders events by (partition, position): a call carries events of one partition in the
 * order the producer sent them. */
struct slot {
    uint32_t p;
    size_t i;
};

static int
cmp_slot(const void *x, const void *y)
{
    const struct slot *a = x, *b = y;
    if (a->p != b->p)
        return a->p < b->p ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

static struct slot *
partition_order(const struct ing_batch *b)
{
    struct slot *sl = malloc(b->n * sizeof(*sl));
    uint32_t parts = (uint32_t)b->lp->ctx->cfg->partitions;
    if (sl == NULL)
        return NULL;
    for (size_t i = 0; i < b->n; i++)
        sl[i] = (struct slot){astro_partition_of(b->ev[i].key, strlen(b->ev[i].key), parts), i};
    qsort(sl, b->n, sizeof(*sl), cmp_slot);
    return sl;
}

/* Sends the calls; returns how many were sent. */
static size_t
send_calls(struct ing_batch *b, const struct slot *sl, size_t *ncalls)
{
    size_t sent = 0;
    *ncalls = 0;
    for (size_t i = 0; i < b->n;) {
        size_t n = 1;
        while (i + n < b->n && n < ING_GROUP_MAX && sl[i + n].p == sl[i].p)
            n++;
        struct call *c = malloc(sizeof(*c) + n * sizeof(c->idx[0]));
        (*ncalls)++;
        if (c == NULL)
            break;
        c->b = b;
        c->n = n;
        for (size_t k = 0; k < n; k++)
            c->idx[k] = sl[i + k].i;
        if (send_call(c, false) != ASTRO_OK) {
            free(c);
            break;
        }
        sent++;
        i += n;
    }
    return sent;
}

int
ing_batch_submit(struct ing_batch *b, ing_batch_done_fn done, void *arg)
{
    size_t ncalls;
    struct slot *sl = partition_order(b);
    if (sl == NULL)
        return ASTRO_ERR;
    b->done = done;
    b->arg = arg;
    b->t0_ns = ing_now_ns();
    b->pending = 1; /* held while sending, so no reply completes the batch meanwhile */
    b->pending += send_calls(b, sl, &ncalls);
    free(sl);
    if (b->pending == 1)
        return ASTRO_ERR;
    b->lp->inflight++;
    if (b->pending - 1 < ncalls)
        b->failed = true; /* some calls could not be sent: the batch is answered retryable */
    item_done(b); /* drops the hold; replies complete the batch later */
    return ASTRO_OK;
}

int
ing_batch_ids_json(const struct ing_batch *b, cJSON *obj)
{
    cJSON *ids = cJSON_AddArrayToObject(obj, "event_ids");
    cJSON *dups = cJSON_AddArrayToObject(obj, "duplicates");
    if (ids == NULL || dups == NULL)
        return ASTRO_ERR;
    for (size_t i = 0; i < b->n; i++) {
        cJSON *s = cJSON_CreateString(b->ev[i].id);
        if (s == NULL)
            return ASTRO_ERR;
        cJSON_AddItemToArray(b->dup[i] ? dups : ids, s);
    }
    return ASTRO_OK;
}

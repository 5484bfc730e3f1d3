/* The write path: one Lua script call per partition group of a batch, all pipelined on the
 * loop's Redis connection.
 *
 * A call touches only keys in one partition's slot ({p}), and no other command runs while it
 * does, so two ingest instances can never both write the same event_id: the dedup check and
 * the marker are one step. Dedup markers are ids in per-partition time-bucket sets (one SADD
 * and one PEXPIREAT per call) instead of one key with a TTL per event: per event Redis only
 * runs the XADD. The stream entries are written before the markers, so a call that fails half
 * way (e.g. OOM) leaves events without markers (a retry may write them twice) but never a
 * marker without its event (which would turn the producer's retry into a silent loss). */
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

/* KEYS[1] is the partition's stream, KEYS[2] the prefix of its dedup bucket sets (the bucket
 * names are derived from it, same slot), KEYS[2 + r] the recent buffer of run r. ARGV: dedup
 * window (ms), recent max, buckets per window, then per run the event key and the run's event
 * count, then per event id ts src type val meta json (write_args.c; meta "" = no metadata).
 *
 * Buckets are windows / buckets wide, numbered by Redis' own clock (TIME), so every instance
 * agrees on them whatever its clock says; an id is a duplicate if it is in the current bucket
 * or one of the `buckets` before it, or earlier in this call. A bucket expires when it stops
 * being checked. Stream field names are constants here: the order and names are the stream
 * contract of astro/event.h (id ts src key type val [meta]).
 *
 * Returns one character per event in call order: "0" written now, "1" duplicate. */
const char ing_write_script[] =
    "local window, max, nb = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local width = math.ceil(window / nb)\n"
    "local t = redis.call('TIME')\n"
    "local cur = math.floor((tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) / width)\n"
    "local function bucket(b) return KEYS[2] .. string.format('%.0f', b) end\n"
    "local ids, a = {}, 4\n"
    "while a <= #ARGV do\n"
    "  local n = tonumber(ARGV[a + 1])\n"
    "  for e = a + 2, a + 1 + 7 * n, 7 do ids[#ids + 1] = ARGV[e] end\n"
    "  a = a + 2 + 7 * n\n"
    "end\n"
    "local seen, flags, new = {}, {}, {}\n"
    "for b = cur - nb, cur do\n"
    "  local m = redis.call('SMISMEMBER', bucket(b), unpack(ids))\n"
    "  for i = 1, #m do if m[i] == 1 then seen[ids[i]] = true end end\n"
    "end\n"
    "for i, id in ipairs(ids) do\n"
    "  if seen[id] then flags[i] = '1' else seen[id] = true; flags[i] = '0'; new[#new + 1] = id end\n"
    "end\n"
    "local recent, order, i, r, s = {}, {}, 0, 0, KEYS[1]\n"
    "a = 4\n"
    "while a <= #ARGV do\n"
    "  r = r + 1\n"
    "  local key, n, rk = ARGV[a], tonumber(ARGV[a + 1]), KEYS[2 + r]\n"
    "  for e = a + 2, a + 1 + 7 * n, 7 do\n"
    "    i = i + 1\n"
    "    if flags[i] == '0' then\n"
    "      if ARGV[e + 5] == '' then\n"
    "        redis.call('XADD', s, '*', 'id', ARGV[e], 'ts', ARGV[e + 1], 'src', ARGV[e + 2],\n"
    "                   'key', key, 'type', ARGV[e + 3], 'val', ARGV[e + 4])\n"
    "      else\n"
    "        redis.call('XADD', s, '*', 'id', ARGV[e], 'ts', ARGV[e + 1], 'src', ARGV[e + 2],\n"
    "                   'key', key, 'type', ARGV[e + 3], 'val', ARGV[e + 4], 'meta', ARGV[e + 5])\n"
    "      end\n"
    "      if max > 0 then\n"
    "        local l = recent[rk]\n"
    "        if not l then l = {}; recent[rk] = l; order[#order + 1] = rk end\n"
    "        l[#l + 1] = ARGV[e + 6]\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  a = a + 2 + 7 * n\n"
    "end\n"
    "if #new > 0 then\n"
    "  redis.call('SADD', bucket(cur), unpack(new))\n"
    "  redis.call('PEXPIREAT', bucket(cur), string.format('%.0f', (cur + nb + 1) * width))\n"
    "end\n"
    "for _, rk in ipairs(order) do\n"
    "  local l = recent[rk]\n"
    "  for j = 1, #l, 1000 do\n"
    "    redis.call('LPUSH', rk, unpack(l, j, math.min(j + 999, #l)))\n"
    "  end\n"
    "  redis.call('LTRIM', rk, 0, max - 1)\n"
    "end\n"
    "return table.concat(flags)\n";

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
    uint32_t p;
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
    return rep != NULL && rep->type == REDIS_REPLY_STRING && (size_t)rep->len == n;
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
            b->dup[c->idx[i]] = rep->str[i] == '1';
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

static int
send_call(struct call *c, bool eval_body)
{
    struct ing_text cmd;
    const struct ing_batch *b = c->b;
    if (ing_call_cmd_build(&cmd, b->lp->ctx, c->p, b->ev, c->idx, c->n, eval_body) != ASTRO_OK)
        return ASTRO_ERR;
    int rc = astro_redis_async_formatted(b->lp->rw, on_call_reply, c, cmd.buf, cmd.len);
    free(cmd.buf);
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
        c->p = sl[i].p;
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

/* One of the two id arrays as JSON text: a cJSON node per id cost more than the rest of the
 * ack. */
static char *
ids_text(const struct ing_batch *b, bool dups)
{
    struct ing_text t = {0};
    bool first = true;
    ing_text_put(&t, "[", 1);
    for (size_t i = 0; i < b->n; i++) {
        if (b->dup[i] != dups)
            continue;
        if (!first)
            ing_text_put(&t, ",", 1);
        ing_text_put_json_string(&t, b->ev[i].id);
        first = false;
    }
    ing_text_put(&t, "]", 1);
    if (t.oom) {
        free(t.buf);
        return NULL;
    }
    return t.buf;
}

int
ing_batch_ids_json(const struct ing_batch *b, cJSON *obj)
{
    char *ids = ids_text(b, false), *dups = ids_text(b, true);
    int rc = ASTRO_ERR;
    if (ids != NULL && dups != NULL && cJSON_AddRawToObject(obj, "event_ids", ids) != NULL &&
        cJSON_AddRawToObject(obj, "duplicates", dups) != NULL)
        rc = ASTRO_OK;
    free(ids);
    free(dups);
    return rc;
}

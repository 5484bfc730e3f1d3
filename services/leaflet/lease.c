/* Membership and partition leases. Every worker heartbeats into a sorted set; the live members,
 * sorted by name, split the partitions (worker i of n wants p with p mod n == i). A worker
 * holds a partition only through astro:lease:{p} (SET NX PX, renewed each tick), so two workers
 * that briefly disagree about membership never both commit: the commit script checks the
 * lease before writing anything (partition.c). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "astro/log.h"
#include "astro/time.h"
#include "leaflet.h"

static const char *const acquire_lua =
    "local v = redis.call('get', KEYS[1]) "
    "if v == false or v == ARGV[1] then "
    "redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end return 0";
static const char *const release_lua =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end "
    "return 0";

static long long
lua(struct cep_ctx *ctx, const char *script, const char *key)
{
    char ttl[24], err[256];
    snprintf(ttl, sizeof(ttl), "%" PRId64, ctx->cfg->lease_ms);
    const char *argv[] = {"EVAL", script, "1", key, ctx->instance, ttl};
    redisReply *rep = astro_redis_command(ctx->r, 6, argv, NULL, err, sizeof(err));
    long long v = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    astro_redis_reply_free(ctx->r, rep);
    return v;
}

/* Heartbeats and returns this worker's index among the live members (sorted by name), with
 * their count in *n; -1 on a Redis failure. */
static int
membership(struct cep_ctx *ctx, int *n)
{
    char now[24], stale[24], err[256];
    int64_t ms = astro_now_us() / 1000;
    snprintf(now, sizeof(now), "%" PRId64, ms);
    snprintf(stale, sizeof(stale), "(%" PRId64, ms - ctx->cfg->lease_ms);
    const char *zadd[] = {"ZADD", CEP_WORKERS_KEY, now, ctx->instance};
    const char *zrem[] = {"ZREMRANGEBYSCORE", CEP_WORKERS_KEY, "-inf", stale};
    const char *zr[] = {"ZRANGE", CEP_WORKERS_KEY, "0", "-1"};
    redisReply *a = astro_redis_command(ctx->r, 4, zadd, NULL, err, sizeof(err));
    redisReply *b = a ? astro_redis_command(ctx->r, 4, zrem, NULL, err, sizeof(err)) : NULL;
    redisReply *c = b ? astro_redis_command(ctx->r, 4, zr, NULL, err, sizeof(err)) : NULL;
    int me = -1;
    if (c != NULL && c->type == REDIS_REPLY_ARRAY) {
        *n = (int)c->elements;
        me = 0;
        bool found = false;
        for (size_t i = 0; i < c->elements; i++) {
            int cmp = strcmp(c->element[i]->str, ctx->instance);
            found |= cmp == 0;
            me += cmp < 0;
        }
        if (!found)
            me = -1;
    }
    astro_redis_reply_free(ctx->r, a);
    astro_redis_reply_free(ctx->r, b);
    astro_redis_reply_free(ctx->r, c);
    return me;
}

static void
release(struct cep_partition *pp)
{
    cep_part_drop(pp);
    if (lua(pp->ctx, release_lua, pp->lease) < 0)
        astro_log_warn("partition %u: lease release failed (it will expire)", pp->p);
    else
        astro_log_info("partition %u: released", pp->p);
}

int
cep_lease_renew(struct cep_partition *pp)
{
    return lua(pp->ctx, acquire_lua, pp->lease) == 1 ? ASTRO_OK : ASTRO_ERR;
}

void
cep_lease_tick(struct cep_ctx *ctx)
{
    int n = 0, me = membership(ctx, &n);
    if (me < 0) {
        astro_counter_inc(ctx->met.redis_errors);
        for (uint32_t p = 0; p < ctx->nparts; p++)
            cep_part_drop(&ctx->parts[p]); /* cannot renew: stop before the lease runs out */
        atomic_store(&ctx->redis_ok, false);
        return;
    }
    atomic_store(&ctx->redis_ok, true);
    int owned = 0;
    for (uint32_t p = 0; p < ctx->nparts && !atomic_load(&ctx->stop); p++) {
        struct cep_partition *pp = &ctx->parts[p];
        bool want = (int)(p % (uint32_t)n) == me;
        if (pp->owned && !want) {
            release(pp);
        } else if (want) {
            bool was = pp->owned;
            if (lua(ctx, acquire_lua, pp->lease) != 1) {
                if (was)
                    astro_log_warn("partition %u: lease lost", p);
                cep_part_drop(pp);
            } else if (!was && cep_part_take(pp) == ASTRO_OK) {
                astro_log_info("partition %u: taken (worker %d of %d)", p, me + 1, n);
            }
        }
        owned += pp->owned;
    }
    astro_gauge_set(ctx->met.owned, owned);
}

void
cep_lease_release_all(struct cep_ctx *ctx)
{
    char err[256];
    for (uint32_t p = 0; p < ctx->nparts; p++)
        if (ctx->parts[p].owned)
            release(&ctx->parts[p]);
    const char *zrem[] = {"ZREM", CEP_WORKERS_KEY, ctx->instance};
    astro_redis_reply_free(ctx->r, astro_redis_command(ctx->r, 3, zrem, NULL, err, sizeof(err)));
}

/* API-key authentication (read scope) and the per-key rate limit, both kept in Redis so every
 * astro-query instance shares them. The limit is a fixed window: INCR + PEXPIRE in one script,
 * which returns the count and the window's remaining time for Retry-After. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <civetweb.h>

#include "astro/apikey.h"
#include "astro/log.h"
#include "astro/metrics.h"
#include "astro/redis.h"
#include "astro/time.h"
#include "query.h"

static const char rate_lua[] =
    "local n = redis.call('INCR', KEYS[1]) "
    "if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end "
    "local t = redis.call('PTTL', KEYS[1]) "
    "if t < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); t = tonumber(ARGV[1]) end "
    "return {n, t}";

/* The presented secret: "Authorization: Bearer <key>" or "X-API-Key: <key>". */
static const char *
presented_key(struct mg_connection *c)
{
    const char *h = mg_get_header(c, "Authorization");
    if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0)
        return h + 7;
    return mg_get_header(c, "X-API-Key");
}

static int
lookup(struct qry_worker *w, const char *hex, struct astro_apikey_info *info, char *err,
       size_t errlen)
{
    uint64_t now_ms = (uint64_t)(astro_now_us() / 1000);
    if (astro_apikey_cache_get(qry_worker_keys(w), hex, now_ms, info))
        return ASTRO_OK;
    struct astro_redis *r = qry_worker_redis(w, err, errlen);
    char rkey[96];
    if (r == NULL || astro_apikey_redis_key(rkey, sizeof(rkey), hex) != ASTRO_OK)
        return ASTRO_ERR;
    const char *argv[] = {"HGETALL", rkey};
    redisReply *rep = astro_redis_command(r, 2, argv, NULL, err, errlen);
    int rc = rep != NULL ? astro_apikey_info_from_reply(rep, info, err, errlen) : ASTRO_ERR;
    freeReplyObject(rep);
    if (rc == ASTRO_OK)
        astro_apikey_cache_put(qry_worker_keys(w), hex, info, now_ms);
    return rc;
}

/* ASTRO_OK with *retry_ms 0 when under the limit, else the wait before the next window. */
static int
rate_check(struct qry_ctx *ctx, struct qry_worker *w, const char *hex, int64_t *retry_ms,
           char *err, size_t errlen)
{
    *retry_ms = 0;
    if (ctx->cfg->rate_limit == 0)
        return ASTRO_OK;
    struct astro_redis *r = qry_worker_redis(w, err, errlen);
    if (r == NULL)
        return ASTRO_ERR;
    char key[96], win[24];
    snprintf(key, sizeof(key), "astro:ratelimit:query:%.*s", ASTRO_APIKEY_FP_LEN * 2, hex);
    snprintf(win, sizeof(win), "%lld", (long long)ctx->cfg->rate_window_ms);
    const char *argv[] = {"EVAL", rate_lua, "1", key, win};
    redisReply *rep = astro_redis_command(r, 5, argv, NULL, err, errlen);
    int rc = ASTRO_ERR;
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
        if (rep->element[0]->integer > ctx->cfg->rate_limit)
            *retry_ms = rep->element[1]->integer > 0 ? rep->element[1]->integer : 1;
        rc = ASTRO_OK;
    } else if (rep != NULL) {
        astro_fail(err, errlen, "rate-limit script: unexpected reply");
    }
    freeReplyObject(rep);
    return rc;
}

static void
reply_429(struct qry_ctx *ctx, struct mg_connection *c, int64_t retry_ms)
{
    static const char body[] =
        "{\"error\":\"rate_limited\",\"message\":\"too many requests for this API key\"}";
    char buf[512];
    astro_counter_inc(ctx->m.rate_limited);
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                     "Retry-After: %lld\r\nContent-Length: %zu\r\n\r\n%s",
                     (long long)((retry_ms + 999) / 1000), sizeof(body) - 1, body);
    mg_write(c, buf, (size_t)n);
}

int
qry_auth_check(struct qry_ctx *ctx, struct mg_connection *c)
{
    char err[256], hex[ASTRO_APIKEY_HEX_LEN + 1];
    struct astro_apikey_info info;
    struct qry_worker *w = qry_worker_of(c);
    const char *key = presented_key(c);
    if (key == NULL) {
        qry_reply_error(ctx, c, 401, "unauthorized", NULL,
                        "an API key is required (Authorization: Bearer or X-API-Key)");
        return ASTRO_ERR;
    }
    if (astro_apikey_check_format(key, strlen(key), err, sizeof(err)) != ASTRO_OK ||
        astro_apikey_hash(key, strlen(key), hex) != ASTRO_OK) {
        qry_reply_error(ctx, c, 401, "unauthorized", NULL, "invalid API key");
        return ASTRO_ERR;
    }
    if (lookup(w, hex, &info, err, sizeof(err)) != ASTRO_OK) {
        astro_log_warn("auth: key lookup failed: %s", err);
        qry_reply_error(ctx, c, 503, "redis_unavailable", NULL, "cannot check the API key");
        return ASTRO_ERR;
    }
    if (!info.found || info.revoked) {
        qry_reply_error(ctx, c, 401, "unauthorized", NULL, "invalid API key");
        return ASTRO_ERR;
    }
    if ((info.scopes & ASTRO_SCOPE_READ) == 0) {
        qry_reply_error(ctx, c, 403, "forbidden", NULL, "this API key lacks the read scope");
        return ASTRO_ERR;
    }
    int64_t retry_ms;
    if (rate_check(ctx, w, hex, &retry_ms, err, sizeof(err)) != ASTRO_OK) {
        astro_log_warn("auth: rate limit check failed: %s", err);
        qry_reply_error(ctx, c, 503, "redis_unavailable", NULL, "cannot check the rate limit");
        return ASTRO_ERR;
    }
    if (retry_ms > 0) {
        reply_429(ctx, c, retry_ms);
        return ASTRO_ERR;
    }
    return ASTRO_OK;
}

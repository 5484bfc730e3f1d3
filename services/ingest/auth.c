/* API-key lookups on a loop: the loop's cache first, then HGETALL astro:apikey:<sha256>. */
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>

#include "astro/backoff.h"
#include "astro/log.h"
#include "astro/redis.h"
#include "ingest.h"

struct lookup {
    struct ing_loop *lp;
    char hex[ASTRO_APIKEY_HEX_LEN + 1];
    ing_auth_done_fn done;
    void *arg;
};

static void
on_record(redisAsyncContext *ac, void *r, void *priv)
{
    struct lookup *lk = priv;
    struct astro_apikey_info info;
    char err[128];
    (void)ac;
    bool unavailable = r == NULL || ((redisReply *)r)->type == REDIS_REPLY_ERROR;
    if (unavailable) {
        memset(&info, 0, sizeof(info));
    } else if (astro_apikey_info_from_reply(r, &info, err, sizeof(err)) != ASTRO_OK) {
        char fp[ASTRO_APIKEY_FP_LEN + 1];
        astro_apikey_fingerprint(lk->hex, fp);
        astro_log_warn("api key %s: %s; refusing it", fp, err);
    } else {
        astro_apikey_cache_put(lk->lp->keys, lk->hex, &info, astro_backoff_now_ms());
    }
    lk->lp->inflight--;
    lk->done(lk->lp, &info, unavailable, lk->arg);
    ing_drain_check(lk->lp);
    OPENSSL_cleanse(lk->hex, sizeof(lk->hex));
    free(lk);
}

int
ing_auth_lookup(struct ing_loop *lp, const char *key, ing_auth_done_fn done, void *arg)
{
    struct astro_apikey_info info;
    char rkey[96];
    struct lookup *lk = calloc(1, sizeof(*lk));
    if (lk == NULL)
        return ASTRO_ERR;
    memset(&info, 0, sizeof(info));
    if (key == NULL || astro_apikey_check_format(key, strlen(key), NULL, 0) != ASTRO_OK) {
        free(lk); /* junk never reaches Redis: answered as an unknown key */
        done(lp, &info, false, arg);
        return ASTRO_OK;
    }
    if (astro_apikey_hash(key, strlen(key), lk->hex) != ASTRO_OK)
        goto fail;
    if (astro_apikey_cache_get(lp->keys, lk->hex, astro_backoff_now_ms(), &info)) {
        free(lk);
        done(lp, &info, false, arg);
        return ASTRO_OK;
    }
    lk->lp = lp;
    lk->done = done;
    lk->arg = arg;
    if (astro_apikey_redis_key(rkey, sizeof(rkey), lk->hex) != ASTRO_OK)
        goto fail;
    const char *argv[] = {"HGETALL", rkey};
    if (astro_redis_async_command(lp->rw, on_record, lk, 2, argv, NULL) != ASTRO_OK)
        goto fail;
    lp->inflight++;
    return ASTRO_OK;
fail:
    free(lk);
    return ASTRO_ERR;
}

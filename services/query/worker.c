/* Per worker thread state: civetweb runs each request on one of its worker threads, and each
 * thread keeps its own PostgreSQL connection (with its prepared statements), its own Redis
 * connection and API-key cache, so requests never wait on a shared lock. Connections are made
 * on first use and re-made with bounded backoff, so a request during an outage fails fast with
 * 503 instead of hanging the worker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

#include "astro/apikey.h"
#include "astro/log.h"
#include "astro/pg.h"
#include "astro/redis.h"
#include "query.h"

#define QRY_SLOTS 512 /* prepared statement slots (see events.c) */

struct qry_worker {
    struct qry_ctx *ctx;
    struct astro_pg *pg;
    uint64_t pg_generation; /* pg->reconnects when the statements were prepared */
    unsigned char prepared[QRY_SLOTS / 8];
    struct astro_redis *redis;
    struct astro_apikey_cache *keys;
    struct qry_timing timing; /* the request being served (timing.c) */
};

void *
qry_worker_init(const struct mg_context *mg, int thread_type)
{
    if (thread_type != 1) /* only request workers need connections */
        return NULL;
    struct qry_worker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->ctx = mg_get_user_data(mg);
    w->keys = astro_apikey_cache_new(256, (uint64_t)w->ctx->cfg->key_cache_ms);
    return w;
}

void
qry_worker_exit(const struct mg_context *mg, int thread_type, void *p)
{
    (void)mg;
    (void)thread_type;
    struct qry_worker *w = p;
    if (w == NULL)
        return;
    astro_pg_free(w->pg);
    astro_redis_free(w->redis);
    astro_apikey_cache_free(w->keys);
    free(w);
}

struct qry_worker *
qry_worker_of(struct mg_connection *conn)
{
    return mg_get_thread_pointer(conn);
}

struct astro_apikey_cache *
qry_worker_keys(struct qry_worker *w)
{
    return w->keys;
}

struct qry_timing *
qry_worker_timing(struct qry_worker *w)
{
    return &w->timing;
}

const struct qry_config *
qry_worker_config(const struct qry_worker *w)
{
    return w->ctx->cfg;
}

/* Session settings every (re)connection needs: a statement timeout so a slow query cannot
 * hold a worker past the request timeout, and generic plans for the prepared statements. On
 * the day-partitioned event tables the planner's default keeps choosing custom plans (the
 * generic plan's estimate covers every partition, pruned only at run time), so each request
 * paid a full planning (~1 ms at 10M rows, three times the execution of a page); the generic
 * plans have the same shape (run-time pruning, the same indexes: see docs/query.md). */
static int
pg_session_setup(struct qry_worker *w, char *err, size_t errlen)
{
    char sql[128];
    snprintf(sql, sizeof(sql),
             "SET statement_timeout = %lld; SET plan_cache_mode = force_generic_plan",
             (long long)w->ctx->cfg->request_timeout_ms);
    memset(w->prepared, 0, sizeof(w->prepared));
    w->pg_generation = w->pg->reconnects;
    return astro_pg_exec_ok(w->pg, sql, err, errlen);
}

struct astro_pg *
qry_worker_pg(struct qry_worker *w, char *err, size_t errlen)
{
    if (w == NULL) {
        astro_fail(err, errlen, "no worker state");
        return NULL;
    }
    if (w->pg == NULL) {
        struct astro_pg_options o = {.application_name = "astro-query", .connect_timeout_s = 2,
                                     .max_attempts = 2, .deadline_ms = 1500};
        w->pg = astro_pg_connect(w->ctx->cfg->database_url, &o, err, errlen);
        if (w->pg == NULL || pg_session_setup(w, err, errlen) != ASTRO_OK)
            goto fail;
        return w->pg;
    }
    if (astro_pg_ensure(w->pg, err, errlen) != ASTRO_OK)
        return NULL;
    if (w->pg->reconnects != w->pg_generation && pg_session_setup(w, err, errlen) != ASTRO_OK)
        goto fail;
    return w->pg;
fail:
    astro_pg_free(w->pg);
    w->pg = NULL;
    return NULL;
}

struct astro_redis *
qry_worker_redis(struct qry_worker *w, char *err, size_t errlen)
{
    if (w == NULL) {
        astro_fail(err, errlen, "no worker state");
        return NULL;
    }
    if (w->redis == NULL) {
        struct astro_redis_options o = {.connect_timeout_ms = 1000, .command_timeout_ms = 2000,
                                        .client_name = "astro-query", .max_attempts = 2,
                                        .deadline_ms = 1500, .backoff_initial_ms = 50,
                                        .backoff_max_ms = 500};
        w->redis = astro_redis_connect(w->ctx->cfg->svc.redis_url, &o, err, errlen);
    }
    return w->redis;
}

bool
qry_worker_prepared(struct qry_worker *w, unsigned slot)
{
    return slot < QRY_SLOTS && (w->prepared[slot / 8] & (1u << (slot % 8))) != 0;
}

void
qry_worker_set_prepared(struct qry_worker *w, unsigned slot)
{
    if (slot < QRY_SLOTS)
        w->prepared[slot / 8] |= (unsigned char)(1u << (slot % 8));
}

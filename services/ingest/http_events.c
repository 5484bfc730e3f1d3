/* POST /events: one event object, an array of events, or NDJSON. 202 with the ids only after
 * every script call succeeded; 400 with per-item errors; 401/403; 413; 415; 503 + Retry-After
 * under backpressure, while shutting down, or when Redis failed mid-batch (retry: dedup makes
 * the retry exact). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "astro/http.h"
#include "astro/log.h"
#include "astro/metrics.h"
#include "astro/time.h"
#include "ingest.h"

static void
respond_503(struct astro_http_req *req, struct ing_ctx *ctx, enum ing_reason r, const char *why)
{
    char secs[24], body[256];
    int64_t s = (ctx->cfg->bp_retry_ms + 999) / 1000;
    snprintf(secs, sizeof(secs), "%lld", (long long)(s > 0 ? s : 1));
    ing_reject(ctx, r);
    if (astro_http_req_add_header(req, "Retry-After", secs) != ASTRO_OK)
        astro_log_debug("POST /events: cannot add Retry-After");
    snprintf(body, sizeof(body), "{\"error\":\"%s\",\"code\":\"%s\"}", why, ing_reason_code(r));
    astro_http_req_respond_json(req, 503, body);
}

static void
respond_invalid(struct astro_http_req *req, struct ing_ctx *ctx, struct ing_parsed *p)
{
    int status = p->reason == ING_R_TOO_MANY_ITEMS ? 413
                 : p->reason == ING_R_UNAVAILABLE ? 503 : 400;
    cJSON *o = cJSON_CreateObject();
    ing_reject(ctx, p->reason);
    cJSON_AddStringToObject(o, "error", p->message);
    cJSON_AddStringToObject(o, "code", ing_reason_code(p->reason));
    if (p->items != NULL)
        cJSON_AddItemReferenceToObject(o, "items", p->items);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text == NULL) {
        astro_http_req_respond_error(req, 503, "out of memory");
        return;
    }
    astro_http_req_respond_json(req, status, text);
    free(text);
}

static void
on_written(struct ing_batch *b, void *arg)
{
    struct astro_http_req *req = arg;
    struct ing_ctx *ctx = b->lp->ctx;
    if (b->failed) {
        respond_503(req, ctx, ING_R_UNAVAILABLE, "redis write failed; retry");
        ing_batch_free(b);
        return;
    }
    size_t dups = 0;
    for (size_t i = 0; i < b->n; i++)
        dups += b->dup[i];
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    if (o != NULL && cJSON_AddNumberToObject(o, "accepted", (double)(b->n - dups)) != NULL &&
        ing_batch_ids_json(b, o) == ASTRO_OK)
        text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    astro_counter_add(ctx->m.accepted, b->n - dups);
    astro_counter_add(ctx->m.duplicates, dups);
    astro_counter_inc(ctx->m.acks);
    if (text != NULL)
        astro_http_req_respond_json(req, 202, text);
    else
        astro_http_req_respond_error(req, 503, "out of memory");
    free(text);
    ing_batch_free(b);
}

static bool
content_type_ok(const char *ct)
{
    static const char *const ok[] = {"application/json", "application/x-ndjson",
                                     "application/ndjson", "text/plain"};
    if (ct == NULL)
        return true;
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(ok); i++) {
        size_t n = strlen(ok[i]);
        if (strncasecmp(ct, ok[i], n) == 0 && (ct[n] == '\0' || ct[n] == ';'))
            return true;
    }
    return false;
}

static void
accept_body(struct astro_http_req *req, struct ing_loop *lp)
{
    struct ing_ctx *ctx = lp->ctx;
    struct ing_parsed p;
    size_t len;
    const char *body = astro_http_req_body(req, &len);
    struct ing_parse_opts o = {&ctx->lim, (size_t)ctx->cfg->max_items, astro_now_us(), ""};
    if (ing_msg_parse_http(body, len, &o, &p) != ASTRO_OK) {
        respond_invalid(req, ctx, &p);
        ing_parsed_cleanup(&p);
        return;
    }
    struct ing_batch *b = ing_batch_new(lp, p.ev, p.n);
    p.ev = NULL;
    p.n = 0;
    ing_parsed_cleanup(&p);
    if (b == NULL) {
        astro_http_req_respond_error(req, 503, "out of memory");
        return;
    }
    astro_counter_inc(ctx->m.batches);
    if (ing_batch_submit(b, on_written, req) != ASTRO_OK) {
        ing_batch_free(b);
        astro_counter_inc(ctx->m.redis_errors);
        respond_503(req, ctx, ING_R_UNAVAILABLE, "redis unavailable; retry");
    }
}

static void
on_key(struct ing_loop *lp, const struct astro_apikey_info *info, bool unavailable, void *arg)
{
    struct astro_http_req *req = arg;
    struct ing_ctx *ctx = lp->ctx;
    if (unavailable) {
        respond_503(req, ctx, ING_R_UNAVAILABLE, "redis unavailable; retry");
    } else if (!info->found || info->revoked) {
        ing_reject(ctx, ING_R_BAD_KEY);
        astro_http_req_respond_error(req, 401, "invalid api key");
    } else if (!(info->scopes & ASTRO_SCOPE_INGEST)) {
        ing_reject(ctx, ING_R_SCOPE);
        astro_http_req_respond_error(req, 403, "api key lacks the ingest scope");
    } else if (atomic_load(&ctx->backpressure)) {
        respond_503(req, ctx, ING_R_BACKPRESSURE, "archive is behind; retry later");
    } else {
        accept_body(req, lp);
    }
}

static const char *
presented_key(struct astro_http_req *req)
{
    const char *auth = astro_http_req_header(req, "Authorization");
    if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0)
        return auth + 7;
    const char *x = astro_http_req_header(req, "X-API-Key");
    return x != NULL ? x : astro_http_req_query(req, "api_key");
}

/* Only api_key= is a parameter here; anything else is a client mistake worth naming. */
static const char *
unknown_param(struct astro_http_req *req)
{
    for (size_t i = 0; i < astro_http_req_query_count(req); i++) {
        const char *name, *value;
        astro_http_req_query_at(req, i, &name, &value);
        if (strcmp(name, "api_key") != 0)
            return name;
    }
    return NULL;
}

void
ing_http_events(struct astro_http_req *req, void *arg)
{
    struct ing_ctx *ctx = arg;
    struct ing_loop *lp = ing_loop_of(ctx, astro_http_req_loop(req));
    const char *key = presented_key(req);
    if (atomic_load(&ctx->stopping) || lp->draining) {
        respond_503(req, ctx, ING_R_UNAVAILABLE, "shutting down; retry elsewhere");
        return;
    }
    const char *bad = unknown_param(req);
    if (bad != NULL) {
        char msg[160];
        snprintf(msg, sizeof(msg), "unknown query parameter \"%.64s\"", bad);
        astro_http_req_respond_error(req, 400, msg);
        return;
    }
    if (key == NULL) {
        ing_reject(ctx, ING_R_BAD_KEY);
        astro_http_req_respond_error(req, 401, "api key required (Authorization: Bearer or "
                                     "X-API-Key)");
        return;
    }
    if (!content_type_ok(astro_http_req_header(req, "Content-Type"))) {
        astro_http_req_respond_error(req, 415, "Content-Type must be application/json or "
                                     "application/x-ndjson");
        return;
    }
    if (ing_auth_lookup(lp, key, on_key, req) != ASTRO_OK)
        respond_503(req, ctx, ING_R_UNAVAILABLE, "redis unavailable; retry");
}

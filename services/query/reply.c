/* Writing responses: JSON bodies, plain bodies and the JSON error shape every 4xx/5xx uses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <civetweb.h>

#include "astro/metrics.h"
#include "query.h"

/* A float8 column as a JSON number. PostgreSQL already prints the shortest text that reads
 * back to the same double, so that text is copied as is: parsing and re-printing it (strtod,
 * then cJSON's "%.15g" + sscanf check + "%.17g") was a visible part of a page's CPU time.
 * NaN and the infinities have no JSON form: null. */
void
qry_json_add_pg_number(cJSON *o, const char *name, const char *text)
{
    if (qry_is_json_number(text))
        cJSON_AddRawToObject(o, name, text);
    else
        cJSON_AddNullToObject(o, name);
}

static const char *
reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

/* Head and body leave in one write: two small writes would meet Nagle and the peer's delayed
 * ACK and cost ~40 ms per keep-alive request. */
static int
format_head(char *head, size_t size, int status, const char *ctype, size_t len)
{
    return snprintf(head, size,
                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                    "Cache-Control: no-store\r\n\r\n",
                    status, reason(status), ctype, len);
}

void
qry_reply_text(struct mg_connection *c, int status, const char *ctype, const char *body,
               size_t len)
{
    char head[256];
    int n = format_head(head, sizeof(head), status, ctype, len);
    char *buf = n > 0 ? malloc((size_t)n + len) : NULL;
    int64_t t0 = qry_mono_us();
    if (buf == NULL) {
        mg_write(c, head, strlen(head));
        mg_write(c, body, len);
    } else {
        memcpy(buf, head, (size_t)n);
        memcpy(buf + n, body, len);
        mg_write(c, buf, (size_t)n + len);
        free(buf);
    }
    qry_timing_add(qry_worker_of(c), QRY_ST_WRITE, t0);
}

void
qry_reply_jw(struct mg_connection *c, int status, struct qry_jw *w)
{
    char head[QRY_JW_HEAD];
    size_t body = w->len - QRY_JW_HEAD;
    int n = format_head(head, sizeof(head), status, "application/json", body);
    if (w->oom || n <= 0 || (size_t)n >= sizeof(head)) {
        static const char oom[] = "{\"error\":\"internal\",\"message\":\"out of memory\"}";
        qry_jw_cleanup(w);
        qry_reply_text(c, 500, "application/json", oom, sizeof(oom) - 1);
        return;
    }
    int64_t t0 = qry_mono_us();
    char *start = w->buf + QRY_JW_HEAD - n;
    memcpy(start, head, (size_t)n);
    mg_write(c, start, (size_t)n + body);
    qry_timing_add(qry_worker_of(c), QRY_ST_WRITE, t0);
    qry_jw_cleanup(w);
}

void
qry_reply_json(struct mg_connection *c, int status, cJSON *body)
{
    int64_t t0 = qry_mono_us();
    char *text = body != NULL ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    qry_timing_add(qry_worker_of(c), QRY_ST_RENDER, t0);
    if (text == NULL) {
        static const char oom[] = "{\"error\":\"internal\",\"message\":\"out of memory\"}";
        qry_reply_text(c, 500, "application/json", oom, sizeof(oom) - 1);
        return;
    }
    qry_reply_text(c, status, "application/json", text, strlen(text));
    free(text);
}

static struct astro_counter *
counter_for(struct qry_ctx *ctx, int status, const char *code)
{
    switch (status) {
    case 400: return ctx->m.bad_request;
    case 401: return ctx->m.unauthorized;
    case 403: return ctx->m.forbidden;
    case 404: return ctx->m.not_found;
    case 429: return ctx->m.rate_limited;
    default: return strcmp(code, "redis_unavailable") == 0 ? ctx->m.redis_errors
                                                           : ctx->m.db_errors;
    }
}

void
qry_reply_error(struct qry_ctx *ctx, struct mg_connection *c, int status, const char *code,
                const char *param, const char *msg)
{
    astro_counter_inc(counter_for(ctx, status, code));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", code);
    if (param != NULL)
        cJSON_AddStringToObject(o, "parameter", param);
    cJSON_AddStringToObject(o, "message", msg);
    qry_reply_json(c, status, o);
}

void
qry_reply_bad(struct qry_ctx *ctx, struct mg_connection *c, const struct qry_error *e)
{
    char msg[320];
    snprintf(msg, sizeof(msg), "%s: %s", e->param, e->msg);
    qry_reply_error(ctx, c, 400, "bad_parameter", e->param, msg);
}

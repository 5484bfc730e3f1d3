/* Writing responses: JSON bodies, plain bodies and the JSON error shape every 4xx/5xx uses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <civetweb.h>

#include "astro/metrics.h"
#include "query.h"

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
void
qry_reply_text(struct mg_connection *c, int status, const char *ctype, const char *body,
               size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n\r\n",
                     status, reason(status), ctype, len);
    char *buf = n > 0 ? malloc((size_t)n + len) : NULL;
    if (buf == NULL) {
        mg_write(c, head, strlen(head));
        mg_write(c, body, len);
        return;
    }
    memcpy(buf, head, (size_t)n);
    memcpy(buf + n, body, len);
    mg_write(c, buf, (size_t)n + len);
    free(buf);
}

void
qry_reply_json(struct mg_connection *c, int status, cJSON *body)
{
    char *text = body != NULL ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
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

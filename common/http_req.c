/* HTTP requests: accessors, URL and query decoding, and building answers. A request is owned by
 * the layer from the moment it is parsed until the handler answers it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "net_internal.h"

int
net_strbuf_add(struct net_strbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return ASTRO_ERR;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return ASTRO_OK;
}

void
net_strbuf_free(struct net_strbuf *b)
{
    free(b->p);
    *b = (struct net_strbuf){0};
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *
net_pct_decode(const char *s, size_t len, bool plus)
{
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            /* %00 is refused: every decoded value is handed out as a C string. */
            int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = plus && s[i] == '+' ? ' ' : s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static void
kv_free(struct net_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free(kv[i].value);
    }
    free(kv);
}

void
net_req_free(struct astro_http_req *req)
{
    if (req == NULL)
        return;
    net_strbuf_free(&req->url);
    free(req->path);
    kv_free(req->headers, req->nheaders);
    kv_free(req->query, req->nquery);
    kv_free(req->params, req->nparams);
    kv_free(req->resp_headers, req->nresp_headers);
    net_strbuf_free(&req->body);
    if (req->resp != NULL)
        evbuffer_free(req->resp);
    free(req);
}

/* Splits "a=1&b=x%20y" into decoded pairs; an item without '=' has the value "". */
static int
parse_query(struct astro_http_req *req, const char *q, char *err, size_t errlen)
{
    size_t cap = 1;
    for (const char *p = q; *p != '\0'; p++)
        cap += *p == '&';
    req->query = calloc(cap, sizeof(*req->query));
    if (req->query == NULL)
        return astro_fail(err, errlen, "out of memory");
    while (*q != '\0') {
        size_t item = strcspn(q, "&");
        size_t nlen = strcspn(q, "=&");
        if (item > 0) {
            struct net_kv *kv = &req->query[req->nquery++];
            kv->name = net_pct_decode(q, nlen, true);
            kv->value = nlen < item ? net_pct_decode(q + nlen + 1, item - nlen - 1, true)
                                    : strdup("");
            if (kv->name == NULL || kv->value == NULL)
                return astro_fail(err, errlen, "query: bad percent-encoding near \"%.*s\"",
                                  (int)(item > 40 ? 40 : item), q);
        }
        q += item + (q[item] == '&');
    }
    return ASTRO_OK;
}

int
net_req_parse_url(struct astro_http_req *req, char *err, size_t errlen)
{
    const char *url = req->url.p;
    if (url == NULL || url[0] != '/')
        return astro_fail(err, errlen, "request target: must be an absolute path");
    size_t plen = strcspn(url, "?#");
    req->path = net_pct_decode(url, plen, false);
    if (req->path == NULL)
        return astro_fail(err, errlen, "path: bad percent-encoding");
    if (url[plen] != '?')
        return ASTRO_OK;
    char *q = strndup(url + plen + 1, strcspn(url + plen + 1, "#"));
    if (q == NULL)
        return astro_fail(err, errlen, "out of memory");
    int rc = parse_query(req, q, err, errlen);
    free(q);
    return rc;
}

const char *
astro_http_req_method(const struct astro_http_req *req)
{
    return req->method;
}

const char *
astro_http_req_path(const struct astro_http_req *req)
{
    return req->path;
}

static const char *
kv_find(const struct net_kv *kv, size_t n, const char *name, bool nocase)
{
    for (size_t i = 0; i < n; i++)
        if ((nocase ? strcasecmp(kv[i].name, name) : strcmp(kv[i].name, name)) == 0)
            return kv[i].value;
    return NULL;
}

const char *
astro_http_req_param(const struct astro_http_req *req, const char *name)
{
    return kv_find(req->params, req->nparams, name, false);
}

const char *
astro_http_req_query(const struct astro_http_req *req, const char *name)
{
    return kv_find(req->query, req->nquery, name, false);
}

size_t
astro_http_req_query_count(const struct astro_http_req *req)
{
    return req->nquery;
}

void
astro_http_req_query_at(const struct astro_http_req *req, size_t i, const char **name,
                        const char **value)
{
    *name = req->query[i].name;
    *value = req->query[i].value;
}

const char *
astro_http_req_header(const struct astro_http_req *req, const char *name)
{
    return kv_find(req->headers, req->nheaders, name, true);
}

const char *
astro_http_req_body(const struct astro_http_req *req, size_t *len)
{
    if (len != NULL)
        *len = req->body.len;
    return req->body.p != NULL ? req->body.p : "";
}

const char *
astro_http_req_peer(const struct astro_http_req *req)
{
    return req->conn != NULL ? req->conn->peer : "";
}

struct astro_loop *
astro_http_req_loop(const struct astro_http_req *req)
{
    return req->conn != NULL ? req->conn->nl->loop : NULL;
}

bool
astro_http_req_abandoned(const struct astro_http_req *req)
{
    return req->conn == NULL;
}

int
astro_http_req_add_header(struct astro_http_req *req, const char *name, const char *value)
{
    if (strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL)
        return ASTRO_ERR;
    struct net_kv *kv = realloc(req->resp_headers, (req->nresp_headers + 1) * sizeof(*kv));
    if (kv == NULL)
        return ASTRO_ERR;
    req->resp_headers = kv;
    kv[req->nresp_headers].name = strdup(name);
    kv[req->nresp_headers].value = strdup(value);
    req->nresp_headers++;
    if (kv[req->nresp_headers - 1].name == NULL || kv[req->nresp_headers - 1].value == NULL)
        return ASTRO_ERR;
    return ASTRO_OK;
}

int
net_req_build_response(struct astro_http_req *req, int status, const char *content_type,
                       const void *body, size_t len, bool close)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL)
        return ASTRO_ERR;
    int rc = evbuffer_add_printf(b, "HTTP/1.1 %d %s\r\n", status, astro_http_status_text(status));
    for (size_t i = 0; rc >= 0 && i < req->nresp_headers; i++)
        rc = evbuffer_add_printf(b, "%s: %s\r\n", req->resp_headers[i].name,
                                 req->resp_headers[i].value);
    if (rc >= 0 && content_type != NULL)
        rc = evbuffer_add_printf(b, "Content-Type: %s\r\n", content_type);
    if (rc >= 0)
        rc = evbuffer_add_printf(b, "Content-Length: %zu\r\nConnection: %s\r\n\r\n", len,
                                 close ? "close" : "keep-alive");
    if (rc >= 0 && len > 0 && !req->head)
        rc = evbuffer_add(b, body, len);
    if (rc < 0) {
        evbuffer_free(b);
        return ASTRO_ERR;
    }
    if (req->resp != NULL)
        evbuffer_free(req->resp);
    req->resp = b;
    return ASTRO_OK;
}

const char *
astro_http_status_text(int status)
{
    static const struct {
        int code;
        const char *text;
    } t[] = {
        {101, "Switching Protocols"}, {200, "OK"}, {201, "Created"}, {202, "Accepted"},
        {204, "No Content"}, {301, "Moved Permanently"}, {304, "Not Modified"},
        {400, "Bad Request"}, {401, "Unauthorized"}, {403, "Forbidden"}, {404, "Not Found"},
        {405, "Method Not Allowed"}, {408, "Request Timeout"}, {409, "Conflict"},
        {411, "Length Required"}, {413, "Content Too Large"}, {415, "Unsupported Media Type"},
        {426, "Upgrade Required"}, {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"}, {500, "Internal Server Error"},
        {501, "Not Implemented"}, {503, "Service Unavailable"},
    };
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(t); i++)
        if (t[i].code == status)
            return t[i].text;
    return "Unknown";
}

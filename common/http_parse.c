/* Feeding a connection's input to http-parser: request assembly, the header/body limits,
 * length rules (400 / 411 / 413 / 431) and dispatch to routes. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "astro/log.h"
#include "net_internal.h"

#define MAX_PIPELINE 32

/* Set by a callback that refuses the request; http_parser then stops with a CB_ error. */
struct parse_fail {
    int status;
    const char *reason;
};

static _Thread_local struct parse_fail fail_note;

static int
refuse(int status, const char *reason)
{
    fail_note.status = status;
    fail_note.reason = reason;
    return -1;
}

static struct net_conn *
conn_of(http_parser *p)
{
    return p->data;
}

static int
count_header(struct net_conn *c, size_t n)
{
    c->header_bytes += n;
    if (c->header_bytes > c->nl->srv->opts.limits.header_bytes) {
        net_limit_hit(&c->nl->srv->stats, NET_LIM_HEADER_BYTES);
        return refuse(431, "request headers too large");
    }
    return 0;
}

static int
on_message_begin(http_parser *p)
{
    struct net_conn *c = conn_of(p);
    c->cur = calloc(1, sizeof(*c->cur));
    if (c->cur == NULL)
        return refuse(503, "out of memory");
    c->cur->conn = c;
    c->header_bytes = 0;
    if (c->phase != PH_HEADERS) {
        c->phase = PH_HEADERS;
        c->phase_at = net_now_ms();
    }
    return 0;
}

static int
on_url(http_parser *p, const char *at, size_t n)
{
    struct net_conn *c = conn_of(p);
    if (count_header(c, n) != 0)
        return -1;
    return net_strbuf_add(&c->cur->url, at, n) == ASTRO_OK ? 0 : refuse(503, "out of memory");
}

/* Header names and values may arrive in pieces; a name after a value starts a new header. */
static int
on_header_field(http_parser *p, const char *at, size_t n)
{
    struct net_conn *c = conn_of(p);
    struct astro_http_req *r = c->cur;
    if (count_header(c, n + 4) != 0)
        return -1;
    if (r->nheaders == 0 || r->header_value) {
        struct net_kv *kv = realloc(r->headers, (r->nheaders + 1) * sizeof(*kv));
        if (kv == NULL)
            return refuse(503, "out of memory");
        r->headers = kv;
        kv[r->nheaders++] = (struct net_kv){0};
        r->header_value = false;
    }
    struct net_kv *kv = &r->headers[r->nheaders - 1];
    struct net_strbuf b = {kv->name, kv->name ? strlen(kv->name) : 0, kv->name ? strlen(kv->name) + 1 : 0};
    if (net_strbuf_add(&b, at, n) != ASTRO_OK)
        return refuse(503, "out of memory");
    kv->name = b.p;
    return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t n)
{
    struct net_conn *c = conn_of(p);
    struct astro_http_req *r = c->cur;
    if (count_header(c, n) != 0)
        return -1;
    if (r->nheaders == 0)
        return refuse(400, "header value without a name");
    r->header_value = true;
    struct net_kv *kv = &r->headers[r->nheaders - 1];
    struct net_strbuf b = {kv->value, kv->value ? strlen(kv->value) : 0,
                           kv->value ? strlen(kv->value) + 1 : 0};
    if (net_strbuf_add(&b, at, n) != ASTRO_OK)
        return refuse(503, "out of memory");
    kv->value = b.p;
    return 0;
}

static bool
method_needs_length(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
}

/* A client that sent "Expect: 100-continue" waits for this before sending the body (curl does
 * for large uploads). Only said when no earlier answer is owed, so answers stay in order; the
 * refusals (411/413) above have already been decided. */
static void
expect_continue(struct net_conn *c, const struct astro_http_req *r)
{
    const char *expect = astro_http_req_header(r, "Expect");
    if (expect == NULL || strcasecmp(expect, "100-continue") != 0 || c->head != NULL ||
        c->parser.http_minor < 1 || c->over_limit)
        return;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (evbuffer_add(bufferevent_get_output(c->bev), cont, sizeof(cont) - 1) != 0)
        astro_log_warn("net: %s: cannot write 100 Continue", c->peer);
}

static int
on_headers_complete(http_parser *p)
{
    struct net_conn *c = conn_of(p);
    struct astro_http_req *r = c->cur;
    const struct astro_net_limits *l = &c->nl->srv->opts.limits;
    char err[160];
    for (size_t i = 0; i < r->nheaders; i++)
        if (r->headers[i].value == NULL && (r->headers[i].value = strdup("")) == NULL)
            return refuse(503, "out of memory");
    r->method = http_method_str((enum http_method)p->method);
    r->head = p->method == HTTP_HEAD;
    r->keep_alive = http_should_keep_alive(p) != 0;
    r->upgrade = p->upgrade != 0;
    if (net_req_parse_url(r, err, sizeof(err)) != ASTRO_OK) {
        fail_note.status = 400;
        fail_note.reason = r->path == NULL ? "path: bad percent-encoding"
                                           : "query: bad percent-encoding";
        return -1;
    }
    bool has_len = (p->flags & F_CONTENTLENGTH) != 0, chunked = (p->flags & F_CHUNKED) != 0;
    if (has_len && p->content_length > l->body_bytes) {
        net_limit_hit(&c->nl->srv->stats, NET_LIM_BODY_BYTES);
        return refuse(413, "request body too large");
    }
    if (!has_len && !chunked && !r->upgrade && method_needs_length(r->method))
        return refuse(411, "Content-Length required");
    c->phase = PH_BODY;
    c->phase_at = net_now_ms();
    expect_continue(c, r);
    return 0;
}

static int
on_body(http_parser *p, const char *at, size_t n)
{
    struct net_conn *c = conn_of(p);
    struct astro_http_req *r = c->cur;
    if (r->body.len + n > c->nl->srv->opts.limits.body_bytes) {
        net_limit_hit(&c->nl->srv->stats, NET_LIM_BODY_BYTES);
        return refuse(413, "request body too large");
    }
    c->phase_at = net_now_ms();
    return net_strbuf_add(&r->body, at, n) == ASTRO_OK ? 0 : refuse(503, "out of memory");
}

static int
on_message_complete(http_parser *p)
{
    struct net_conn *c = conn_of(p);
    struct astro_http_req *r = c->cur;
    c->cur = NULL;
    c->phase = PH_WAIT;
    c->phase_at = net_now_ms();
    r->next = NULL;
    if (c->tail != NULL)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->npending++;
    net_count(c->nl->srv->stats.requests, 1);
    /* Upgrades wait for their turn at the head of the queue; nothing after one is HTTP. */
    if (r->upgrade) {
        http_parser_pause(p, 1);
        return 0;
    }
    net_http_dispatch(c, r);
    if (c->dead || c->close_after || c->npending >= MAX_PIPELINE)
        http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Maps a parser error to the answer: oversized headers are 431, everything else 400. */
static void
parser_failed(struct net_conn *c)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e >= HPE_CB_message_begin && e <= HPE_CB_chunk_complete && fail_note.status != 0) {
        net_conn_fail_http(c, fail_note.status, fail_note.reason);
    } else if (e == HPE_HEADER_OVERFLOW) {
        net_limit_hit(&c->nl->srv->stats, NET_LIM_HEADER_BYTES);
        net_conn_fail_http(c, 431, "request headers too large");
    } else {
        net_count(c->nl->srv->stats.protocol_errors, 1);
        net_conn_fail_http(c, 400, http_errno_description(e));
    }
}

void
net_http_read(struct net_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (!c->dead && !c->close_after && c->phase != PH_WS && evbuffer_get_length(in) > 0) {
        if (c->npending >= MAX_PIPELINE || (c->tail != NULL && c->tail->upgrade)) {
            bufferevent_disable(c->bev, EV_READ); /* re-enabled as answers go out */
            return;
        }
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            return;
        fail_note.status = 0;
        http_parser_pause(&c->parser, 0);
        size_t n = http_parser_execute(&c->parser, &parser_settings, v.iov_base, v.iov_len);
        if (c->dead)
            return;
        evbuffer_drain(in, n);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e != HPE_OK && e != HPE_PAUSED) {
            parser_failed(c);
            return;
        }
        if (c->tail != NULL && c->tail->upgrade)
            net_conn_flush_answers(c); /* upgrades now if it is alone in the queue */
        if (n == 0 && e != HPE_PAUSED)
            return;
    }
}

/* Answers req at once with an error body; keep-alive is kept for 404/405/426. */
static void
answer_error(struct astro_http_req *r, int status, const char *reason, bool close)
{
    r->dispatched = true;
    if (close)
        r->keep_alive = false;
    astro_http_req_respond_error(r, status, reason);
}

void
net_http_dispatch(struct net_conn *c, struct astro_http_req *r)
{
    struct astro_http_server *s = c->nl->srv;
    if (c->over_limit) {
        if (astro_http_req_add_header(r, "Retry-After", "1") != ASTRO_OK)
            astro_log_warn("net: %s: cannot add Retry-After", c->peer);
        answer_error(r, 503, "server at its connection limit", true);
        return;
    }
    int status;
    char allow[128];
    const struct net_route *route = net_route_match(s->routes, s->nroutes, r, &status, allow,
                                                    sizeof(allow));
    if (route == NULL) {
        if (status == 405 && astro_http_req_add_header(r, "Allow", allow) != ASTRO_OK)
            astro_log_warn("net: %s: cannot add Allow", c->peer);
        answer_error(r, status, status == 405 ? "method not allowed"
                                : status == 404 ? "no such resource" : "bad path parameter",
                     false);
        return;
    }
    if (route->ws != NULL) {
        if (astro_http_req_add_header(r, "Upgrade", "websocket") != ASTRO_OK)
            astro_log_warn("net: %s: cannot add Upgrade", c->peer);
        answer_error(r, 426, "this resource is a WebSocket endpoint", false);
        return;
    }
    r->route = route;
    r->dispatched = true;
    route->fn(r, route->arg);
}

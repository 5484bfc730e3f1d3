/* One TCP connection on a loop: reading and parsing HTTP/1.1 requests with http-parser,
 * dispatching them, writing answers in request order, deadlines, and closing. After an upgrade
 * the same connection is handed to ws_conn.c. */
#include <arpa/inet.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "astro/log.h"
#include "net_internal.h"

/* Requests parsed ahead of their answers; past this the connection stops reading until answers
 * go out, so a pipelining client cannot make us hold unbounded requests. */
#define MAX_PIPELINE 32
/* An over-limit connection gets this long to send the request we answer 503 / 1013. */
#define OVER_LIMIT_MS 1000
/* After our last byte, how long we keep reading (and discarding) before closing: closing with
 * unread input makes the kernel send a reset that can destroy the answer in flight. */
#define LINGER_MS 2000

static void conn_free(struct net_conn *c);
static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);

uint64_t
net_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const struct astro_net_limits *
limits(const struct net_conn *c)
{
    return &c->nl->srv->opts.limits;
}

static struct net_stats *
stats(const struct net_conn *c)
{
    return &c->nl->srv->stats;
}

static void
peer_name(const struct sockaddr *sa, char *out, size_t len)
{
    const void *addr = sa->sa_family == AF_INET6
                           ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                           : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (inet_ntop(sa->sa_family, addr, out, (socklen_t)len) == NULL)
        snprintf(out, len, "?");
}

/* Decides whether this connection is over a cap; it is still served one answer (503 / 1013)
 * so the client learns why, instead of a bare reset. */
static void
apply_caps(struct net_conn *c, unsigned total)
{
    struct astro_http_server *s = c->nl->srv;
    if (total > limits(c)->max_connections) {
        c->over_limit = true;
        net_limit_hit(stats(c), NET_LIM_CONNECTIONS);
    } else if (net_quota_take(s->peers, c->peer, limits(c)->max_conns_per_peer) == ASTRO_OK) {
        c->peer_counted = true;
    } else {
        c->over_limit = true;
        net_limit_hit(stats(c), NET_LIM_PER_PEER);
    }
}

void
net_conn_accept(struct net_loop *nl, int fd, const struct sockaddr *sa, int salen)
{
    struct astro_http_server *s = nl->srv;
    (void)salen;
    unsigned total = atomic_fetch_add(&s->nconns, 1) + 1;
    net_count(s->stats.accepted, 1);
    struct net_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto fail;
    c->nl = nl;
    peer_name(sa, c->peer, sizeof(c->peer));
    c->bev = bufferevent_socket_new(astro_loop_base(nl->loop), fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(astro_loop_base(nl->loop), on_timer, c);
    if (c->bev == NULL || c->timer == NULL)
        goto fail;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->phase = PH_HEADERS;
    c->phase_at = net_now_ms();
    apply_caps(c, total);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_enable(c->bev, EV_READ);
    c->next = nl->conns;
    if (nl->conns != NULL)
        nl->conns->prev = c;
    nl->conns = c;
    if (s->stats.connections != NULL)
        astro_gauge_add(s->stats.connections, 1);
    net_conn_schedule(c);
    return;
fail:
    astro_log_error("net: cannot set up connection from fd %d: out of memory", fd);
    if (c != NULL && c->bev != NULL)
        bufferevent_free(c->bev);
    else
        evutil_closesocket(fd);
    if (c != NULL && c->timer != NULL)
        event_free(c->timer);
    free(c);
    net_server_conn_gone(s);
}

void
net_conn_enter(struct net_conn *c)
{
    c->busy++;
}

bool
net_conn_leave(struct net_conn *c)
{
    if (--c->busy == 0 && c->dead) {
        conn_free(c);
        return true;
    }
    return false;
}

/* Requests on a closing connection: those a handler holds become abandoned (it frees them by
 * answering); the rest are freed here. */
static void
abandon_requests(struct net_conn *c)
{
    struct astro_http_req *r = c->head;
    while (r != NULL) {
        struct astro_http_req *next = r->next;
        r->next = NULL;
        r->conn = NULL;
        if (!r->dispatched || r->resp != NULL)
            net_req_free(r);
        r = next;
    }
    c->head = c->tail = NULL;
    c->npending = 0;
    net_req_free(c->cur);
    c->cur = NULL;
}

/* The teardown proper, once no callback of ours is on the stack: the service's on_close runs
 * here, never in the middle of its own on_message. */
static void
conn_free(struct net_conn *c)
{
    if (c->ws != NULL)
        net_ws_free(c, 1006);
    abandon_requests(c);
    if (c->peer_counted)
        net_quota_release(c->nl->srv->peers, c->peer);
    bufferevent_free(c->bev);
    event_free(c->timer);
    net_server_conn_gone(c->nl->srv);
    free(c);
}

void
net_conn_close(struct net_conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    evtimer_del(c->timer);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->nl->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (stats(c)->connections != NULL)
        astro_gauge_add(stats(c)->connections, -1);
    if (c->busy == 0)
        conn_free(c);
}

/* Closes a connection marked close_after once no answer is owed and everything is written. */
static void
maybe_close(struct net_conn *c)
{
    if (!c->close_after || c->dead || c->lingering || c->head != NULL ||
        evbuffer_get_length(bufferevent_get_output(c->bev)) != 0)
        return;
    if (c->no_linger) {
        net_conn_close(c);
        return;
    }
    c->lingering = true;
    c->phase_at = net_now_ms();
    if (shutdown(bufferevent_getfd(c->bev), SHUT_WR) != 0) {
        net_conn_close(c);
        return;
    }
    bufferevent_enable(c->bev, EV_READ);
    evtimer_del(c->timer);
    net_conn_schedule(c);
}

void
net_conn_close_after_flush(struct net_conn *c)
{
    c->close_after = true;
    /* A WebSocket keeps reading (and discarding) so the peer's close or EOF is seen. */
    if (c->phase != PH_WS)
        bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    maybe_close(c);
}

static uint64_t
http_deadline(const struct net_conn *c)
{
    const struct astro_net_limits *l = limits(c);
    switch (c->phase) {
    case PH_HEADERS:
        return c->phase_at + (c->over_limit && l->handshake_ms > OVER_LIMIT_MS ? OVER_LIMIT_MS
                                                                              : l->handshake_ms);
    case PH_BODY:
        return c->phase_at + l->stall_ms;
    case PH_WAIT:
        return c->npending == 0 && l->idle_ms != 0 && !c->close_after ? c->phase_at + l->idle_ms
                                                                      : 0;
    case PH_WS:
        break;
    }
    return 0;
}

void
net_conn_schedule(struct net_conn *c)
{
    uint64_t now = net_now_ms();
    uint64_t at = c->lingering        ? c->phase_at + LINGER_MS
                  : c->phase == PH_WS ? net_ws_timer(c, now)
                                      : http_deadline(c);
    if (at == 0 || c->dead)
        return;
    /* A later deadline keeps the earlier timer: it fires, finds nothing due and re-arms. That
     * saves a heap update per read. */
    if (evtimer_pending(c->timer, NULL) && c->timer_at <= at)
        return;
    uint64_t d = at > now ? at - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(d / 1000), .tv_usec = (suseconds_t)(d % 1000) * 1000};
    c->timer_at = at;
    evtimer_add(c->timer, &tv);
}

static void
http_timeout(struct net_conn *c, uint64_t now)
{
    uint64_t at = http_deadline(c);
    if (at == 0 || now < at) {
        net_conn_schedule(c);
        return;
    }
    switch (c->phase) {
    case PH_HEADERS:
        net_limit_hit(stats(c), NET_LIM_HANDSHAKE);
        net_conn_fail_http(c, 408, "request headers not received in time");
        break;
    case PH_BODY:
        net_limit_hit(stats(c), NET_LIM_STALL);
        net_conn_fail_http(c, 408, "request body stalled");
        break;
    default:
        net_limit_hit(stats(c), NET_LIM_IDLE);
        net_conn_close(c);
        break;
    }
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct net_conn *c = arg;
    (void)fd;
    (void)what;
    net_conn_enter(c);
    if (c->lingering && net_now_ms() >= c->phase_at + LINGER_MS) {
        astro_log_debug("net: %s: linger deadline", c->peer);
        net_conn_close(c);
    }
    else if (c->phase == PH_WS || c->lingering)
        net_conn_schedule(c); /* net_ws_timer acts on what is due and returns the next one */
    else
        http_timeout(c, net_now_ms());
    net_conn_leave(c);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
    struct net_conn *c = arg;
    (void)bev;
    net_conn_enter(c);
    if (c->lingering) {
        evbuffer_drain(bufferevent_get_input(c->bev), (size_t)-1);
    }
    else if (c->phase == PH_WS)
        net_ws_on_read(c);
    else
        net_http_read(c);
    if (!c->dead)
        net_conn_schedule(c);
    net_conn_leave(c);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
    struct net_conn *c = arg;
    (void)bev;
    net_conn_enter(c);
    if (c->phase == PH_WS && !c->close_after)
        net_ws_on_write(c);
    else
        maybe_close(c);
    net_conn_leave(c);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
    struct net_conn *c = arg;
    (void)bev;
    net_conn_enter(c);
    /* A client that half-closes after its last request still gets the answers. */
    if ((what & BEV_EVENT_EOF) && c->phase != PH_WS && c->npending > 0)
        net_conn_close_after_flush(c);
    else
        net_conn_close(c);
    net_conn_leave(c);
}

/* Writes ready answers in request order; an upgrade at the head is performed once every
 * earlier request has been answered. */
void
net_conn_flush_answers(struct net_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (!c->dead && c->head != NULL && c->phase != PH_WS) {
        struct astro_http_req *r = c->head;
        if (r->upgrade && r->resp == NULL) {
            net_ws_upgrade(c, r); /* pops r, or answers it with a refusal */
            return;
        }
        if (r->resp == NULL)
            break;
        c->head = r->next;
        if (c->head == NULL)
            c->tail = NULL;
        c->npending--;
        evbuffer_add_buffer(out, r->resp);
        if (!r->keep_alive || r->upgrade)
            c->close_after = true;
        net_req_free(r);
    }
    if (c->dead)
        return;
    if (c->close_after) {
        net_conn_close_after_flush(c);
    } else if (c->npending < MAX_PIPELINE && !(bufferevent_get_enabled(c->bev) & EV_READ)) {
        /* Reading was paused for a full pipeline: parse what is already buffered, later. */
        bufferevent_enable(c->bev, EV_READ);
        if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
            bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS |
                                                     BEV_TRIG_DEFER_CALLBACKS);
    }
    if (c->npending == 0 && c->phase == PH_WAIT)
        net_conn_schedule(c);
}

static void
append_json_string(struct net_strbuf *b, const char *s, int *rc)
{
    for (; *s != '\0' && *rc == ASTRO_OK; s++) {
        char esc[8];
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            snprintf(esc, sizeof(esc), "\\%c", ch);
        else if (ch < 0x20)
            snprintf(esc, sizeof(esc), "\\u%04x", ch);
        else
            snprintf(esc, sizeof(esc), "%c", ch);
        *rc = net_strbuf_add(b, esc, strlen(esc));
    }
}

/* Builds {"error":"reason"} into req's answer. */
static int
build_error(struct astro_http_req *req, int status, const char *reason, bool close)
{
    struct net_strbuf b = {0};
    int rc = net_strbuf_add(&b, "{\"error\":\"", 10);
    append_json_string(&b, reason, &rc);
    if (rc == ASTRO_OK)
        rc = net_strbuf_add(&b, "\"}", 2);
    if (rc == ASTRO_OK)
        rc = net_req_build_response(req, status, "application/json", b.p, b.len, close);
    net_strbuf_free(&b);
    return rc;
}

void
net_conn_fail_http(struct net_conn *c, int status, const char *reason)
{
    struct astro_http_req *r = c->cur != NULL ? c->cur : calloc(1, sizeof(*r));
    c->cur = NULL;
    if (r == NULL) {
        net_conn_close(c);
        return;
    }
    astro_log_debug("net: %s: %d %s", c->peer, status, reason);
    r->conn = c;
    r->keep_alive = false;
    r->upgrade = false;
    r->head = false;
    c->close_after = true;
    bufferevent_disable(c->bev, EV_READ);
    if (status == 503 && astro_http_req_add_header(r, "Retry-After", "1") != ASTRO_OK)
        astro_log_warn("net: %s: cannot add Retry-After", c->peer);
    if (build_error(r, status, reason, true) != ASTRO_OK) {
        net_req_free(r);
        net_conn_close(c);
        return;
    }
    r->next = NULL;
    if (c->tail != NULL)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->npending++;
    net_conn_flush_answers(c);
}

void
astro_http_req_respond(struct astro_http_req *req, int status, const char *content_type,
                       const void *body, size_t len)
{
    struct net_conn *c = req->conn;
    if (c == NULL) {
        net_req_free(req);
        return;
    }
    bool close = !req->keep_alive || c->close_after || atomic_load(&c->nl->srv->shutting_down);
    if (net_req_build_response(req, status, content_type, body, len, close) != ASTRO_OK &&
        build_error(req, 500, "out of memory", true) != ASTRO_OK) {
        net_conn_close(c); /* abandons req: it is ours to free */
        net_req_free(req);
        return;
    }
    req->keep_alive = !close;
    net_conn_enter(c);
    net_conn_flush_answers(c);
    net_conn_leave(c);
}

void
astro_http_req_respond_json(struct astro_http_req *req, int status, const char *json)
{
    astro_http_req_respond(req, status, "application/json", json, strlen(json));
}

void
astro_http_req_respond_error(struct astro_http_req *req, int status, const char *reason)
{
    struct net_strbuf b = {0};
    int rc = net_strbuf_add(&b, "{\"error\":\"", 10);
    append_json_string(&b, reason, &rc);
    if (rc == ASTRO_OK)
        rc = net_strbuf_add(&b, "\"}", 2);
    if (rc == ASTRO_OK)
        astro_http_req_respond_json(req, status, b.p);
    else
        astro_http_req_respond(req, 500, NULL, NULL, 0);
    net_strbuf_free(&b);
}

/* Shutdown: WebSockets get 1001; HTTP connections finish the requests they have. */
void
net_conn_drain(struct net_conn *c)
{
    net_conn_enter(c);
    if (c->phase == PH_WS && c->ws != NULL)
        astro_ws_close(c->ws, ASTRO_WS_CLOSE_GOING_AWAY,
                       "server shutting down");
    else if (c->npending == 0)
        net_conn_close(c);
    else
        net_conn_close_after_flush(c);
    net_conn_leave(c);
}

/* WebSocket connections: the upgrade, frame-header checks ahead of wslay, message assembly,
 * the bounded outgoing queue of shared frames, ping/pong and the closing handshake.
 *
 * wslay runs in no-buffering mode: it parses and unmasks frames, answers pings and closes, and
 * validates UTF-8 and close codes; payload is assembled here as it actually arrives, so a frame
 * that declares a large length costs nothing until its bytes come. Every frame header is checked
 * here first (prescan) as soon as its bytes are in the input buffer, and wslay is only ever given
 * the bytes in front of a header that failed the checks. Data messages never go through wslay's
 * send queue: they are appended by reference; wslay writes only control frames, and both write
 * whole frames to the same output buffer, so frames never interleave. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "astro/log.h"
#include "astro/utf8.h"
#include "net_internal.h"

/* Bytes moved from the queue into the socket buffer at a time; the rest stay countable and
 * droppable in the queue. */
#define OUT_CHUNK (64 * 1024)
#define OUT_LOW_WATER (16 * 1024)
/* A message buffer larger than this is released after delivery, so idle connections stay
 * small. */
#define KEEP_MSG_BUF 4096

struct astro_ws_conn {
    struct net_conn *c;
    wslay_event_context_ptr ctx;
    const struct astro_ws_handlers *h;
    void *user;
    /* prescan state: offsets are into the connection's input buffer */
    uint8_t hdr[14];
    uint8_t hdr_have;
    uint64_t payload_left;
    size_t scanned;
    size_t feed_limit;
    bool frag_open;
    uint64_t msg_declared;
    uint16_t violation;
    const char *violation_reason;
    /* message being assembled */
    uint8_t frame_op;
    uint8_t msg_op;
    struct net_strbuf msg;
    /* outgoing data messages not yet in the socket buffer */
    struct astro_ws_msg **q;
    size_t qcap, qhead, qlen, qbytes;
    bool drop_oldest;
    bool closing;
    bool close_queued;
    uint16_t close_code;
    uint16_t code_received;
    char close_reason[124];
    uint64_t close_at;
    uint64_t last_rx;
    uint64_t ping_at;
    bool ping_out;
    char *key;
};

static struct net_stats *
stats(const struct astro_ws_conn *ws)
{
    return &ws->c->nl->srv->stats;
}

static const struct astro_net_limits *
limits(const struct astro_ws_conn *ws)
{
    return &ws->c->nl->srv->opts.limits;
}

/* ---- wslay callbacks ---- */

static ssize_t
recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    struct astro_ws_conn *ws = user;
    (void)flags;
    size_t n = len < ws->feed_limit ? len : ws->feed_limit;
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    int got = evbuffer_remove(bufferevent_get_input(ws->c->bev), buf, n);
    if (got <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    ws->feed_limit -= (size_t)got;
    ws->scanned -= (size_t)got;
    return got;
}

static ssize_t
send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
    struct astro_ws_conn *ws = user;
    (void)flags;
    if (evbuffer_add(bufferevent_get_output(ws->c->bev), data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void
on_frame_start(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *a,
               void *user)
{
    struct astro_ws_conn *ws = user;
    (void)ctx;
    ws->frame_op = a->opcode;
    if (a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME) {
        ws->msg_op = a->opcode;
        ws->msg.len = 0;
    }
}

static void
on_frame_chunk(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_chunk_arg *a,
               void *user)
{
    struct astro_ws_conn *ws = user;
    (void)ctx;
    if (ws->frame_op > WSLAY_BINARY_FRAME || ws->violation != 0)
        return;
    /* The prescan already bounded the message; this only fails on memory exhaustion. */
    if (net_strbuf_add(&ws->msg, (const char *)a->data, a->data_length) != ASTRO_OK) {
        ws->violation = ASTRO_WS_CLOSE_INTERNAL;
        ws->violation_reason = "out of memory";
    }
}

static void fail_ws(struct astro_ws_conn *ws, uint16_t code, const char *reason);

static void
deliver(struct astro_ws_conn *ws)
{
    const char *data = ws->msg.p != NULL ? ws->msg.p : "";
    size_t len = ws->msg.len;
    /* wslay checks UTF-8 as frames arrive; this is the project's validator as a second
     * opinion on the whole message before the service sees it. */
    if (ws->msg_op == WSLAY_TEXT_FRAME && !astro_utf8_valid(data, len)) {
        fail_ws(ws, ASTRO_WS_CLOSE_BAD_DATA, "invalid UTF-8");
        return;
    }
    ws->h->on_message(ws, ws->msg_op == WSLAY_TEXT_FRAME ? ASTRO_WS_TEXT : ASTRO_WS_BINARY,
                      (const uint8_t *)data, len, ws->user);
    if (ws->msg.cap > KEEP_MSG_BUF)
        net_strbuf_free(&ws->msg);
    ws->msg.len = 0;
}

static void
on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a, void *user)
{
    struct astro_ws_conn *ws = user;
    (void)ctx;
    if (ws->c->dead)
        return;
    if (a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME)
        deliver(ws);
    else if (a->opcode == WSLAY_CONNECTION_CLOSE)
        ws->code_received = a->status_code != 0 ? a->status_code : 1005;
}

static const struct wslay_event_callbacks wslay_callbacks = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
    .on_frame_recv_start_callback = on_frame_start,
    .on_frame_recv_chunk_callback = on_frame_chunk,
    .on_msg_recv_callback = on_msg,
};

/* ---- frame-header checks, before wslay and before any payload is kept ---- */

static size_t
header_need(const uint8_t *h, size_t have)
{
    if (have < 2)
        return 2;
    size_t len7 = h[1] & 0x7fu;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((h[1] & 0x80u) ? 4 : 0);
}

static int
violate(struct astro_ws_conn *ws, uint16_t code, const char *reason)
{
    ws->violation = code;
    ws->violation_reason = reason;
    return ASTRO_ERR;
}

/* The checks that need only the first two bytes: RFC 6455 5.2, 5.4, 5.5. */
static int
check_start(struct astro_ws_conn *ws)
{
    unsigned fin = ws->hdr[0] >> 7, rsv = (ws->hdr[0] >> 4) & 7u, op = ws->hdr[0] & 0xfu;
    unsigned len7 = ws->hdr[1] & 0x7fu;
    if (rsv != 0)
        return violate(ws, ASTRO_WS_CLOSE_PROTOCOL, "RSV bits set without an extension");
    if (op > 2 && op != 8 && op != 9 && op != 10)
        return violate(ws, ASTRO_WS_CLOSE_PROTOCOL, "unknown opcode");
    if (!(ws->hdr[1] & 0x80u))
        return violate(ws, ASTRO_WS_CLOSE_PROTOCOL, "client frames must be masked");
    if (op >= 8 && !fin)
        return violate(ws, ASTRO_WS_CLOSE_PROTOCOL, "fragmented control frame");
    if (op >= 8 && len7 > 125)
        return violate(ws, ASTRO_WS_CLOSE_PROTOCOL, "control frame over 125 bytes");
    if (op == 0 && !ws->frag_open)
        return violate(ws, ASTRO_WS_CLOSE_PROTOCOL, "continuation without a start");
    if ((op == 1 || op == 2) && ws->frag_open)
        return violate(ws, ASTRO_WS_CLOSE_PROTOCOL, "new message inside a fragmented one");
    if (op == 1 && ws->h->accept == ASTRO_WS_ACCEPT_BINARY)
        return violate(ws, ASTRO_WS_CLOSE_UNSUPPORTED, "text messages are not accepted");
    if (op == 2 && ws->h->accept == ASTRO_WS_ACCEPT_TEXT)
        return violate(ws, ASTRO_WS_CLOSE_UNSUPPORTED, "binary messages are not accepted");
    return ASTRO_OK;
}

/* The whole header is in: decide the declared length against the message limit. */
static int
check_length(struct astro_ws_conn *ws)
{
    unsigned fin = ws->hdr[0] >> 7, op = ws->hdr[0] & 0xfu, len7 = ws->hdr[1] & 0x7fu;
    uint64_t len = len7;
    if (len7 == 126)
        len = (uint64_t)ws->hdr[2] << 8 | ws->hdr[3];
    if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | ws->hdr[2 + i];
    }
    if ((len7 == 126 && len < 126) || (len7 == 127 && (len <= 0xffff || len >> 63)))
        return violate(ws, ASTRO_WS_CLOSE_PROTOCOL, "non-minimal payload length");
    if (op == 8 && len == 1)
        return violate(ws, ASTRO_WS_CLOSE_PROTOCOL, "close frame with a 1-byte payload");
    if (op < 8) {
        uint64_t total = (op == 0 ? ws->msg_declared : 0) + len;
        if (total > limits(ws)->ws_message_bytes) {
            net_limit_hit(stats(ws), NET_LIM_MESSAGE_BYTES);
            return violate(ws, ASTRO_WS_CLOSE_TOO_BIG, "message too big");
        }
        ws->msg_declared = total;
        ws->frag_open = !fin;
    }
    ws->payload_left = len;
    net_count(stats(ws)->frames_in, 1);
    return ASTRO_OK;
}

/* Walks the unscanned input: skips payload, collects and checks headers. Sets feed_limit to
 * the bytes wslay may read: everything scanned, or only what precedes a refused header. */
static void
prescan(struct astro_ws_conn *ws, struct evbuffer *in)
{
    size_t total = evbuffer_get_length(in);
    size_t header_at = ws->scanned - ws->hdr_have;
    while (ws->violation == 0 && ws->scanned < total) {
        if (ws->payload_left > 0) {
            uint64_t take = total - ws->scanned;
            take = take < ws->payload_left ? take : ws->payload_left;
            ws->scanned += (size_t)take;
            ws->payload_left -= take;
            continue;
        }
        if (ws->hdr_have == 0)
            header_at = ws->scanned;
        size_t need = header_need(ws->hdr, ws->hdr_have);
        struct evbuffer_ptr pos;
        evbuffer_ptr_set(in, &pos, ws->scanned, EVBUFFER_PTR_SET);
        ev_ssize_t got = evbuffer_copyout_from(in, &pos, ws->hdr + ws->hdr_have,
                                               need - ws->hdr_have);
        if (got <= 0)
            break;
        bool had_start = ws->hdr_have >= 2;
        ws->hdr_have += (uint8_t)got;
        ws->scanned += (size_t)got;
        if (!had_start && ws->hdr_have >= 2 && check_start(ws) != ASTRO_OK)
            break;
        if (ws->hdr_have < header_need(ws->hdr, ws->hdr_have))
            continue;
        if (ws->hdr_have == header_need(ws->hdr, ws->hdr_have)) {
            if (check_length(ws) != ASTRO_OK)
                break;
            ws->hdr_have = 0;
        }
    }
    /* A partial header stays in the input until it is whole and checked. */
    ws->feed_limit = ws->violation != 0 || ws->hdr_have > 0 ? header_at : ws->scanned;
}

/* ---- outgoing queue ---- */

static void
drop_msg(const void *data, size_t len, void *extra)
{
    (void)data;
    (void)len;
    astro_ws_msg_unref(extra);
}

static struct astro_ws_msg *
q_pop(struct astro_ws_conn *ws)
{
    struct astro_ws_msg *m = ws->q[ws->qhead];
    size_t flen;
    net_ws_msg_frame(m, &flen);
    ws->qhead = (ws->qhead + 1) % ws->qcap;
    ws->qlen--;
    ws->qbytes -= flen;
    return m;
}

static int
q_push(struct astro_ws_conn *ws, struct astro_ws_msg *m, size_t flen)
{
    if (ws->qlen == ws->qcap) {
        size_t cap = ws->qcap ? ws->qcap * 2 : 8;
        struct astro_ws_msg **q = malloc(cap * sizeof(*q));
        if (q == NULL)
            return ASTRO_ERR;
        for (size_t i = 0; i < ws->qlen; i++)
            q[i] = ws->q[(ws->qhead + i) % ws->qcap];
        free(ws->q);
        ws->q = q;
        ws->qcap = cap;
        ws->qhead = 0;
    }
    ws->q[(ws->qhead + ws->qlen) % ws->qcap] = astro_ws_msg_ref(m);
    ws->qlen++;
    ws->qbytes += flen;
    return ASTRO_OK;
}

static void
q_clear(struct astro_ws_conn *ws)
{
    while (ws->qlen > 0)
        astro_ws_msg_unref(q_pop(ws));
    free(ws->q);
    ws->q = NULL;
    ws->qcap = ws->qhead = 0;
}

static void
send_control(struct astro_ws_conn *ws)
{
    int rv = wslay_event_send(ws->ctx);
    if (rv != 0) {
        astro_log_debug("net: %s: websocket send failed: %d", ws->c->peer, rv);
        net_conn_close(ws->c);
    }
}

static void
queue_close_frame(struct astro_ws_conn *ws)
{
    ws->close_queued = true;
    ws->close_at = net_now_ms();
    int rv = wslay_event_queue_close(ws->ctx, ws->close_code, (const uint8_t *)ws->close_reason,
                                     strlen(ws->close_reason));
    if (rv != 0 && rv != WSLAY_ERR_NO_MORE_MSG)
        astro_log_debug("net: %s: cannot queue close: %d", ws->c->peer, rv);
    send_control(ws);
    if (!ws->c->dead && !wslay_event_get_read_enabled(ws->ctx))
        net_conn_close_after_flush(ws->c);
    else if (!ws->c->dead)
        net_conn_schedule(ws->c);
}

/* Moves queued frames into the socket buffer, a bounded amount at a time. */
static void
flush_queue(struct astro_ws_conn *ws)
{
    struct evbuffer *out = bufferevent_get_output(ws->c->bev);
    while (ws->qlen > 0 && evbuffer_get_length(out) < OUT_CHUNK) {
        struct astro_ws_msg *m = q_pop(ws);
        size_t flen;
        const uint8_t *frame = net_ws_msg_frame(m, &flen);
        if (evbuffer_add_reference(out, frame, flen, drop_msg, m) != 0) {
            astro_ws_msg_unref(m);
            net_conn_close(ws->c);
            return;
        }
    }
    if (ws->qlen == 0 && ws->closing && !ws->close_queued)
        queue_close_frame(ws);
}

static void
set_close(struct astro_ws_conn *ws, uint16_t code, const char *reason)
{
    ws->closing = true;
    ws->close_code = code;
    size_t n = reason != NULL ? strlen(reason) : 0;
    if (n >= sizeof(ws->close_reason)) {
        /* A close reason must stay valid UTF-8 (RFC 6455 7.4): cut before a split character. */
        n = sizeof(ws->close_reason) - 1;
        while (n > 0 && ((unsigned char)reason[n] & 0xC0) == 0x80)
            n--;
    }
    if (n > 0)
        memcpy(ws->close_reason, reason, n);
    ws->close_reason[n] = '\0';
}

/* Fails the connection (RFC 6455 7.1.7): queued data is dropped, the close frame goes out and
 * the TCP connection ends without waiting for the peer's close. */
static void
fail_ws(struct astro_ws_conn *ws, uint16_t code, const char *reason)
{
    if (ws->c->dead || ws->close_queued)
        return;
    astro_log_debug("net: %s: closing websocket %u: %s", ws->c->peer, code, reason);
    if (code == ASTRO_WS_CLOSE_PROTOCOL || code == ASTRO_WS_CLOSE_BAD_DATA)
        net_count(stats(ws)->protocol_errors, 1);
    q_clear(ws);
    set_close(ws, code, reason);
    wslay_event_shutdown_read(ws->ctx);
    queue_close_frame(ws);
    if (!ws->c->dead)
        net_conn_close_after_flush(ws->c);
}

static int
enqueue(struct astro_ws_conn *ws, struct astro_ws_msg *m)
{
    if (ws->c->dead || ws->closing)
        return ASTRO_ERR;
    size_t flen;
    net_ws_msg_frame(m, &flen);
    size_t out = evbuffer_get_length(bufferevent_get_output(ws->c->bev));
    size_t limit = limits(ws)->out_queue_bytes;
    if (ws->qbytes + out + flen > limit)
        net_limit_hit(stats(ws), NET_LIM_OUT_QUEUE);
    while (ws->drop_oldest && ws->qlen > 0 && ws->qbytes + out + flen > limit) {
        astro_ws_msg_unref(q_pop(ws));
        net_count(stats(ws)->dropped, 1);
    }
    if (ws->qbytes + out + flen > limit) {
        if (ws->drop_oldest) {
            net_count(stats(ws)->dropped, 1); /* what is left is already in the socket buffer */
            return ASTRO_OK;
        }
        fail_ws(ws, ASTRO_WS_CLOSE_POLICY, "slow consumer");
        return ASTRO_ERR;
    }
    if (q_push(ws, m, flen) != ASTRO_OK) {
        fail_ws(ws, ASTRO_WS_CLOSE_INTERNAL, "out of memory");
        return ASTRO_ERR;
    }
    net_count(stats(ws)->frames_out, 1);
    flush_queue(ws);
    return ASTRO_OK;
}

int
astro_ws_send_shared(struct astro_ws_conn *ws, struct astro_ws_msg *m)
{
    return enqueue(ws, m);
}

int
astro_ws_send(struct astro_ws_conn *ws, enum astro_ws_opcode op, const void *data, size_t len)
{
    if (ws->c->dead || ws->closing)
        return ASTRO_ERR;
    struct astro_ws_msg *m = astro_ws_msg_new(op, data, len);
    if (m == NULL)
        return ASTRO_ERR;
    int rc = enqueue(ws, m);
    astro_ws_msg_unref(m);
    return rc;
}

void
astro_ws_close(struct astro_ws_conn *ws, uint16_t code, const char *reason)
{
    if (ws->c->dead || ws->closing)
        return;
    set_close(ws, code, reason);
    if (ws->qlen == 0)
        queue_close_frame(ws);
}

/* ---- connection events ---- */

void
net_ws_on_read(struct net_conn *c)
{
    struct astro_ws_conn *ws = c->ws;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    ws->last_rx = net_now_ms();
    ws->ping_out = false;
    if (ws->violation != 0 || !wslay_event_get_read_enabled(ws->ctx)) {
        evbuffer_drain(in, evbuffer_get_length(in)); /* nothing more will be read */
        return;
    }
    prescan(ws, in);
    int rv = wslay_event_recv(ws->ctx);
    if (rv != 0) {
        astro_log_debug("net: %s: websocket receive failed: %d", c->peer, rv);
        net_conn_close(c);
        return;
    }
    if (c->dead)
        return;
    if (ws->violation != 0) {
        fail_ws(ws, ws->violation, ws->violation_reason);
        return;
    }
    send_control(ws); /* pongs, and the answer to a peer's close */
    if (!c->dead && !wslay_event_get_read_enabled(ws->ctx)) {
        /* After its close frame a peer sends nothing more: no need to linger for its EOF. */
        c->no_linger = ws->code_received != 0;
        net_conn_close_after_flush(c); /* closing handshake done, or wslay refused a frame */
    }
}

void
net_ws_on_write(struct net_conn *c)
{
    flush_queue(c->ws);
}

static bool
mid_frame(const struct astro_ws_conn *ws)
{
    return ws->payload_left > 0 || ws->hdr_have > 0 || ws->frag_open;
}

uint64_t
net_ws_timer(struct net_conn *c, uint64_t now)
{
    struct astro_ws_conn *ws = c->ws;
    const struct astro_net_limits *l = limits(ws);
    if (ws->close_queued || c->close_after) {
        /* The peer had its chance to answer the close and read what we wrote. */
        if (ws->close_at == 0)
            ws->close_at = now; /* a close wslay queued itself */
        if (now >= ws->close_at + l->stall_ms) {
            net_conn_close(c);
            return 0;
        }
        return ws->close_at + l->stall_ms;
    }
    if (mid_frame(ws)) {
        if (now < ws->last_rx + l->stall_ms)
            return ws->last_rx + l->stall_ms;
        net_limit_hit(stats(ws), NET_LIM_STALL);
        fail_ws(ws, ASTRO_WS_CLOSE_POLICY, "frame stalled");
        return c->dead ? 0 : ws->close_at + l->stall_ms;
    }
    if (l->ping_interval_ms == 0)
        return 0;
    if (ws->ping_out) {
        if (now < ws->ping_at + l->pong_deadline_ms)
            return ws->ping_at + l->pong_deadline_ms;
        net_limit_hit(stats(ws), NET_LIM_PONG);
        fail_ws(ws, ASTRO_WS_CLOSE_POLICY, "no pong");
        return c->dead ? 0 : ws->close_at + l->stall_ms;
    }
    if (now < ws->last_rx + l->ping_interval_ms)
        return ws->last_rx + l->ping_interval_ms;
    struct wslay_event_msg ping = {.opcode = WSLAY_PING, .msg = NULL, .msg_length = 0};
    if (wslay_event_queue_msg(ws->ctx, &ping) == 0)
        send_control(ws);
    ws->ping_out = true;
    ws->ping_at = now;
    return c->dead ? 0 : now + l->pong_deadline_ms;
}

/* Called once the connection is closed and no callback of ours is on the stack. */
void
net_ws_free(struct net_conn *c, uint16_t code)
{
    struct astro_ws_conn *ws = c->ws;
    if (ws->close_queued)
        code = ws->close_code;
    else if (wslay_event_get_close_sent(ws->ctx))
        code = wslay_event_get_status_code_sent(ws->ctx);
    else if (ws->code_received != 0)
        code = ws->code_received;
    if (ws->h->on_close != NULL)
        ws->h->on_close(ws, code, ws->user);
    if (ws->key != NULL) {
        net_quota_release(c->nl->srv->keys, ws->key);
        free(ws->key);
    }
    q_clear(ws);
    net_strbuf_free(&ws->msg);
    wslay_event_context_free(ws->ctx);
    free(ws);
    c->ws = NULL;
}

int
astro_ws_conn_set_key(struct astro_ws_conn *ws, const char *api_key)
{
    if (ws->key != NULL)
        return ASTRO_OK;
    if (ws->c->dead)
        return ASTRO_ERR;
    const struct astro_net_limits *l = limits(ws);
    if (net_quota_take(ws->c->nl->srv->keys, api_key, l->max_conns_per_key) != ASTRO_OK) {
        net_limit_hit(stats(ws), NET_LIM_PER_KEY);
        fail_ws(ws, ASTRO_WS_CLOSE_OVERLOADED, "too many connections for this API key");
        return ASTRO_ERR;
    }
    ws->key = strdup(api_key);
    if (ws->key == NULL) {
        net_quota_release(ws->c->nl->srv->keys, api_key);
        fail_ws(ws, ASTRO_WS_CLOSE_INTERNAL, "out of memory");
        return ASTRO_ERR;
    }
    return ASTRO_OK;
}

void
astro_ws_conn_set_drop_oldest(struct astro_ws_conn *ws, bool on)
{
    ws->drop_oldest = on;
}

size_t
astro_ws_conn_queued(const struct astro_ws_conn *ws)
{
    return ws->qbytes + evbuffer_get_length(bufferevent_get_output(ws->c->bev));
}

void *
astro_ws_conn_user(const struct astro_ws_conn *ws)
{
    return ws->user;
}

void
astro_ws_conn_set_user(struct astro_ws_conn *ws, void *user)
{
    ws->user = user;
}

struct astro_loop *
astro_ws_conn_loop(const struct astro_ws_conn *ws)
{
    return ws->c->nl->loop;
}

const char *
astro_ws_conn_peer(const struct astro_ws_conn *ws)
{
    return ws->c->peer;
}

/* Turns c into a WebSocket connection (the 101 is already in its output). */
int
net_ws_attach(struct net_conn *c, const struct astro_ws_handlers *h, void *user)
{
    struct astro_ws_conn *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return ASTRO_ERR;
    ws->c = c;
    ws->h = h;
    ws->user = user;
    ws->last_rx = net_now_ms();
    if (wslay_event_context_server_init(&ws->ctx, &wslay_callbacks, ws) != 0) {
        free(ws);
        return ASTRO_ERR;
    }
    wslay_event_config_set_no_buffering(ws->ctx, 1);
    wslay_event_config_set_max_recv_msg_length(ws->ctx, c->nl->srv->opts.limits.ws_message_bytes);
    c->ws = ws;
    c->phase = PH_WS;
    bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW_WATER, 0);
    net_count(stats(ws)->handshakes, 1);
    return ASTRO_OK;
}

/* First moments of a WebSocket: on_open, the 1013 of an over-limit connection, and any frames
 * that came in right behind the upgrade request. */
void
net_ws_opened(struct net_conn *c)
{
    struct astro_ws_conn *ws = c->ws;
    if (c->over_limit) {
        fail_ws(ws, ASTRO_WS_CLOSE_OVERLOADED, "server at its connection limit");
        return;
    }
    if (ws->h->on_open != NULL)
        ws->h->on_open(ws, ws->user);
    if (c->dead)
        return;
    bufferevent_enable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        net_ws_on_read(c);
    if (!c->dead)
        net_conn_schedule(c);
}

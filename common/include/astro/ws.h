/* WebSocket connections (RFC 6455) on the HTTP layer (astro/http.h), framed by wslay.
 *
 * Inbound: every frame header is checked by the layer as soon as its bytes arrive, before any
 * payload is buffered: unmasked frame, RSV bits, unknown opcode, fragmented or >125-byte control
 * frame, continuation without a start -> close 1002; declared message length over
 * limits.ws_message_bytes -> close 1009. wslay then unmasks and reassembles; text messages are
 * UTF-8 validated (1007, code points split across fragments included), invalid close codes get
 * 1002, binary on a text-only route 1003 (text on a binary-only route 1003 too).
 *
 * Outbound: data messages are framed once into an astro_ws_msg (refcounted, immutable) and added
 * to each connection's output by reference; they bypass wslay's send queue, which carries only the
 * control frames wslay writes itself (pong, close). Both write whole frames to the same
 * bufferevent, so frames never interleave. A connection's queue is bounded by
 * limits.out_queue_bytes: over it the connection is closed 1008 "slow consumer", or, after
 * astro_ws_conn_set_drop_oldest(), its oldest queued messages are dropped (counted).
 *
 * All astro_ws_conn functions run on the connection's loop thread (astro_ws_conn_loop()).
 * astro_ws_msg_* are thread-safe (atomic reference count). */
#ifndef ASTRO_WS_H
#define ASTRO_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "astro/common.h"

struct astro_http_req;
struct astro_loop;
struct astro_ws_conn;
struct astro_ws_msg;

enum astro_ws_opcode {
    ASTRO_WS_TEXT = 0x1,
    ASTRO_WS_BINARY = 0x2,
};

/* Close codes used by the layer (ARCHITECTURE.md "Wire protocol decisions"). */
enum astro_ws_close_code {
    ASTRO_WS_CLOSE_NORMAL = 1000,
    ASTRO_WS_CLOSE_GOING_AWAY = 1001,
    ASTRO_WS_CLOSE_PROTOCOL = 1002,
    ASTRO_WS_CLOSE_UNSUPPORTED = 1003,
    ASTRO_WS_CLOSE_ABNORMAL = 1006, /* never sent: the connection was lost */
    ASTRO_WS_CLOSE_BAD_DATA = 1007,
    ASTRO_WS_CLOSE_POLICY = 1008,
    ASTRO_WS_CLOSE_TOO_BIG = 1009,
    ASTRO_WS_CLOSE_INTERNAL = 1011,
    ASTRO_WS_CLOSE_OVERLOADED = 1013,
};

/* Which data messages a route accepts; the other kind is closed 1003. */
enum astro_ws_accept {
    ASTRO_WS_ACCEPT_ANY = 0,
    ASTRO_WS_ACCEPT_TEXT = 1,
    ASTRO_WS_ACCEPT_BINARY = 2,
};

struct astro_ws_handlers {
    /* Optional. Runs before the 101 with the upgrade request (path parameters, query, headers).
     * Return ASTRO_OK to accept, storing the connection's user pointer in *user; or answer req
     * with astro_http_req_respond*() (e.g. 400 for a malformed since=) and return ASTRO_ERR. */
    int (*on_upgrade)(struct astro_http_req *req, void *route_arg, void **user);
    /* Optional. The connection is open (101 queued). */
    void (*on_open)(struct astro_ws_conn *c, void *user);
    /* A complete message; data is borrowed for the call (text is valid UTF-8, NUL-terminated
     * at data[len] for convenience). */
    void (*on_message)(struct astro_ws_conn *c, enum astro_ws_opcode op, const uint8_t *data,
                       size_t len, void *user);
    /* Optional. Last callback: code is the close code sent or received (1006 when the TCP
     * connection was lost). Free user here; c is freed after the callback returns. When the
     * 101 cannot be sent after on_upgrade accepted (out of memory), on_close runs with c NULL
     * and code 1006, without on_open, so the user pointer is still released. */
    void (*on_close)(struct astro_ws_conn *c, uint16_t code, void *user);
    enum astro_ws_accept accept;
};

/* ---- shared, pre-framed messages ---- */

/* Frames data once (unmasked server frame, FIN set). Returns a message with one reference
 * (drop it with astro_ws_msg_unref()) or NULL; data is copied. */
struct astro_ws_msg *astro_ws_msg_new(enum astro_ws_opcode op, const void *data, size_t len)
    ASTRO_MUST_CHECK;
/* Adds a reference; returns m. */
struct astro_ws_msg *astro_ws_msg_ref(struct astro_ws_msg *m);
/* Drops a reference; the last one frees. NULL is a no-op. */
void astro_ws_msg_unref(struct astro_ws_msg *m);
/* Payload length (without the frame header). */
size_t astro_ws_msg_payload_len(const struct astro_ws_msg *m);

/* ---- connections ---- */

/* Queues m (takes a new reference; the caller keeps its own). Returns ASTRO_OK, or ASTRO_ERR
 * when the connection is closing or was just closed 1008 for a full queue (on_close follows). */
int astro_ws_send_shared(struct astro_ws_conn *c, struct astro_ws_msg *m) ASTRO_MUST_CHECK;

/* Frames and queues one message for this connection only (data copied); same returns. */
int astro_ws_send(struct astro_ws_conn *c, enum astro_ws_opcode op, const void *data, size_t len)
    ASTRO_MUST_CHECK;

/* Starts the closing handshake with code and reason (<= 123 bytes, copied): queued messages are
 * flushed first, then the close frame; the connection ends when the peer answers or after
 * limits.stall_ms. Later sends fail. Idempotent. */
void astro_ws_close(struct astro_ws_conn *c, uint16_t code, const char *reason);

/* Counts this connection against limits.max_conns_per_key for api_key (copied; once per
 * connection). Returns ASTRO_OK, or ASTRO_ERR when the key is at its limit: the connection is
 * then closed 1013 and on_close follows. */
int astro_ws_conn_set_key(struct astro_ws_conn *c, const char *api_key) ASTRO_MUST_CHECK;

/* When on, a full out queue drops the oldest queued data messages instead of closing. */
void astro_ws_conn_set_drop_oldest(struct astro_ws_conn *c, bool on);

/* Bytes queued and not yet written to the socket. */
size_t astro_ws_conn_queued(const struct astro_ws_conn *c);

void *astro_ws_conn_user(const struct astro_ws_conn *c);
void astro_ws_conn_set_user(struct astro_ws_conn *c, void *user);
struct astro_loop *astro_ws_conn_loop(const struct astro_ws_conn *c);
/* Numeric peer address (owned by c). */
const char *astro_ws_conn_peer(const struct astro_ws_conn *c);

/* ---- handshake (exposed for tests and the fuzz target) ---- */

/* Computes Sec-WebSocket-Accept for key (RFC 6455 4.2.2) into out (29 bytes incl. NUL).
 * Returns ASTRO_ERR if key is not the base64 of 16 bytes. */
int astro_ws_accept_key(const char *key, char out[29]) ASTRO_MUST_CHECK;

#endif

/* wsraw: a raw-socket WebSocket and HTTP/1.1 client for tests.
 *
 * It writes exactly the bytes a test asks for, so a test can send malformed, unmasked, lying or
 * stalled frames bit by bit, and it reads what the server answers without interpreting more than
 * it must. It is not a conforming client on purpose; civetweb's client and curl are the "real
 * client" checks.
 *
 * Every wait is bounded: each call that reads or connects takes a timeout in milliseconds (a
 * negative timeout counts as 0) and polls with poll(2); writes wait at most WSRAW_SEND_TIMEOUT_MS
 * for buffer space. Nothing here blocks forever, and SIGPIPE is never raised (MSG_NOSIGNAL).
 * Bytes read past one frame or response are kept for the next call, so pipelined responses and a
 * frame sent right behind the 101 head are not lost.
 *
 * Functions returning int return 0 (or the value documented) on success and -1 on failure with
 * errno set: ETIMEDOUT on timeout, ECONNRESET on EOF where more bytes were expected, EPROTO on a
 * reply that breaks the protocol (wrong Sec-WebSocket-Accept, masked server frame, bad chunk),
 * EMSGSIZE when a response head does not fit WSRAW_MAX_HEAD. */
#ifndef ASTRO_TEST_WSRAW_H
#define ASTRO_TEST_WSRAW_H

#include <stddef.h>
#include <stdint.h>

#define WSRAW_SEND_TIMEOUT_MS 10000
#define WSRAW_MAX_HEAD (64 * 1024)
/* recv_frame refuses (EMSGSIZE) a declared payload above this instead of allocating it. */
#define WSRAW_MAX_FRAME (256u * 1024 * 1024)

enum wsraw_opcode {
    WSRAW_OP_CONT = 0x0,
    WSRAW_OP_TEXT = 0x1,
    WSRAW_OP_BINARY = 0x2,
    WSRAW_OP_CLOSE = 0x8,
    WSRAW_OP_PING = 0x9,
    WSRAW_OP_PONG = 0xA,
};

struct wsraw;

/* Opens a TCP connection to host:port (numeric or resolvable name) within timeout_ms, with
 * TCP_NODELAY so small writes leave at once. Returns a new client (free with wsraw_close()) or
 * NULL on error; host is copied for the Host header. */
struct wsraw *wsraw_connect(const char *host, int port, int timeout_ms);

/* Closes the socket and frees w; NULL is a no-op. */
void wsraw_close(struct wsraw *w);

/* Returns the socket, still owned by w (for shutdown(2), poll(2) or SO_RCVBUF in a test). */
int wsraw_fd(const struct wsraw *w);

/* Writes all len bytes of buf (borrowed) or returns -1. */
int wsraw_send_bytes(struct wsraw *w, const void *buf, size_t len);

/* Sends a GET upgrade for path with extra header lines ("X-API-Key: k\r\n" or NULL), reads the
 * response head; returns the HTTP status (101 on success) or -1; copies the head into resp
 * (NUL-terminated, truncated to resp_size) when resp is not NULL. A 101 whose
 * Sec-WebSocket-Accept does not match the key sent is -1 with errno EPROTO. */
int wsraw_handshake(struct wsraw *w, const char *path, const char *extra_headers, char *resp,
                    size_t resp_size, int timeout_ms);

/* Writes one frame: fin and masked are 0/1, rsv the 3 RSV bits (0..7), opcode 0..15 (any
 * value, reserved ones included); masked=1 masks with a fresh random key. payload is
 * borrowed. The frame goes out in one write. */
int wsraw_send_frame(struct wsraw *w, int fin, int rsv, int opcode, int masked,
                     const void *payload, size_t len);

/* Writes only a frame header declaring declared_len payload bytes, so a test can lie or stall:
 * follow it with wsraw_send_payload() (masked with this header's key) or wsraw_send_bytes()
 * (raw). */
int wsraw_send_frame_header(struct wsraw *w, int fin, int rsv, int opcode, int masked,
                            uint64_t declared_len);

/* Writes payload bytes for the last header sent by wsraw_send_frame_header(), masked with its
 * key (continuing at the right key offset across calls) when that header was masked. */
int wsraw_send_payload(struct wsraw *w, const void *buf, size_t len);

/* Sends text (borrowed, NUL-terminated) as one masked text frame with FIN set. */
int wsraw_send_text(struct wsraw *w, const char *text);

/* Reads one frame (any opcode; server frames must be unmasked, a masked one is EPROTO).
 * *payload is malloc'ed and NUL-terminated (caller frees); *len excludes the NUL. opcode, fin,
 * payload and len may each be NULL when the test does not need them. Returns 0, or -1 on
 * EOF/timeout/error (errno ETIMEDOUT on timeout). */
int wsraw_recv_frame(struct wsraw *w, int timeout_ms, int *opcode, int *fin, char **payload,
                     size_t *len);

/* Reads and drops frames until a close frame or EOF; returns the close code (1000..4999),
 * 1005 for a close frame without a code, 1006 for EOF without a close frame, -1 on timeout or on a
 * malformed close frame (EPROTO). A close frame is answered with a masked close echoing its code,
 * as RFC 6455 asks. reason (NUL-terminated, truncated) may be NULL. */
int wsraw_expect_close(struct wsraw *w, int timeout_ms, char *reason, size_t reason_size);

/* Plain HTTP: sends req (raw bytes, borrowed) and reads one full response (Content-Length,
 * chunked, or until close); returns the status, body copied (NUL-terminated, truncated to
 * body_size) when body is not NULL; -1 on error/timeout. */
int wsraw_http(struct wsraw *w, const char *req, size_t req_len, char *body, size_t body_size,
               int timeout_ms);

/* Reads one full response without sending anything (for pipelining): the head (status line and
 * headers, through the blank line) into head and the decoded body into body, each NUL-terminated
 * and truncated; either may be NULL. Returns the status or -1. */
int wsraw_read_response(struct wsraw *w, char *head, size_t head_size, char *body,
                        size_t body_size, int timeout_ms);

/* Writes the masked close frame a client sends: code (0 for none) and reason (NULL or text). */
int wsraw_send_close(struct wsraw *w, int code, const char *reason);

#endif

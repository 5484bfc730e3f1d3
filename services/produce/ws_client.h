/* A small blocking WebSocket client (RFC 6455) for astro-produce: one TCP connection, masked
 * text frames out, unmasked frames in (text, continuation, ping answered, close). It is a client
 * for our own ingest, not a general library: no TLS, no extensions, messages up to 16 MiB. */
#ifndef PRD_WS_CLIENT_H
#define PRD_WS_CLIENT_H

#include <stddef.h>

#include "astro/common.h"

struct prd_ws {
    int fd;
    char *rbuf; /* bytes read, not yet parsed into frames */
    size_t rlen, rcap;
    char *msg;  /* the message being assembled / last returned */
    size_t mlen, mcap;
    int delivered; /* the assembled message was returned: start a new one next time */
    int close_code;
};

/* Connects to host:port, sends the upgrade for path (which may carry a query) and checks the
 * 101 answer and Sec-WebSocket-Accept, within timeout_ms. ws is the caller's storage. */
int prd_ws_connect(struct prd_ws *ws, const char *host, int port, const char *path,
                   int timeout_ms, char *err, size_t errlen) ASTRO_MUST_CHECK;

/* Sends data[0..len) as one masked text frame (blocking until written). */
int prd_ws_send_text(struct prd_ws *ws, const char *data, size_t len, char *err,
                     size_t errlen) ASTRO_MUST_CHECK;

/* Waits up to timeout_ms for one complete text message. Returns 1 with *msg (NUL-terminated,
 * owned by ws, valid until the next call) and *len, 0 on timeout, ASTRO_ERR when the connection
 * closed or broke (err says why; a close frame's code is in ws->close_code). */
int prd_ws_recv(struct prd_ws *ws, int timeout_ms, const char **msg, size_t *len, char *err,
                size_t errlen) ASTRO_MUST_CHECK;

/* TCP helpers shared with http_client.c. prd_tcp_dial returns a connected socket (the caller
 * closes it) or ASTRO_ERR; prd_tcp_write_all blocks until len bytes are written. */
int prd_tcp_dial(const char *host, int port, char *err, size_t errlen) ASTRO_MUST_CHECK;
int prd_tcp_write_all(int fd, const char *p, size_t len, char *err,
                      size_t errlen) ASTRO_MUST_CHECK;

/* Sends a close frame (best effort) and releases everything; a zeroed ws is a no-op. */
void prd_ws_close(struct prd_ws *ws);

#endif

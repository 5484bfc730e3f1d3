/* A small blocking HTTP/1.1 client for astro-produce's HTTP mode: POST with keep-alive, one
 * request at a time, answers with Content-Length (ingest always sends it). */
#ifndef PRD_HTTP_CLIENT_H
#define PRD_HTTP_CLIENT_H

#include <stddef.h>

#include "astro/common.h"

struct prd_http {
    int fd; /* -1 while not connected; (re)connected by the next post */
    char host[256];
    int port;
    char *buf; /* answer bytes; the body is NUL-terminated inside */
    size_t len, cap;
};

struct prd_http_answer {
    int status;
    int retry_after_s; /* Retry-After, or -1 */
    const char *body;  /* inside the client's buffer, valid until the next post */
};

/* Prepares c (caller's storage) for host:port; nothing is connected yet. */
void prd_http_init(struct prd_http *c, const char *host, int port);

/* POSTs body (JSON) to path with X-API-Key: key and waits up to timeout_ms for the answer.
 * Reconnects once if a kept-alive connection was closed by the server. */
int prd_http_post(struct prd_http *c, const char *path, const char *key, const char *body,
                  size_t len, int timeout_ms, struct prd_http_answer *ans, char *err,
                  size_t errlen) ASTRO_MUST_CHECK;

/* Closes the connection and frees the buffer; a zeroed or closed client is a no-op. */
void prd_http_cleanup(struct prd_http *c);

#endif

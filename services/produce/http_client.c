/* Blocking HTTP/1.1 POST client of astro-produce (see http_client.h). */
#include <errno.h>
#include <stdbool.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "astro/time.h"
#include "http_client.h"
#include "ws_client.h"

#define HTTP_MAX_ANSWER (16u << 20)

void
prd_http_init(struct prd_http *c, const char *host, int port)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    snprintf(c->host, sizeof(c->host), "%s", host);
    c->port = port;
}

/* Reads more of the answer before the deadline: 1 read, ERR closed / timed out. */
static int
read_more(struct prd_http *c, int64_t deadline, char *err, size_t errlen)
{
    int left = (int)((deadline - astro_now_us()) / 1000);
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    if (left <= 0 || poll(&pfd, 1, left) <= 0)
        return astro_fail(err, errlen, "no complete answer in time");
    if (c->cap - c->len < 65536) {
        if (c->cap > HTTP_MAX_ANSWER)
            return astro_fail(err, errlen, "answer too big");
        char *nb = realloc(c->buf, c->cap * 2 + 65536);
        if (nb == NULL)
            return astro_fail(err, errlen, "out of memory");
        c->buf = nb;
        c->cap = c->cap * 2 + 65536;
    }
    ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
    if (r <= 0)
        return astro_fail(err, errlen, "connection closed by the server");
    c->len += (size_t)r;
    c->buf[c->len] = '\0';
    return 1;
}

static long
header_num(const char *head, const char *name)
{
    const char *h = strcasestr(head, name);
    return h != NULL ? strtol(h + strlen(name), NULL, 10) : -1;
}

/* Reads one whole answer (headers + Content-Length body) into c->buf. */
static int
read_answer(struct prd_http *c, int timeout_ms, struct prd_http_answer *ans, char *err,
            size_t errlen)
{
    int64_t deadline = astro_now_us() + (int64_t)timeout_ms * 1000;
    char *end;
    c->len = 0;
    do {
        if (read_more(c, deadline, err, errlen) < 0)
            return ASTRO_ERR;
    } while ((end = strstr(c->buf, "\r\n\r\n")) == NULL);
    *end = '\0'; /* the header block becomes a string; the body starts after it */
    long clen = header_num(c->buf, "\r\nContent-Length:");
    if (strncmp(c->buf, "HTTP/1.1 ", 9) != 0 || clen < 0)
        return astro_fail(err, errlen, "not an HTTP/1.1 answer with Content-Length");
    ans->status = atoi(c->buf + 9);
    ans->retry_after_s = (int)header_num(c->buf, "\r\nRetry-After:");
    size_t body_off = (size_t)(end - c->buf) + 4;
    while (c->len < body_off + (size_t)clen)
        if (read_more(c, deadline, err, errlen) < 0)
            return ASTRO_ERR;
    c->buf[body_off + (size_t)clen] = '\0';
    ans->body = c->buf + body_off;
    if (strcasestr(c->buf, "\r\nConnection: close") != NULL) {
        close(c->fd);
        c->fd = -1;
    }
    return ASTRO_OK;
}

static int
send_request(struct prd_http *c, const char *path, const char *key, const char *body,
             size_t len, char *err, size_t errlen)
{
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: %s:%d\r\nX-API-Key: %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", path,
                     c->host, c->port, key, len);
    if (n < 0 || (size_t)n >= sizeof(head))
        return astro_fail(err, errlen, "request header too long");
    if (c->fd < 0 && (c->fd = prd_tcp_dial(c->host, c->port, err, errlen)) < 0)
        return ASTRO_ERR;
    if (prd_tcp_write_all(c->fd, head, (size_t)n, err, errlen) != ASTRO_OK ||
        prd_tcp_write_all(c->fd, body, len, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    return ASTRO_OK;
}

int
prd_http_post(struct prd_http *c, const char *path, const char *key, const char *body,
              size_t len, int timeout_ms, struct prd_http_answer *ans, char *err, size_t errlen)
{
    bool reused = c->fd >= 0;
    if (send_request(c, path, key, body, len, err, errlen) == ASTRO_OK &&
        read_answer(c, timeout_ms, ans, err, errlen) == ASTRO_OK)
        return ASTRO_OK;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (!reused)
        return ASTRO_ERR;
    /* A kept-alive connection the server closed meanwhile: one fresh attempt. The request is
     * a retry with the same event ids, so ingest's dedup keeps it exact. */
    if (send_request(c, path, key, body, len, err, errlen) == ASTRO_OK &&
        read_answer(c, timeout_ms, ans, err, errlen) == ASTRO_OK)
        return ASTRO_OK;
    return ASTRO_ERR;
}

void
prd_http_cleanup(struct prd_http *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    c->buf = NULL;
    c->fd = -1;
}

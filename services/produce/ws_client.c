/* Blocking WebSocket client of astro-produce (see ws_client.h). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "astro/time.h"
#include "ws_client.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MAX_MESSAGE (16u << 20)

int
prd_tcp_dial(const char *host, int port, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0)
        return astro_fail(err, errlen, "%s: %s", host, gai_strerror(rc));
    int fd = -1;
    for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return astro_fail(err, errlen, "connect %s:%d: %s", host, port, strerror(errno));
    /* Requests go out as header + body writes: without this, Nagle holds the body back until
     * the server's delayed ACK (~40 ms per request). */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int
prd_tcp_write_all(int fd, const char *p, size_t len, char *err, size_t errlen)
{
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return astro_fail(err, errlen, "send: %s", strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    return ASTRO_OK;
}

/* Reads what is available into rbuf, waiting up to timeout_ms: 1 read, 0 timeout, ERR closed. */
static int
fill(struct prd_ws *ws, int timeout_ms, char *err, size_t errlen)
{
    struct pollfd pfd = {.fd = ws->fd, .events = POLLIN};
    int n = poll(&pfd, 1, timeout_ms);
    if (n == 0 || (n < 0 && errno == EINTR))
        return 0;
    if (n < 0)
        return astro_fail(err, errlen, "poll: %s", strerror(errno));
    if (ws->rcap - ws->rlen < 65536) {
        size_t cap = ws->rcap * 2 + 65536;
        char *nb = realloc(ws->rbuf, cap);
        if (nb == NULL)
            return astro_fail(err, errlen, "out of memory");
        ws->rbuf = nb;
        ws->rcap = cap;
    }
    ssize_t r = recv(ws->fd, ws->rbuf + ws->rlen, ws->rcap - ws->rlen, 0);
    if (r < 0 && errno == EINTR)
        return 0;
    if (r <= 0)
        return astro_fail(err, errlen, "connection closed by the server%s%s",
                          r < 0 ? ": " : "", r < 0 ? strerror(errno) : "");
    ws->rlen += (size_t)r;
    return 1;
}

static void
accept_key(const char *key, char out[64])
{
    char buf[128];
    unsigned char sha[SHA_DIGEST_LENGTH];
    int n = snprintf(buf, sizeof(buf), "%s%s", key, WS_GUID);
    SHA1((const unsigned char *)buf, (size_t)n, sha);
    EVP_EncodeBlock((unsigned char *)out, sha, SHA_DIGEST_LENGTH);
}

/* Waits for the end of the HTTP answer, checks 101 + accept, keeps any bytes after it. */
static int
read_upgrade(struct prd_ws *ws, const char *key, int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = astro_now_us() + (int64_t)timeout_ms * 1000;
    char *end = NULL;
    while (end == NULL) {
        int left = (int)((deadline - astro_now_us()) / 1000);
        if (left <= 0)
            return astro_fail(err, errlen, "no upgrade answer within %d ms", timeout_ms);
        if (fill(ws, left, err, errlen) < 0)
            return ASTRO_ERR;
        if (ws->rlen > 0) {
            ws->rbuf[ws->rlen < ws->rcap ? ws->rlen : ws->rcap - 1] = '\0';
            end = strstr(ws->rbuf, "\r\n\r\n");
        }
    }
    size_t hlen = (size_t)(end - ws->rbuf) + 4;
    char expect[64];
    accept_key(key, expect);
    if (strncmp(ws->rbuf, "HTTP/1.1 101", 12) != 0) {
        char *eol = strstr(ws->rbuf, "\r\n");
        return astro_fail(err, errlen, "upgrade refused: %.*s",
                          (int)(eol != NULL ? eol - ws->rbuf : 64), ws->rbuf);
    }
    const char *acc = strcasestr(ws->rbuf, "\r\nSec-WebSocket-Accept:");
    if (acc == NULL || acc > end)
        return astro_fail(err, errlen, "upgrade answer without Sec-WebSocket-Accept");
    acc += strlen("\r\nSec-WebSocket-Accept:");
    while (*acc == ' ')
        acc++;
    if (strncmp(acc, expect, strlen(expect)) != 0)
        return astro_fail(err, errlen, "wrong Sec-WebSocket-Accept");
    memmove(ws->rbuf, ws->rbuf + hlen, ws->rlen - hlen);
    ws->rlen -= hlen;
    return ASTRO_OK;
}

int
prd_ws_connect(struct prd_ws *ws, const char *host, int port, const char *path, int timeout_ms,
               char *err, size_t errlen)
{
    memset(ws, 0, sizeof(*ws));
    ws->fd = -1;
    unsigned char nonce[16];
    char key[32], req[1024];
    if (RAND_bytes(nonce, sizeof(nonce)) != 1)
        return astro_fail(err, errlen, "no random bytes for the handshake");
    EVP_EncodeBlock((unsigned char *)key, nonce, sizeof(nonce));
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n", path, host, port, key);
    if (n < 0 || (size_t)n >= sizeof(req))
        return astro_fail(err, errlen, "url too long");
    ws->fd = prd_tcp_dial(host, port, err, errlen);
    if (ws->fd < 0)
        return ASTRO_ERR;
    if (prd_tcp_write_all(ws->fd, req, (size_t)n, err, errlen) != ASTRO_OK ||
        read_upgrade(ws, key, timeout_ms, err, errlen) != ASTRO_OK) {
        prd_ws_close(ws);
        return ASTRO_ERR;
    }
    return ASTRO_OK;
}

/* Writes one masked frame of opcode op. */
static int
send_frame(struct prd_ws *ws, int op, const char *data, size_t len, char *err, size_t errlen)
{
    unsigned char hdr[14];
    size_t h = 0;
    hdr[h++] = (unsigned char)(0x80 | op);
    if (len < 126) {
        hdr[h++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int s = 56; s >= 0; s -= 8)
            hdr[h++] = (unsigned char)((uint64_t)len >> s);
    }
    unsigned char *mask = hdr + h;
    if (RAND_bytes(mask, 4) != 1)
        return astro_fail(err, errlen, "no random bytes for the mask");
    h += 4;
    char *frame = malloc(h + len);
    if (frame == NULL)
        return astro_fail(err, errlen, "out of memory");
    memcpy(frame, hdr, h);
    for (size_t i = 0; i < len; i++)
        frame[h + i] = (char)(data[i] ^ mask[i & 3]);
    int rc = prd_tcp_write_all(ws->fd, frame, h + len, err, errlen);
    free(frame);
    return rc;
}

int
prd_ws_send_text(struct prd_ws *ws, const char *data, size_t len, char *err, size_t errlen)
{
    return send_frame(ws, 0x1, data, len, err, errlen);
}

static int
append_msg(struct prd_ws *ws, const char *p, size_t len, char *err, size_t errlen)
{
    if (ws->mlen + len > WS_MAX_MESSAGE)
        return astro_fail(err, errlen, "server message over %u bytes", WS_MAX_MESSAGE);
    if (ws->mlen + len + 1 > ws->mcap) {
        size_t cap = (ws->mlen + len + 1) * 2;
        char *nb = realloc(ws->msg, cap);
        if (nb == NULL)
            return astro_fail(err, errlen, "out of memory");
        ws->msg = nb;
        ws->mcap = cap;
    }
    memcpy(ws->msg + ws->mlen, p, len);
    ws->mlen += len;
    ws->msg[ws->mlen] = '\0';
    return ASTRO_OK;
}

/* Parses one frame from rbuf: 1 a message completed, 0 need more bytes / not complete yet
 * (*used is 0 when more bytes are needed), ERR close or protocol error. */
static int
parse_frame(struct prd_ws *ws, size_t *used, char *err, size_t errlen)
{
    const unsigned char *b = (const unsigned char *)ws->rbuf;
    *used = 0;
    if (ws->rlen < 2)
        return 0;
    int fin = b[0] & 0x80, op = b[0] & 0x0f;
    if (b[1] & 0x80)
        return astro_fail(err, errlen, "server sent a masked frame");
    uint64_t plen = b[1] & 0x7f;
    size_t h = 2;
    if (plen == 126) {
        if (ws->rlen < 4)
            return 0;
        plen = ((uint64_t)b[2] << 8) | b[3];
        h = 4;
    } else if (plen == 127) {
        if (ws->rlen < 10)
            return 0;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = (plen << 8) | b[2 + i];
        h = 10;
    }
    if (plen > WS_MAX_MESSAGE)
        return astro_fail(err, errlen, "server frame over %u bytes", WS_MAX_MESSAGE);
    if (ws->rlen < h + plen)
        return 0;
    *used = h + (size_t)plen;
    const char *payload = ws->rbuf + h;
    if (op == 0x8) {
        ws->close_code = plen >= 2 ? (b[h] << 8) | b[h + 1] : 1005;
        return astro_fail(err, errlen, "server closed the connection: %d %.*s", ws->close_code,
                          plen > 2 ? (int)plen - 2 : 0, plen > 2 ? payload + 2 : "");
    }
    if (op == 0x9)
        return send_frame(ws, 0xA, payload, (size_t)plen, err, errlen) == ASTRO_OK ? 0 : ASTRO_ERR;
    if (op == 0xA)
        return 0;
    if (op == 0x2)
        return astro_fail(err, errlen, "server sent a binary frame");
    if (op != 0x1 && op != 0x0)
        return astro_fail(err, errlen, "server sent opcode %d", op);
    if (append_msg(ws, payload, (size_t)plen, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    return fin ? 1 : 0;
}

int
prd_ws_recv(struct prd_ws *ws, int timeout_ms, const char **msg, size_t *len, char *err,
            size_t errlen)
{
    int64_t deadline = astro_now_us() + (int64_t)timeout_ms * 1000;
    if (ws->delivered) {
        ws->mlen = 0;
        ws->delivered = 0;
    }
    for (;;) {
        size_t used;
        int rc = parse_frame(ws, &used, err, errlen);
        if (used > 0) {
            memmove(ws->rbuf, ws->rbuf + used, ws->rlen - used);
            ws->rlen -= used;
        }
        if (rc < 0)
            return ASTRO_ERR;
        if (rc == 1) {
            ws->delivered = 1;
            *msg = ws->msg;
            *len = ws->mlen;
            return 1;
        }
        if (used > 0)
            continue;
        int left = (int)((deadline - astro_now_us()) / 1000);
        if (left < 0)
            return 0;
        rc = fill(ws, left, err, errlen);
        if (rc <= 0)
            return rc;
    }
}

void
prd_ws_close(struct prd_ws *ws)
{
    if (ws->fd >= 0) {
        char e[8];
        (void)send_frame(ws, 0x8, "\x03\xe8", 2, e, sizeof(e));
        close(ws->fd);
    }
    free(ws->rbuf);
    free(ws->msg);
    memset(ws, 0, sizeof(*ws));
    ws->fd = -1;
}

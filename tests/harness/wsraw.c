/* wsraw: raw-socket WebSocket / HTTP client for tests (see wsraw.h for the contract). */
#include "wsraw.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct wsraw {
    int fd;
    int port;
    char host[256];
    /* Bytes received but not yet consumed by a frame or response reader. */
    unsigned char *rbuf;
    size_t rlen;
    size_t rcap;
    /* Mask key of the last header from wsraw_send_frame_header(), for wsraw_send_payload(). */
    unsigned char mask[4];
    bool mask_on;
    uint64_t mask_off;
};

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
deadline_after(int timeout_ms)
{
    return now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
}

/* Waits until fd is ready for events or the deadline passes (ETIMEDOUT). */
static int
wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, left > 0 ? (int)left : 0);
        if (n > 0)
            return 0;
        if (n == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (errno != EINTR)
            return -1;
    }
}

static int
send_all(int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    int64_t deadline = deadline_after(WSRAW_SEND_TIMEOUT_MS);

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(fd, POLLOUT, deadline) != 0)
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

/* Reads what is available into rbuf, waiting until the deadline for the first byte.
 * Returns the byte count, 0 on EOF, -1 on error or timeout. */
static ssize_t
fill(struct wsraw *w, int64_t deadline)
{
    if (w->rcap - w->rlen < 4096) {
        size_t cap = w->rcap ? w->rcap * 2 : 16384;
        unsigned char *p = realloc(w->rbuf, cap);
        if (p == NULL)
            return -1;
        w->rbuf = p;
        w->rcap = cap;
    }
    for (;;) {
        ssize_t n = recv(w->fd, w->rbuf + w->rlen, w->rcap - w->rlen, 0);
        if (n >= 0) {
            w->rlen += (size_t)n;
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (wait_fd(w->fd, POLLIN, deadline) != 0)
            return -1;
    }
}

/* Makes sure at least n bytes are buffered; EOF first is ECONNRESET. */
static int
need(struct wsraw *w, size_t n, int64_t deadline)
{
    while (w->rlen < n) {
        ssize_t got = fill(w, deadline);
        if (got == 0)
            errno = ECONNRESET;
        if (got <= 0)
            return -1;
    }
    return 0;
}

/* memmem over the buffered bytes; rbuf is NULL until the first read. */
static unsigned char *
buffered_find(const struct wsraw *w, const char *needle)
{
    if (w->rlen == 0)
        return NULL;
    return memmem(w->rbuf, w->rlen, needle, strlen(needle));
}

static void
consume(struct wsraw *w, size_t n)
{
    if (n == 0)
        return;
    memmove(w->rbuf, w->rbuf + n, w->rlen - n);
    w->rlen -= n;
}

/* Appends n bytes to a caller's NUL-terminated buffer, silently truncating. */
static void
copy_out(char *dst, size_t size, size_t *off, const void *src, size_t n)
{
    if (dst == NULL || size == 0)
        return;
    size_t room = size - 1 - *off;
    size_t k = n < room ? n : room;
    if (k == 0)
        return;
    memcpy(dst + *off, src, k);
    *off += k;
    dst[*off] = '\0';
}

static int
random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -1;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* ---- connection ---------------------------------------------------------------------- */

static int
connect_one(const struct addrinfo *ai, int64_t deadline)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int err = 0;
        socklen_t elen = sizeof err;
        if (errno != EINPROGRESS || wait_fd(fd, POLLOUT, deadline) != 0)
            goto fail;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
            errno = err ? err : errno;
            goto fail;
        }
    }
    return fd;
fail:
    close(fd);
    return -1;
}

struct wsraw *
wsraw_connect(const char *host, int port, int timeout_ms)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char service[16];
    int64_t deadline = deadline_after(timeout_ms);
    int fd = -1;

    snprintf(service, sizeof service, "%d", port);
    if (getaddrinfo(host, service, &hints, &res) != 0)
        return NULL;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
        fd = connect_one(ai, deadline);
    freeaddrinfo(res);
    if (fd < 0)
        return NULL;
    struct wsraw *w = calloc(1, sizeof *w);
    if (w == NULL) {
        close(fd);
        return NULL;
    }
    w->fd = fd;
    w->port = port;
    snprintf(w->host, sizeof w->host, "%s", host);
    return w;
}

void
wsraw_close(struct wsraw *w)
{
    if (w == NULL)
        return;
    close(w->fd);
    free(w->rbuf);
    free(w);
}

int
wsraw_fd(const struct wsraw *w)
{
    return w->fd;
}

int
wsraw_send_bytes(struct wsraw *w, const void *buf, size_t len)
{
    return send_all(w->fd, buf, len);
}

/* ---- HTTP heads and bodies ----------------------------------------------------------- */

/* Waits until delim is buffered at the front of rbuf (within WSRAW_MAX_HEAD bytes); stores the
 * offset of delim in *at. */
static int
read_until(struct wsraw *w, int64_t deadline, const char *delim, size_t *at)
{
    for (;;) {
        unsigned char *hit = buffered_find(w, delim);
        if (hit != NULL) {
            *at = (size_t)(hit - w->rbuf);
            return 0;
        }
        if (w->rlen > WSRAW_MAX_HEAD) {
            errno = EMSGSIZE;
            return -1;
        }
        ssize_t got = fill(w, deadline);
        if (got == 0)
            errno = ECONNRESET;
        if (got <= 0)
            return -1;
    }
}

/* Waits for a complete head ("...\r\n\r\n") at the front of rbuf; returns its length. */
static int
read_head(struct wsraw *w, int64_t deadline, size_t *head_len)
{
    if (read_until(w, deadline, "\r\n\r\n", head_len) != 0)
        return -1;
    *head_len += 4;
    return 0;
}

/* "HTTP/1.x NNN ..." -> NNN, or -1 (EPROTO). */
static int
parse_status(const unsigned char *head, size_t len)
{
    if (len < 12 || memcmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ')
        goto fail;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (head[i] < '0' || head[i] > '9')
            goto fail;
        status = status * 10 + (head[i] - '0');
    }
    return status;
fail:
    errno = EPROTO;
    return -1;
}

/* Copies the value of the first header called name (case-insensitive, OWS trimmed) into out.
 * Returns true when found. */
static bool
header_value(const unsigned char *head, size_t len, const char *name, char *out, size_t outsz)
{
    size_t nlen = strlen(name);
    const char *p = memmem(head, len, "\r\n", 2);
    const char *end = (const char *)head + len;

    while (p != NULL && p + 2 < end) {
        const char *line = p + 2;
        const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (eol == NULL)
            break;
        if ((size_t)(eol - line) > nlen && line[nlen] == ':' &&
            strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            snprintf(out, outsz, "%.*s", (int)(ve - v), v);
            return true;
        }
        p = eol;
    }
    return false;
}

static int
read_body_length(struct wsraw *w, uint64_t n, char *body, size_t body_size, int64_t deadline)
{
    size_t off = 0;
    while (n > 0) {
        if (w->rlen == 0) {
            ssize_t got = fill(w, deadline);
            if (got == 0)
                errno = ECONNRESET;
            if (got <= 0)
                return -1;
        }
        size_t k = w->rlen < n ? w->rlen : (size_t)n;
        copy_out(body, body_size, &off, w->rbuf, k);
        consume(w, k);
        n -= k;
    }
    return 0;
}

/* Reads one CRLF-terminated line at the front of rbuf; returns its length without CRLF. */
static int
read_line(struct wsraw *w, int64_t deadline, size_t *line_len)
{
    return read_until(w, deadline, "\r\n", line_len);
}

static int
read_chunk_size(struct wsraw *w, int64_t deadline, uint64_t *size)
{
    size_t len;
    char line[64];
    char *end;

    if (read_line(w, deadline, &len) != 0)
        return -1;
    snprintf(line, sizeof line, "%.*s", (int)len, (const char *)w->rbuf);
    errno = 0;
    *size = strtoull(line, &end, 16);
    consume(w, len + 2);
    if (end == line || errno != 0 || (*end != '\0' && *end != ';' && *end != ' ')) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

static int
read_body_chunked(struct wsraw *w, char *body, size_t body_size, int64_t deadline)
{
    size_t off = 0;
    uint64_t size;

    for (;;) {
        if (read_chunk_size(w, deadline, &size) != 0)
            return -1;
        if (size == 0)
            break;
        if (size > WSRAW_MAX_FRAME || need(w, (size_t)size + 2, deadline) != 0)
            return -1;
        if (memcmp(w->rbuf + size, "\r\n", 2) != 0) {
            errno = EPROTO;
            return -1;
        }
        copy_out(body, body_size, &off, w->rbuf, (size_t)size);
        consume(w, (size_t)size + 2);
    }
    /* Trailer fields, then the blank line that ends the message. */
    for (;;) {
        size_t len;
        if (read_line(w, deadline, &len) != 0)
            return -1;
        consume(w, len + 2);
        if (len == 0)
            return 0;
    }
}

static int
read_body_until_close(struct wsraw *w, char *body, size_t body_size, int64_t deadline)
{
    size_t off = 0;
    for (;;) {
        ssize_t got = fill(w, deadline);
        if (got < 0)
            return -1;
        copy_out(body, body_size, &off, w->rbuf, w->rlen);
        consume(w, w->rlen);
        if (got == 0)
            return 0;
    }
}

/* Reads the body that follows a head of head_len bytes (already consumed) framed as the head
 * says. */
static int
read_body(struct wsraw *w, const char *head, size_t head_len, int status, char *body,
          size_t body_size, int64_t deadline)
{
    char v[64];

    if (body != NULL && body_size > 0)
        body[0] = '\0';
    if ((status >= 100 && status < 200) || status == 204 || status == 304)
        return 0;
    if (header_value((const unsigned char *)head, head_len, "Transfer-Encoding", v, sizeof v) &&
        strcasestr(v, "chunked") != NULL)
        return read_body_chunked(w, body, body_size, deadline);
    if (header_value((const unsigned char *)head, head_len, "Content-Length", v, sizeof v)) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (end == v || *end != '\0' || errno != 0) {
            errno = EPROTO;
            return -1;
        }
        return read_body_length(w, n, body, body_size, deadline);
    }
    return read_body_until_close(w, body, body_size, deadline);
}

int
wsraw_read_response(struct wsraw *w, char *head, size_t head_size, char *body, size_t body_size,
                    int timeout_ms)
{
    int64_t deadline = deadline_after(timeout_ms);
    size_t head_len;
    char *copy = NULL;

    if (read_head(w, deadline, &head_len) != 0)
        return -1;
    int status = parse_status(w->rbuf, head_len);
    if (status < 0)
        return -1;
    copy = malloc(head_len + 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, w->rbuf, head_len);
    copy[head_len] = '\0';
    consume(w, head_len);
    if (head != NULL && head_size > 0)
        snprintf(head, head_size, "%s", copy);
    int rc = read_body(w, copy, head_len, status, body, body_size, deadline);
    free(copy);
    return rc == 0 ? status : -1;
}

int
wsraw_http(struct wsraw *w, const char *req, size_t req_len, char *body, size_t body_size,
           int timeout_ms)
{
    if (send_all(w->fd, req, req_len) != 0)
        return -1;
    return wsraw_read_response(w, NULL, 0, body, body_size, timeout_ms);
}

/* ---- WebSocket handshake ------------------------------------------------------------- */

/* out must hold 29 bytes: base64(SHA-1(key + GUID)). */
static int
expected_accept(const char *key, char *out)
{
    char input[128];
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;

    int n = snprintf(input, sizeof input, "%s%s", key, WS_GUID);
    if (n < 0 || (size_t)n >= sizeof input)
        return -1;
    if (EVP_Digest(input, (size_t)n, digest, &dlen, EVP_sha1(), NULL) != 1 || dlen != 20)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, digest, 20);
    return 0;
}

static char *
build_upgrade(const struct wsraw *w, const char *path, const char *key, const char *extra)
{
    static const char fmt[] = "GET %s HTTP/1.1\r\n"
                              "Host: %s:%d\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: %s\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "%s\r\n";
    char *req = NULL;
    if (asprintf(&req, fmt, path, w->host, w->port, key, extra ? extra : "") < 0)
        return NULL;
    return req;
}

/* A 101 must carry the accept value derived from our key; anything else is the server's bug. */
static int
check_accept(const unsigned char *head, size_t head_len, const char *key)
{
    char want[32];
    char got[64];

    if (expected_accept(key, want) != 0)
        return -1;
    if (!header_value(head, head_len, "Sec-WebSocket-Accept", got, sizeof got) ||
        strcmp(got, want) != 0) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

int
wsraw_handshake(struct wsraw *w, const char *path, const char *extra_headers, char *resp,
                size_t resp_size, int timeout_ms)
{
    int64_t deadline = deadline_after(timeout_ms);
    unsigned char raw[16];
    char key[32];
    size_t head_len;

    if (random_bytes(raw, sizeof raw) != 0)
        return -1;
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw);
    char *req = build_upgrade(w, path, key, extra_headers);
    if (req == NULL)
        return -1;
    int rc = send_all(w->fd, req, strlen(req));
    free(req);
    if (rc != 0 || read_head(w, deadline, &head_len) != 0)
        return -1;
    if (resp != NULL && resp_size > 0)
        snprintf(resp, resp_size, "%.*s", (int)head_len, (const char *)w->rbuf);
    int status = parse_status(w->rbuf, head_len);
    if (status == 101 && check_accept(w->rbuf, head_len, key) != 0)
        status = -1;
    consume(w, head_len);
    return status;
}

/* ---- frames out ---------------------------------------------------------------------- */

/* Encodes a frame header into out (14 bytes at most); returns its length. */
static size_t
encode_header(unsigned char *out, int fin, int rsv, int opcode, const unsigned char *mask,
              uint64_t len)
{
    size_t n = 0;
    out[n++] = (unsigned char)((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f));
    unsigned char mbit = mask != NULL ? 0x80 : 0;
    if (len < 126) {
        out[n++] = (unsigned char)(mbit | len);
    } else if (len <= 0xffff) {
        out[n++] = mbit | 126;
        out[n++] = (unsigned char)(len >> 8);
        out[n++] = (unsigned char)len;
    } else {
        out[n++] = mbit | 127;
        for (int shift = 56; shift >= 0; shift -= 8)
            out[n++] = (unsigned char)(len >> shift);
    }
    if (mask != NULL) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

int
wsraw_send_frame_header(struct wsraw *w, int fin, int rsv, int opcode, int masked,
                        uint64_t declared_len)
{
    unsigned char hdr[14];

    w->mask_on = masked != 0;
    w->mask_off = 0;
    if (w->mask_on && random_bytes(w->mask, sizeof w->mask) != 0)
        return -1;
    size_t n = encode_header(hdr, fin, rsv, opcode, w->mask_on ? w->mask : NULL, declared_len);
    return send_all(w->fd, hdr, n);
}

int
wsraw_send_payload(struct wsraw *w, const void *buf, size_t len)
{
    if (!w->mask_on)
        return send_all(w->fd, buf, len);
    unsigned char *tmp = malloc(len ? len : 1);
    if (tmp == NULL)
        return -1;
    const unsigned char *src = buf;
    for (size_t i = 0; i < len; i++)
        tmp[i] = src[i] ^ w->mask[(w->mask_off + i) & 3];
    w->mask_off += len;
    int rc = send_all(w->fd, tmp, len);
    free(tmp);
    return rc;
}

int
wsraw_send_frame(struct wsraw *w, int fin, int rsv, int opcode, int masked, const void *payload,
                 size_t len)
{
    unsigned char mask[4];
    unsigned char *frame = malloc(14 + len);

    if (frame == NULL)
        return -1;
    if (masked && random_bytes(mask, sizeof mask) != 0)
        goto fail;
    size_t n = encode_header(frame, fin, rsv, opcode, masked ? mask : NULL, len);
    const unsigned char *src = payload;
    for (size_t i = 0; i < len; i++)
        frame[n + i] = masked ? (unsigned char)(src[i] ^ mask[i & 3]) : src[i];
    int rc = send_all(w->fd, frame, n + len);
    free(frame);
    return rc;
fail:
    free(frame);
    return -1;
}

int
wsraw_send_text(struct wsraw *w, const char *text)
{
    return wsraw_send_frame(w, 1, 0, WSRAW_OP_TEXT, 1, text, strlen(text));
}

int
wsraw_send_close(struct wsraw *w, int code, const char *reason)
{
    unsigned char payload[125] = {0};
    size_t n = 0;

    if (code > 0) {
        payload[n++] = (unsigned char)(code >> 8);
        payload[n++] = (unsigned char)code;
        size_t rlen = reason != NULL ? strlen(reason) : 0;
        if (rlen > sizeof payload - 2)
            rlen = sizeof payload - 2;
        if (rlen > 0)
            memcpy(payload + n, reason, rlen);
        n += rlen;
    }
    return wsraw_send_frame(w, 1, 0, WSRAW_OP_CLOSE, 1, payload, n);
}

/* ---- frames in ----------------------------------------------------------------------- */

/* Parses the header at the front of rbuf once enough of it is buffered. */
static int
read_frame_header(struct wsraw *w, int64_t deadline, size_t *hdr_len, uint64_t *len)
{
    if (need(w, 2, deadline) != 0)
        return -1;
    if (w->rbuf[1] & 0x80) {
        errno = EPROTO;
        return -1;
    }
    unsigned l7 = w->rbuf[1] & 0x7f;
    *hdr_len = l7 == 126 ? 4 : l7 == 127 ? 10 : 2;
    if (need(w, *hdr_len, deadline) != 0)
        return -1;
    *len = l7;
    if (l7 >= 126) {
        *len = 0;
        for (size_t i = 2; i < *hdr_len; i++)
            *len = (*len << 8) | w->rbuf[i];
    }
    if (*len > WSRAW_MAX_FRAME) {
        errno = EMSGSIZE;
        return -1;
    }
    return 0;
}

static int
recv_frame_until(struct wsraw *w, int64_t deadline, int *opcode, int *fin, char **payload,
                 size_t *len)
{
    size_t hdr;
    uint64_t plen;

    if (read_frame_header(w, deadline, &hdr, &plen) != 0)
        return -1;
    if (need(w, hdr + (size_t)plen, deadline) != 0)
        return -1;
    if (payload != NULL) {
        *payload = malloc((size_t)plen + 1);
        if (*payload == NULL)
            return -1;
        memcpy(*payload, w->rbuf + hdr, (size_t)plen);
        (*payload)[plen] = '\0';
    }
    if (opcode != NULL)
        *opcode = w->rbuf[0] & 0x0f;
    if (fin != NULL)
        *fin = (w->rbuf[0] & 0x80) != 0;
    if (len != NULL)
        *len = (size_t)plen;
    consume(w, hdr + (size_t)plen);
    return 0;
}

int
wsraw_recv_frame(struct wsraw *w, int timeout_ms, int *opcode, int *fin, char **payload,
                 size_t *len)
{
    return recv_frame_until(w, deadline_after(timeout_ms), opcode, fin, payload, len);
}

/* Interprets a close payload: code, reason, and the echo RFC 6455 section 5.5.1 asks for. */
static int
handle_close(struct wsraw *w, const char *payload, size_t len, char *reason, size_t reason_size)
{
    size_t off = 0;

    if (len == 1) {
        errno = EPROTO;
        return -1;
    }
    if (len == 0) {
        (void)wsraw_send_close(w, 0, NULL);
        return 1005;
    }
    int code = ((unsigned char)payload[0] << 8) | (unsigned char)payload[1];
    copy_out(reason, reason_size, &off, payload + 2, len - 2);
    (void)wsraw_send_close(w, code, NULL);
    return code;
}

int
wsraw_expect_close(struct wsraw *w, int timeout_ms, char *reason, size_t reason_size)
{
    int64_t deadline = deadline_after(timeout_ms);

    if (reason != NULL && reason_size > 0)
        reason[0] = '\0';
    for (;;) {
        int opcode;
        char *payload = NULL;
        size_t len;
        if (recv_frame_until(w, deadline, &opcode, NULL, &payload, &len) != 0) {
            bool hard = errno == ETIMEDOUT || errno == EPROTO || errno == EMSGSIZE ||
                        errno == ENOMEM;
            return hard ? -1 : 1006;
        }
        int code = 0;
        if (opcode == WSRAW_OP_CLOSE)
            code = handle_close(w, payload, len, reason, reason_size);
        free(payload);
        if (opcode == WSRAW_OP_CLOSE)
            return code;
    }
}

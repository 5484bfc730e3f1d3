/* Unit tests for the wsraw test client: what it puts on the wire is checked by a frame parser
 * written here independently, and what it reads is fed by a loopback peer that plays the server.
 */
#include "wsraw.h"

#include "astro/common.h"

#include <check.h>
#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int listen_fd = -1;
static int peer_fd = -1; /* the server side of the client's connection */
static int port;
static struct wsraw *cli;

static void
setup(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;

    signal(SIGPIPE, SIG_IGN);
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(listen_fd, 0);
    ck_assert_int_eq(bind(listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(listen_fd, 8), 0);
    ck_assert_int_eq(getsockname(listen_fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    cli = wsraw_connect("127.0.0.1", port, 2000);
    ck_assert_ptr_nonnull(cli);
    peer_fd = accept(listen_fd, NULL, NULL);
    ck_assert_int_ge(peer_fd, 0);
}

static void
teardown(void)
{
    wsraw_close(cli);
    cli = NULL;
    if (peer_fd >= 0)
        close(peer_fd);
    if (listen_fd >= 0)
        close(listen_fd);
    peer_fd = listen_fd = -1;
}

/* ---- the peer's side: bounded reads and writes, and an independent frame parser ---------- */

static bool
peer_read(int fd, void *buf, size_t n, int timeout_ms)
{
    unsigned char *p = buf;
    while (n > 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, timeout_ms) != 1)
            return false;
        ssize_t got = read(fd, p, n);
        if (got <= 0)
            return false;
        p += got;
        n -= (size_t)got;
    }
    return true;
}

static void
peer_write(const void *buf, size_t n)
{
    ck_assert_int_eq(send(peer_fd, buf, n, MSG_NOSIGNAL), (ssize_t)n);
}

struct rawframe {
    int fin, rsv, opcode, masked;
    unsigned len7;          /* the 7-bit length field as sent: <126, 126 or 127 */
    uint64_t len;           /* the declared payload length */
    unsigned char mask[4];
    unsigned char *payload; /* unmasked; only when the payload is read */
};

static void
parse_header(int fd, struct rawframe *f)
{
    unsigned char h[8];

    ck_assert(peer_read(fd, h, 2, 2000));
    f->fin = h[0] >> 7;
    f->rsv = (h[0] >> 4) & 7;
    f->opcode = h[0] & 15;
    f->masked = h[1] >> 7;
    f->len7 = h[1] & 127;
    f->len = f->len7;
    if (f->len7 == 126 || f->len7 == 127) {
        size_t ext = f->len7 == 126 ? 2 : 8;
        ck_assert(peer_read(fd, h, ext, 2000));
        f->len = 0;
        for (size_t i = 0; i < ext; i++)
            f->len = f->len << 8 | h[i];
    }
    if (f->masked)
        ck_assert(peer_read(fd, f->mask, 4, 2000));
}

static void
read_payload(int fd, struct rawframe *f, size_t n)
{
    f->payload = malloc(n + 1);
    ck_assert_ptr_nonnull(f->payload);
    ck_assert(peer_read(fd, f->payload, n, 2000));
    for (size_t i = 0; f->masked && i < n; i++)
        f->payload[i] ^= f->mask[i % 4];
}

static unsigned char *
pattern(size_t n)
{
    unsigned char *p = malloc(n + 1);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)('a' + i % 26);
    return p;
}

/* ---- frames out ------------------------------------------------------------------------ */

static const struct {
    size_t len;
    int fin, rsv, opcode, masked;
    unsigned want_len7;
} out_cases[] = {
    {0, 1, 0, WSRAW_OP_TEXT, 1, 0},
    {125, 1, 0, WSRAW_OP_TEXT, 1, 125},
    {126, 1, 0, WSRAW_OP_BINARY, 1, 126},
    {65535, 0, 0, WSRAW_OP_BINARY, 1, 126},
    {65536, 1, 0, WSRAW_OP_BINARY, 1, 127},
    {300, 1, 5, 0x3, 0, 126},  /* reserved opcode, RSV1+RSV3, unmasked */
    {10, 0, 7, WSRAW_OP_PING, 1, 10},
};

START_TEST(frame_encoding)
{
    const __typeof__(out_cases[0]) *c = &out_cases[_i];
    unsigned char *msg = pattern(c->len);
    struct rawframe f = {0};

    ck_assert_int_eq(wsraw_send_frame(cli, c->fin, c->rsv, c->opcode, c->masked, msg, c->len), 0);
    parse_header(peer_fd, &f);
    ck_assert_int_eq(f.fin, c->fin);
    ck_assert_int_eq(f.rsv, c->rsv);
    ck_assert_int_eq(f.opcode, c->opcode);
    ck_assert_int_eq(f.masked, c->masked);
    ck_assert_uint_eq(f.len7, c->want_len7);
    ck_assert_uint_eq(f.len, c->len);
    read_payload(peer_fd, &f, c->len);
    ck_assert_mem_eq(f.payload, msg, c->len);
    free(f.payload);
    free(msg);
}
END_TEST

START_TEST(masking_changes_the_wire_bytes)
{
    unsigned char wire[2 + 4 + 64];
    unsigned char *msg = pattern(64);

    /* Two frames with the same text: random keys make the wire bytes differ. */
    ck_assert_int_eq(wsraw_send_frame(cli, 1, 0, WSRAW_OP_TEXT, 1, msg, 64), 0);
    ck_assert(peer_read(peer_fd, wire, sizeof wire, 2000));
    ck_assert_int_ne(memcmp(wire + 6, msg, 64), 0);
    unsigned char first_key[4];
    memcpy(first_key, wire + 2, 4);
    ck_assert_int_eq(wsraw_send_frame(cli, 1, 0, WSRAW_OP_TEXT, 1, msg, 64), 0);
    ck_assert(peer_read(peer_fd, wire, sizeof wire, 2000));
    ck_assert_int_ne(memcmp(wire + 2, first_key, 4), 0);
    free(msg);
}
END_TEST

START_TEST(header_can_declare_more_than_is_sent)
{
    struct rawframe f = {0};
    unsigned char extra;

    ck_assert_int_eq(wsraw_send_frame_header(cli, 1, 0, WSRAW_OP_BINARY, 1, 1ull << 30), 0);
    ck_assert_int_eq(wsraw_send_payload(cli, "01234", 5), 0);
    ck_assert_int_eq(wsraw_send_payload(cli, "56789", 5), 0);
    parse_header(peer_fd, &f);
    ck_assert_uint_eq(f.len7, 127);
    ck_assert_uint_eq(f.len, 1ull << 30);
    read_payload(peer_fd, &f, 10);
    ck_assert_mem_eq(f.payload, "0123456789", 10);
    /* Nothing beyond the 10 bytes was sent. */
    ck_assert(!peer_read(peer_fd, &extra, 1, 50));
    free(f.payload);
}
END_TEST

START_TEST(send_text_and_close)
{
    struct rawframe f = {0};

    ck_assert_int_eq(wsraw_send_text(cli, "{\"type\":\"auth\"}"), 0);
    parse_header(peer_fd, &f);
    ck_assert(f.fin && f.masked && f.opcode == WSRAW_OP_TEXT && f.len == 15);
    read_payload(peer_fd, &f, 15);
    ck_assert_mem_eq(f.payload, "{\"type\":\"auth\"}", 15);
    free(f.payload);
    ck_assert_int_eq(wsraw_send_close(cli, 1001, "bye"), 0);
    parse_header(peer_fd, &f);
    ck_assert(f.masked && f.opcode == WSRAW_OP_CLOSE && f.len == 5);
    read_payload(peer_fd, &f, 5);
    ck_assert_mem_eq(f.payload, "\x03\xe9" "bye", 5);
    free(f.payload);
}
END_TEST

/* ---- frames in ------------------------------------------------------------------------- */

/* Writes an unmasked server frame with the test's own encoder. */
static void
peer_send_frame(int fin, int opcode, const void *payload, size_t len)
{
    unsigned char h[10];
    size_t n = 2;
    h[0] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        h[1] = (unsigned char)len;
    } else if (len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        n = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        n = 10;
    }
    peer_write(h, n);
    if (len > 0)
        peer_write(payload, len);
}

static const struct {
    size_t len;
    int fin, opcode;
} in_cases[] = {
    {0, 1, WSRAW_OP_TEXT},   {125, 1, WSRAW_OP_TEXT}, {126, 0, WSRAW_OP_BINARY},
    {65536, 1, WSRAW_OP_BINARY}, {4, 1, WSRAW_OP_PING},
};

START_TEST(frame_decoding)
{
    const __typeof__(in_cases[0]) *c = &in_cases[_i];
    unsigned char *msg = pattern(c->len);
    int opcode = -1, fin = -1;
    char *payload = NULL;
    size_t len = 1;

    peer_send_frame(c->fin, c->opcode, msg, c->len);
    ck_assert_int_eq(wsraw_recv_frame(cli, 2000, &opcode, &fin, &payload, &len), 0);
    ck_assert_int_eq(opcode, c->opcode);
    ck_assert_int_eq(fin, c->fin);
    ck_assert_uint_eq(len, c->len);
    ck_assert_mem_eq(payload, msg, c->len);
    ck_assert_int_eq(payload[len], '\0');
    free(payload);
    free(msg);
}
END_TEST

START_TEST(partial_frame_survives_a_timeout)
{
    char *payload = NULL;
    size_t len = 0;

    peer_write("\x81\x05he", 4);
    errno = 0;
    ck_assert_int_eq(wsraw_recv_frame(cli, 50, NULL, NULL, &payload, &len), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    peer_write("llo\x81\x02ok", 7);
    ck_assert_int_eq(wsraw_recv_frame(cli, 2000, NULL, NULL, &payload, &len), 0);
    ck_assert_str_eq(payload, "hello");
    free(payload);
    ck_assert_int_eq(wsraw_recv_frame(cli, 2000, NULL, NULL, &payload, &len), 0);
    ck_assert_str_eq(payload, "ok");
    free(payload);
}
END_TEST

START_TEST(recv_timeout_is_bounded)
{
    struct timespec a, b;

    clock_gettime(CLOCK_MONOTONIC, &a);
    errno = 0;
    ck_assert_int_eq(wsraw_recv_frame(cli, 100, NULL, NULL, NULL, NULL), -1);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ck_assert_int_eq(errno, ETIMEDOUT);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    ck_assert_int_ge(ms, 90);
    ck_assert_int_lt(ms, 1000);
}
END_TEST

START_TEST(masked_server_frame_is_refused)
{
    peer_write("\x81\x82\x01\x02\x03\x04\x60\x6b", 8);
    errno = 0;
    ck_assert_int_eq(wsraw_recv_frame(cli, 2000, NULL, NULL, NULL, NULL), -1);
    ck_assert_int_eq(errno, EPROTO);
}
END_TEST

START_TEST(eof_mid_frame_is_an_error)
{
    peer_write("\x81\x05he", 4);
    close(peer_fd);
    peer_fd = -1;
    errno = 0;
    ck_assert_int_eq(wsraw_recv_frame(cli, 2000, NULL, NULL, NULL, NULL), -1);
    ck_assert_int_eq(errno, ECONNRESET);
}
END_TEST

/* ---- expect_close ---------------------------------------------------------------------- */

enum close_script { SEND_CLOSE, SEND_DATA_THEN_CLOSE, SEND_EMPTY_CLOSE, HANG_UP, SILENCE };

static const struct {
    enum close_script script;
    int code;
    const char *reason;
    int want;
    const char *want_reason;
} close_cases[] = {
    {SEND_CLOSE, 1009, "message too big", 1009, "message too big"},
    {SEND_DATA_THEN_CLOSE, 1000, "", 1000, ""},
    {SEND_CLOSE, 4001, "app", 4001, "app"},
    {SEND_EMPTY_CLOSE, 0, NULL, 1005, ""},
    {HANG_UP, 0, NULL, 1006, ""},
    {SILENCE, 0, NULL, -1, ""},
};

static void
peer_send_close(int code, const char *reason)
{
    unsigned char p[125] = {(unsigned char)(code >> 8), (unsigned char)code};
    size_t n = strlen(reason);
    memcpy(p + 2, reason, n);
    peer_send_frame(1, WSRAW_OP_CLOSE, p, 2 + n);
}

START_TEST(expect_close_codes)
{
    const __typeof__(close_cases[0]) *c = &close_cases[_i];
    char reason[64] = "junk";

    if (c->script == SEND_DATA_THEN_CLOSE) {
        peer_send_frame(1, WSRAW_OP_TEXT, "late data", 9);
        peer_send_frame(1, WSRAW_OP_PING, "", 0);
    }
    if (c->script == SEND_CLOSE || c->script == SEND_DATA_THEN_CLOSE)
        peer_send_close(c->code, c->reason);
    if (c->script == SEND_EMPTY_CLOSE)
        peer_send_frame(1, WSRAW_OP_CLOSE, "", 0);
    if (c->script == HANG_UP) {
        close(peer_fd);
        peer_fd = -1;
    }
    ck_assert_int_eq(wsraw_expect_close(cli, 200, reason, sizeof reason), c->want);
    ck_assert_str_eq(reason, c->want_reason);
    if (c->script == SEND_CLOSE || c->script == SEND_DATA_THEN_CLOSE) {
        /* The client answers with a masked close echoing the code. */
        struct rawframe f = {0};
        parse_header(peer_fd, &f);
        ck_assert(f.masked && f.opcode == WSRAW_OP_CLOSE && f.len == 2);
        read_payload(peer_fd, &f, 2);
        ck_assert_int_eq(f.payload[0] << 8 | f.payload[1], c->code);
        free(f.payload);
    }
}
END_TEST

/* ---- handshake: a peer thread plays the server ----------------------------------------- */

enum hs_mode { HS_ACCEPT, HS_WRONG_ACCEPT, HS_FORBIDDEN, HS_ACCEPT_AND_FRAME };

struct hs_peer {
    enum hs_mode mode;
    char request[4096];
    bool ok;
};

/* The RFC 6455 formula, written again here so a shared mistake cannot hide. */
static void
accept_for(const char *key, char *out)
{
    char in[128];
    unsigned char md[20];
    snprintf(in, sizeof in, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    EVP_Digest(in, strlen(in), md, NULL, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, 20);
}

static void *
hs_peer_run(void *arg)
{
    struct hs_peer *hp = arg;
    size_t n = 0;
    char key[64] = "", acc[32], resp[512];

    while (n < sizeof hp->request - 1 && strstr(hp->request, "\r\n\r\n") == NULL) {
        if (!peer_read(peer_fd, hp->request + n, 1, 2000))
            return NULL;
        n++;
    }
    const char *k = strstr(hp->request, "Sec-WebSocket-Key: ");
    if (k != NULL)
        sscanf(k + 19, "%63[^\r]", key);
    accept_for(key, acc);
    if (hp->mode == HS_WRONG_ACCEPT)
        acc[0] = acc[0] == 'A' ? 'B' : 'A';
    if (hp->mode == HS_FORBIDDEN)
        snprintf(resp, sizeof resp, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    else
        snprintf(resp, sizeof resp,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nsec-websocket-accept:  %s\r\n\r\n%s",
                 acc, hp->mode == HS_ACCEPT_AND_FRAME ? "\x81\x03" "hi!" : "");
    hp->ok = send(peer_fd, resp, strlen(resp), MSG_NOSIGNAL) == (ssize_t)strlen(resp);
    return NULL;
}

static const struct {
    enum hs_mode mode;
    int want;
    int want_errno;
} hs_cases[] = {
    {HS_ACCEPT, 101, 0},
    {HS_WRONG_ACCEPT, -1, EPROTO},
    {HS_FORBIDDEN, 403, 0},
    {HS_ACCEPT_AND_FRAME, 101, 0},
};

START_TEST(handshake)
{
    struct hs_peer hp = {.mode = hs_cases[_i].mode};
    pthread_t th;
    char resp[1024];

    ck_assert_int_eq(pthread_create(&th, NULL, hs_peer_run, &hp), 0);
    errno = 0;
    int status = wsraw_handshake(cli, "/stream?x=1", "X-API-Key: k1\r\n", resp, sizeof resp, 2000);
    int err = errno;
    pthread_join(th, NULL);
    ck_assert(hp.ok);
    ck_assert_int_eq(status, hs_cases[_i].want);
    if (hs_cases[_i].want_errno != 0)
        ck_assert_int_eq(err, hs_cases[_i].want_errno);
    ck_assert(strncmp(hp.request, "GET /stream?x=1 HTTP/1.1\r\n", 26) == 0);
    ck_assert_ptr_nonnull(strstr(hp.request, "\r\nUpgrade: websocket\r\n"));
    ck_assert_ptr_nonnull(strstr(hp.request, "\r\nSec-WebSocket-Version: 13\r\n"));
    ck_assert_ptr_nonnull(strstr(hp.request, "\r\nX-API-Key: k1\r\n\r\n"));
    if (status > 0)
        ck_assert(strncmp(resp, "HTTP/1.1 ", 9) == 0 && strstr(resp, "\r\n\r\n") != NULL);
    if (hs_cases[_i].mode == HS_ACCEPT_AND_FRAME) {
        char *payload = NULL;
        ck_assert_int_eq(wsraw_recv_frame(cli, 2000, NULL, NULL, &payload, NULL), 0);
        ck_assert_str_eq(payload, "hi!");
        free(payload);
    }
}
END_TEST

START_TEST(accept_formula_matches_rfc_example)
{
    char out[32];
    accept_for("dGhlIHNhbXBsZSBub25jZQ==", out);
    ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

/* ---- HTTP responses -------------------------------------------------------------------- */

static const struct {
    const char *name;
    const char *wire;
    bool hang_up; /* close-delimited body */
    size_t body_size;
    int want;
    const char *want_body;
} http_cases[] = {
    {"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, 64, 200, "hello"},
    {"lower-case", "HTTP/1.1 404 Not Found\r\ncontent-length:2\r\n\r\nno", false, 64, 404, "no"},
    {"chunked",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=1\r\n world\r\n"
     "0\r\nX-Trailer: 1\r\n\r\n",
     false, 64, 200, "hello world"},
    {"until close", "HTTP/1.0 200 OK\r\nServer: t\r\n\r\nbye now", true, 64, 200, "bye now"},
    {"no content", "HTTP/1.1 204 No Content\r\n\r\n", false, 64, 204, ""},
    {"truncated", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, 4, 200, "hel"},
    {"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, 64, -1,
     ""},
    {"not http", "SSH-2.0-OpenSSH\r\n\r\n", false, 64, -1, ""},
};

START_TEST(http_response)
{
    const __typeof__(http_cases[0]) *c = &http_cases[_i];
    static const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    char body[64] = "junk";
    char got[sizeof req] = "";

    peer_write(c->wire, strlen(c->wire));
    if (c->hang_up)
        shutdown(peer_fd, SHUT_WR);
    int status = wsraw_http(cli, req, strlen(req), body, c->body_size, 2000);
    ck_assert_msg(status == c->want, "%s: status %d", c->name, status);
    if (status > 0)
        ck_assert_str_eq(body, c->want_body);
    ck_assert(peer_read(peer_fd, got, strlen(req), 2000));
    ck_assert_str_eq(got, req);
}
END_TEST

START_TEST(pipelined_responses_in_one_segment)
{
    static const char wire[] = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
                               "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "4\r\nnope\r\n0\r\n\r\n"
                               "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    char head[256], body[32];

    peer_write(wire, strlen(wire));
    ck_assert_int_eq(wsraw_read_response(cli, head, sizeof head, body, sizeof body, 2000), 200);
    ck_assert_str_eq(body, "a");
    ck_assert_str_eq(head, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n");
    ck_assert_int_eq(wsraw_read_response(cli, head, sizeof head, body, sizeof body, 2000), 404);
    ck_assert_str_eq(body, "nope");
    ck_assert_ptr_nonnull(strstr(head, "Transfer-Encoding: chunked"));
    ck_assert_int_eq(wsraw_read_response(cli, NULL, 0, body, sizeof body, 2000), 200);
    ck_assert_str_eq(body, "");
}
END_TEST

START_TEST(incomplete_body_times_out)
{
    peer_write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 42);
    errno = 0;
    ck_assert_int_eq(wsraw_read_response(cli, NULL, 0, NULL, 0, 100), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
}
END_TEST

/* ---- connection errors ----------------------------------------------------------------- */

START_TEST(connect_refused_is_null)
{
    /* The fixture's listener is closed, so its port refuses. */
    close(listen_fd);
    listen_fd = -1;
    ck_assert_ptr_null(wsraw_connect("127.0.0.1", port, 1000));
    ck_assert_ptr_null(wsraw_connect("no-such-host.invalid", port, 1000));
    wsraw_close(NULL);
}
END_TEST

START_TEST(send_to_closed_peer_fails_without_sigpipe)
{
    static char buf[65536];
    int rc = 0;

    signal(SIGPIPE, SIG_DFL);
    close(peer_fd);
    peer_fd = -1;
    for (int i = 0; i < 100 && rc == 0; i++) {
        rc = wsraw_send_bytes(cli, buf, sizeof buf);
        usleep(1000);
    }
    ck_assert_int_eq(rc, -1);
    ck_assert(errno == EPIPE || errno == ECONNRESET);
}
END_TEST

static Suite *
wsraw_suite(void)
{
    Suite *s = suite_create("wsraw");
    TCase *tc = tcase_create("frames");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, frame_encoding, 0, (int)ASTRO_ARRAY_LEN(out_cases));
    tcase_add_test(tc, masking_changes_the_wire_bytes);
    tcase_add_test(tc, header_can_declare_more_than_is_sent);
    tcase_add_test(tc, send_text_and_close);
    tcase_add_loop_test(tc, frame_decoding, 0, (int)ASTRO_ARRAY_LEN(in_cases));
    tcase_add_test(tc, partial_frame_survives_a_timeout);
    tcase_add_test(tc, recv_timeout_is_bounded);
    tcase_add_test(tc, masked_server_frame_is_refused);
    tcase_add_test(tc, eof_mid_frame_is_an_error);
    tcase_add_loop_test(tc, expect_close_codes, 0, (int)ASTRO_ARRAY_LEN(close_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("http");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, handshake, 0, (int)ASTRO_ARRAY_LEN(hs_cases));
    tcase_add_test(tc, accept_formula_matches_rfc_example);
    tcase_add_loop_test(tc, http_response, 0, (int)ASTRO_ARRAY_LEN(http_cases));
    tcase_add_test(tc, pipelined_responses_in_one_segment);
    tcase_add_test(tc, incomplete_body_times_out);
    tcase_add_test(tc, connect_refused_is_null);
    tcase_add_test(tc, send_to_closed_peer_fails_without_sigpipe);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(wsraw_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Integration tests of the HTTP + WebSocket layer: a small test server built on it runs in this
 * process (its own loop threads); clients are the raw-socket wsraw, curl, and civetweb's
 * WebSocket client. Every limit and RFC 6455 rule is checked with the exact status or close
 * code a client would see. Short deadlines keep the suite fast; every wait is bounded. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "astro/http.h"
#include "astro/log.h"
#include "astro/loop.h"
#include "astro/metrics.h"
#include "astro/ws.h"
#include "cwclient.h"
#include "wsraw.h"
#include "servers.h"

#define T_MS 2000 /* generous client-side timeout for answers expected at once */

static struct astro_http_server *srv;
static struct astro_metrics *reg;
static int port;

/* ---- the test server's handlers ---- */

static void
h_health(struct astro_http_req *req, void *arg)
{
    (void)arg;
    astro_http_req_respond(req, 200, "text/plain", "ok", 2);
}

static void
h_echo(struct astro_http_req *req, void *arg)
{
    size_t len;
    const char *body = astro_http_req_body(req, &len);
    (void)arg;
    astro_http_req_respond(req, 200, "application/octet-stream", body, len);
}

static void
h_item(struct astro_http_req *req, void *arg)
{
    char buf[512];
    const char *q = astro_http_req_query(req, "q");
    (void)arg;
    snprintf(buf, sizeof(buf), "id=%s q=%s n=%zu", astro_http_req_param(req, "id"),
             q != NULL ? q : "-", astro_http_req_query_count(req));
    astro_http_req_respond(req, 200, "text/plain", buf, strlen(buf));
}

static void
slow_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    astro_http_req_respond(arg, 200, "text/plain", "slow", 4);
}

/* Answers 150 ms later from a timer on the request's loop, like a handler waiting on Redis. */
static void
h_slow(struct astro_http_req *req, void *arg)
{
    struct timeval tv = {0, 150000};
    (void)arg;
    event_base_once(astro_loop_base(astro_http_req_loop(req)), -1, EV_TIMEOUT, slow_done, req,
                    &tv);
}

static void
ws_echo(struct astro_ws_conn *c, enum astro_ws_opcode op, const uint8_t *data, size_t len,
        void *user)
{
    (void)user;
    if (len > 6 && memcmp(data, "flood ", 6) == 0) {
        /* "flood N": N numbered 1 KiB messages, shared frames as broadcast would send them */
        int n = atoi((const char *)data + 6);
        char payload[1024];
        for (int i = 0; i < n; i++) {
            memset(payload, 'x', sizeof(payload));
            int w = snprintf(payload, sizeof(payload), "seq %d ", i);
            payload[w] = 'x';
            struct astro_ws_msg *m = astro_ws_msg_new(ASTRO_WS_TEXT, payload, sizeof(payload));
            int rc = astro_ws_send_shared(c, m);
            astro_ws_msg_unref(m);
            if (rc != ASTRO_OK)
                return;
        }
        return;
    }
    if (len > 4 && memcmp(data, "key ", 4) == 0) {
        if (astro_ws_conn_set_key(c, (const char *)data + 4) == ASTRO_OK &&
            astro_ws_send(c, ASTRO_WS_TEXT, "ok", 2) != ASTRO_OK)
            return;
        return;
    }
    if (astro_ws_send(c, op, data, len) != ASTRO_OK)
        return;
}

static int
ws_upgrade(struct astro_http_req *req, void *arg, void **user)
{
    (void)arg;
    *user = NULL;
    const char *since = astro_http_req_query(req, "since");
    if (since != NULL && strcmp(since, "bad") == 0) {
        astro_http_req_respond_error(req, 400, "since: malformed position token");
        return ASTRO_ERR;
    }
    return ASTRO_OK;
}

static void
ws_open(struct astro_ws_conn *c, void *user)
{
    (void)user;
    /* The route for slow consumers that asked to lose the oldest messages instead. */
    astro_ws_conn_set_drop_oldest(c, astro_ws_conn_user(c) != NULL);
}

static int
ws_upgrade_drop(struct astro_http_req *req, void *arg, void **user)
{
    (void)req;
    (void)arg;
    *user = (void *)1;
    return ASTRO_OK;
}

static const struct astro_ws_handlers echo_any = {
    .on_upgrade = ws_upgrade, .on_open = ws_open, .on_message = ws_echo};
static const struct astro_ws_handlers echo_text = {.on_message = ws_echo,
                                                   .accept = ASTRO_WS_ACCEPT_TEXT};
static const struct astro_ws_handlers echo_drop = {
    .on_upgrade = ws_upgrade_drop, .on_open = ws_open, .on_message = ws_echo};

/* Limits small enough for the deadlines to pass quickly in a test. */
static void
test_limits(struct astro_net_limits *l)
{
    astro_net_limits_defaults(l);
    l->body_bytes = 64 * 1024;
    l->ws_message_bytes = 64 * 1024;
    l->handshake_ms = 600;
    l->stall_ms = 600;
    l->idle_ms = 800;
    l->out_queue_bytes = 128 * 1024;
    l->ping_interval_ms = 0;
    l->shutdown_ms = 3000;
    l->max_connections = 11000;
}

static void
start_server(const struct astro_net_limits *l)
{
    char err[256];
    reg = astro_metrics_new();
    ck_assert_ptr_nonnull(reg);
    struct astro_http_server_opts o = {.bind_addr = "127.0.0.1", .threads = 2, .limits = *l,
                                       .metrics = reg};
    srv = astro_http_server_new(&o, err, sizeof(err));
    ck_assert_msg(srv != NULL, "%s", err);
    ck_assert_int_eq(astro_http_server_route(srv, "GET", "/health", h_health, NULL, err,
                                             sizeof(err)), ASTRO_OK);
    ck_assert_int_eq(astro_http_server_route(srv, "POST", "/echo", h_echo, NULL, err,
                                             sizeof(err)), ASTRO_OK);
    ck_assert_int_eq(astro_http_server_route(srv, "GET", "/items/{id}", h_item, NULL, err,
                                             sizeof(err)), ASTRO_OK);
    ck_assert_int_eq(astro_http_server_route(srv, "GET", "/slow", h_slow, NULL, err,
                                             sizeof(err)), ASTRO_OK);
    ck_assert_int_eq(astro_http_server_route_ws(srv, "/ws", &echo_any, NULL, err, sizeof(err)),
                     ASTRO_OK);
    ck_assert_int_eq(astro_http_server_route_ws(srv, "/ws/text", &echo_text, NULL, err,
                                                sizeof(err)), ASTRO_OK);
    ck_assert_int_eq(astro_http_server_route_ws(srv, "/ws/drop", &echo_drop, NULL, err,
                                                sizeof(err)), ASTRO_OK);
    ck_assert_msg(astro_http_server_start(srv, err, sizeof(err)) == ASTRO_OK, "%s", err);
    port = astro_http_server_port(srv);
}

static void
setup(void)
{
    struct astro_net_limits l;
    signal(SIGPIPE, SIG_IGN);
    astro_log_init("test_net", "0", getenv("NET_DEBUG") ? ASTRO_LOG_DEBUG : ASTRO_LOG_WARN);
    test_limits(&l);
    start_server(&l);
}

static void
teardown(void)
{
    astro_http_server_free(srv);
    srv = NULL;
    astro_metrics_free(reg);
    reg = NULL;
}

/* The value of one series in /metrics text, e.g. limit_hits("header_bytes"). */
static long
limit_hits(const char *limit)
{
    char needle[160];
    char *text = astro_metrics_render(reg, NULL);
    snprintf(needle, sizeof(needle), "astro_net_limit_hits_total{limit=\"%s\"} ", limit);
    const char *p = strstr(text, needle);
    long v = p != NULL ? strtol(p + strlen(needle), NULL, 10) : -1;
    free(text);
    return v;
}

static struct wsraw *
connect_client(void)
{
    struct wsraw *w = wsraw_connect("127.0.0.1", port, T_MS);
    ck_assert_ptr_nonnull(w);
    return w;
}

static struct wsraw *
ws_client(const char *path)
{
    struct wsraw *w = connect_client();
    ck_assert_int_eq(wsraw_handshake(w, path, NULL, NULL, 0, T_MS), 101);
    return w;
}

/* Sends raw bytes on a fresh connection and returns the status of the answer. */
static int
http_status(const char *raw, char *body, size_t body_size)
{
    struct wsraw *w = connect_client();
    int st = wsraw_http(w, raw, strlen(raw), body, body_size, T_MS);
    wsraw_close(w);
    return st;
}

/* ---- HTTP ---- */

static const struct {
    const char *raw;
    int status;
    const char *body; /* substring of the body, or NULL */
} http_cases[] = {
    {"GET /health HTTP/1.1\r\nHost: t\r\n\r\n", 200, "ok"},
    {"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", 404, "no such resource"},
    {"DELETE /health HTTP/1.1\r\nHost: t\r\n\r\n", 405, "method not allowed"},
    {"GET /items/a%20b?q=x+y%21&z HTTP/1.1\r\nHost: t\r\n\r\n", 200, "id=a b q=x y! n=2"},
    {"GET /items/a%2Fb HTTP/1.1\r\nHost: t\r\n\r\n", 200, "id=a/b q=- n=0"},
    {"GET /items/x?q=%zz HTTP/1.1\r\nHost: t\r\n\r\n", 400, "query: bad percent-encoding"},
    {"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 200, "hello world"},
    {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
     400, NULL},
    {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5\r\nhello\r\n0\r\n\r\n", 400, NULL},
    {"POST /echo HTTP/1.1\r\nHost: t\r\n\r\n", 411, "Content-Length required"},
    {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 70000\r\n\r\n", 413, "too large"},
    {"GARBAGE\r\n\r\n", 400, NULL},
    {"GET /ws HTTP/1.1\r\nHost: t\r\n\r\n", 426, "WebSocket endpoint"},
};

START_TEST(http_table)
{
    char body[1024];
    int st = http_status(http_cases[_i].raw, body, sizeof(body));
    ck_assert_msg(st == http_cases[_i].status, "case %d: status %d, want %d", _i, st,
                  http_cases[_i].status);
    if (http_cases[_i].body != NULL)
        ck_assert_msg(strstr(body, http_cases[_i].body) != NULL, "case %d: body \"%s\"", _i,
                      body);
}
END_TEST

START_TEST(http_head_has_no_body)
{
    char head[1024], body[64];
    struct wsraw *w = connect_client();
    const char *r = "HEAD /health HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\n";
    ck_assert_int_eq(wsraw_send_bytes(w, r, strlen(r)), 0);
    /* wsraw would wait for HEAD's announced body; read the head, then the next answer. */
    char buf[512];
    ssize_t n = 0, got;
    long until = harness_now_ms() + T_MS;
    while (harness_now_ms() < until && (got = recv(wsraw_fd(w), buf + n, sizeof(buf) - 1 - (size_t)n,
                                           MSG_DONTWAIT)) != 0) {
        if (got > 0)
            n += got;
        buf[n] = '\0';
        if (strstr(buf, "\r\n\r\nHTTP/1.1 200 OK") != NULL && strstr(buf, "\r\n\r\nok") != NULL)
            break;
        usleep(5000);
    }
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK", 15) == 0, "%s", buf);
    ck_assert_ptr_nonnull(strstr(buf, "Content-Length: 2\r\n"));
    /* The HEAD answer ends at its blank line: the next bytes are the GET's status line. */
    ck_assert_ptr_nonnull(strstr(buf, "\r\n\r\nHTTP/1.1 200 OK"));
    (void)head;
    (void)body;
    wsraw_close(w);
}
END_TEST

START_TEST(http_keepalive_and_pipelining_in_order)
{
    char head[1024], body[64];
    struct wsraw *w = connect_client();
    /* The first answer is given 150 ms later by a timer; the second at once. Both requests go
     * out in one write and the answers must come back in request order. */
    const char *two = "GET /slow HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\n";
    ck_assert_int_eq(wsraw_send_bytes(w, two, strlen(two)), 0);
    ck_assert_int_eq(wsraw_read_response(w, head, sizeof(head), body, sizeof(body), T_MS), 200);
    ck_assert_str_eq(body, "slow");
    ck_assert_ptr_nonnull(strstr(head, "Connection: keep-alive"));
    ck_assert_int_eq(wsraw_read_response(w, head, sizeof(head), body, sizeof(body), T_MS), 200);
    ck_assert_str_eq(body, "ok");
    /* and the connection is still usable */
    const char *third = "GET /items/7 HTTP/1.1\r\nHost: t\r\n\r\n";
    ck_assert_int_eq(wsraw_http(w, third, strlen(third), body, sizeof(body), T_MS), 200);
    ck_assert_str_eq(body, "id=7 q=- n=0");
    wsraw_close(w);
}
END_TEST


START_TEST(http_expect_100_continue)
{
    char buf[256] = "", body[64];
    struct wsraw *w = connect_client();
    const char *head = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                       "Expect: 100-continue\r\n\r\n";
    ck_assert_int_eq(wsraw_send_bytes(w, head, strlen(head)), 0);
    /* the interim answer comes before any body byte is sent */
    struct pollfd pfd = {.fd = wsraw_fd(w), .events = POLLIN};
    ck_assert_int_eq(poll(&pfd, 1, T_MS), 1);
    ssize_t n = recv(wsraw_fd(w), buf, 25, 0);
    ck_assert_int_eq(n, 25);
    ck_assert_str_eq(buf, "HTTP/1.1 100 Continue\r\n\r\n");
    ck_assert_int_eq(wsraw_send_bytes(w, "hello", 5), 0);
    ck_assert_int_eq(wsraw_read_response(w, NULL, 0, body, sizeof(body), T_MS), 200);
    ck_assert_str_eq(body, "hello");
    wsraw_close(w);
}
END_TEST

START_TEST(http_header_limit_431)
{
    char raw[12000];
    int n = snprintf(raw, sizeof(raw), "GET /health HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(raw + n, 'a', 9000);
    strcpy(raw + n + 9000, "\r\n\r\n");
    ck_assert_int_eq(http_status(raw, NULL, 0), 431);
    ck_assert_int_eq(limit_hits("header_bytes"), 1);
}
END_TEST

START_TEST(http_chunked_body_limit_413)
{
    struct wsraw *w = connect_client();
    const char *head = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    ck_assert_int_eq(wsraw_send_bytes(w, head, strlen(head)), 0);
    static char chunk[40000];
    memset(chunk, 'b', sizeof(chunk));
    const char *size = "9c40\r\n"; /* 40000 */
    int st = -1;
    for (int i = 0; i < 2 && st < 0; i++) {
        if (wsraw_send_bytes(w, size, strlen(size)) != 0 ||
            wsraw_send_bytes(w, chunk, sizeof(chunk)) != 0 || wsraw_send_bytes(w, "\r\n", 2) != 0)
            break;
    }
    st = wsraw_read_response(w, NULL, 0, NULL, 0, T_MS);
    ck_assert_int_eq(st, 413);
    ck_assert_int_eq(limit_hits("body_bytes"), 1);
    wsraw_close(w);
}
END_TEST

/* Slowloris: each phase has its own deadline (handshake 600 ms absolute; body 600 ms without
 * progress). Returns the status and the time it took. */
static int
slow_send(const char *first, const char *dribble, long *elapsed)
{
    struct wsraw *w = connect_client();
    long t0 = harness_now_ms();
    if (first[0] != '\0')
        ck_assert_int_eq(wsraw_send_bytes(w, first, strlen(first)), 0);
    for (const char *p = dribble; *p != '\0'; p++) {
        struct pollfd pfd = {.fd = wsraw_fd(w), .events = POLLIN};
        if (poll(&pfd, 1, 100) != 0) /* the server answered: stop dribbling */
            break;
        if (wsraw_send_bytes(w, p, 1) != 0)
            break;
    }
    int st = wsraw_read_response(w, NULL, 0, NULL, 0, 3000);
    *elapsed = harness_now_ms() - t0;
    wsraw_close(w);
    return st;
}

START_TEST(slowloris_handshake_nothing_sent)
{
    long ms;
    ck_assert_int_eq(slow_send("", "", &ms), 408);
    ck_assert_msg(ms >= 550 && ms < 1500, "took %ld ms", ms);
    ck_assert_int_eq(limit_hits("handshake_deadline"), 1);
}
END_TEST

START_TEST(slowloris_headers_dribbled)
{
    long ms;
    /* one byte every 100 ms keeps making progress, but the headers deadline is absolute */
    ck_assert_int_eq(slow_send("GET /health HTTP/1.1\r\n",
                               "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", &ms), 408);
    ck_assert_msg(ms >= 550 && ms < 1500, "took %ld ms", ms);
}
END_TEST

START_TEST(slowloris_websocket_handshake)
{
    long ms;
    ck_assert_int_eq(slow_send("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n",
                               "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n", &ms),
                     408);
    ck_assert_msg(ms >= 550 && ms < 1500, "took %ld ms", ms);
}
END_TEST

START_TEST(slowloris_body_stalled)
{
    long ms;
    ck_assert_int_eq(slow_send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n"
                               "0123456789", "", &ms), 408);
    ck_assert_msg(ms >= 550 && ms < 1500, "took %ld ms", ms);
    ck_assert_int_eq(limit_hits("stall_deadline"), 1);
}
END_TEST

START_TEST(http_idle_keepalive_closed)
{
    char body[16];
    struct wsraw *w = connect_client();
    const char *r = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
    ck_assert_int_eq(wsraw_http(w, r, strlen(r), body, sizeof(body), T_MS), 200);
    long t0 = harness_now_ms();
    char c;
    struct pollfd pfd = {.fd = wsraw_fd(w), .events = POLLIN};
    ck_assert_int_eq(poll(&pfd, 1, 3000), 1);
    ck_assert_int_eq(recv(wsraw_fd(w), &c, 1, 0), 0); /* EOF */
    long ms = harness_now_ms() - t0;
    ck_assert_msg(ms >= 700 && ms < 2000, "closed after %ld ms", ms);
    wsraw_close(w);
}
END_TEST

START_TEST(http_curl_keepalive)
{
    char cmd[512], out[256] = "";
    snprintf(cmd, sizeof(cmd),
             "timeout 10 curl -sS --max-time 5 -w ' %%{http_code} %%{num_connects}' "
             "http://127.0.0.1:%d/health -o /dev/null http://127.0.0.1:%d/items/c%%20url?q=1",
             port, port);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    ck_assert_int_eq(pclose(f), 0);
    /* the second transfer reused the first connection: 0 new connects */
    ck_assert_msg(strstr(out, " 200 1") != NULL && strstr(out, "id=c url q=1 n=1 200 0") != NULL,
                  "curl said: %s", out);
}
END_TEST

/* ---- WebSocket ---- */

START_TEST(ws_echo_text_binary_fragmented)
{
    struct wsraw *w = ws_client("/ws");
    int op;
    char *p;
    size_t len;
    ck_assert_int_eq(wsraw_send_text(w, "hello"), 0);
    ck_assert_int_eq(wsraw_recv_frame(w, T_MS, &op, NULL, &p, &len), 0);
    ck_assert_int_eq(op, WSRAW_OP_TEXT);
    ck_assert_str_eq(p, "hello");
    free(p);
    ck_assert_int_eq(wsraw_send_frame(w, 1, 0, WSRAW_OP_BINARY, 1, "\x00\x01\xff", 3), 0);
    ck_assert_int_eq(wsraw_recv_frame(w, T_MS, &op, NULL, &p, &len), 0);
    ck_assert_int_eq(op, WSRAW_OP_BINARY);
    ck_assert_int_eq(len, 3);
    ck_assert_int_eq(memcmp(p, "\x00\x01\xff", 3), 0);
    free(p);
    /* "é" (C3 A9) split across two fragments, with a ping between them */
    ck_assert_int_eq(wsraw_send_frame(w, 0, 0, WSRAW_OP_TEXT, 1, "caf\xc3", 4), 0);
    ck_assert_int_eq(wsraw_send_frame(w, 1, 0, WSRAW_OP_PING, 1, "p", 1), 0);
    ck_assert_int_eq(wsraw_send_frame(w, 1, 0, WSRAW_OP_CONT, 1, "\xa9!", 2), 0);
    /* the pong and the echo, in either order */
    int seen = 0;
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(wsraw_recv_frame(w, T_MS, &op, NULL, &p, &len), 0);
        if (op == WSRAW_OP_PONG) {
            ck_assert_str_eq(p, "p");
            seen |= 1;
        } else {
            ck_assert_int_eq(op, WSRAW_OP_TEXT);
            ck_assert_str_eq(p, "caf\xc3\xa9!");
            seen |= 2;
        }
        free(p);
    }
    ck_assert_int_eq(seen, 3);
    /* clean close: our 1000 is echoed */
    ck_assert_int_eq(wsraw_send_close(w, 1000, "bye"), 0);
    ck_assert_int_eq(wsraw_expect_close(w, T_MS, NULL, 0), 1000);
    wsraw_close(w);
}
END_TEST

/* One RFC 6455 violation per row: what the client sends after the handshake and the close
 * code it must get. */
struct frame {
    int fin, rsv, op, masked;
    const char *data;
    size_t len;
};

static const struct {
    const char *name;
    const char *path;
    struct frame f[2];
    int nframes;
    int code;
} rfc_cases[] = {
    {"unmasked", "/ws", {{1, 0, 1, 0, "hi", 2}}, 1, 1002},
    {"rsv1", "/ws", {{1, 4, 1, 1, "hi", 2}}, 1, 1002},
    {"rsv3", "/ws", {{1, 1, 2, 1, "hi", 2}}, 1, 1002},
    {"opcode 3", "/ws", {{1, 0, 3, 1, "hi", 2}}, 1, 1002},
    {"opcode 0xB", "/ws", {{1, 0, 0xB, 1, "", 0}}, 1, 1002},
    {"fragmented ping", "/ws", {{0, 0, 9, 1, "x", 1}}, 1, 1002},
    {"continuation first", "/ws", {{1, 0, 0, 1, "x", 1}}, 1, 1002},
    {"text inside fragmented", "/ws", {{0, 0, 1, 1, "a", 1}, {1, 0, 1, 1, "b", 1}}, 2, 1002},
    {"invalid utf8", "/ws", {{1, 0, 1, 1, "\xff\xfe", 2}}, 1, 1007},
    {"surrogate utf8", "/ws", {{1, 0, 1, 1, "\xed\xa0\x80", 3}}, 1, 1007},
    {"utf8 split invalid", "/ws", {{0, 0, 1, 1, "ok\xe2\x82", 4}, {1, 0, 0, 1, "\x41", 1}}, 2,
     1007},
    {"truncated utf8 at end", "/ws", {{1, 0, 1, 1, "ok\xe2\x82", 4}}, 1, 1007},
    {"close code 1005", "/ws", {{1, 0, 8, 1, "\x03\xed", 2}}, 1, 1002},
    {"close code 999", "/ws", {{1, 0, 8, 1, "\x03\xe7", 2}}, 1, 1002},
    {"close code 1004", "/ws", {{1, 0, 8, 1, "\x03\xec", 2}}, 1, 1002},
    {"close 1 byte", "/ws", {{1, 0, 8, 1, "\x03", 1}}, 1, 1002},
    {"binary on text route", "/ws/text", {{1, 0, 2, 1, "\x01", 1}}, 1, 1003},
};

START_TEST(ws_rfc6455_table)
{
    struct wsraw *w = ws_client(rfc_cases[_i].path);
    for (int k = 0; k < rfc_cases[_i].nframes; k++) {
        const struct frame *f = &rfc_cases[_i].f[k];
        ck_assert_int_eq(wsraw_send_frame(w, f->fin, f->rsv, f->op, f->masked, f->data, f->len),
                         0);
    }
    int code = wsraw_expect_close(w, T_MS, NULL, 0);
    ck_assert_msg(code == rfc_cases[_i].code, "%s: close %d, want %d", rfc_cases[_i].name, code,
                  rfc_cases[_i].code);
    wsraw_close(w);
}
END_TEST

START_TEST(ws_control_frame_over_125)
{
    char big[126];
    memset(big, 'p', sizeof(big));
    struct wsraw *w = ws_client("/ws");
    ck_assert_int_eq(wsraw_send_frame(w, 1, 0, WSRAW_OP_PING, 1, big, sizeof(big)), 0);
    ck_assert_int_eq(wsraw_expect_close(w, T_MS, NULL, 0), 1002);
    wsraw_close(w);
}
END_TEST

START_TEST(ws_message_limit_from_declared_length)
{
    /* 1 GiB declared and 10 bytes sent: refused from the header alone (limit 64 KiB) */
    struct wsraw *w = ws_client("/ws");
    ck_assert_int_eq(wsraw_send_frame_header(w, 1, 0, WSRAW_OP_BINARY, 1, 1ull << 30), 0);
    ck_assert_int_eq(wsraw_send_payload(w, "0123456789", 10), 0);
    long t0 = harness_now_ms();
    ck_assert_int_eq(wsraw_expect_close(w, T_MS, NULL, 0), 1009);
    ck_assert_msg(harness_now_ms() - t0 < 300, "1009 took %ld ms", harness_now_ms() - t0);
    wsraw_close(w);
    /* fragments that add up past the limit */
    static char part[40000];
    w = ws_client("/ws");
    ck_assert_int_eq(wsraw_send_frame(w, 0, 0, WSRAW_OP_BINARY, 1, part, sizeof(part)), 0);
    ck_assert_int_eq(wsraw_send_frame_header(w, 1, 0, WSRAW_OP_CONT, 1, sizeof(part)), 0);
    ck_assert_int_eq(wsraw_expect_close(w, T_MS, NULL, 0), 1009);
    wsraw_close(w);
    ck_assert_int_eq(limit_hits("ws_message_bytes"), 2);
}
END_TEST

START_TEST(ws_bad_upgrades)
{
    char resp[2048];
    struct wsraw *w = connect_client();
    const char *v12 = "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n\r\n";
    ck_assert_int_eq(wsraw_http(w, v12, strlen(v12), resp, sizeof(resp), T_MS), 426);
    wsraw_close(w);
    const char *nokey = "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n";
    ck_assert_int_eq(http_status(nokey, resp, sizeof(resp)), 400);
    const char *badkey = "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n";
    ck_assert_int_eq(http_status(badkey, resp, sizeof(resp)), 400);
    /* the route's own refusal before the 101 */
    w = connect_client();
    ck_assert_int_eq(wsraw_handshake(w, "/ws?since=bad", NULL, resp, sizeof(resp), T_MS), 400);
    wsraw_close(w);
    w = connect_client();
    ck_assert_int_eq(wsraw_handshake(w, "/nowhere", NULL, resp, sizeof(resp), T_MS), 404);
    wsraw_close(w);
}
END_TEST

START_TEST(ws_stalled_frame_closed_at_deadline)
{
    struct wsraw *w = ws_client("/ws");
    ck_assert_int_eq(wsraw_send_frame_header(w, 1, 0, WSRAW_OP_TEXT, 1, 100), 0);
    ck_assert_int_eq(wsraw_send_payload(w, "0123456789", 10), 0);
    long t0 = harness_now_ms();
    ck_assert_int_eq(wsraw_expect_close(w, 3000, NULL, 0), 1008);
    long ms = harness_now_ms() - t0;
    ck_assert_msg(ms >= 550 && ms < 1500, "closed after %ld ms", ms);
    ck_assert_int_eq(limit_hits("stall_deadline"), 1);
    wsraw_close(w);
}
END_TEST

START_TEST(ws_slow_consumer_closed_1008)
{
    struct wsraw *w = ws_client("/ws");
    int small = 4096;
    setsockopt(wsraw_fd(w), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    ck_assert_int_eq(wsraw_send_text(w, "flood 3000"), 0); /* ~3 MiB against a 128 KiB queue */
    usleep(300000);
    ck_assert_int_eq(wsraw_expect_close(w, 5000, NULL, 0), 1008);
    ck_assert_int_ge(limit_hits("out_queue_bytes"), 1);
    wsraw_close(w);
}
END_TEST

START_TEST(ws_drop_oldest_keeps_newest)
{
    struct wsraw *w = ws_client("/ws/drop");
    ck_assert_int_eq(wsraw_send_text(w, "flood 3000"), 0);
    usleep(300000); /* let the server overrun the queue before we read */
    int got = 0, last = -1, op;
    char *p;
    size_t len;
    while (last != 2999 && wsraw_recv_frame(w, T_MS, &op, NULL, &p, &len) == 0) {
        ck_assert_int_eq(op, WSRAW_OP_TEXT);
        ck_assert_int_eq(sscanf(p, "seq %d", &last), 1);
        free(p);
        got++;
    }
    ck_assert_int_eq(last, 2999);   /* the newest message arrives */
    ck_assert_int_lt(got, 3000);    /* some older ones were dropped */
    ck_assert_int_eq(wsraw_send_text(w, "still open"), 0);
    ck_assert_int_eq(wsraw_recv_frame(w, T_MS, &op, NULL, &p, &len), 0);
    ck_assert_str_eq(p, "still open");
    free(p);
    wsraw_close(w);
}
END_TEST

static void
restart_with(void (*tweak)(struct astro_net_limits *))
{
    struct astro_net_limits l;
    teardown();
    test_limits(&l);
    tweak(&l);
    start_server(&l);
}

static void
tweak_caps(struct astro_net_limits *l)
{
    l->max_connections = 2;
}

START_TEST(caps_total_connections_503_and_1013)
{
    char body[256];
    restart_with(tweak_caps);
    struct wsraw *a = ws_client("/ws"), *b = ws_client("/ws");
    /* third connection: an upgrade completes and is closed 1013 at once */
    struct wsraw *c = ws_client("/ws");
    ck_assert_int_eq(wsraw_expect_close(c, T_MS, NULL, 0), 1013);
    wsraw_close(c);
    /* plain HTTP over the cap: 503 with Retry-After */
    struct wsraw *h = connect_client();
    char head[1024];
    const char *r = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
    ck_assert_int_eq(wsraw_send_bytes(h, r, strlen(r)), 0);
    ck_assert_int_eq(wsraw_read_response(h, head, sizeof(head), body, sizeof(body), T_MS), 503);
    ck_assert_ptr_nonnull(strstr(head, "Retry-After: 1"));
    wsraw_close(h);
    ck_assert_int_eq(limit_hits("max_connections"), 2);
    /* the two inside the cap still work */
    char *p;
    ck_assert_int_eq(wsraw_send_text(a, "a"), 0);
    ck_assert_int_eq(wsraw_recv_frame(a, T_MS, NULL, NULL, &p, NULL), 0);
    ck_assert_str_eq(p, "a");
    free(p);
    wsraw_close(a);
    wsraw_close(b);
}
END_TEST

static void
tweak_per_peer_and_key(struct astro_net_limits *l)
{
    l->max_conns_per_peer = 3;
    l->max_conns_per_key = 1;
}

START_TEST(caps_per_peer_and_per_key)
{
    char *p;
    restart_with(tweak_per_peer_and_key);
    struct wsraw *a = ws_client("/ws"), *b = ws_client("/ws"), *c = ws_client("/ws");
    ck_assert_int_eq(wsraw_send_text(a, "key k1"), 0);
    ck_assert_int_eq(wsraw_recv_frame(a, T_MS, NULL, NULL, &p, NULL), 0);
    ck_assert_str_eq(p, "ok");
    free(p);
    ck_assert_int_eq(wsraw_send_text(b, "key k1"), 0); /* second connection for k1 */
    ck_assert_int_eq(wsraw_expect_close(b, T_MS, NULL, 0), 1013);
    ck_assert_int_eq(wsraw_send_text(c, "key k2"), 0);
    ck_assert_int_eq(wsraw_recv_frame(c, T_MS, NULL, NULL, &p, NULL), 0);
    ck_assert_str_eq(p, "ok");
    free(p);
    ck_assert_int_eq(limit_hits("max_conns_per_key"), 1);
    wsraw_close(b);
    usleep(100000); /* b's slot is given back */
    /* a fourth connection from this address while three are open: 1013 */
    struct wsraw *d = ws_client("/ws"), *e = ws_client("/ws");
    ck_assert_int_eq(wsraw_expect_close(e, T_MS, NULL, 0), 1013);
    ck_assert_int_eq(limit_hits("max_conns_per_peer"), 1);
    wsraw_close(a);
    wsraw_close(c);
    wsraw_close(d);
    wsraw_close(e);
}
END_TEST

static void
tweak_ping(struct astro_net_limits *l)
{
    l->ping_interval_ms = 200;
    l->pong_deadline_ms = 300;
}

START_TEST(ws_ping_pong_deadline)
{
    restart_with(tweak_ping);
    struct wsraw *quiet = ws_client("/ws"), *alive = ws_client("/ws");
    int op;
    char *p;
    size_t len;
    /* the live client answers three pings and stays open past several deadlines */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(wsraw_recv_frame(alive, T_MS, &op, NULL, &p, &len), 0);
        ck_assert_int_eq(op, WSRAW_OP_PING);
        free(p);
        ck_assert_int_eq(wsraw_send_frame(alive, 1, 0, WSRAW_OP_PONG, 1, "", 0), 0);
    }
    /* the quiet one got its ping long ago and never answered */
    ck_assert_int_eq(wsraw_expect_close(quiet, T_MS, NULL, 0), 1008);
    ck_assert_int_ge(limit_hits("pong_deadline"), 1);
    ck_assert_int_eq(wsraw_send_text(alive, "x"), 0);
    do {
        ck_assert_int_eq(wsraw_recv_frame(alive, T_MS, &op, NULL, &p, &len), 0);
        free(p);
    } while (op == WSRAW_OP_PING);
    ck_assert_int_eq(op, WSRAW_OP_TEXT);
    wsraw_close(quiet);
    wsraw_close(alive);
}
END_TEST

static void
tweak_huge_messages(struct astro_net_limits *l)
{
    l->ws_message_bytes = 2ull << 30; /* so 1 GiB frames are legal and must stall */
    l->stall_ms = 1500;
}

START_TEST(ws_sixty_stalled_giants_do_not_block)
{
    enum { N = 60 };
    restart_with(tweak_huge_messages);
    struct wsraw *g[N];
    for (int i = 0; i < N; i++) {
        g[i] = ws_client("/ws");
        ck_assert_int_eq(wsraw_send_frame_header(g[i], 1, 0, WSRAW_OP_BINARY, 1, 1ull << 30), 0);
        ck_assert_int_eq(wsraw_send_payload(g[i], "0123456789", 10), 0);
    }
    long t0 = harness_now_ms();
    /* a normal client connects, upgrades and gets its echo within 100 ms */
    struct wsraw *w = ws_client("/ws");
    char *p;
    ck_assert_int_eq(wsraw_send_text(w, "still here"), 0);
    ck_assert_int_eq(wsraw_recv_frame(w, T_MS, NULL, NULL, &p, NULL), 0);
    long ms = harness_now_ms() - t0;
    ck_assert_str_eq(p, "still here");
    free(p);
    ck_assert_msg(ms < 100, "normal client served in %ld ms", ms);
    /* the giants are cut off at the stall deadline (1.5 s after their last byte) */
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(wsraw_expect_close(g[i], 4000, NULL, 0), 1008);
        wsraw_close(g[i]);
    }
    long closed = harness_now_ms() - t0;
    ck_assert_msg(closed >= 1300 && closed < 3000, "giants closed after %ld ms", closed);
    ck_assert_int_eq(limit_hits("stall_deadline"), N);
    wsraw_close(w);
}
END_TEST

struct shutdown_arg {
    long took_ms;
};

static void *
do_shutdown(void *arg)
{
    struct shutdown_arg *a = arg;
    long t0 = harness_now_ms();
    astro_http_server_shutdown(srv);
    a->took_ms = harness_now_ms() - t0;
    return NULL;
}

START_TEST(shutdown_with_clients_connected)
{
    struct wsraw *ws[3];
    for (int i = 0; i < 3; i++)
        ws[i] = ws_client("/ws");
    /* an in-flight request that is answered 150 ms after shutdown starts */
    struct wsraw *h = connect_client();
    const char *r = "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n";
    ck_assert_int_eq(wsraw_send_bytes(h, r, strlen(r)), 0);
    usleep(30000);
    pthread_t t;
    struct shutdown_arg a = {0};
    ck_assert_int_eq(pthread_create(&t, NULL, do_shutdown, &a), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(wsraw_expect_close(ws[i], T_MS, NULL, 0), 1001);
    char head[1024], body[64];
    ck_assert_int_eq(wsraw_read_response(h, head, sizeof(head), body, sizeof(body), T_MS), 200);
    ck_assert_str_eq(body, "slow");
    ck_assert_ptr_nonnull(strstr(head, "Connection: close"));
    pthread_join(t, NULL);
    ck_assert_msg(a.took_ms < 3000, "shutdown took %ld ms", a.took_ms);
    /* nothing listens any more */
    ck_assert_ptr_null(wsraw_connect("127.0.0.1", port, 500));
    for (int i = 0; i < 3; i++)
        wsraw_close(ws[i]);
    wsraw_close(h);
}
END_TEST

/* ---- civetweb's WebSocket client ---- */

START_TEST(ws_civetweb_client_echo)
{
    char err[256] = "";
    struct cwclient *c = cwclient_connect(port, "/ws", err, sizeof(err));
    ck_assert_msg(c != NULL, "civetweb: %s", err);
    ck_assert_int_eq(cwclient_send_text(c, "from civetweb"), 0);
    ck_assert_int_eq(cwclient_wait(c, 1, T_MS), 1);
    ck_assert_str_eq(cwclient_message(c, 0), "from civetweb");
    cwclient_close(c);
}
END_TEST

/* ---- 10,000 idle WebSockets in one process ---- */

static long
rss_kib(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void
raise_fd_limit(void)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    ck_assert_msg(rl.rlim_cur >= 10500, "fd limit %lu is too low", (unsigned long)rl.rlim_cur);
}

/* Client mode of this binary (see main()): opens n WebSockets to hport, reports on the pipe,
 * and holds them until told to go. */
static void
hold_connections(int hport, int n, int report, int go)
{
    struct wsraw **w = calloc((size_t)n, sizeof(*w));
    int ok = 0;
    for (int i = 0; w != NULL && i < n; i++) {
        w[i] = wsraw_connect("127.0.0.1", hport, 5000);
        if (w[i] == NULL || wsraw_handshake(w[i], "/ws", NULL, NULL, 0, 5000) != 101)
            break;
        ok++;
    }
    if (write(report, &ok, sizeof(ok)) != sizeof(ok))
        _exit(3);
    char c;
    if (read(go, &c, 1) < 0)
        _exit(4);
    _exit(ok == n ? 0 : 1);
}

START_TEST(ws_ten_thousand_idle_connections)
{
    enum { N = 10000 };
    raise_fd_limit();
    int report[2], go[2];
    ck_assert_int_eq(pipe(report), 0);
    ck_assert_int_eq(pipe(go), 0);
    /* warm the loops and allocator with a few connections first, so the delta is per conn */
    struct wsraw *warm = ws_client("/ws");
    long before = rss_kib();
    char args[3][16];
    snprintf(args[0], sizeof(args[0]), "%d", port);
    snprintf(args[1], sizeof(args[1]), "%d", report[1]);
    snprintf(args[2], sizeof(args[2]), "%d", go[0]);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) { /* exec: only async-signal-safe calls after fork() in a threaded process */
        execl("/proc/self/exe", "itest_net", "--hold-10k", args[0], args[1], args[2],
              (char *)NULL);
        _exit(101);
    }
    int ok = -1;
    ck_assert_int_eq(read(report[0], &ok, sizeof(ok)), sizeof(ok));
    long until = harness_now_ms() + 5000;
    while (astro_http_server_connections(srv) < N + 1 && harness_now_ms() < until)
        usleep(10000);
    unsigned held = astro_http_server_connections(srv);
    long after = rss_kib();
    double per_conn = (double)(after - before) * 1024.0 / N;
    fprintf(stderr, "ws_ten_thousand_idle_connections: %d handshakes, %u held, RSS +%ld KiB, "
                    "%.0f bytes per connection\n", ok, held, after - before, per_conn);
    ck_assert_int_eq(write(go[1], "x", 1), 1);
    int status = 0;
    waitpid(pid, &status, 0);
    ck_assert_int_eq(ok, N);
    ck_assert_uint_eq(held, N + 1);
#if !defined(__SANITIZE_ADDRESS__)
    ck_assert_msg(per_conn < 16 * 1024, "%.0f bytes per idle connection", per_conn);
#endif
    /* the server is still responsive after they all left */
    char *p;
    ck_assert_int_eq(wsraw_send_text(warm, "after"), 0);
    ck_assert_int_eq(wsraw_recv_frame(warm, T_MS, NULL, NULL, &p, NULL), 0);
    ck_assert_str_eq(p, "after");
    free(p);
    wsraw_close(warm);
}
END_TEST


static long
cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000L +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000L;
}

enum { EMFILE_CLIENTS = 6 };

START_TEST(accept_pauses_when_out_of_fds)
{
    struct rlimit orig, low;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &orig), 0);
    int probe = dup(0);
    ck_assert_int_ge(probe, 0);
    close(probe);
    low = orig;
    low.rlim_cur = (rlim_t)probe + 1; /* room for one accepted connection, no more */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    char portarg[16];
    snprintf(portarg, sizeof(portarg), "%d", port);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* The clients get their own limit back and a fresh image: after fork() in a threaded
         * process only async-signal-safe calls are safe (a sanitizer's malloc lock may be held),
         * so the child execs this test binary in its client mode (see main()). */
        if (setrlimit(RLIMIT_NOFILE, &orig) != 0)
            _exit(100);
        execl("/proc/self/exe", "itest_net", "--emfile-clients", portarg, (char *)NULL);
        _exit(101);
    }
    /* while accept(2) fails with EMFILE the loops must not spin */
    usleep(100000);
    long cpu0 = cpu_ms();
    usleep(600000);
    long spent = cpu_ms() - cpu0;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &orig), 0);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(spent < 200, "%ld ms of CPU in 600 ms at EMFILE", spent);
    /* and once descriptors are free again the waiting clients are all served */
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), EMFILE_CLIENTS);
}
END_TEST

/* Client mode of this binary for accept_pauses_when_out_of_fds: upgrades EMFILE_CLIENTS
 * WebSockets and exits with the number that succeeded. */
static int
emfile_clients(int cport)
{
    int ok = 0;
    struct wsraw *w[EMFILE_CLIENTS];
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        w[i] = wsraw_connect("127.0.0.1", cport, 3000);
        if (w[i] != NULL && wsraw_handshake(w[i], "/ws", NULL, NULL, 0, 4000) == 101)
            ok++;
    }
    for (int i = 0; i < EMFILE_CLIENTS; i++)
        wsraw_close(w[i]);
    return ok;
}

static Suite *
net_suite(void)
{
    Suite *s = suite_create("net");
    struct {
        const char *name;
        const TTest *test;
        int n;
        int timeout;
    } cases[] = {
        {"http_table", http_table, (int)ASTRO_ARRAY_LEN(http_cases), 10},
        {"http_head", http_head_has_no_body, 1, 10},
        {"http_pipelining", http_keepalive_and_pipelining_in_order, 1, 10},
        {"http_100_continue", http_expect_100_continue, 1, 10},
        {"http_431", http_header_limit_431, 1, 10},
        {"http_413_chunked", http_chunked_body_limit_413, 1, 10},
        {"slowloris_handshake", slowloris_handshake_nothing_sent, 1, 10},
        {"slowloris_headers", slowloris_headers_dribbled, 1, 10},
        {"slowloris_ws_handshake", slowloris_websocket_handshake, 1, 10},
        {"slowloris_body", slowloris_body_stalled, 1, 10},
        {"http_idle", http_idle_keepalive_closed, 1, 10},
        {"http_curl", http_curl_keepalive, 1, 20},
        {"ws_echo", ws_echo_text_binary_fragmented, 1, 10},
        {"ws_rfc6455", ws_rfc6455_table, (int)ASTRO_ARRAY_LEN(rfc_cases), 10},
        {"ws_control_125", ws_control_frame_over_125, 1, 10},
        {"ws_1009", ws_message_limit_from_declared_length, 1, 10},
        {"ws_bad_upgrades", ws_bad_upgrades, 1, 10},
        {"ws_stalled_frame", ws_stalled_frame_closed_at_deadline, 1, 10},
        {"ws_slow_consumer", ws_slow_consumer_closed_1008, 1, 20},
        {"ws_drop_oldest", ws_drop_oldest_keeps_newest, 1, 20},
        {"caps_total", caps_total_connections_503_and_1013, 1, 10},
        {"caps_peer_key", caps_per_peer_and_per_key, 1, 10},
        {"ws_ping_pong", ws_ping_pong_deadline, 1, 10},
        {"ws_sixty_giants", ws_sixty_stalled_giants_do_not_block, 1, 20},
        {"shutdown", shutdown_with_clients_connected, 1, 20},
        {"ws_civetweb", ws_civetweb_client_echo, 1, 20},
        {"accept_emfile", accept_pauses_when_out_of_fds, 1, 20},
        {"ws_10k", ws_ten_thousand_idle_connections, 1, 240},
    };
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(cases); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, cases[i].timeout);
        tcase_add_loop_test(tc, cases[i].test, 0, cases[i].n);
        suite_add_tcase(s, tc);
    }
    return s;
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--emfile-clients") == 0)
        return emfile_clients(atoi(argv[2]));
    if (argc == 5 && strcmp(argv[1], "--hold-10k") == 0)
        hold_connections(atoi(argv[2]), 10000, atoi(argv[3]), atoi(argv[4]));
    SRunner *sr = srunner_create(net_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

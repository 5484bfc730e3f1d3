/* libFuzzer target: the HTTP + WebSocket layer's input path (http-parser request parsing, limits,
 * routing, the upgrade handshake, and wslay frame input with the layer's own header checks).
 *
 * The layer exposes no socket-free entry point, so the target drives the real server through its
 * public API: one server (one loop thread) on 127.0.0.1 for the whole process, and for each input
 * a new TCP connection that receives the input bytes, a half-close, and is read until the server
 * closes it. The target waits until the server has dropped the connection before returning, so a
 * crash is reported on the input that caused it. Seeds: tests/fuzz/corpus/http_ws/.
 *
 * Besides the sanitizers, one property is checked: no input makes the server answer 500
 * (ARCHITECTURE.md: "Never a 500 for bad input"). The handlers below never echo input, so a 500
 * status line in the output can only come from the layer. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "astro/http.h"
#include "astro/log.h"
#include "astro/ws.h"

/* Bounds that keep each input fast: small limits are hit often, deadlines never stall a run. */
#define IO_DEADLINE_MS 2000

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct astro_http_server *srv;
static uint16_t port;

static void
on_health(struct astro_http_req *req, void *arg)
{
    (void)arg;
    astro_http_req_respond_json(req, 200, "{\"status\":\"ok\"}");
}

static void
on_post(struct astro_http_req *req, void *arg)
{
    char out[64];
    size_t len;
    (void)arg;
    (void)astro_http_req_body(req, &len);
    snprintf(out, sizeof out, "{\"bytes\":%zu}", len);
    astro_http_req_respond_json(req, 202, out);
}

static void
on_item(struct astro_http_req *req, void *arg)
{
    char out[64];
    const char *id = astro_http_req_param(req, "id");
    (void)arg;
    snprintf(out, sizeof out, "{\"id_len\":%zu,\"q\":%zu}", id ? strlen(id) : 0,
             astro_http_req_query_count(req));
    astro_http_req_respond_json(req, 200, out);
}

static void
on_message(struct astro_ws_conn *c, enum astro_ws_opcode op, const uint8_t *data, size_t len,
           void *user)
{
    char out[32];
    (void)data;
    (void)user;
    snprintf(out, sizeof out, "%s %zu", op == ASTRO_WS_TEXT ? "text" : "binary", len);
    if (astro_ws_send(c, ASTRO_WS_TEXT, out, strlen(out)) != ASTRO_OK)
        return; /* closing: on_close follows */
}

static const struct astro_ws_handlers any_ws = {.on_message = on_message,
                                                .accept = ASTRO_WS_ACCEPT_ANY};
static const struct astro_ws_handlers text_ws = {.on_message = on_message,
                                                 .accept = ASTRO_WS_ACCEPT_TEXT};

static int
add_routes(char *err, size_t errlen)
{
    if (astro_http_server_route(srv, "GET", "/health", on_health, NULL, err, errlen) ||
        astro_http_server_route(srv, "POST", "/events", on_post, NULL, err, errlen) ||
        astro_http_server_route(srv, "GET", "/items/{id}", on_item, NULL, err, errlen) ||
        astro_http_server_route_ws(srv, "/stream", &any_ws, NULL, err, errlen) ||
        astro_http_server_route_ws(srv, "/stream/ws/{topic}", &text_ws, NULL, err, errlen))
        return ASTRO_ERR;
    return ASTRO_OK;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct astro_http_server_opts o = {.bind_addr = "127.0.0.1", .threads = 1};
    char err[256];
    (void)argc;
    (void)argv;

    signal(SIGPIPE, SIG_IGN);
    astro_log_init("fuzz", "0", ASTRO_LOG_ERROR);
    astro_net_limits_defaults(&o.limits);
    o.limits.header_bytes = 4096;
    o.limits.body_bytes = 65536;
    o.limits.ws_message_bytes = 65536;
    o.limits.handshake_ms = 1000;
    o.limits.stall_ms = 1000;
    o.limits.shutdown_ms = 1000;
    srv = astro_http_server_new(&o, err, sizeof err);
    if (srv == NULL || add_routes(err, sizeof err) != ASTRO_OK ||
        astro_http_server_start(srv, err, sizeof err) != ASTRO_OK) {
        fprintf(stderr, "fuzz_http_ws: server: %s\n", err);
        abort();
    }
    port = astro_http_server_port(srv);
    return 0;
}

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
connect_server(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        abort();
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
        abort();
    return fd;
}

/* Looks for a 500 status line in what the server sent; a status line can straddle reads, so
 * the tail of the previous read is kept in front. */
static void
check_output(char *window, size_t *wlen, const char *buf, size_t n)
{
    static const char bad[] = "HTTP/1.1 500 ";
    const size_t k = sizeof bad - 1;
    for (size_t i = 0; i < n; i++) {
        if (*wlen == k) {
            memmove(window, window + 1, k - 1);
            (*wlen)--;
        }
        window[(*wlen)++] = buf[i];
        if (*wlen == k && memcmp(window, bad, k) == 0) {
            fprintf(stderr, "fuzz_http_ws: the server answered 500 to client input\n");
            abort();
        }
    }
}

/* Writes the input (as far as the server takes it), half-closes, and reads until EOF. */
static void
exchange(int fd, const uint8_t *data, size_t size)
{
    int64_t deadline = now_ms() + IO_DEADLINE_MS;
    size_t off = 0;
    bool wr_open = true;
    char buf[65536], window[16];
    size_t wlen = 0;

    while (now_ms() < deadline) {
        if (wr_open && off == size) {
            shutdown(fd, SHUT_WR);
            wr_open = false;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN | (wr_open ? POLLOUT : 0)};
        if (poll(&p, 1, 50) <= 0)
            continue;
        if (p.revents & POLLOUT) {
            ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
            if (w > 0)
                off += (size_t)w;
            else if (errno != EAGAIN)
                wr_open = false; /* the server closed on us: read what it said */
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r == 0 || (r < 0 && errno != EAGAIN))
                return;
            if (r > 0)
                check_output(window, &wlen, buf, (size_t)r);
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = connect_server();
    exchange(fd, data, size);
    close(fd);
    /* Let the server finish with this connection before the next input. */
    int64_t deadline = now_ms() + IO_DEADLINE_MS;
    while (astro_http_server_connections(srv) > 0 && now_ms() < deadline) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* bench_ws_client: the WebSocket load client of the network benchmarks (tests/bench/run.sh).
 *
 * One process, one thread, epoll, non-blocking sockets, so it costs the machine as little as
 * possible and reports its own CPU time beside the server's. Modes:
 *
 *   recv HOST PORT N       open N WebSockets, count the data frames they receive until every
 *                          connection got a close frame or EOF; prints
 *                          "connected N messages M wall_s W client_cpu_s C"
 *                          (W runs from the first to the last data frame).
 *   handshake HOST PORT C S  keep C upgrades in flight for S seconds, each on a new TCP
 *                          connection; prints "handshakes H wall_s W client_cpu_s C".
 *   idle HOST PORT N       open N WebSockets, print "idle N" once all are open, then hold them
 *                          until stdin reaches EOF.
 *
 * Frames are parsed only as far as counting needs: headers are decoded, payloads skipped. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define HEAD_MAX 1024
/* The server must not wait forever on us, nor we on it. */
#define CONNECT_PHASE_S 60
#define RECV_IDLE_S 30

enum conn_state { CONNECTING, HANDSHAKING, OPEN, DONE };

struct conn {
    int fd;
    enum conn_state state;
    size_t head_len;
    char head[HEAD_MAX];
    /* Streaming frame parser: header bytes gathered so far, then payload bytes to skip. */
    unsigned char hdr[14];
    size_t hdr_have;
    uint64_t payload_left;
    bool in_payload;
};

struct client {
    int ep;
    struct sockaddr_in addr;
    struct conn *conns;
    size_t nconns;
    size_t open;
    size_t done;
    size_t failed; /* finished before the upgrade completed */
    uint64_t started;
    uint64_t messages;
    uint64_t handshakes;
    double first_msg;
    double last_msg;
};

static const char upgrade_req[] = "GET /ws HTTP/1.1\r\n"
                                  "Host: bench\r\n"
                                  "Upgrade: websocket\r\n"
                                  "Connection: Upgrade\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                  "Sec-WebSocket-Version: 13\r\n\r\n";

/* Spreads connections over the source addresses 127.0.0.2..251: tens of thousands of short
 * connections in a few seconds would otherwise reuse one address's ephemeral ports while the
 * server still holds some of those 4-tuples, and connections would fail for reasons that have
 * nothing to do with the server under test. */
static int
bind_source(struct client *cl, int fd)
{
    struct sockaddr_in src = {.sin_family = AF_INET};
    int one = 1;
    if (cl->addr.sin_addr.s_addr != htonl(INADDR_LOOPBACK))
        return 0;
    src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + (uint32_t)(cl->started++ % 250));
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    return bind(fd, (struct sockaddr *)&src, sizeof src);
}

static int
conn_start(struct client *cl, struct conn *c)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind_source(cl, c->fd) != 0) {
        close(c->fd);
        return -1;
    }
    if (connect(c->fd, (struct sockaddr *)&cl->addr, sizeof cl->addr) != 0 &&
        errno != EINPROGRESS) {
        close(c->fd);
        return -1;
    }
    c->state = CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    return epoll_ctl(cl->ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Closes with RST so thousands of short connections leave no TIME_WAIT behind. */
static void
conn_finish(struct client *cl, struct conn *c, bool reset)
{
    if (c->state == DONE)
        return;
    if (reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    if (c->state == OPEN)
        cl->open--;
    else
        cl->failed++;
    close(c->fd);
    c->state = DONE;
    cl->done++;
}

/* Takes one header byte; once the header is complete, decodes it, counts a data frame and
 * returns its opcode (-1 while incomplete). */
static int
header_byte(struct client *cl, struct conn *c, unsigned char b)
{
    c->hdr[c->hdr_have++] = b;
    unsigned l7 = c->hdr_have >= 2 ? c->hdr[1] & 0x7fu : 0;
    size_t ext = l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
    if (c->hdr_have < 2 || c->hdr_have < 2 + ext + (c->hdr[1] & 0x80 ? 4 : 0))
        return -1;
    c->payload_left = l7 < 126 ? l7 : 0;
    for (size_t i = 0; i < ext; i++)
        c->payload_left = c->payload_left << 8 | c->hdr[2 + i];
    c->hdr_have = 0;
    c->in_payload = true;
    int opcode = c->hdr[0] & 0x0f;
    if (opcode == 0x1 || opcode == 0x2) {
        double t = bench_now_s();
        if (cl->messages++ == 0)
            cl->first_msg = t;
        cl->last_msg = t;
    }
    return opcode;
}

/* Skips through frames in buf; returns false when a close frame ended the connection. */
static bool
parse_frames(struct client *cl, struct conn *c, const unsigned char *buf, size_t len)
{
    while (len > 0) {
        if (c->in_payload) {
            size_t k = c->payload_left < len ? (size_t)c->payload_left : len;
            c->payload_left -= k;
            buf += k;
            len -= k;
        } else {
            len--;
            if (header_byte(cl, c, *buf++) == 0x8)
                return false;
        }
        if (c->in_payload && c->payload_left == 0)
            c->in_payload = false;
    }
    return true;
}

/* Gathers the 101 head; bytes after it are the first frames. */
static bool
read_head(struct client *cl, struct conn *c, const unsigned char *buf, size_t len)
{
    size_t k = len < HEAD_MAX - 1 - c->head_len ? len : HEAD_MAX - 1 - c->head_len;
    memcpy(c->head + c->head_len, buf, k);
    c->head_len += k;
    c->head[c->head_len] = '\0';
    char *end = strstr(c->head, "\r\n\r\n");
    if (end == NULL)
        return c->head_len < HEAD_MAX - 1;
    if (strncmp(c->head, "HTTP/1.1 101", 12) != 0)
        return false;
    c->state = OPEN;
    cl->open++;
    cl->handshakes++;
    size_t used = (size_t)(end + 4 - c->head) - (c->head_len - k);
    return parse_frames(cl, c, buf + used, len - used);
}

static void
on_readable(struct client *cl, struct conn *c)
{
    static unsigned char buf[256 * 1024];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            conn_finish(cl, c, false);
            return;
        }
        bool keep = c->state == HANDSHAKING ? read_head(cl, c, buf, (size_t)n)
                                             : parse_frames(cl, c, buf, (size_t)n);
        if (!keep) {
            conn_finish(cl, c, false);
            return;
        }
    }
}

static void
on_event(struct client *cl, struct conn *c, uint32_t events)
{
    if (c->state == CONNECTING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if ((events & EPOLLERR) ||
            write(c->fd, upgrade_req, sizeof upgrade_req - 1) != (ssize_t)sizeof upgrade_req - 1) {
            conn_finish(cl, c, true);
            return;
        }
        epoll_ctl(cl->ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->state = HANDSHAKING;
    }
    if (c->state != CONNECTING && c->state != DONE && (events & (EPOLLIN | EPOLLHUP)))
        on_readable(cl, c);
}

/* One epoll round; returns the number of events handled. */
static int
poll_once(struct client *cl, int timeout_ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(cl->ep, evs, 512, timeout_ms);
    for (int i = 0; i < n; i++)
        on_event(cl, evs[i].data.ptr, evs[i].events);
    return n < 0 ? 0 : n;
}

/* Opens n WebSockets, at most 200 connecting at once so the listen backlog never overflows. */
static int
open_all(struct client *cl, size_t n)
{
    size_t started = 0;
    double deadline = bench_now_s() + CONNECT_PHASE_S;
    while (cl->open + cl->done < n || started < n) {
        while (started < n && started - cl->open - cl->done < 200)
            if (conn_start(cl, &cl->conns[started++]) != 0)
                return -1;
        poll_once(cl, 100);
        if (bench_now_s() > deadline)
            return -1;
    }
    return cl->failed == 0 ? 0 : -1;
}

static int
mode_recv(struct client *cl, size_t n)
{
    if (open_all(cl, n) != 0) {
        fprintf(stderr, "bench_ws_client: only %zu of %zu connections opened\n", cl->open, n);
        return 1;
    }
    double cpu0 = bench_cpu_s();
    double quiet_since = bench_now_s();
    while (cl->done < n && bench_now_s() - quiet_since < RECV_IDLE_S)
        if (poll_once(cl, 1000) > 0)
            quiet_since = bench_now_s();
    printf("connected %zu messages %llu wall_s %.6f client_cpu_s %.6f\n", n,
           (unsigned long long)cl->messages, cl->last_msg - cl->first_msg, bench_cpu_s() - cpu0);
    return cl->done == n ? 0 : 1;
}

static int
mode_handshake(struct client *cl, size_t conc, double seconds)
{
    double t0 = bench_now_s(), cpu0 = bench_cpu_s();
    for (size_t i = 0; i < conc; i++)
        if (conn_start(cl, &cl->conns[i]) != 0)
            return 1;
    while (bench_now_s() - t0 < seconds) {
        poll_once(cl, 100);
        for (size_t i = 0; i < conc; i++) {
            struct conn *c = &cl->conns[i];
            if (c->state == OPEN)
                conn_finish(cl, c, true);
            if (c->state == DONE && conn_start(cl, c) != 0)
                return 1;
        }
    }
    double wall = bench_now_s() - t0;
    printf("handshakes %llu failed %zu wall_s %.6f client_cpu_s %.6f\n",
           (unsigned long long)cl->handshakes, cl->failed,
           wall, bench_cpu_s() - cpu0);
    return 0;
}

static int
mode_idle(struct client *cl, size_t n)
{
    if (open_all(cl, n) != 0) {
        fprintf(stderr, "bench_ws_client: only %zu of %zu connections opened\n", cl->open, n);
        return 1;
    }
    printf("idle %zu\n", cl->open);
    fflush(stdout);
    char b;
    while (read(STDIN_FILENO, &b, 1) > 0)
        continue;
    return 0;
}

static int
usage(void)
{
    fprintf(stderr, "usage: bench_ws_client recv HOST PORT N | handshake HOST PORT C SECONDS |"
                    " idle HOST PORT N\n");
    return 2;
}

int
main(int argc, char **argv)
{
    struct client cl = {0};
    if (argc < 5)
        return usage();
    cl.addr.sin_family = AF_INET;
    cl.addr.sin_port = htons((uint16_t)bench_arg("PORT", argv[3], 1, 65535));
    if (inet_pton(AF_INET, argv[2], &cl.addr.sin_addr) != 1)
        return usage();
    size_t n = bench_arg("N", argv[4], 1, 1000000);
    cl.ep = epoll_create1(EPOLL_CLOEXEC);
    cl.conns = calloc(n ? n : 1, sizeof *cl.conns);
    if (cl.ep < 0 || cl.conns == NULL || n == 0)
        return 1;
    int rc;
    if (strcmp(argv[1], "recv") == 0)
        rc = mode_recv(&cl, n);
    else if (strcmp(argv[1], "handshake") == 0 && argc == 6)
        rc = mode_handshake(&cl, n, (double)bench_arg("SECONDS", argv[5], 1, 600));
    else if (strcmp(argv[1], "idle") == 0)
        rc = mode_idle(&cl, n);
    else
        rc = usage();
    free(cl.conns);
    close(cl.ep);
    return rc;
}

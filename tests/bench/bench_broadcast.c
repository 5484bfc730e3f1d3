/* bench_broadcast: astro-broadcast's fan-out against a bare civetweb server writing the same
 * number of messages to the same number of clients, in the same run (issue 7).
 *
 *   bench_broadcast N M RUNS LAT_SUBS LAT_EVENTS
 *
 * (a) throughput: N WebSockets subscribe to /stream/ws; M events of 300 bytes (event JSON) are
 *     XADDed pipelined; messages/s = N*M / (first XADD .. last frame received). Baseline:
 *     bench_srv_civetweb fanout (the same N clients, M messages of 300 bytes, first to last
 *     frame). Ratio = broadcast / civetweb, medians of RUNS runs.
 * (b) latency: LAT_SUBS subscribers, LAT_EVENTS events XADDed at 10k events/s, each carrying
 *     its send time; p50/p99 of XADD -> frame received.
 * One epoll thread receives for every client; a private redis-server from the harness. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "astro/apikey.h"
#include "astro/redis.h"
#include "bench_util.h"
#include "servers.h"

#define KEY "bench-read-key-0123456789abcdef"
#define BUF 32768

struct conn {
    int fd;
    size_t have;
    unsigned char buf[BUF];
};

static struct harness_server *rs;
static double lat[1 << 20];
static size_t nlat;

static long
now_real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

static int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        exit(1);
    close(fd);
    return ntohs(a.sin_port);
}

/* Blocking connect + upgrade; returns the fd with any bytes after the 101 head kept in c. */
static int
ws_open(struct conn *c, int port, const char *path)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char req[512];
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    c->have = 0;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0)
        return -1;
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n", path);
    if (write(c->fd, req, (size_t)n) != n)
        return -1;
    while (c->have < BUF - 1) {
        ssize_t r = read(c->fd, c->buf + c->have, BUF - 1 - c->have);
        if (r <= 0)
            return -1;
        c->have += (size_t)r;
        c->buf[c->have] = 0;
        char *end = strstr((char *)c->buf, "\r\n\r\n");
        if (end != NULL) {
            if (strncmp((char *)c->buf, "HTTP/1.1 101", 12) != 0)
                return -1;
            size_t head = (size_t)(end + 4 - (char *)c->buf);
            memmove(c->buf, c->buf + head, c->have - head);
            c->have -= head;
            fcntl(c->fd, F_SETFL, O_NONBLOCK);
            return 0;
        }
    }
    return -1;
}

/* Parses whole frames in c; counts data frames that contain want (NULL: all) and records the
 * latency of those with "sent_us". Returns the count. */
static unsigned long
parse(struct conn *c, const char *want, bool latency)
{
    unsigned long got = 0;
    size_t off = 0;
    while (c->have - off >= 2) {
        unsigned char *p = c->buf + off;
        size_t l7 = p[1] & 0x7f, hl = 2, len = l7;
        if (l7 == 126) {
            if (c->have - off < 4)
                break;
            len = (size_t)p[2] << 8 | p[3];
            hl = 4;
        } else if (l7 == 127) {
            break; /* never sent here */
        }
        if (c->have - off < hl + len)
            break;
        char *payload = (char *)p + hl;
        char save = payload[len];
        payload[len] = 0;
        if ((p[0] & 0x0f) == 1 && (want == NULL || strstr(payload, want) != NULL)) {
            got++;
            char *s = latency ? strstr(payload, "\"sent_us\":") : NULL;
            if (s != NULL && nlat < sizeof(lat) / sizeof(lat[0]))
                lat[nlat++] = (double)(now_real_us() - atol(s + 10)) / 1000.0;
        }
        payload[len] = save;
        off += hl + len;
    }
    memmove(c->buf, c->buf + off, c->have - off);
    c->have -= off;
    return got;
}

/* Receives until total frames matching want arrived or 30 s without progress; returns the
 * time of the last frame. */
static double
receive(struct conn *cs, size_t n, unsigned long total, const char *want, bool latency,
        double *first)
{
    int ep = epoll_create1(0);
    unsigned long got = 0;
    double last = 0, idle_since = bench_now_s();
    *first = 0;
    for (size_t i = 0; i < n; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
        got += parse(&cs[i], want, latency);
    }
    while (got < total && bench_now_s() - idle_since < 30) {
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < k; i++) {
            struct conn *c = evs[i].data.ptr;
            ssize_t r;
            while ((r = read(c->fd, c->buf + c->have, BUF - 1 - c->have)) > 0) {
                c->have += (size_t)r;
                unsigned long g = parse(c, want, latency);
                if (g > 0) {
                    got += g;
                    last = bench_now_s();
                    if (*first == 0)
                        *first = last;
                    idle_since = last;
                }
            }
        }
    }
    close(ep);
    if (got < total)
        fprintf(stderr, "bench_broadcast: only %lu of %lu messages arrived\n", got, total);
    return last;
}

static pid_t
spawn_broadcast(int port)
{
    char url[128], ps[16];
    snprintf(url, sizeof url, "%s", harness_server_url(rs));
    snprintf(ps, sizeof ps, "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setenv("ASTRO_REDIS_URL", url, 1);
        setenv("ASTRO_HTTP_PORT", ps, 1);
        setenv("ASTRO_HTTP_BIND", "127.0.0.1", 1);
        setenv("ASTRO_LOG_LEVEL", "warn", 1);
        setenv("ASTRO_WS_MAX_QUEUE_BYTES", "64MiB", 1);
        execl(BC_BENCH_BIN, BC_BENCH_BIN, (char *)NULL);
        _exit(127);
    }
    /* ready once the port accepts (the reader starts right after the listeners) */
    for (int i = 0; i < 300; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            break;
        usleep(50000);
    }
    usleep(500000);
    return pid;
}

/* XADDs m events of 300 bytes of JSON (pipelined), or at rate events/s with send times. */
static void
produce(unsigned long m, unsigned long rate)
{
    redisContext *r = redisConnect("127.0.0.1", harness_server_port(rs));
    char meta[200];
    double t0 = bench_now_s();
    for (unsigned long i = 0; i < m; i++) {
        snprintf(meta, sizeof meta, "{\"sent_us\":%ld,\"pad\":\"%0*d\"}", now_real_us(),
                 rate ? 120 : 150, 0);
        redisAppendCommand(r, "XADD astro:mono:{0} * id bench-%lu ts %ld src bench key k "
                              "type bench val 1 meta %s", i, now_real_us(), meta);
        if (rate > 0) {
            double due = t0 + (double)(i + 1) / (double)rate;
            while (bench_now_s() < due)
                ;
        }
        if (rate > 0 || i % 500 == 499 || i + 1 == m) {
            void *rep;
            unsigned long pending = rate > 0 ? 1 : (i % 500) + 1;
            for (unsigned long k = 0; k < pending; k++)
                if (redisGetReply(r, &rep) == REDIS_OK)
                    freeReplyObject(rep);
        }
    }
    redisFree(r);
}

static double
bc_run(int port, size_t n, unsigned long m)
{
    struct conn *cs = calloc(n, sizeof *cs);
    char path[128];
    snprintf(path, sizeof path, "/stream/ws?api_key=%s&event_type=bench", KEY);
    for (size_t i = 0; i < n; i++)
        if (ws_open(&cs[i], port, path) != 0)
            return 0;
    /* every client's "subscribed" first */
    double first;
    receive(cs, n, n, "subscribed", false, &first);
    double t0 = bench_now_s();
    produce(m, 0);
    double last = receive(cs, n, n * m, "\"event\"", false, &first);
    for (size_t i = 0; i < n; i++)
        close(cs[i].fd);
    free(cs);
    return (double)(n * m) / (last - t0);
}

static double
cw_run(size_t n, unsigned long m)
{
    char exe[600], dir[512], ps[16], ns[16], ms[24];
    ssize_t k = readlink("/proc/self/exe", dir, sizeof dir - 1);
    dir[k > 0 ? k : 0] = 0;
    *strrchr(dir, '/') = 0;
    snprintf(exe, sizeof exe, "%s/bench_srv_civetweb", dir);
    int port = free_port();
    snprintf(ps, sizeof ps, "%d", port);
    snprintf(ns, sizeof ns, "%zu", n);
    snprintf(ms, sizeof ms, "%lu", m);
    int pfd[2];
    if (pipe(pfd) != 0)
        return 0;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(pfd[1], 1);
        execl(exe, exe, "fanout", ps, ns, ms, "300", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    char line[64] = "";
    if (read(pfd[0], line, sizeof line - 1) <= 0)
        return 0;
    struct conn *cs = calloc(n, sizeof *cs);
    for (size_t i = 0; i < n; i++)
        if (ws_open(&cs[i], port, "/ws") != 0)
            return 0;
    double first;
    double last = receive(cs, n, n * m, NULL, false, &first);
    for (size_t i = 0; i < n; i++)
        close(cs[i].fd);
    free(cs);
    close(pfd[0]);
    waitpid(pid, NULL, 0);
    return (double)(n * m) / (last - first);
}

static int
cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    char err[256];
    if (argc != 6) {
        fprintf(stderr, "usage: bench_broadcast N M RUNS LAT_SUBS LAT_EVENTS\n");
        return 2;
    }
    size_t n = bench_arg("N", argv[1], 1, 5000);
    unsigned long m = bench_arg("M", argv[2], 1, 1000000);
    unsigned long runs = bench_arg("RUNS", argv[3], 1, 20);
    size_t ls = bench_arg("LAT_SUBS", argv[4], 1, 1000);
    unsigned long le = bench_arg("LAT_EVENTS", argv[5], 1, 1000000);
    signal(SIGPIPE, SIG_IGN);
    rs = harness_redis_start(NULL);
    struct astro_redis *r = rs ? astro_redis_connect(harness_server_url(rs), NULL, err, sizeof err)
                               : NULL;
    if (r == NULL || astro_apikey_store(r, KEY, "bench", ASTRO_SCOPE_READ, false, err,
                                        sizeof err) != ASTRO_OK)
        return 1;
    astro_redis_free(r);
    int port = free_port();
    pid_t bc = spawn_broadcast(port);
    double bcr[20], cwr[20], ratio[20];
    for (unsigned long i = 0; i < runs; i++) {
        bcr[i] = bc_run(port, n, m);
        cwr[i] = cw_run(n, m);
        ratio[i] = cwr[i] > 0 ? bcr[i] / cwr[i] : 0;
        printf("run %lu: broadcast %.0f msg/s, civetweb %.0f msg/s, ratio %.2f\n", i + 1, bcr[i],
               cwr[i], ratio[i]);
        fflush(stdout);
    }
    qsort(bcr, runs, sizeof(double), cmp);
    qsort(cwr, runs, sizeof(double), cmp);
    qsort(ratio, runs, sizeof(double), cmp);
    printf("fanout N=%zu M=%lu: broadcast %.0f msg/s, civetweb %.0f msg/s, ratio %.2f "
           "(medians of %lu)\n", n, m, bcr[runs / 2], cwr[runs / 2], ratio[runs / 2], runs);
    struct conn *cs = calloc(ls, sizeof *cs);
    char path[128];
    snprintf(path, sizeof path, "/stream/ws?api_key=%s&event_type=bench", KEY);
    for (size_t i = 0; i < ls; i++)
        if (ws_open(&cs[i], port, path) != 0)
            return 1;
    double first;
    receive(cs, ls, ls, "subscribed", false, &first);
    nlat = 0;
    /* the producer is a child process so the receiver measures at receipt */
    pid_t prod = fork();
    if (prod == 0) {
        produce(le, 10000);
        _exit(0);
    }
    receive(cs, ls, ls * le, "\"event\"", true, &first);
    waitpid(prod, NULL, 0);
    qsort(lat, nlat, sizeof(double), cmp);
    if (nlat > 0)
        printf("latency %zu subscribers, %lu events at 10k/s: p50 %.2f ms, p99 %.2f ms, "
               "max %.2f ms\n", ls, le, lat[nlat / 2], lat[nlat * 99 / 100], lat[nlat - 1]);
    for (size_t i = 0; i < ls; i++)
        close(cs[i].fd);
    free(cs);
    kill(bc, SIGTERM);
    waitpid(bc, NULL, 0);
    harness_server_free(rs);
    return 0;
}

/* bench_ingest: the load client of the astro-ingest benchmark (tests/bench/run_ingest.sh).
 *
 * One process, one thread, poll(2) over C WebSockets to /stream, each authenticated with the
 * key in $BENCH_KEY. Client frames are masked with a zero key (valid RFC 6455, no XOR cost).
 * Acks on a connection come in order, so a FIFO of send times per connection gives each
 * message's ack latency. Modes:
 *
 *   throughput HOST PORT C W B S   C connections, each keeping W messages of B events in
 *                                  flight, for S seconds; prints
 *                                  "events E seconds T events_per_s R errors X"
 *   latency HOST PORT C RATE S     single-event messages at RATE events/s spread over C
 *                                  connections for S seconds; prints
 *                                  "events E p50_ms A p99_ms B max_ms M errors X" */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define MAXC 1024
#define RING 4096
#define RBUF (1 << 20)

struct conn {
    int fd;
    unsigned char *in;
    size_t have;
    unsigned outstanding;
    double sent_at[RING];
    unsigned head, tail;
    unsigned long seq;
    char *msg;
    size_t msg_len;
    unsigned msg_events;
};

static struct conn conns[MAXC];
static int nconn;
static const char *key;
static unsigned long acked_events, errors;
static double *lat;
static size_t nlat, caplat;

static void
die(const char *what)
{
    perror(what);
    exit(1);
}

static void
write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0)
            die("write");
        p += n;
        len -= (size_t)n;
    }
}

/* One masked (zero key) text frame. */
static void
send_text(int fd, const char *text, size_t len)
{
    unsigned char hdr[14];
    size_t h = 0;
    hdr[h++] = 0x81;
    if (len < 126) {
        hdr[h++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (unsigned char)(len >> (8 * i));
    }
    memset(hdr + h, 0, 4);
    h += 4;
    struct iovec iov[2] = {{hdr, h}, {(void *)(uintptr_t)text, len}};
    size_t left = h + len;
    while (left > 0) { /* blocking socket: a short write only on a signal */
        ssize_t n = writev(fd, iov, 2);
        if (n <= 0)
            die("writev");
        left -= (size_t)n;
        for (int i = 0; i < 2 && n > 0; i++) {
            size_t k = (size_t)n < iov[i].iov_len ? (size_t)n : iov[i].iov_len;
            iov[i].iov_base = (char *)iov[i].iov_base + k;
            iov[i].iov_len -= k;
            n -= (ssize_t)k;
        }
    }
}

/* Returns the length of one complete frame's payload at c->in (offset in *off), or -1. */
static long
frame_at(struct conn *c, size_t *off)
{
    if (c->have < 2)
        return -1;
    uint64_t len = c->in[1] & 0x7f;
    size_t h = 2;
    if (len == 126) {
        if (c->have < 4)
            return -1;
        len = (uint64_t)c->in[2] << 8 | c->in[3];
        h = 4;
    } else if (len == 127) {
        if (c->have < 10)
            return -1;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | c->in[2 + i];
        h = 10;
    }
    if (c->have < h + len)
        return -1;
    *off = h;
    return (long)len;
}

static void
consume(struct conn *c, size_t n)
{
    memmove(c->in, c->in + n, c->have - n);
    c->have -= n;
}

/* Reads and handles every complete frame; returns the number of text frames seen. */
static int
pump(struct conn *c, unsigned events_per_msg)
{
    ssize_t n = read(c->fd, c->in + c->have, RBUF - c->have);
    if (n <= 0)
        die("read (server closed?)");
    c->have += (size_t)n;
    int frames = 0;
    size_t off;
    long len;
    while ((len = frame_at(c, &off)) >= 0) {
        const char *p = (const char *)c->in + off;
        if ((c->in[0] & 0x0f) == 1) {
            frames++;
            if (len > 14 && memcmp(p, "{\"type\":\"ack\"", 13) == 0) {
                acked_events += events_per_msg;
            } else if (len > 16 && memcmp(p, "{\"type\":\"error\"", 15) == 0) {
                errors++;
            }
            if (c->outstanding > 0) {
                double t = bench_now_s() - c->sent_at[c->tail++ % RING];
                c->outstanding--;
                if (lat != NULL && nlat < caplat)
                    lat[nlat++] = t * 1000.0;
            }
        }
        consume(c, off + (size_t)len);
    }
    return frames;
}

static void
open_conn(struct conn *c, const char *host, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;
    inet_pton(AF_INET, host, &a.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        die("connect");
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->in = malloc(RBUF);
    char req[512];
    int n = snprintf(req, sizeof(req), "GET /stream HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n", host);
    write_all(c->fd, req, (size_t)n);
    for (;;) { /* read the 101 head byte by byte: tiny, once per connection */
        if (read(c->fd, c->in + c->have, 1) != 1)
            die("handshake");
        c->have++;
        if (c->have >= 4 && memcmp(c->in + c->have - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    if (strncmp((char *)c->in, "HTTP/1.1 101", 12) != 0)
        die("upgrade refused");
    c->have = 0;
    n = snprintf(req, sizeof(req), "{\"type\":\"auth\",\"api_key\":\"%s\",\"user_id\":"
                 "\"bench_%ld\"}", key, (long)(c - conns));
    send_text(c->fd, req, (size_t)n);
    size_t off;
    while (frame_at(c, &off) < 0) {
        ssize_t r = read(c->fd, c->in + c->have, RBUF - c->have);
        if (r <= 0)
            die("auth");
        c->have += (size_t)r;
    }
    if (strstr((char *)c->in + off, "auth_ok") == NULL) {
        fprintf(stderr, "auth refused\n");
        exit(1);
    }
    c->have = 0;
}

static size_t
make_msg(char *buf, size_t size, struct conn *c, unsigned b)
{
    size_t n = (size_t)snprintf(buf, size, "{\"type\":\"events\",\"items\":[");
    for (unsigned i = 0; i < b; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s{\"source_stream\":\"bench\",\"key\":"
                              "\"dev%ld\",\"event_type\":\"A\",\"value\":%lu.5}",
                              i ? "," : "", (long)(c - conns), c->seq++);
    n += (size_t)snprintf(buf + n, size - n, "]}");
    return n;
}

/* The message of b events is built once per connection and sent again and again (ids are
 * assigned by ingest, so nothing is a duplicate), as redis-benchmark repeats its command: the
 * client's CPU is taken from the same two cores as Redis and ingest. */
static void
send_msg(struct conn *c, unsigned b)
{
    if (c->msg == NULL || c->msg_events != b) {
        free(c->msg);
        c->msg = malloc(RBUF);
        c->msg_len = make_msg(c->msg, RBUF, c, b);
        c->msg_events = b;
    }
    c->sent_at[c->head++ % RING] = bench_now_s();
    c->outstanding++;
    send_text(c->fd, c->msg, c->msg_len);
}

static void
poll_once(struct pollfd *pfd, unsigned b, int timeout_ms)
{
    for (int i = 0; i < nconn; i++)
        pfd[i] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
    if (poll(pfd, (nfds_t)nconn, timeout_ms) < 0)
        die("poll");
    for (int i = 0; i < nconn; i++)
        if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
            pump(&conns[i], b);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void
throughput(unsigned w, unsigned b, double secs)
{
    struct pollfd *pfd = calloc((size_t)nconn, sizeof(*pfd));
    double t0 = bench_now_s(), end = t0 + secs;
    while (bench_now_s() < end) {
        for (int i = 0; i < nconn; i++)
            while (conns[i].outstanding < w)
                send_msg(&conns[i], b);
        poll_once(pfd, b, 100);
    }
    double t1 = bench_now_s();
    unsigned long done = acked_events;
    printf("events %lu seconds %.3f events_per_s %.0f errors %lu\n", done, t1 - t0,
           (double)done / (t1 - t0), errors);
    free(pfd);
}

static void
latency(double rate, double secs)
{
    struct pollfd *pfd = calloc((size_t)nconn, sizeof(*pfd));
    caplat = (size_t)(rate * secs) + 1024;
    lat = malloc(caplat * sizeof(*lat));
    double t0 = bench_now_s(), end = t0 + secs;
    unsigned long sent = 0;
    int next = 0;
    while (bench_now_s() < end) {
        unsigned long due = (unsigned long)((bench_now_s() - t0) * rate);
        while (sent < due) {
            send_msg(&conns[next], 1);
            next = (next + 1) % nconn;
            sent++;
        }
        poll_once(pfd, 1, 1);
    }
    double drain_end = bench_now_s() + 5;
    for (int busy = 1; busy && bench_now_s() < drain_end;) {
        busy = 0;
        for (int i = 0; i < nconn; i++)
            busy |= conns[i].outstanding > 0;
        if (busy)
            poll_once(pfd, 1, 10);
    }
    qsort(lat, nlat, sizeof(*lat), cmp_double);
    double p50 = nlat ? lat[nlat / 2] : 0, p99 = nlat ? lat[(size_t)((double)nlat * 0.99)] : 0;
    printf("events %zu p50_ms %.3f p99_ms %.3f max_ms %.3f errors %lu\n", nlat, p50, p99,
           nlat ? lat[nlat - 1] : 0, errors);
    free(pfd);
}

int
main(int argc, char **argv)
{
    key = getenv("BENCH_KEY");
    if (key == NULL || argc < 7) {
        fprintf(stderr, "usage: BENCH_KEY=k bench_ingest throughput HOST PORT C W B S |\n"
                        "       BENCH_KEY=k bench_ingest latency HOST PORT C RATE S\n");
        return 2;
    }
    nconn = atoi(argv[4]);
    if (nconn < 1 || nconn > MAXC)
        return 2;
    for (int i = 0; i < nconn; i++)
        open_conn(&conns[i], argv[2], atoi(argv[3]));
    if (strcmp(argv[1], "throughput") == 0 && argc == 8)
        throughput((unsigned)atoi(argv[5]), (unsigned)atoi(argv[6]), atof(argv[7]));
    else if (strcmp(argv[1], "latency") == 0 && argc == 7)
        latency(atof(argv[5]), atof(argv[6]));
    else
        return 2;
    return 0;
}

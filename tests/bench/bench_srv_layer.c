/* bench_srv_layer: the bare server on the HTTP + WebSocket layer (astro/http.h, astro/ws.h) that
 * the network benchmarks measure; same command line and output as bench_srv_civetweb.
 *
 *   fanout PORT N M SIZE THREADS  print "ready", wait for N WebSockets on /ws, then each loop
 *                                 frames every one of M text messages of SIZE bytes once
 *                                 (astro_ws_msg_new) and queues it to all its connections by
 *                                 reference; prints
 *                                 "server_cpu_s C wall_s W deliveries D" for the writing phase
 *                                 (until every queue has been written to the sockets), then
 *                                 closes them 1000.
 *   serve PORT THREADS            GET /health and WebSocket /ws until SIGTERM; prints "ready".
 *
 * The writer is paced by the queues: a loop sends a batch of messages only while every one of
 * its connections has less than HIGH_WATER bytes queued, so a fast writer never trips the
 * slow-consumer limit and the benchmark measures delivery, not queue growth. */
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#include "astro/http.h"
#include "astro/loop.h"
#include "astro/ws.h"
#include "bench_util.h"

#define HIGH_WATER (256 * 1024)
#define BATCH 16

struct bench;

/* One per server loop, touched only on that loop's thread once the loop runs. */
struct bloop {
    struct bench *b;
    struct astro_loop *loop;
    struct event *pump;
    struct astro_ws_conn **conns;
    size_t n;
    size_t cap;
    unsigned long next_seq;
    char *msg;
};

struct bench {
    struct astro_http_server *srv;
    struct bloop *loops;
    unsigned nloops;
    unsigned long m;
    size_t size;
    atomic_uint nopen;
    atomic_uint loops_done;
    atomic_ulong deliveries;
    atomic_bool finished;
    double cpu0, t0, cpu, wall;
};

static struct bench bench;

static struct bloop *
loop_of(struct astro_loop *l)
{
    for (unsigned i = 0; i < bench.nloops; i++)
        if (bench.loops[i].loop == l)
            return &bench.loops[i];
    return NULL;
}

static void
on_open(struct astro_ws_conn *c, void *user)
{
    (void)user;
    struct bloop *bl = loop_of(astro_ws_conn_loop(c));
    if (bl == NULL) {
        astro_ws_close(c, ASTRO_WS_CLOSE_OVERLOADED, "not ready");
        return;
    }
    if (bl->n == bl->cap) {
        size_t cap = bl->cap ? bl->cap * 2 : 256;
        struct astro_ws_conn **p = realloc(bl->conns, cap * sizeof *p);
        if (p == NULL) {
            astro_ws_close(c, ASTRO_WS_CLOSE_INTERNAL, "out of memory");
            return;
        }
        bl->conns = p;
        bl->cap = cap;
    }
    bl->conns[bl->n++] = c;
    atomic_fetch_add(&bench.nopen, 1);
}

static void
on_close(struct astro_ws_conn *c, uint16_t code, void *user)
{
    (void)code;
    (void)user;
    struct bloop *bl = loop_of(astro_ws_conn_loop(c));
    for (size_t i = 0; bl != NULL && i < bl->n; i++) {
        if (bl->conns[i] == c) {
            bl->conns[i] = bl->conns[--bl->n];
            atomic_fetch_sub(&bench.nopen, 1);
            return;
        }
    }
}

static void
on_message(struct astro_ws_conn *c, enum astro_ws_opcode op, const uint8_t *data, size_t len,
           void *user)
{
    (void)c, (void)op, (void)data, (void)len, (void)user;
}

static const struct astro_ws_handlers ws_handlers = {
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
};

static void
on_health(struct astro_http_req *req, void *arg)
{
    (void)arg;
    astro_http_req_respond_json(req, 200, "{\"status\":\"ok\"}");
}

static size_t
max_queued(const struct bloop *bl)
{
    size_t max = 0;
    for (size_t i = 0; i < bl->n; i++) {
        size_t q = astro_ws_conn_queued(bl->conns[i]);
        max = q > max ? q : max;
    }
    return max;
}

/* Frames one message once and queues it to every connection of this loop. */
static void
send_one(struct bloop *bl)
{
    bench_message(bl->msg, bench.size, bl->next_seq++);
    struct astro_ws_msg *m = astro_ws_msg_new(ASTRO_WS_TEXT, bl->msg, bench.size);
    unsigned long sent = 0;
    if (m == NULL)
        return;
    for (size_t i = 0; i < bl->n; i++)
        sent += astro_ws_send_shared(bl->conns[i], m) == ASTRO_OK;
    astro_ws_msg_unref(m);
    atomic_fetch_add(&bench.deliveries, sent);
}

/* The last loop to drain its queues stops the clocks; then every loop closes its clients. */
static void
finish(struct bloop *bl)
{
    if (atomic_fetch_add(&bench.loops_done, 1) + 1 == bench.nloops) {
        bench.cpu = bench_cpu_s() - bench.cpu0;
        bench.wall = bench_now_s() - bench.t0;
        atomic_store(&bench.finished, true);
    }
    /* astro_ws_close() only starts the closing handshake; on_close comes later, so the array
     * does not change under this loop. */
    for (size_t i = 0; i < bl->n; i++)
        astro_ws_close(bl->conns[i], ASTRO_WS_CLOSE_NORMAL, "done");
}

static void
on_pump(evutil_socket_t fd, short what, void *arg)
{
    struct bloop *bl = arg;
    struct timeval later = {0, 1000}, now = {0, 0};
    (void)fd, (void)what;

    size_t queued = max_queued(bl);
    if (bl->next_seq >= bench.m && queued == 0) {
        finish(bl);
        return;
    }
    if (bl->next_seq >= bench.m || queued >= HIGH_WATER) {
        evtimer_add(bl->pump, &later);
        return;
    }
    for (int i = 0; i < BATCH && bl->next_seq < bench.m; i++)
        send_one(bl);
    evtimer_add(bl->pump, &now);
}

static void
start_pump(void *arg)
{
    struct bloop *bl = arg;
    bl->pump = evtimer_new(astro_loop_base(bl->loop), on_pump, bl);
    bl->msg = malloc(bench.size);
    if (bl->pump == NULL || bl->msg == NULL) {
        fprintf(stderr, "bench_srv_layer: out of memory\n");
        exit(1);
    }
    struct timeval now = {0, 0};
    evtimer_add(bl->pump, &now);
}

static void
stop_pump(void *arg)
{
    struct bloop *bl = arg;
    if (bl->pump != NULL)
        event_free(bl->pump);
    bl->pump = NULL;
    free(bl->msg);
    bl->msg = NULL;
}

static int
start_server(uint16_t port, unsigned threads)
{
    struct astro_http_server_opts o = {.bind_addr = "127.0.0.1", .port = port,
                                       .threads = threads};
    char err[256];
    astro_net_limits_defaults(&o.limits);
    o.limits.max_connections = 20000;
    bench.srv = astro_http_server_new(&o, err, sizeof err);
    if (bench.srv == NULL ||
        astro_http_server_route(bench.srv, "GET", "/health", on_health, NULL, err, sizeof err) ||
        astro_http_server_route_ws(bench.srv, "/ws", &ws_handlers, NULL, err, sizeof err) ||
        astro_http_server_start(bench.srv, err, sizeof err)) {
        fprintf(stderr, "bench_srv_layer: %s\n", err);
        return -1;
    }
    bench.nloops = astro_http_server_loop_count(bench.srv);
    bench.loops = calloc(bench.nloops, sizeof *bench.loops);
    if (bench.loops == NULL)
        return -1;
    for (unsigned i = 0; i < bench.nloops; i++)
        bench.loops[i] = (struct bloop){.b = &bench, .loop = astro_http_server_loop(bench.srv, i)};
    return 0;
}

static bool
wait_until(bool (*cond)(void), double seconds)
{
    double deadline = bench_now_s() + seconds;
    while (!cond()) {
        if (bench_now_s() > deadline)
            return false;
        usleep(1000);
    }
    return true;
}

static unsigned want_open;
static bool
all_open(void)
{
    return atomic_load(&bench.nopen) >= want_open;
}

static bool
none_open(void)
{
    return atomic_load(&bench.nopen) == 0;
}

static bool
is_finished(void)
{
    return atomic_load(&bench.finished);
}

/* After astro_http_server_free(): no loop thread is left to touch the arrays. */
static void
free_loops(void)
{
    for (unsigned i = 0; i < bench.nloops; i++) {
        free(bench.loops[i].conns);
        free(bench.loops[i].msg);
    }
    free(bench.loops);
}

static void
post_all(astro_loop_fn fn)
{
    for (unsigned i = 0; i < bench.nloops; i++)
        if (astro_loop_post(bench.loops[i].loop, fn, &bench.loops[i]) != ASTRO_OK)
            exit(1);
}

static int
run_fanout(uint16_t port, unsigned n, unsigned long m, size_t size, unsigned threads)
{
    bench.m = m;
    bench.size = size;
    want_open = n;
    if (start_server(port, threads) != 0)
        return 1;
    printf("ready\n");
    fflush(stdout);
    if (!wait_until(all_open, 60)) {
        fprintf(stderr, "bench_srv_layer: clients did not connect\n");
        return 1;
    }
    bench.cpu0 = bench_cpu_s();
    bench.t0 = bench_now_s();
    post_all(start_pump);
    if (!wait_until(is_finished, 300))
        return 1;
    printf("server_cpu_s %.6f wall_s %.6f deliveries %lu\n", bench.cpu, bench.wall,
           atomic_load(&bench.deliveries));
    fflush(stdout);
    wait_until(none_open, 10);
    post_all(stop_pump);
    astro_http_server_free(bench.srv);
    free_loops();
    return 0;
}

static int
run_serve(uint16_t port, unsigned threads)
{
    sigset_t set;
    int sig;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    /* Blocked before the loop threads start, so they inherit the mask and sigwait gets it. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (start_server(port, threads) != 0)
        return 1;
    printf("ready\n");
    fflush(stdout);
    sigwait(&set, &sig);
    astro_http_server_free(bench.srv);
    free_loops();
    return 0;
}

int
main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 7 && strcmp(argv[1], "fanout") == 0)
        return run_fanout((uint16_t)bench_arg("port", argv[2], 1, 65535),
                          (unsigned)bench_arg("N", argv[3], 1, 19000),
                          bench_arg("M", argv[4], 1, 100000000),
                          bench_arg("SIZE", argv[5], 64, 125000),
                          (unsigned)bench_arg("THREADS", argv[6], 0, 64));
    if (argc == 4 && strcmp(argv[1], "serve") == 0)
        return run_serve((uint16_t)bench_arg("port", argv[2], 1, 65535),
                         (unsigned)bench_arg("THREADS", argv[3], 0, 64));
    fprintf(stderr, "usage: bench_srv_layer fanout PORT N M SIZE THREADS | serve PORT THREADS\n");
    return 2;
}

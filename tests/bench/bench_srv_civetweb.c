/* bench_srv_civetweb: the reference server of the network benchmarks, a bare civetweb 1.15.
 *
 *   fanout PORT N M SIZE   print "ready", wait for N WebSockets on /ws, write M text messages
 *                          of SIZE bytes to every connection (mg_websocket_write, one writer
 *                          thread, connection by connection), close them 1000, print
 *                          "server_cpu_s C wall_s W deliveries D" for the writing phase.
 *   serve PORT THREADS     GET /health and WebSocket /ws (messages ignored) until SIGTERM;
 *                          prints "ready" once listening.
 *
 * civetweb holds one worker thread per WebSocket for its whole life, so THREADS (and N + 16 in
 * fanout mode) bounds the connections it can hold. */
#include <civetweb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#include "bench_util.h"

#define MAX_CONNS 20000

struct slot {
    struct mg_connection *conn;
    atomic_bool alive;
};

static struct slot slots[MAX_CONNS];
static atomic_uint nslots;
static atomic_uint nopen;
/* Only fan-out mode keeps a table of connections (slots are never reused). */
static bool tracking;

static int
on_ws_connect(const struct mg_connection *conn, void *arg)
{
    (void)conn;
    (void)arg;
    return !tracking || atomic_load(&nslots) < MAX_CONNS ? 0 : 1;
}

static void
on_ws_ready(struct mg_connection *conn, void *arg)
{
    (void)arg;
    if (!tracking)
        return;
    unsigned i = atomic_fetch_add(&nslots, 1);
    if (i >= MAX_CONNS)
        return;
    slots[i].conn = conn;
    atomic_store(&slots[i].alive, true);
    mg_set_user_connection_data(conn, &slots[i]);
    atomic_fetch_add(&nopen, 1);
}

static int
on_ws_data(struct mg_connection *conn, int bits, char *data, size_t len, void *arg)
{
    (void)conn;
    (void)data;
    (void)len;
    (void)arg;
    /* Keep the connection unless the client sent a close frame. */
    return (bits & 0x0f) != MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE;
}

/* The writer checks alive before each write; civetweb frees conn after this returns. */
static void
on_ws_close(const struct mg_connection *conn, void *arg)
{
    (void)arg;
    struct slot *s = mg_get_user_connection_data(conn);
    if (s != NULL && atomic_exchange(&s->alive, false))
        atomic_fetch_sub(&nopen, 1);
}

static int
on_health(struct mg_connection *conn, void *arg)
{
    static const char body[] = "{\"status\":\"ok\"}";
    (void)arg;
    mg_send_http_ok(conn, "application/json", (long long)(sizeof body - 1));
    mg_write(conn, body, sizeof body - 1);
    return 200;
}

static struct mg_context *
start(const char *port, const char *threads)
{
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%s", port);
    const char *options[] = {"listening_ports", listen,      "num_threads",    threads,
                             "listen_backlog",  "4096",      "enable_keep_alive", "yes",
                             "websocket_timeout_ms", "3600000", "request_timeout_ms", "30000",
                             "tcp_nodelay", "1",
                             NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    mg_init_library(MG_FEATURES_WEBSOCKET);
    struct mg_context *ctx = mg_start(&cb, NULL, options);
    if (ctx == NULL)
        return NULL;
    mg_set_request_handler(ctx, "/health$", on_health, NULL);
    mg_set_websocket_handler(ctx, "/ws$", on_ws_connect, on_ws_ready, on_ws_data, on_ws_close,
                             NULL);
    return ctx;
}

static bool
wait_for(unsigned n, double seconds)
{
    double deadline = bench_now_s() + seconds;
    while (atomic_load(&nopen) < n) {
        if (bench_now_s() > deadline)
            return false;
        usleep(1000);
    }
    return true;
}

static unsigned long
write_all(unsigned long m, size_t size)
{
    char *msg = malloc(size);
    unsigned n = atomic_load(&nslots);
    unsigned long deliveries = 0;
    for (unsigned long seq = 0; seq < m; seq++) {
        bench_message(msg, size, seq);
        for (unsigned i = 0; i < n; i++) {
            if (!atomic_load(&slots[i].alive))
                continue;
            if (mg_websocket_write(slots[i].conn, MG_WEBSOCKET_OPCODE_TEXT, msg, size) > 0)
                deliveries++;
        }
    }
    free(msg);
    return deliveries;
}

static void
close_all(void)
{
    static const char code[2] = {0x03, (char)0xe8};
    unsigned n = atomic_load(&nslots);
    for (unsigned i = 0; i < n; i++)
        if (atomic_load(&slots[i].alive))
            mg_websocket_write(slots[i].conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, code, 2);
}

static int
run_fanout(const char *port, unsigned n, unsigned long m, size_t size)
{
    char threads[16];
    snprintf(threads, sizeof threads, "%u", n + 16);
    tracking = true;
    struct mg_context *ctx = start(port, threads);
    if (ctx != NULL) {
        printf("ready\n");
        fflush(stdout);
    }
    if (ctx == NULL || !wait_for(n, 60)) {
        fprintf(stderr, "bench_srv_civetweb: clients did not connect\n");
        return 1;
    }
    double cpu0 = bench_cpu_s(), t0 = bench_now_s();
    unsigned long deliveries = write_all(m, size);
    double cpu = bench_cpu_s() - cpu0, wall = bench_now_s() - t0;
    close_all();
    printf("server_cpu_s %.6f wall_s %.6f deliveries %lu\n", cpu, wall, deliveries);
    fflush(stdout);
    double deadline = bench_now_s() + 10;
    while (atomic_load(&nopen) > 0 && bench_now_s() < deadline)
        usleep(10000);
    mg_stop(ctx);
    return 0;
}

static int
run_serve(const char *port, const char *threads)
{
    sigset_t set;
    int sig;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct mg_context *ctx = start(port, threads);
    if (ctx == NULL)
        return 1;
    printf("ready\n");
    fflush(stdout);
    sigwait(&set, &sig);
    mg_stop(ctx);
    return 0;
}

int
main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 6 && strcmp(argv[1], "fanout") == 0) {
        bench_arg("port", argv[2], 1, 65535);
        return run_fanout(argv[2], (unsigned)bench_arg("N", argv[3], 1, MAX_CONNS - 16),
                          bench_arg("M", argv[4], 1, 100000000),
                          bench_arg("SIZE", argv[5], 64, 125000));
    }
    if (argc == 4 && strcmp(argv[1], "serve") == 0) {
        bench_arg("port", argv[2], 1, 65535);
        bench_arg("THREADS", argv[3], 1, MAX_CONNS);
        return run_serve(argv[2], argv[3]);
    }
    fprintf(stderr, "usage: bench_srv_civetweb fanout PORT N M SIZE | serve PORT THREADS\n");
    return 2;
}

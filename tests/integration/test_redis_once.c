/* astro_redis_command_once() against a real redis-server behind a proxy that loses one reply,
 * then astro-archiver's reader behind the same proxy.
 *
 * The proxy (a thread of the test) forwards the first XREADGROUP ... > that delivers entries,
 * waits for Redis' reply and then closes both sockets without forwarding it: Redis has
 * delivered the entries to the consumer (they are in its pending list) but the client never saw
 * them, as after a command timeout or a network cut. All other traffic is forwarded untouched. */
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "archiver_itest.h"
#include "astro/redis.h"
#include "astro/time.h"
#include "servers.h"

static struct harness_server *srv;

static void
start_plain(void)
{
    srv = harness_redis_start(NULL);
    ck_assert_msg(srv != NULL, "redis-server did not start");
}

static void
stop_server(void)
{
    harness_server_free(srv);
    srv = NULL;
}

/* ---- the proxy ------------------------------------------------------------------------ */

enum { PROXY_PAIRS = 32 };

struct proxy {
    int lfd;
    int port;          /* where clients connect */
    int upstream_port; /* redis-server */
    atomic_bool stop;
    atomic_int cuts;   /* XREADGROUP replies lost so far (at most one) */
    pthread_t thread;
    int fd[PROXY_PAIRS][2]; /* [client, upstream] per connection, -1 when free */
};

static int
connect_upstream(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static bool
send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        buf += w;
        len -= (size_t)w;
    }
    return true;
}

static bool
first_read(struct proxy *p, const char *buf, size_t len)
{
    return atomic_load(&p->cuts) == 0 && memmem(buf, len, "XREADGROUP", 10) != NULL &&
           memmem(buf, len, "$1\r\n>\r\n", 7) != NULL;
}

/* Forwards what a client sent. For the first XREADGROUP ... > whose reply carries entries, it
 * waits for Redis' reply (so Redis has executed the read) and keeps it: false then closes the
 * connection, as on any broken socket. A nil reply (nothing delivered) is forwarded, and the
 * next read is tried. */
static bool
from_client(struct proxy *p, int cfd, int up, const char *buf, size_t len)
{
    if (!first_read(p, buf, len))
        return send_all(up, buf, len);
    struct pollfd pf = { .fd = up, .events = POLLIN };
    char reply[65536];
    ssize_t n = 0;
    if (!send_all(up, buf, len) || poll(&pf, 1, 5000) != 1 ||
        (n = recv(up, reply, sizeof(reply), 0)) <= 0)
        return false;
    if (n >= 3 && memcmp(reply, "*-1", 3) == 0)
        return send_all(cfd, reply, (size_t)n);
    atomic_fetch_add(&p->cuts, 1);
    return false;
}

static void
close_pair(struct proxy *p, int k)
{
    close(p->fd[k][0]);
    if (p->fd[k][1] >= 0)
        close(p->fd[k][1]);
    p->fd[k][0] = p->fd[k][1] = -1;
}

static void
accept_client(struct proxy *p)
{
    int cfd = accept(p->lfd, NULL, NULL);
    if (cfd < 0)
        return;
    for (int k = 0; k < PROXY_PAIRS; k++)
        if (p->fd[k][0] < 0) {
            p->fd[k][0] = cfd;
            p->fd[k][1] = connect_upstream(p->upstream_port);
            if (p->fd[k][1] < 0)
                close_pair(p, k);
            return;
        }
    close(cfd);
}

/* Moves what one side of pair k has to the other; false when the pair is to be closed. */
static bool
pump(struct proxy *p, int k, int side)
{
    char buf[65536];
    ssize_t n = recv(p->fd[k][side], buf, sizeof(buf), 0);
    if (n <= 0)
        return false;
    if (side == 0)
        return from_client(p, p->fd[k][0], p->fd[k][1], buf, (size_t)n);
    return send_all(p->fd[k][0], buf, (size_t)n);
}

/* One poll loop over the listening socket and every connection pair. */
static void *
proxy_main(void *arg)
{
    struct proxy *p = arg;
    struct pollfd pf[1 + 2 * PROXY_PAIRS];
    int who[1 + 2 * PROXY_PAIRS];
    while (!atomic_load(&p->stop)) {
        nfds_t n = 0;
        pf[n++] = (struct pollfd){ .fd = p->lfd, .events = POLLIN };
        for (int k = 0; k < PROXY_PAIRS; k++)
            for (int side = 0; side < 2 && p->fd[k][0] >= 0; side++) {
                who[n] = 2 * k + side;
                pf[n++] = (struct pollfd){ .fd = p->fd[k][side], .events = POLLIN };
            }
        if (poll(pf, n, 100) <= 0)
            continue;
        for (nfds_t i = 1; i < n; i++)
            if (pf[i].revents != 0 && p->fd[who[i] / 2][0] >= 0 &&
                !pump(p, who[i] / 2, who[i] % 2))
                close_pair(p, who[i] / 2);
        if (pf[0].revents & POLLIN)
            accept_client(p);
    }
    for (int k = 0; k < PROXY_PAIRS; k++)
        if (p->fd[k][0] >= 0)
            close_pair(p, k);
    return NULL;
}

static void
proxy_start(struct proxy *p, int upstream_port)
{
    memset(p, 0, sizeof(*p));
    memset(p->fd, -1, sizeof(p->fd));
    p->upstream_port = upstream_port;
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(p->lfd, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(p->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(p->lfd, 16), 0);
    ck_assert_int_eq(getsockname(p->lfd, (struct sockaddr *)&a, &len), 0);
    p->port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&p->thread, NULL, proxy_main, p), 0);
}

static void
proxy_stop(struct proxy *p)
{
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    close(p->lfd);
}

/* ---- helpers -------------------------------------------------------------------------- */

static const struct astro_redis_options patient = {
    .connect_timeout_ms = 500, .command_timeout_ms = 2000, .client_name = "astro-once",
    .max_attempts = 20, .deadline_ms = 5000, .backoff_initial_ms = 20, .backoff_max_ms = 200,
};

static struct astro_redis *
connect_to(int port)
{
    char url[128], err[256] = "";
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", port);
    struct astro_redis *r = astro_redis_connect(url, &patient, err, sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    return r;
}

static void
run(struct astro_redis *r, int argc, const char **argv)
{
    char err[256] = "";
    redisReply *rep = astro_redis_command(r, argc, argv, NULL, err, sizeof(err));
    ck_assert_msg(rep != NULL && rep->type != REDIS_REPLY_ERROR, "%s: %s", argv[0],
                  rep ? rep->str : err);
    freeReplyObject(rep);
}

/* A group g on stream s (read from the start) and entries 1-1 .. 6-1, written directly. */
static void
seed(struct astro_redis *direct)
{
    const char *grp[] = { "XGROUP", "CREATE", "s", "g", "0", "MKSTREAM" };
    run(direct, 6, grp);
    for (int i = 1; i <= 6; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%d-1", i);
        const char *add[] = { "XADD", "s", id, "f", "v" };
        run(direct, 5, add);
    }
}

static const char *read2[] = { "XREADGROUP", "GROUP", "g", "c", "COUNT", "2",
                                "STREAMS", "s", ">" };

/* Checks an XREADGROUP reply on stream s: exactly the entries first, second. */
static void
ck_entries(const redisReply *rep, const char *first, const char *second)
{
    ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(rep->elements, 1);
    const redisReply *e = rep->element[0]->element[1];
    ck_assert_uint_eq(e->elements, 2);
    ck_assert_str_eq(e->element[0]->element[0]->str, first);
    ck_assert_str_eq(e->element[1]->element[0]->str, second);
}

/* XPENDING s g: the group's pending entries are exactly [first, last], n of them, all c's. */
static void
ck_pending(struct astro_redis *direct, long long n, const char *first, const char *last)
{
    char err[256] = "";
    const char *argv[] = { "XPENDING", "s", "g" };
    redisReply *rep = astro_redis_command(direct, 3, argv, NULL, err, sizeof(err));
    ck_assert_msg(rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 4, "%s",
                  err);
    ck_assert_int_eq(rep->element[0]->integer, n);
    ck_assert_str_eq(rep->element[1]->str, first);
    ck_assert_str_eq(rep->element[2]->str, last);
    ck_assert_uint_eq(rep->element[3]->elements, 1);
    ck_assert_str_eq(rep->element[3]->element[0]->element[0]->str, "c");
    freeReplyObject(rep);
}

/* A seeded stream, a direct connection to check it and a client connection through the
 * proxy, which will lose the reply of the client's first XREADGROUP. */
struct rig {
    struct proxy px;
    struct astro_redis *direct, *r;
};

static void
rig_start(struct rig *g)
{
    g->direct = connect_to(harness_server_port(srv));
    seed(g->direct);
    proxy_start(&g->px, harness_server_port(srv));
    g->r = connect_to(g->px.port);
}

static void
rig_stop(struct rig *g)
{
    astro_redis_free(g->r);
    astro_redis_free(g->direct);
    proxy_stop(&g->px);
}

/* ---- tests ---------------------------------------------------------------------------- */

/* The lost read is reported (NULL, reason, connection dropped), its entries are pending for
 * the caller to recover, and the next call reconnects and reads on. */
START_TEST(test_once_reports_the_lost_read)
{
    struct rig g;
    rig_start(&g);
    struct astro_redis *r = g.r, *direct = g.direct;
    char err[256] = "";
    redisReply *rep = astro_redis_command_once(r, 9, read2, NULL, err, sizeof(err));
    ck_assert_ptr_null(rep);
    ck_assert_int_eq(atomic_load(&g.px.cuts), 1);
    ck_assert_ptr_null(r->c);
    ck_assert_msg(strstr(err, "XREADGROUP") != NULL, "%s", err);
    ck_pending(direct, 2, "1-1", "2-1");
    ck_assert_uint_eq(r->reconnects, 0);

    /* Sent once means sent once even when the connection is down: it reconnects first. */
    rep = astro_redis_command_once(r, 9, read2, NULL, err, sizeof(err));
    ck_assert_msg(rep != NULL, "%s", err);
    ck_entries(rep, "3-1", "4-1");
    freeReplyObject(rep);
    ck_assert_uint_eq(r->reconnects, 1);
    /* The lost entries are still there for the consumer's own history read. */
    const char *hist[] = { "XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "0" };
    rep = astro_redis_command_once(r, 7, hist, NULL, err, sizeof(err));
    ck_assert_msg(rep != NULL, "%s", err);
    ck_assert_uint_eq(rep->element[0]->element[1]->elements, 4);
    ck_assert_str_eq(rep->element[0]->element[1]->element[0]->element[0]->str, "1-1");
    freeReplyObject(rep);
    rig_stop(&g);
}
END_TEST

/* Why XREADGROUP callers must not use astro_redis_command(): its resend after the lost reply
 * succeeds with the NEXT entries, and nothing tells the caller that 1-1 and 2-1 were
 * delivered. */
START_TEST(test_resend_silently_skips_the_lost_entries)
{
    struct rig g;
    rig_start(&g);
    char err[256] = "";
    redisReply *rep = astro_redis_command(g.r, 9, read2, NULL, err, sizeof(err));
    ck_assert_msg(rep != NULL, "%s", err);
    ck_assert_int_eq(atomic_load(&g.px.cuts), 1);
    ck_assert_uint_eq(g.r->reconnects, 1);
    ck_entries(rep, "3-1", "4-1");
    freeReplyObject(rep);
    ck_pending(g.direct, 4, "1-1", "4-1");
    rig_stop(&g);
}
END_TEST

/* ---- astro-archiver -------------------------------------------------------------------- */

static struct arc_env env;

static void
arc_setup(void)
{
    arc_env_start(&env);
}

static void
arc_teardown(void)
{
    arc_env_stop(&env);
}

/* The archiver's reader loses the reply of a read that delivered entries. With claims of idle
 * entries 10 minutes away, only reading them back from its own pending list archives all of
 * them within seconds, each once. */
START_TEST(test_archiver_reads_back_a_lost_read)
{
    struct proxy px;
    int64_t t0 = astro_now_us() - 60 * INT64_C(1000000);
    arc_produce_mono(&env, "m", 0, 400, t0);
    proxy_start(&px, harness_server_port(env.redis));
    char url[128];
    snprintf(url, sizeof(url), "ASTRO_REDIS_URL=redis://127.0.0.1:%d/0", px.port);
    const char *const extra[] = { url, "ASTRO_CLAIM_IDLE=600s", NULL };
    pid_t a = arc_start(&env, extra);
    ck_assert_int_eq(arc_wait_sql(&env, "SELECT count(*) FROM mono_events", 400, 20000), 400);
    ck_assert_int_eq(atomic_load(&px.cuts), 1);
    for (int t = 0; t < 200 && arc_pending(&env) > 0; t++)
        arc_sleep_ms(50);
    ck_assert_int_eq(arc_pending(&env), 0);
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM mono_events"), 400);
    ck_assert_int_eq(arc_stop(&env, a), 0);
    proxy_stop(&px);
}
END_TEST

static Suite *
once_suite(void)
{
    Suite *s = suite_create("redis_once");
    TCase *tc = tcase_create("lost_reply");
    tcase_add_checked_fixture(tc, start_plain, stop_server);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_once_reports_the_lost_read);
    tcase_add_test(tc, test_resend_silently_skips_the_lost_entries);
    suite_add_tcase(s, tc);
    tc = tcase_create("archiver");
    tcase_add_checked_fixture(tc, arc_setup, arc_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_archiver_reads_back_a_lost_read);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(once_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

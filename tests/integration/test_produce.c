/* astro-produce against the real astro-ingest (ASTRO_INGEST_BIN, ASTRO_PRODUCE_BIN) and a private
 * redis-server: when ingest is killed mid-run and comes back, the producer reconnects, resends
 * what was unacknowledged, and every event it sent is in Redis exactly once; a refused key ends
 * the run at once instead of retrying. */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "servers.h"
#include "spawn.h"
#include "wsraw.h"

#define KEY "produce-test-key-0123456789abcdef"
#define PARTS 16
#define N_EVENTS 3000

static struct harness_server *rs;
static pid_t ing_pid;
static int port;
static char dir[64];

static bool
ready(void)
{
    static const char req[] = "GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n";
    struct wsraw *w = wsraw_connect("127.0.0.1", port, 500);
    if (w == NULL)
        return false;
    int st = wsraw_http(w, req, strlen(req), NULL, 0, 2000);
    wsraw_close(w);
    return st == 200;
}

static void
spawn_ingest(void)
{
    char url[320], portbuf[32];
    const char *bin = getenv("ASTRO_INGEST_BIN");
    ck_assert_msg(bin != NULL, "ASTRO_INGEST_BIN not set");
    snprintf(url, sizeof(url), "ASTRO_REDIS_URL=%s", harness_server_url(rs));
    snprintf(portbuf, sizeof(portbuf), "ASTRO_HTTP_PORT=%d", port);
    const char *const set[] = {url, portbuf, "ASTRO_HTTP_BIND=127.0.0.1", "ASTRO_HTTP_THREADS=1",
                               "ASTRO_BOOTSTRAP_API_KEY=" KEY, "ASTRO_LOG_LEVEL=warn", NULL};
    const char *const unset[] = {"ASTRO_INGEST_BIN", "ASTRO_PRODUCE_BIN", NULL};
    const char *const argv[] = {bin, NULL};
    ing_pid = harness_spawn(bin, argv, set, unset, NULL);
    ck_assert(ing_pid > 0);
    long until = harness_now_ms() + 15000;
    while (harness_now_ms() < until && !ready())
        usleep(50000);
    ck_assert_msg(ready(), "astro-ingest did not become ready on port %d", port);
}

static void
kill_ingest(int sig)
{
    if (ing_pid <= 0)
        return;
    kill(ing_pid, sig);
    waitpid(ing_pid, NULL, 0);
    ing_pid = 0;
}

static pid_t
spawn_produce(const char *key, const char *log)
{
    char url[128], ids[128];
    const char *bin = getenv("ASTRO_PRODUCE_BIN");
    ck_assert_msg(bin != NULL, "ASTRO_PRODUCE_BIN not set");
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/stream", port);
    snprintf(ids, sizeof(ids), "%s/ids", dir);
    const char *const argv[] = {bin, "--url", url, "--api-key", key, "--pattern", "trades",
                                "--keys", "20", "--count", "3000", "--rate", "1500", "--batch",
                                "50", "--window", "4", "--seed", "7", "--ids-out", ids, "--quiet",
                                NULL};
    const char *const unset[] = {"ASTRO_INGEST_BIN", "ASTRO_PRODUCE_BIN", "ASTRO_API_KEY", NULL};
    pid_t pid = harness_spawn(bin, argv, NULL, unset, log);
    ck_assert(pid > 0);
    return pid;
}

/* Waits for pid for at most timeout_ms; returns its exit code (-1: killed after the timeout). */
static int
wait_exit(pid_t pid, long timeout_ms)
{
    int status;
    long until = harness_now_ms() + timeout_ms;
    while (harness_now_ms() < until) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s", path);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every event id in every mono stream, sorted; *n set. */
static char **
stream_ids(size_t *n)
{
    redisContext *c = redisConnect("127.0.0.1", harness_server_port(rs));
    ck_assert(c != NULL && c->err == 0);
    char **ids = calloc(2 * N_EVENTS + 1, sizeof(*ids));
    *n = 0;
    for (int p = 0; p < PARTS; p++) {
        redisReply *r = redisCommand(c, "XRANGE astro:mono:{%d} - +", p);
        ck_assert(r != NULL && r->type == REDIS_REPLY_ARRAY);
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *f = r->element[i]->element[1];
            for (size_t k = 0; k + 1 < f->elements; k += 2)
                if (strcmp(f->element[k]->str, "id") == 0) {
                    ck_assert_uint_lt(*n, 2 * N_EVENTS);
                    ids[(*n)++] = strdup(f->element[k + 1]->str);
                }
        }
        freeReplyObject(r);
    }
    redisFree(c);
    qsort(ids, *n, sizeof(*ids), cmp_str);
    return ids;
}

static void
setup(void)
{
    rs = harness_redis_start(NULL);
    ck_assert_msg(rs != NULL, "redis-server did not start");
    snprintf(dir, sizeof(dir), "/tmp/astro-produce-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    port = harness_free_port();
    spawn_ingest();
}

static void
teardown(void)
{
    char path[128];
    kill_ingest(SIGKILL);
    harness_server_free(rs);
    rs = NULL;
    snprintf(path, sizeof(path), "%s/ids", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/log", dir);
    unlink(path);
    rmdir(dir);
}

START_TEST(ingest_killed_mid_run_every_event_lands_once)
{
    char log[128];
    snprintf(log, sizeof(log), "%s/log", dir);
    pid_t pr = spawn_produce(KEY, log);
    usleep(700 * 1000); /* about a third of the events are out */
    kill_ingest(SIGKILL);
    usleep(800 * 1000); /* the producer retries against a closed port meanwhile */
    spawn_ingest();
    int rc = wait_exit(pr, 30000);
    const char *out = slurp(log);
    ck_assert_msg(rc == 0, "astro-produce exit %d:\n%s", rc, out);
    ck_assert_msg(strstr(out, "reconnected 0 times") == NULL &&
                      strstr(out, "refused 0, ") != NULL && strstr(out, "acked 3000 ") != NULL,
                  "%s", out);
    /* exactly the ids it sent, each once */
    char path[128];
    snprintf(path, sizeof(path), "%s/ids", dir);
    char *text = slurp(path), *save = NULL;
    char *sent[N_EVENTS + 1];
    size_t ns = 0;
    for (char *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        ck_assert_uint_lt(ns, N_EVENTS);
        *strchr(line, ' ') = '\0';
        sent[ns++] = line;
    }
    ck_assert_uint_eq(ns, N_EVENTS);
    qsort(sent, ns, sizeof(*sent), cmp_str);
    size_t nr;
    char **got = stream_ids(&nr);
    ck_assert_uint_eq(nr, N_EVENTS);
    for (size_t i = 0; i < ns; i++)
        ck_assert_msg(strcmp(sent[i], got[i]) == 0, "at %zu: sent %s, in Redis %s", i, sent[i],
                      got[i]);
    for (size_t i = 0; i < nr; i++)
        free(got[i]);
    free(got);
}
END_TEST

START_TEST(refused_key_ends_the_run_without_retrying)
{
    char log[128];
    snprintf(log, sizeof(log), "%s/log", dir);
    long t0 = harness_now_ms();
    int rc = wait_exit(spawn_produce("not-a-known-key-0123456789abcdef", log), 10000);
    const char *out = slurp(log);
    ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
    ck_assert_msg(strstr(out, "1008 invalid api key") != NULL, "%s", out);
    ck_assert_msg(harness_now_ms() - t0 < 5000, "took %ld ms", harness_now_ms() - t0);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("produce");
    TCase *tc = tcase_create("reconnect");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, ingest_killed_mid_run_every_event_lands_once);
    tcase_add_test(tc, refused_key_ends_the_run_without_retrying);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

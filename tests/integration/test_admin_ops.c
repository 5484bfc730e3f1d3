/* astro-admin `status` (platform half) and `replay-dead`: the real binary against a private
 * redis-server whose streams, groups and leases are set up the way the services leave them. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "astro/redis.h"
#include "servers.h"

static struct harness_server *srv;
static struct astro_redis *rc;

static void
setup(void)
{
    char err[256];
    srv = harness_redis_start(NULL);
    ck_assert_msg(srv != NULL, "redis-server did not start");
    rc = astro_redis_connect(harness_server_url(srv), NULL, err, sizeof(err));
    ck_assert_msg(rc != NULL, "%s", err);
}

static void
teardown(void)
{
    astro_redis_free(rc);
    harness_server_free(srv);
}

/* Runs a redis command given as a NULL-terminated word list; asserts it was not an error. */
static void
run(const char *first, ...)
{
    const char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a != NULL && argc < 32; a = va_arg(ap, const char *))
        argv[argc++] = a;
    va_end(ap);
    char err[256];
    redisReply *rep = astro_redis_command(rc, argc, argv, NULL, err, sizeof(err));
    ck_assert_msg(rep != NULL && rep->type != REDIS_REPLY_ERROR, "%s: %s", first,
                  rep != NULL && rep->str != NULL ? rep->str : err);
    freeReplyObject(rep);
}

/* Runs astro-admin with ASTRO_REDIS_URL (and no database) and captures its output. */
static int
admin(char *out, size_t cap, const char *a1, const char *a2)
{
    const char *bin = getenv("ASTRO_ADMIN");
    ck_assert_msg(bin != NULL, "ASTRO_ADMIN is not set");
    char cmdline[1024];
    snprintf(cmdline, sizeof(cmdline), "env -u ASTRO_DATABASE_URL ASTRO_REDIS_URL='%s' '%s' %s %s 2>&1",
             harness_server_url(srv), bin, a1, a2 != NULL ? a2 : "");
    FILE *p = popen(cmdline, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static long long
xlen(const char *key)
{
    const char *argv[] = {"XLEN", key};
    char err[256];
    redisReply *rep = astro_redis_command(rc, 2, argv, NULL, err, sizeof(err));
    ck_assert_ptr_nonnull(rep);
    long long n = rep->integer;
    freeReplyObject(rep);
    return n;
}

START_TEST(status_shows_owners_lags_and_archive_lag)
{
    char out[8192];
    run("SET", "astro:meta:partitions", "2", NULL);
    run("SET", "astro:lease:{0}", "leaflet-a", NULL);
    for (int i = 0; i < 5; i++)
        run("XADD", "astro:mono:{0}", "*", "id", "e", "ts", "1", NULL);
    run("XADD", "astro:mono:{1}", "*", "id", "f", "ts", "1", NULL);
    run("XGROUP", "CREATE", "astro:mono:{0}", "archiver", "0", NULL);
    run("XGROUP", "CREATE", "astro:mono:{1}", "archiver", "0", NULL);
    run("XGROUP", "CREATE", "astro:mono:{0}", "leaflet", "$", NULL);
    /* The archiver read 2 entries of partition 0 and committed none: 2 pending, 3 + 1 lag. */
    run("XREADGROUP", "GROUP", "archiver", "c1", "COUNT", "2", "STREAMS", "astro:mono:{0}", ">",
        NULL);
    ck_assert_int_eq(admin(out, sizeof(out), "status", NULL), 0);
    ck_assert_msg(strstr(out, "partitions: 2") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "0    leaflet-a") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "1 partition(s) without an owner") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "group archiver   lag 4  pending 2") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "group leaflet    lag 0  pending 0") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "hot tier: 6 mono + 0 multi") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "archive lag: 6 entries not archived yet, the oldest") != NULL,
                  "%s", out);
}
END_TEST

START_TEST(status_without_any_url_is_a_usage_error)
{
    const char *bin = getenv("ASTRO_ADMIN");
    char cmdline[512];
    snprintf(cmdline, sizeof(cmdline),
             "env -u ASTRO_DATABASE_URL -u ASTRO_REDIS_URL '%s' status >/dev/null 2>&1", bin);
    int st = system(cmdline);
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 2);
}
END_TEST

START_TEST(replay_dead_puts_entries_back_and_skips_unreplayable)
{
    char out[8192];
    run("XADD", "astro:dead", "*", "reason", "pg refused", "stream", "astro:mono:{3}", "entry",
        "1-0", "attempts", "5", "fields", "{\"id\":\"ev-1\",\"ts\":\"1700000000000000\","
        "\"src\":\"axon_1\",\"key\":\"k\",\"type\":\"A\",\"val\":\"1.5\"}", NULL);
    run("XADD", "astro:dead", "*", "reason", "undecodable", "stream", "astro:mono:{3}", "entry",
        "2-0", NULL);
    run("XADD", "astro:dead", "*", "reason", "x", "stream", "astro:multi:{1}", "fields",
        "{\"id\":\"m-1\"}", NULL);

    ck_assert_int_eq(admin(out, sizeof(out), "replay-dead", "--dry-run"), 0);
    ck_assert_msg(strstr(out, "would replay 2, skipped 1") != NULL, "%s", out);
    ck_assert_int_eq(xlen("astro:mono:{3}"), 0);

    ck_assert_int_eq(admin(out, sizeof(out), "replay-dead", "--stream astro:mono:{3}"), 0);
    ck_assert_msg(strstr(out, "replayed 1, skipped 1") != NULL, "%s", out);
    ck_assert_int_eq(xlen("astro:mono:{3}"), 1);
    ck_assert_int_eq(xlen("astro:dead"), 2); /* the unreplayable one and the multi one */

    const char *argv[] = {"XRANGE", "astro:mono:{3}", "-", "+"};
    char err[256];
    redisReply *rep = astro_redis_command(rc, 4, argv, NULL, err, sizeof(err));
    ck_assert_ptr_nonnull(rep);
    redisReply *f = rep->element[0]->element[1];
    ck_assert_int_eq(f->elements, 12);
    ck_assert_str_eq(f->element[0]->str, "id");
    ck_assert_str_eq(f->element[1]->str, "ev-1");
    ck_assert_str_eq(f->element[11]->str, "1.5");
    freeReplyObject(rep);

    ck_assert_int_eq(admin(out, sizeof(out), "replay-dead", "--limit x"), 2);
}
END_TEST

static Suite *
suite(void)
{
    Suite *s = suite_create("admin_ops");
    TCase *tc = tcase_create("redis");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, status_shows_owners_lags_and_archive_lag);
    tcase_add_test(tc, status_without_any_url_is_a_usage_error);
    tcase_add_test(tc, replay_dead_puts_entries_back_and_skips_unreplayable);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

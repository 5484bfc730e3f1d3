/* astro-archiver against real redis-server and postgres: exactly-once archiving, two
 * archivers sharing the streams, a crash between COMMIT and XACK, poison entries, rollups.
 * Each test starts its own servers and daemons (in Check's forked child) and stops them. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archiver_itest.h"
#include "astro/time.h"

static struct arc_env env;

static void
setup(void)
{
    arc_env_start(&env);
}

static void
teardown(void)
{
    arc_env_stop(&env);
}

static const char COUNT_MONO[] = "SELECT count(*) FROM mono_events";
static const char COUNT_MULTI[] = "SELECT count(*) FROM multi_events";

/* Every event archived once: a backlog, more events while running, redelivered duplicates
 * (same event id and time in a second entry), mono and multi; then a graceful stop. */
START_TEST(every_event_exactly_once)
{
    int64_t t0 = astro_now_us() - 3600 * INT64_C(1000000);
    arc_produce_mono(&env, "m", 0, 3000, t0);
    arc_produce_multi(&env, "x", 300, t0);
    int port = arc_free_port();
    char port_env[32];
    snprintf(port_env, sizeof(port_env), "ASTRO_HTTP_PORT=%d", port);
    const char *opts[] = {port_env, NULL};
    pid_t a = arc_start(&env, opts);
    arc_produce_mono(&env, "m", 3000, 1000, t0);
    arc_produce_mono(&env, "m", 0, 500, t0); /* the same 500 events again: duplicates */
    ck_assert_int_eq(arc_wait_sql(&env, COUNT_MONO, 4000, 30000), 4000);
    ck_assert_int_eq(arc_wait_sql(&env, COUNT_MULTI, 300, 10000), 300);
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(DISTINCT event_id) FROM mono_events"), 4000);
    /* What a query user reads back: the typed columns and the lineage. */
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM mono_events WHERE event_id = 'm-10'"
                                       " AND value = 5 AND key = 'user_10' AND metadata ="
                                       " '{\"ch\":[1,2,3]}'::jsonb AND source_stream = 'axon_1'"),
                     1);
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM multi_events WHERE event_id = 'x-1'"
                                       " AND correlation_rule = 'r_sum' AND confidence = 0.75"
                                       " AND source_events = '{x-src-1-0,x-src-1-1}'"
                                       " AND jsonb_array_length(lineage) = 2"),
                     1);
    /* All 4800 entries acknowledged only after they were committed. */
    for (int t = 0; t < 100 && arc_pending(&env) > 0; t++)
        arc_sleep_ms(50);
    ck_assert_int_eq(arc_pending(&env), 0);
    /* 200 archived events XADDed again in new entries (a producer's retry): first deliveries
     * whose rows exist, so the direct COPY meets them and the batch is redone with probes. */
    static char body[256 * 1024];
    static const char dups[] = "astro_archiver_duplicates_total{table=\"mono_events\"} 700\n";
    arc_produce_mono(&env, "m", 1000, 200, t0);
    for (int t = 0; t < 200; t++) {
        ck_assert_int_eq(arc_http_get(port, "/metrics", body, sizeof(body)), 200);
        if (strstr(body, dups) != NULL)
            break;
        arc_sleep_ms(50);
    }
    ck_assert_int_eq(arc_pending(&env), 0);
    ck_assert_int_eq(arc_sql_int(&env, COUNT_MONO), 4000);
    arc_check_rollups(&env);
    /* What an operator sees: healthy, and the rows and skipped duplicates counted. */
    ck_assert_int_eq(arc_http_get(port, "/health/ready", body, sizeof(body)), 200);
    ck_assert_msg(strstr(body, "\"postgresql\":\"ok\"") != NULL, "%s", body);
    ck_assert_int_eq(arc_http_get(port, "/metrics", body, sizeof(body)), 200);
    ck_assert_msg(strstr(body, "astro_archiver_rows_total{table=\"mono_events\"} 4000\n"),
                  "%s", body);
    ck_assert_msg(strstr(body, "astro_archiver_rows_total{table=\"multi_events\"} 300\n"),
                  "%s", body);
    ck_assert_msg(strstr(body, dups), "%s", body);
    ck_assert_int_eq(arc_stop(&env, a), 0);
}
END_TEST

/* Two archivers share the streams: both take entries, none is archived twice or lost. */
START_TEST(two_archivers_share_the_streams)
{
    int64_t t0 = astro_now_us() - 60 * INT64_C(1000000);
    pid_t a = arc_start(&env, NULL), b = arc_start(&env, NULL);
    for (int i = 0; i < 10; i++) {
        arc_produce_mono(&env, "m", i * 600, 600, t0);
        arc_sleep_ms(30);
    }
    ck_assert_int_eq(arc_wait_sql(&env, COUNT_MONO, 6000, 30000), 6000);
    for (int t = 0; t < 100 && arc_pending(&env) > 0; t++)
        arc_sleep_ms(50);
    ck_assert_int_eq(arc_pending(&env), 0);
    /* Two consumers in the group, and each one delivered some of the entries. */
    redisReply *r = redisCommand(env.rc, "XINFO CONSUMERS astro:mono:{0} archiver");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(r->elements, 2);
    freeReplyObject(r);
    /* Two archivers, each with its ASTRO_WRITERS (default 2) writer connections. */
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM pg_stat_activity WHERE"
                                       " application_name = 'astro-archiver'"),
                     4);
    arc_check_rollups(&env);
    ck_assert_int_eq(arc_stop(&env, a), 0);
    ck_assert_int_eq(arc_stop(&env, b), 0);
}
END_TEST

/* SIGKILL between COMMIT and XACK (ASTRO_TEST_CRASH_AFTER_COMMIT): the committed entries stay
 * pending; another archiver claims them after ASTRO_CLAIM_IDLE and re-archives them without a
 * duplicate row or a double-counted rollup, and archives the rest: no gap. */
START_TEST(crash_between_commit_and_ack)
{
    int64_t t0 = astro_now_us() - 600 * INT64_C(1000000);
    arc_produce_mono(&env, "m", 0, 2000, t0);
    const char *crash[] = {"ASTRO_TEST_CRASH_AFTER_COMMIT=2", NULL};
    pid_t a = arc_start(&env, crash);
    ck_assert_int_eq(arc_wait_exit(&env, a, 20000), 3);
    long long committed = arc_sql_int(&env, COUNT_MONO);
    ck_assert_int_gt(committed, 0);
    ck_assert_int_lt(committed, 2000);
    ck_assert_int_gt(arc_pending(&env), 0); /* committed but never acknowledged */
    arc_check_rollups(&env);

    const char *fast[] = {"ASTRO_CLAIM_IDLE=300ms", NULL};
    pid_t b = arc_start(&env, fast);
    ck_assert_int_eq(arc_wait_sql(&env, COUNT_MONO, 2000, 30000), 2000);
    for (int t = 0; t < 100 && arc_pending(&env) > 0; t++)
        arc_sleep_ms(50);
    ck_assert_int_eq(arc_pending(&env), 0);
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(DISTINCT event_id) FROM mono_events"), 2000);
    arc_check_rollups(&env);
    ck_assert_int_eq(arc_stop(&env, b), 0);
}
END_TEST

/* Poison: an undecodable entry and one PostgreSQL refuses (metadata that is not JSON) go to
 * astro:dead and dead_events with their reason; the rest of their batch is archived. */
START_TEST(poison_entries_isolated)
{
    int64_t t0 = astro_now_us() - 60 * INT64_C(1000000);
    arc_produce_mono(&env, "m", 0, 100, t0);
    const char *undecodable[] = {"id", "bad-1", "ts", "yesterday", "src", "s", "key", "",
                                 "type", "A", "val", "1"};
    char bad_id[64], refused_id[64];
    snprintf(bad_id, sizeof(bad_id), "%s", arc_xadd_raw(&env, "astro:mono:{1}", 12, undecodable));
    char ts[32];
    snprintf(ts, sizeof(ts), "%lld", (long long)t0);
    const char *refused[] = {"id", "bad-2", "ts", ts, "src", "s", "key", "",
                             "type", "A", "val", "1", "meta", "{not json}"};
    snprintf(refused_id, sizeof(refused_id), "%s",
             arc_xadd_raw(&env, "astro:mono:{2}", 14, refused));
    arc_produce_mono(&env, "m", 100, 100, t0);

    const char *opts[] = {"ASTRO_DEAD_AFTER=2", "ASTRO_CLAIM_IDLE=300ms", NULL};
    pid_t a = arc_start(&env, opts);
    ck_assert_int_eq(arc_wait_sql(&env, COUNT_MONO, 200, 20000), 200);
    ck_assert_int_eq(arc_wait_sql(&env, "SELECT count(*) FROM dead_events", 2, 20000), 2);
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM dead_events WHERE stream = 'astro:mono:{1}'"
             " AND entry_id = '%s' AND reason LIKE '%%ts%%' AND payload->>'id' = 'bad-1'", bad_id);
    ck_assert_int_eq(arc_sql_int(&env, sql), 1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM dead_events WHERE stream = 'astro:mono:{2}'"
             " AND entry_id = '%s' AND reason LIKE 'SQLSTATE 22%%' AND attempts >= 2"
             " AND payload->>'meta' = '{not json}'", refused_id);
    ck_assert_int_eq(arc_sql_int(&env, sql), 1);
    ck_assert_int_eq(arc_redis_int(&env, "XLEN astro:dead"), 2);
    for (int t = 0; t < 100 && arc_pending(&env) > 0; t++)
        arc_sleep_ms(50);
    ck_assert_int_eq(arc_pending(&env), 0);
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM mono_events WHERE event_id LIKE"
                                       " 'bad-%'"),
                     0);
    arc_check_rollups(&env);
    ck_assert_int_eq(arc_stop(&env, a), 0);
}
END_TEST

static long long
side_pending(const char *key)
{
    redisReply *r = redisCommand(env.rc, "XPENDING %s archiver", key);
    ck_assert_msg(r != NULL && r->type == REDIS_REPLY_ARRAY, "XPENDING %s", key);
    long long n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

/* The side streams: a session's start and end become one sessions row, a prediction and a late
 * event their rows; redelivered duplicates change nothing; a malformed session goes dead. */
START_TEST(side_streams_archived)
{
    char ts[32], ts_end[32];
    int64_t t0 = astro_now_us();
    snprintf(ts, sizeof(ts), "%lld", (long long)t0);
    snprintf(ts_end, sizeof(ts_end), "%lld", (long long)(t0 + 5000000));
    const char *start[] = {"kind", "start", "sid", "s1", "user", "u1", "ts", ts,
                           "dev", "{\"os\":\"linux\"}"};
    const char *end[] = {"kind", "end", "sid", "s1", "user", "u1", "ts", ts_end,
                         "reason", "closed"};
    const char *pred[] = {"id", "p1", "user", "u1", "ts", ts, "payload", "{\"score\":0.9}"};
    const char *late[] = {"reason", "late by 10s", "stream", "astro:mono:{1}", "entry", "7-1",
                          "id", "e1", "ts", ts, "src", "axon_1", "key", "k", "type", "A",
                          "val", "1"};
    const char *bad[] = {"kind", "middle", "sid", "s2", "user", "u1", "ts", ts};
    (void)arc_xadd_raw(&env, "astro:sessions", 10, start);
    (void)arc_xadd_raw(&env, "astro:sessions", 10, end);
    (void)arc_xadd_raw(&env, "astro:sessions", 8, bad);
    for (int i = 0; i < 2; i++) { /* the second copy is a duplicate */
        (void)arc_xadd_raw(&env, "astro:predictions", 8, pred);
        (void)arc_xadd_raw(&env, "astro:late", 18, late);
    }
    pid_t a = arc_start(&env, NULL);
    ck_assert_int_eq(arc_wait_sql(&env, "SELECT count(*) FROM sessions WHERE session_id = 's1'"
                                        " AND ended_at IS NOT NULL", 1, 20000), 1);
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM sessions WHERE session_id = 's1'"
                                       " AND user_id = 'u1' AND end_reason = 'closed'"
                                       " AND device_info->>'os' = 'linux'"
                                       " AND ended_at - started_at = interval '5 seconds'"),
                     1);
    ck_assert_int_eq(arc_wait_sql(&env, "SELECT count(*) FROM predictions WHERE"
                                        " prediction_id = 'p1' AND payload->>'score' = '0.9'",
                                  1, 10000), 1);
    ck_assert_int_eq(arc_wait_sql(&env, "SELECT count(*) FROM late_events WHERE stream ="
                                        " 'astro:mono:{1}' AND entry_id = '7-1' AND event_id ="
                                        " 'e1' AND reason = 'late by 10s' AND"
                                        " payload->>'src' = 'axon_1'", 1, 10000), 1);
    ck_assert_int_eq(arc_wait_sql(&env, "SELECT count(*) FROM dead_events WHERE stream ="
                                        " 'astro:sessions' AND reason LIKE '%kind%'", 1, 10000),
                     1);
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM sessions"), 1);
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM predictions"), 1);
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM late_events"), 1);
    for (int t = 0; t < 100 && side_pending("astro:sessions") + side_pending("astro:predictions") +
                                       side_pending("astro:late") > 0; t++)
        arc_sleep_ms(50);
    ck_assert_int_eq(side_pending("astro:sessions") + side_pending("astro:predictions") +
                         side_pending("astro:late"), 0);
    ck_assert_int_eq(arc_stop(&env, a), 0);
}
END_TEST

static Suite *
archiver_suite(void)
{
    Suite *s = suite_create("archiver");
    TCase *tc = tcase_create("archive");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, every_event_exactly_once);
    tcase_add_test(tc, two_archivers_share_the_streams);
    tcase_add_test(tc, crash_between_commit_and_ack);
    tcase_add_test(tc, poison_entries_isolated);
    tcase_add_test(tc, side_streams_archived);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(archiver_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

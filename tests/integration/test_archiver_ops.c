/* astro-archiver operations against real servers: PostgreSQL stopped for 10 s under load,
 * hot-tier trimming with a second slow consumer group and a rebuild point, the unarchived-length
 * signal for ingest, day partitions ahead and retention. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archiver_itest.h"
#include "astro/time.h"
#include "servers.h"

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

/* Load keeps coming while PostgreSQL is down for 10 s; after its restart everything is archived
 * once, and the archiver never gave up. */
START_TEST(postgres_down_under_load)
{
    int64_t t0 = astro_now_us() - 60 * INT64_C(1000000);
    pid_t a = arc_start(&env, NULL);
    int n = 0;
    for (int tick = 0; tick < 150; tick++) { /* ~15 s at 2000 events/s */
        if (tick == 20)
            ck_assert_int_eq(harness_server_stop(env.pg, 0), 0);
        if (tick == 120)
            ck_assert_int_eq(harness_server_restart(env.pg), 0);
        arc_produce_mono(&env, "m", n, 200, t0);
        n += 200;
        arc_sleep_ms(tick >= 20 && tick < 120 ? 85 : 100);
    }
    ck_assert_int_eq(arc_wait_sql(&env, "SELECT count(*) FROM mono_events", n, 60000), n);
    for (int t = 0; t < 200 && arc_pending(&env) > 0; t++)
        arc_sleep_ms(50);
    ck_assert_int_eq(arc_pending(&env), 0);
    arc_check_rollups(&env);
    ck_assert_int_eq(arc_stop(&env, a), 0);
}
END_TEST

/* Redis restarted without its data (no persistence in the harness): the archiver recreates its
 * groups and archives what comes next. */
START_TEST(redis_restart_recovers)
{
    int64_t t0 = astro_now_us() - 60 * INT64_C(1000000);
    pid_t a = arc_start(&env, NULL);
    arc_produce_mono(&env, "m", 0, 300, t0);
    ck_assert_int_eq(arc_wait_sql(&env, "SELECT count(*) FROM mono_events", 300, 20000), 300);
    ck_assert_int_eq(harness_server_stop(env.redis, 1), 0);
    arc_sleep_ms(1000);
    ck_assert_int_eq(harness_server_restart(env.redis), 0);
    redisFree(env.rc);
    env.rc = redisConnect("127.0.0.1", harness_server_port(env.redis));
    ck_assert(env.rc != NULL && env.rc->err == 0);
    arc_produce_mono(&env, "m", 300, 300, t0);
    ck_assert_int_eq(arc_wait_sql(&env, "SELECT count(*) FROM mono_events", 600, 30000), 600);
    arc_check_rollups(&env);
    ck_assert_int_eq(arc_stop(&env, a), 0);
}
END_TEST

static void
entry_ids(const char *key, char ids[][48], int n)
{
    redisReply *r = redisCommand(env.rc, "XRANGE %s - + COUNT %d", key, n);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq((int)r->elements, n);
    for (int i = 0; i < n; i++)
        snprintf(ids[i], 48, "%s", r->element[i]->element[0]->str);
    freeReplyObject(r);
}

static void
first_id_is(const char *key, const char *want, int ms)
{
    char got[48] = "";
    for (int t = 0; t <= ms; t += 50) {
        redisReply *r = redisCommand(env.rc, "XRANGE %s - + COUNT 1", key);
        ck_assert_ptr_nonnull(r);
        if (r->elements == 1)
            snprintf(got, sizeof(got), "%s", r->element[0]->element[0]->str);
        freeReplyObject(r);
        if (strcmp(got, want) == 0)
            return;
        arc_sleep_ms(50);
    }
    ck_abort_msg("%s starts at %s, want %s", key, got, want);
}

/* A second, slow group read 100 entries and acknowledged 50 of them: the archiver (which has
 * archived everything) trims only below the slow group's first pending entry, and never at or
 * after the partition's rebuild point. */
START_TEST(trim_keeps_what_any_group_needs)
{
    const char *key = "astro:mono:{0}";
    char ids[300][48];
    for (int i = 0; i < 300; i++) {
        const char *w[] = {"id", "e", "ts", "1700000000000000", "src", "s", "key", "k",
                           "type", "A", "val", "1"};
        char id[16];
        snprintf(id, sizeof(id), "e-%d", i);
        w[1] = id;
        (void)arc_xadd_raw(&env, key, 12, w);
    }
    entry_ids(key, ids, 300);
    redisReply *r = redisCommand(env.rc, "XGROUP CREATE %s slow 0", key);
    freeReplyObject(r);
    r = redisCommand(env.rc, "XREADGROUP GROUP slow c1 COUNT 100 STREAMS %s >", key);
    freeReplyObject(r);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(arc_redis_int(&env, "XACK %s slow %s", key, ids[i]), 1);
    r = redisCommand(env.rc, "SET astro:rebuild:{0} %s", ids[20]);
    freeReplyObject(r);

    const char *opts[] = {"ASTRO_HOT_RETENTION=0", "ASTRO_TRIM_INTERVAL=200ms", NULL};
    pid_t a = arc_start(&env, opts);
    ck_assert_int_eq(arc_wait_sql(&env, "SELECT count(*) FROM mono_events", 300, 20000), 300);
    first_id_is(key, ids[20], 5000); /* the rebuild point holds */
    ck_assert_int_eq(arc_redis_int(&env, "XLEN %s", key), 280);
    r = redisCommand(env.rc, "DEL astro:rebuild:{0}");
    freeReplyObject(r);
    first_id_is(key, ids[50], 5000); /* the slow group's first pending entry */
    arc_sleep_ms(600);
    ck_assert_int_eq(arc_redis_int(&env, "XLEN %s", key), 250);
    /* The slow group catches up on everything: then the stream empties. */
    r = redisCommand(env.rc, "XREADGROUP GROUP slow c1 COUNT 1000 STREAMS %s >", key);
    freeReplyObject(r);
    for (int i = 50; i < 300; i++)
        ck_assert_int_eq(arc_redis_int(&env, "XACK %s slow %s", key, ids[i]), 1);
    for (int t = 0; t < 100 && arc_redis_int(&env, "XLEN %s", key) > 0; t++)
        arc_sleep_ms(50);
    ck_assert_int_eq(arc_redis_int(&env, "XLEN %s", key), 0);
    ck_assert_int_eq(arc_stop(&env, a), 0);
}
END_TEST

/* Entries younger than ASTRO_HOT_RETENTION stay even when every group has them. */
START_TEST(trim_respects_hot_retention)
{
    int64_t t0 = astro_now_us();
    arc_produce_mono(&env, "m", 0, 400, t0);
    const char *opts[] = {"ASTRO_HOT_RETENTION=1h", "ASTRO_TRIM_INTERVAL=100ms", NULL};
    pid_t a = arc_start(&env, opts);
    ck_assert_int_eq(arc_wait_sql(&env, "SELECT count(*) FROM mono_events", 400, 20000), 400);
    arc_sleep_ms(500);
    long long len = 0;
    for (int p = 0; p < ARC_IT_P; p++)
        len += arc_redis_int(&env, "XLEN astro:mono:{%d}", p);
    ck_assert_int_eq(len, 400);
    ck_assert_int_eq(arc_stop(&env, a), 0);
}
END_TEST

/* astro:hot:unarchived tells ingest how far behind archiving is: the whole backlog while
 * PostgreSQL is down, 0 once it is archived. */
START_TEST(unarchived_length_reported)
{
    ck_assert_int_eq(harness_server_stop(env.pg, 0), 0);
    arc_produce_mono(&env, "m", 0, 700, astro_now_us());
    arc_produce_multi(&env, "x", 50, astro_now_us());
    pid_t a = arc_start(&env, NULL);
    long long v = -1;
    for (int t = 0; t < 100 && v != 750; t++) {
        arc_sleep_ms(50);
        v = arc_redis_int(&env, "GET astro:hot:unarchived");
    }
    ck_assert_int_eq(v, 750);
    ck_assert_int_gt(arc_redis_int(&env, "PTTL astro:hot:unarchived"), 0);
    ck_assert_int_eq(harness_server_restart(env.pg), 0);
    ck_assert_int_eq(arc_wait_sql(&env, "SELECT count(*) FROM mono_events", 700, 30000), 700);
    for (int t = 0; t < 100 && v != 0; t++) {
        arc_sleep_ms(50);
        v = arc_redis_int(&env, "GET astro:hot:unarchived");
    }
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(arc_stop(&env, a), 0);
}
END_TEST

/* Day partitions exist ahead of the data, outliers land in the default partition, partitions
 * past ASTRO_COLD_RETENTION_DAYS are dropped. */
START_TEST(partitions_ahead_and_retention)
{
    ck_assert_int_eq(arc_sql_int(&env, "SELECT astro_ensure_day_partitions('mono_events',"
                                       " (now() AT TIME ZONE 'UTC')::date - 40, 1)"),
                     1);
    int64_t long_ago = INT64_C(978307200000000); /* 2001-01-01 */
    arc_produce_mono(&env, "old", 0, 3, long_ago);
    const char *opts[] = {"ASTRO_COLD_RETENTION_DAYS=30", "ASTRO_PARTITIONS_AHEAD=3", NULL};
    pid_t a = arc_start(&env, opts);
    ck_assert_int_eq(arc_wait_sql(&env, "SELECT count(*) FROM mono_events", 3, 20000), 3);
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM mono_events_default"), 3);
    const char *ahead = "SELECT count(*) FROM generate_series(0, 3) d WHERE to_regclass("
                        "'mono_events_p' || to_char((now() AT TIME ZONE 'UTC')::date + d,"
                        " 'YYYYMMDD')) IS NOT NULL AND to_regclass('multi_events_p' ||"
                        " to_char((now() AT TIME ZONE 'UTC')::date + d, 'YYYYMMDD')) IS NOT NULL";
    ck_assert_int_eq(arc_wait_sql(&env, ahead, 4, 10000), 4);
    ck_assert_int_eq(arc_wait_sql(&env, "SELECT count(*) FROM pg_class WHERE relname ="
                                        " 'mono_events_p' || to_char((now() AT TIME ZONE 'UTC')"
                                        "::date - 40, 'YYYYMMDD')",
                                  0, 10000),
                     0);
    ck_assert_int_eq(arc_stop(&env, a), 0);
}
END_TEST

static Suite *
ops_suite(void)
{
    Suite *s = suite_create("archiver_ops");
    TCase *tc = tcase_create("ops");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, postgres_down_under_load);
    tcase_add_test(tc, redis_restart_recovers);
    tcase_add_test(tc, trim_keeps_what_any_group_needs);
    tcase_add_test(tc, trim_respects_hot_retention);
    tcase_add_test(tc, unarchived_length_reported);
    tcase_add_test(tc, partitions_ahead_and_retention);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ops_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

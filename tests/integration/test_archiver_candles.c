/* astro-archiver and the aggregate streams astro:agg:{p} (issue 9), against real redis-server
 * and postgres: candles written with the codec (astro_candle_stream_encode) become exactly one
 * candles row each and one indicators row per indicator with a value; a redelivery (the same
 * candle XADDed again, and entries claimed after a crash between COMMIT and XACK) changes
 * nothing; poison entries go to astro:dead and dead_events; the agg streams are trimmed once
 * archived, never below what another group still needs. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archiver_itest.h"
#include "astro/agg.h"
#include "astro/partition.h"
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

#define MIN_US INT64_C(60000000)

/* A candle of key/type/tf at bucket b; the key is borrowed (the candle is only encoded). */
static struct astro_candle
candle(char *key, const char *type, const char *tf, int64_t span_us, int64_t b, double open)
{
    struct astro_candle c;
    memset(&c, 0, sizeof(c));
    c.key = key;
    snprintf(c.type, sizeof(c.type), "%s", type);
    snprintf(c.tf, sizeof(c.tf), "%s", tf);
    c.tf_us = span_us;
    c.bucket_us = b;
    c.open = open;
    c.high = open + 2;
    c.low = open - 1;
    c.close = open + 0.5;
    c.volume = 0.1 + 0.2; /* 0.30000000000000004: must come back bit for bit */
    c.vwap = open + 0.25;
    c.count = 7;
    return c;
}

static void
add_ind(struct astro_candle *c, const char *name, double v, bool has, bool ready)
{
    struct astro_indicator_value *iv = &c->ind[c->n_ind++];
    snprintf(iv->name, sizeof(iv->name), "%s", name);
    iv->value = v;
    iv->has_value = has;
    iv->ready = ready;
}

/* XADD of the candle to astro:agg:{p} with the codec. */
static void
xadd_candle(const struct astro_candle *c, uint32_t p)
{
    char key[32];
    ck_assert_int_eq(astro_stream_key(key, sizeof(key), "agg", p), ASTRO_OK);
    struct astro_stream_fields f;
    astro_stream_fields_init(&f);
    ck_assert_int_eq(astro_stream_fields_push(&f, "XADD", 4), ASTRO_OK);
    ck_assert_int_eq(astro_stream_fields_push(&f, key, strlen(key)), ASTRO_OK);
    ck_assert_int_eq(astro_stream_fields_push(&f, "*", 1), ASTRO_OK);
    ck_assert_int_eq(astro_candle_stream_encode(c, &f), ASTRO_OK);
    redisReply *r = redisCommandArgv(env.rc, f.argc, f.argv, f.argvlen);
    ck_assert_msg(r != NULL && r->type == REDIS_REPLY_STRING, "XADD candle");
    freeReplyObject(r);
    astro_stream_fields_cleanup(&f);
}

static long long
agg_pending(void)
{
    long long n = 0;
    for (int p = 0; p < ARC_IT_P; p++) {
        redisReply *r = redisCommand(env.rc, "XPENDING astro:agg:{%d} archiver", p);
        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 4)
            n += r->element[0]->integer;
        freeReplyObject(r);
    }
    return n;
}

/* The candles of the test: BTC trade 1m (three indicators, one without a value), BTC trade 5m,
 * BTC quote 1m (same bucket, another event type: another series) and ETH trade 1m. */
static int64_t
produce(void)
{
    static char btc[] = "BTC", eth[] = "ETH";
    int64_t b = (astro_now_us() / MIN_US - 30) * MIN_US;
    struct astro_candle c = candle(btc, "trade", "1m", MIN_US, b, 100.25);
    add_ind(&c, "sma_20", 101.5, true, true);
    add_ind(&c, "rsi_14", 0, false, false);
    add_ind(&c, "ema_5", 0.1 + 0.7, true, false);
    xadd_candle(&c, 1);
    struct astro_candle c5 =
        candle(btc, "trade", "5m", 5 * MIN_US, astro_tf_bucket(b, 5 * MIN_US) - 5 * MIN_US, 90);
    add_ind(&c5, "sma_20", 95, true, true);
    xadd_candle(&c5, 1);
    struct astro_candle q = candle(btc, "quote", "1m", MIN_US, b, 100.5);
    xadd_candle(&q, 1);
    struct astro_candle e = candle(eth, "trade", "1m", MIN_US, b, 2000);
    add_ind(&e, "bb_upper_20_2", 2100, true, true);
    xadd_candle(&e, 2);
    xadd_candle(&c, 1); /* leaflet re-emits the same candle: no second row */
    return b;
}

static void
poison(void)
{
    /* Undecodable: 7m does not divide a day. */
    const char *bad_tf[] = {"kind", "candle", "key", "BTC", "type", "trade", "tf", "7m",
                            "b", "0", "o", "1", "h", "1", "l", "1", "c", "1", "v", "0",
                            "n", "1", "vwap", "1", "ind", "[]"};
    arc_xadd_raw(&env, "astro:agg:{0}", 26, bad_tf);
    /* One indicator twice: the codec refuses it (PostgreSQL could never store it). */
    const char *twice[] = {"kind", "candle", "key", "BTC", "type", "trade", "tf", "1m",
                           "b", "0", "o", "1", "h", "1", "l", "1", "c", "1", "v", "0",
                           "n", "1", "vwap", "1", "ind",
                           "[{\"name\":\"sma_2\",\"value\":1,\"ready\":true},"
                           "{\"name\":\"sma_2\",\"value\":2,\"ready\":true}]"};
    arc_xadd_raw(&env, "astro:agg:{0}", 26, twice);
}

static void
check_rows(int64_t b)
{
    char sql[1024];
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM candles"), 4);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM candles WHERE key = 'BTC' AND event_type = 'trade'"
             " AND \"interval\" = '1m' AND bucket_start = timestamptz 'epoch' + %lld"
             " * interval '1 microsecond' AND open = 100.25 AND high = 102.25 AND low = 99.25"
             " AND close = 100.75 AND volume::text = '0.30000000000000004' AND trades = 7"
             " AND vwap = 100.5",
             (long long)b);
    ck_assert_int_eq(arc_sql_int(&env, sql), 1);
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM candles WHERE key = 'BTC' AND"
                                       " event_type = 'quote' AND open = 100.5"),
                     1);
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM candles WHERE \"interval\" = '5m'"
                                       " AND extract(epoch FROM bucket_start)::bigint % 300 = 0"),
                     1);
    /* Indicators with a value only, at the candle's bucket_start, ready as sent. */
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM indicators"), 4);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM indicators WHERE key = 'BTC' AND event_type = 'trade'"
             " AND \"interval\" = '1m' AND ts = timestamptz 'epoch' + %lld * interval"
             " '1 microsecond' AND ((name = 'sma_20' AND value = 101.5 AND ready) OR"
             " (name = 'ema_5' AND value::text = '0.7999999999999999' AND NOT ready))",
             (long long)b);
    ck_assert_int_eq(arc_sql_int(&env, sql), 2);
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM indicators WHERE name = 'rsi_14'"),
                     0);
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM indicators WHERE key = 'ETH' AND"
                                       " name = 'bb_upper_20_2' AND value = 2100"),
                     1);
}

static void
check_dead(void)
{
    ck_assert_int_eq(arc_wait_sql(&env, "SELECT count(*) FROM dead_events WHERE"
                                        " stream = 'astro:agg:{0}'", 2, 20000), 2);
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM dead_events WHERE"
                                       " stream = 'astro:agg:{0}' AND reason LIKE '%timeframe%'"
                                       " AND payload->>'tf' = '7m'"),
                     1);
    ck_assert_int_eq(arc_sql_int(&env, "SELECT count(*) FROM dead_events WHERE"
                                       " stream = 'astro:agg:{0}' AND reason LIKE '%twice%'"),
                     1);
    /* A crash between its XADD and XACK would show one twice on astro:dead (documented). */
    ck_assert_int_ge(arc_redis_int(&env, "XLEN astro:dead"), 2);
}

/* The value of a metric line (name{labels} value) in a /metrics body, or -1. */
static long long
metric(const char *body, const char *line)
{
    const char *p = strstr(body, line);
    return p != NULL ? atoll(p + strlen(line)) : -1;
}

/* Candles, a re-emitted candle, two poison entries; a crash right after the first COMMIT
 * leaves entries pending that a second archiver claims and re-upserts without a change. */
START_TEST(candles_archived_exactly)
{
    /* Another group on astro:agg:{2} that reads nothing: its entries must stay. */
    redisReply *r = redisCommand(env.rc, "XGROUP CREATE astro:agg:{2} slow 0 MKSTREAM");
    ck_assert_msg(r != NULL && r->type != REDIS_REPLY_ERROR, "XGROUP CREATE");
    freeReplyObject(r);
    int64_t b = produce();
    poison();
    const char *crash[] = {"ASTRO_TEST_CRASH_AFTER_COMMIT=1", "ASTRO_BATCH_SIZE=2", NULL};
    pid_t a = arc_start(&env, crash);
    ck_assert_int_eq(arc_wait_exit(&env, a, 20000), 3);
    ck_assert_int_gt(agg_pending(), 0); /* committed, never acknowledged */

    int port = arc_free_port();
    char port_env[32];
    snprintf(port_env, sizeof(port_env), "ASTRO_HTTP_PORT=%d", port);
    const char *opts[] = {port_env, "ASTRO_CLAIM_IDLE=300ms", "ASTRO_HOT_RETENTION=0",
                          "ASTRO_TRIM_INTERVAL=200ms", NULL};
    pid_t a2 = arc_start(&env, opts);
    check_dead();
    for (int t = 0; t < 200 && agg_pending() > 0; t++)
        arc_sleep_ms(50);
    ck_assert_int_eq(agg_pending(), 0);
    check_rows(b);
    /* Trimmed once archived: {1} and {0} emptied; {2} kept for the slow group. */
    for (int t = 0; t < 100 && arc_redis_int(&env, "XLEN astro:agg:{1}") > 0; t++)
        arc_sleep_ms(50);
    ck_assert_int_eq(arc_redis_int(&env, "XLEN astro:agg:{1}"), 0);
    ck_assert_int_eq(arc_redis_int(&env, "XLEN astro:agg:{0}"), 0);
    ck_assert_int_eq(arc_redis_int(&env, "XLEN astro:agg:{2}"), 1);
    static char body[256 * 1024];
    ck_assert_int_eq(arc_http_get(port, "/metrics", body, sizeof(body)), 200);
    /* The claimed entries were upserted again without a change: counted as duplicates. */
    ck_assert_int_ge(metric(body, "astro_archiver_duplicates_total{table=\"candles\"} "), 1);
    ck_assert_int_ge(metric(body, "astro_archiver_rows_total{table=\"indicators\"} "), 0);
    ck_assert_int_eq(arc_stop(&env, a2), 0);
    /* Nothing changed by the redeliveries: the rows are still exactly the candles sent. */
    check_rows(b);
}
END_TEST

static Suite *
suite(void)
{
    Suite *s = suite_create("archiver_candles");
    TCase *tc = tcase_create("candles");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, candles_archived_exactly);
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

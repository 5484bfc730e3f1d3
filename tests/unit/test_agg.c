/* The candle codec (astro/agg.h): timeframe labels and UTC bucket alignment, stream round trips
 * with bit-identical doubles, the JSON form astro-query and astro-broadcast serve, and every
 * decode error the archiver turns into an astro:dead reason. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "astro/agg.h"

#define MIN_US (INT64_C(60) * 1000000)
#define DAY_US (INT64_C(86400) * 1000000)
#define B_US INT64_C(1796090400000000) /* 2026-12-01T02:00:00Z */

static struct astro_candle a, b;
static struct astro_stream_fields af;
static char err[256];

static void
setup(void)
{
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    astro_stream_fields_init(&af);
    err[0] = '\0';
}

static void
teardown(void)
{
    astro_candle_cleanup(&a);
    astro_candle_cleanup(&b);
    astro_stream_fields_cleanup(&af);
}

static bool
same_double(double x, double y)
{
    return memcmp(&x, &y, sizeof(x)) == 0;
}

/* ---- timeframes ---- */

static const struct {
    const char *label;
    int64_t span; /* 0: refused */
} tfs[] = {
    {"1s", 1000000},      {"1m", MIN_US},       {"5m", 5 * MIN_US},  {"15m", 15 * MIN_US},
    {"1h", 60 * MIN_US},  {"4h", 240 * MIN_US}, {"1d", DAY_US},      {"90m", 90 * MIN_US},
    {"60m", 60 * MIN_US}, {"86400s", DAY_US},   {"7m", 0},           {"2d", 0},
    {"0m", 0},            {"01m", 0},           {"m", 0},            {"1", 0},
    {"1w", 0},            {"-1m", 0},           {"1M", 0},           {"", 0},
    {"1.5h", 0},          {"99999999999999999999m", 0},              {"5h", 0},
};

START_TEST(test_tf_parse)
{
    int64_t span = -1;
    int rc = astro_tf_parse(tfs[_i].label, strlen(tfs[_i].label), &span, err, sizeof(err));
    if (tfs[_i].span == 0) {
        ck_assert_msg(rc == ASTRO_ERR, "%s accepted", tfs[_i].label);
        ck_assert_msg(strstr(err, "timeframe") != NULL, "%s", err);
    } else {
        ck_assert_msg(rc == ASTRO_OK, "%s: %s", tfs[_i].label, err);
        ck_assert_int_eq(span, tfs[_i].span);
    }
}
END_TEST

START_TEST(test_tf_bucket)
{
    ck_assert_int_eq(astro_tf_bucket(B_US, MIN_US), B_US);
    ck_assert_int_eq(astro_tf_bucket(B_US + MIN_US - 1, MIN_US), B_US);
    ck_assert_int_eq(astro_tf_bucket(B_US + MIN_US, MIN_US), B_US + MIN_US);
    ck_assert_int_eq(astro_tf_bucket(B_US - 1, MIN_US), B_US - MIN_US);
    /* 4h buckets start at 00, 04, ... UTC; 02:00 belongs to the one starting at 00:00. */
    ck_assert_int_eq(astro_tf_bucket(B_US, 240 * MIN_US), B_US - 120 * MIN_US);
    ck_assert_int_eq(astro_tf_bucket(B_US, DAY_US), B_US - 120 * MIN_US);
    /* Before the epoch: floor, not truncation toward zero. */
    ck_assert_int_eq(astro_tf_bucket(-1, MIN_US), -MIN_US);
    ck_assert_int_eq(astro_tf_bucket(-MIN_US, MIN_US), -MIN_US);
    ck_assert_int_eq(astro_tf_bucket(0, MIN_US), 0);
}
END_TEST

/* ---- stream form ---- */

static void
fill(struct astro_candle *c, double x)
{
    c->key = strdup("BTC-USD");
    strcpy(c->type, "trade");
    strcpy(c->tf, "5m");
    c->tf_us = 5 * MIN_US;
    c->bucket_us = B_US;
    c->open = x;
    c->high = x + 1.5;
    c->low = x - 0.1;
    c->close = x + 0.3;
    c->volume = 0.1 + 0.2;
    c->vwap = x + 1.0 / 3.0;
    c->count = 42;
    c->n_ind = 3;
    strcpy(c->ind[0].name, "sma_20");
    c->ind[0].value = x / 7.0;
    c->ind[0].has_value = true;
    c->ind[0].ready = true;
    strcpy(c->ind[1].name, "rsi_14");
    c->ind[1].has_value = false;
    strcpy(c->ind[2].name, "bb_upper_20_2.5");
    c->ind[2].value = -0.0;
    c->ind[2].has_value = true;
}

static void
decode_argv(const struct astro_stream_fields *f, int from, struct astro_candle *out, int want_rc)
{
    int n = f->argc - from;
    redisReply r[ASTRO_STREAM_MAX_ARGS], *el[ASTRO_STREAM_MAX_ARGS];
    for (int i = 0; i < n; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i].type = REDIS_REPLY_STRING;
        r[i].str = (char *)f->argv[from + i];
        r[i].len = f->argvlen[from + i];
        el[i] = &r[i];
    }
    int rc = astro_candle_stream_decode(el, (size_t)n, out, err, sizeof(err));
    ck_assert_msg(rc == want_rc, "rc %d: %s", rc, err);
}

static const double xs[] = {100.25, 0.1, 1e-300, 6.02214076e23, -5.5, DBL_MAX / 4};

START_TEST(test_stream_round_trip)
{
    fill(&a, xs[_i]);
    ck_assert_int_eq(astro_stream_fields_push(&af, "XADD", 4), ASTRO_OK);
    ck_assert_int_eq(astro_stream_fields_push(&af, "astro:agg:{1}", 13), ASTRO_OK);
    ck_assert_int_eq(astro_stream_fields_push(&af, "*", 1), ASTRO_OK);
    ck_assert_int_eq(astro_candle_stream_encode(&a, &af), ASTRO_OK);
    ck_assert_int_eq(af.argc, 3 + 26);
    decode_argv(&af, 3, &b, ASTRO_OK);
    ck_assert_str_eq(b.key, "BTC-USD");
    ck_assert_str_eq(b.type, "trade");
    ck_assert_str_eq(b.tf, "5m");
    ck_assert_int_eq(b.tf_us, 5 * MIN_US);
    ck_assert_int_eq(b.bucket_us, B_US);
    ck_assert(same_double(a.open, b.open) && same_double(a.high, b.high));
    ck_assert(same_double(a.low, b.low) && same_double(a.close, b.close));
    ck_assert(same_double(a.volume, b.volume) && same_double(a.vwap, b.vwap));
    ck_assert_int_eq(b.count, 42);
    ck_assert_uint_eq(b.n_ind, 3);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_str_eq(a.ind[i].name, b.ind[i].name);
        ck_assert_int_eq(a.ind[i].has_value, b.ind[i].has_value);
        ck_assert_int_eq(a.ind[i].ready, b.ind[i].ready);
        if (a.ind[i].has_value)
            ck_assert(same_double(a.ind[i].value, b.ind[i].value));
    }
}
END_TEST

START_TEST(test_stream_wire_form)
{
    fill(&a, 100.25);
    a.n_ind = 2;
    ck_assert_int_eq(astro_candle_stream_encode(&a, &af), ASTRO_OK);
    const char *want[] = {"kind", "candle", "key", "BTC-USD", "type", "trade", "tf", "5m",
                          "b", "1796090400000000", "o", "100.25", "h", "101.75",
                          "l", "100.15", "c", "100.55", "v", "0.30000000000000004",
                          "n", "42", "vwap", "100.58333333333333", "ind",
                          "[{\"name\":\"sma_20\",\"value\":14.321428571428571,\"ready\":true},"
                          "{\"name\":\"rsi_14\",\"value\":null,\"ready\":false}]"};
    ck_assert_int_eq(af.argc, 26);
    for (int i = 0; i < 26; i++)
        ck_assert_msg(af.argvlen[i] == strlen(want[i]) &&
                          memcmp(af.argv[i], want[i], af.argvlen[i]) == 0,
                      "arg %d: %.*s", i, (int)af.argvlen[i], af.argv[i]);
}
END_TEST

START_TEST(test_encode_refuses)
{
    fill(&a, 1.0);
    a.high = NAN;
    ck_assert_int_eq(astro_candle_stream_encode(&a, &af), ASTRO_ERR);
    astro_stream_fields_cleanup(&af);
    a.high = 2.0;
    a.tf_us = MIN_US; /* does not match "5m" */
    ck_assert_int_eq(astro_candle_stream_encode(&a, &af), ASTRO_ERR);
    astro_stream_fields_cleanup(&af);
    a.tf_us = 5 * MIN_US;
    for (int i = 0; i < ASTRO_STREAM_MAX_ARGS - 20; i++)
        ck_assert_int_eq(astro_stream_fields_push(&af, "p", 1), ASTRO_OK);
    ck_assert_int_eq(astro_candle_stream_encode(&a, &af), ASTRO_ERR);
}
END_TEST

struct agg_bad {
    const char *field; /* field to replace (or drop when value is NULL) */
    const char *value;
    const char *err;
};

static const struct agg_bad agg_bad[] = {
    {"kind", NULL, "agg entry: missing field \"kind\""},
    {"ind", NULL, "agg entry: missing field \"ind\""},
    {"vwap", NULL, "agg entry: missing field \"vwap\""},
    {"kind", "multi", "agg field kind: expected \"candle\""},
    {"key", "bad\x01key", "agg field key: not a valid event key"},
    {"type", "no spaces", "agg field type: invalid character at byte 2"},
    {"tf", "7m", "timeframe \"7m\": must divide one day or be 1d"},
    {"b", "1796090460000000", "agg field b: not a bucket start of 5m"},
    {"b", "12x", "agg field b: not an integer"},
    {"o", "nan", "agg field o: not a finite number"},
    {"h", "1e999", "agg field h: not a finite number"},
    {"l", "", "agg field l: not a finite number"},
    {"l", "200", "agg entry: open/close outside low..high"},
    {"v", "-1", "agg entry: negative volume or count below 1"},
    {"n", "0", "agg entry: negative volume or count below 1"},
    {"n", "1.5", "agg field n: not an integer"},
    {"ind", "{}", "agg field ind: not a JSON array of at most 24 indicators"},
    {"ind", "[", "agg field ind: not a JSON array of at most 24 indicators"},
    {"ind", "[{\"name\":\"SMA\",\"value\":1,\"ready\":true}]",
     "agg field ind[0]: name must be 1..32 of [a-z0-9_.]"},
    {"ind", "[{\"name\":\"sma_20\",\"value\":\"1\",\"ready\":true}]",
     "agg field ind[0].value: not a finite number or null"},
    {"ind", "[{\"name\":\"sma_20\",\"value\":1}]", "agg field ind[0].ready: not a boolean"},
    {"ind", "[1]", "agg field ind[0]: name must be 1..32 of [a-z0-9_.]"},
    {"ind", "[{\"name\":\"sma_2\",\"value\":1,\"ready\":true},"
            "{\"name\":\"sma_2\",\"value\":2,\"ready\":true}]",
     "agg field ind[1]: \"sma_2\" given twice"},
};

START_TEST(test_decode_errors)
{
    const struct agg_bad *t = &agg_bad[_i];
    fill(&a, 100.0);
    ck_assert_int_eq(astro_candle_stream_encode(&a, &af), ASTRO_OK);
    struct astro_stream_fields g;
    astro_stream_fields_init(&g);
    for (int i = 0; i < af.argc; i += 2) {
        bool hit = af.argvlen[i] == strlen(t->field) &&
                   memcmp(af.argv[i], t->field, af.argvlen[i]) == 0;
        if (hit && t->value == NULL)
            continue;
        ck_assert_int_eq(astro_stream_fields_push(&g, af.argv[i], af.argvlen[i]), ASTRO_OK);
        const char *v = hit ? t->value : af.argv[i + 1];
        ck_assert_int_eq(astro_stream_fields_push(&g, v, hit ? strlen(v) : af.argvlen[i + 1]),
                         ASTRO_OK);
    }
    decode_argv(&g, 0, &b, ASTRO_ERR);
    ck_assert_msg(strncmp(err, t->err, strlen(t->err)) == 0, "got \"%s\", want \"%s\"", err,
                  t->err);
    ck_assert_ptr_null(b.key); /* cleaned up on failure */
}
END_TEST

START_TEST(test_decode_duplicate_and_unknown)
{
    fill(&a, 100.0);
    ck_assert_int_eq(astro_candle_stream_encode(&a, &af), ASTRO_OK);
    ck_assert_int_eq(astro_stream_fields_push(&af, "future", 6), ASTRO_OK);
    ck_assert_int_eq(astro_stream_fields_push(&af, "x", 1), ASTRO_OK);
    decode_argv(&af, 0, &b, ASTRO_OK);
    astro_candle_cleanup(&b);
    ck_assert_int_eq(astro_stream_fields_push(&af, "o", 1), ASTRO_OK);
    ck_assert_int_eq(astro_stream_fields_push(&af, "1", 1), ASTRO_OK);
    decode_argv(&af, 0, &b, ASTRO_ERR);
    ck_assert_str_eq(err, "agg entry: duplicate field \"o\"");
    decode_argv(&af, 1, &b, ASTRO_ERR);
    ck_assert_str_eq(err, "agg entry: odd number of field/value elements");
}
END_TEST

/* ---- JSON ---- */

START_TEST(test_json_form)
{
    fill(&a, 100.25);
    cJSON *j = astro_candle_to_json(&a);
    ck_assert_ptr_nonnull(j);
    char *s = cJSON_PrintUnformatted(j);
    ck_assert_str_eq(s, "{\"key\":\"BTC-USD\",\"event_type\":\"trade\",\"timeframe\":\"5m\","
                        "\"bucket_start\":\"2026-12-01T02:00:00.000000Z\","
                        "\"bucket_end\":\"2026-12-01T02:05:00.000000Z\",\"open\":100.25,"
                        "\"high\":101.75,\"low\":100.15,\"close\":100.55,"
                        "\"volume\":0.30000000000000004,\"count\":42,"
                        "\"vwap\":100.58333333333333,\"indicators\":{"
                        "\"sma_20\":{\"value\":14.321428571428571,\"ready\":true},"
                        "\"rsi_14\":{\"value\":null,\"ready\":false},"
                        "\"bb_upper_20_2.5\":{\"value\":-0,\"ready\":false}}}");
    free(s);
    cJSON_Delete(j);
    a.bucket_us = INT64_C(253402300799999999); /* bucket_end past year 9999 */
    ck_assert_ptr_null(astro_candle_to_json(&a));
}
END_TEST

static Suite *
agg_suite(void)
{
    Suite *s = suite_create("agg");
    TCase *tc = tcase_create("agg");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_tf_parse, 0, (int)(sizeof(tfs) / sizeof(tfs[0])));
    tcase_add_test(tc, test_tf_bucket);
    tcase_add_loop_test(tc, test_stream_round_trip, 0, (int)(sizeof(xs) / sizeof(xs[0])));
    tcase_add_test(tc, test_stream_wire_form);
    tcase_add_test(tc, test_encode_refuses);
    tcase_add_loop_test(tc, test_decode_errors, 0, (int)(sizeof(agg_bad) / sizeof(agg_bad[0])));
    tcase_add_test(tc, test_decode_duplicate_and_unknown);
    tcase_add_test(tc, test_json_form);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(agg_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

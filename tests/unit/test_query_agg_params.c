/* Parameters of /candles/{key} and /indicators/{key}: every hostile query string is refused
 * naming the parameter at fault; valid ones fill the filter as the user meant; indicator names
 * are exactly the names astro-leaflet emits. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

struct bad_case {
    enum qry_agg_endpoint ep;
    const char *qs;
    const char *param; /* expected in the error */
};

static const struct bad_case bad_cases[] = {
    /* timeframes */
    {QRY_EP_CANDLES, "timeframe=7m", "timeframe"},      /* does not divide a day */
    {QRY_EP_CANDLES, "timeframe=1w", "timeframe"},
    {QRY_EP_CANDLES, "timeframe=01m", "timeframe"},
    {QRY_EP_CANDLES, "timeframe=m", "timeframe"},
    {QRY_EP_CANDLES, "timeframe=1", "timeframe"},
    {QRY_EP_CANDLES, "timeframe=-1m", "timeframe"},
    {QRY_EP_CANDLES, "timeframe=1M", "timeframe"},
    {QRY_EP_CANDLES, "timeframe=2d", "timeframe"},
    {QRY_EP_CANDLES, "timeframe=1m%20", "timeframe"},
    {QRY_EP_CANDLES, "timeframe=99999999999999999999s", "timeframe"},
    {QRY_EP_INDICATORS, "timeframe=1h;DROP", "timeframe"},
    /* times */
    {QRY_EP_CANDLES, "start_time=yesterday", "start_time"},
    {QRY_EP_CANDLES, "end_time=2026-01-01T25:00:00Z", "end_time"},
    {QRY_EP_CANDLES, "start_time=1.5e12", "start_time"},
    {QRY_EP_INDICATORS, "start_time=2026-01-02T00:00:00Z&end_time=2026-01-01T00:00:00Z",
     "end_time"},
    {QRY_EP_INDICATORS, "start_time=5&end_time=5", "end_time"},
    /* limit */
    {QRY_EP_CANDLES, "limit=0", "limit"},
    {QRY_EP_CANDLES, "limit=1001", "limit"},
    {QRY_EP_CANDLES, "limit=-5", "limit"},
    {QRY_EP_CANDLES, "limit=ten", "limit"},
    {QRY_EP_INDICATORS, "limit=1e2", "limit"},
    /* type */
    {QRY_EP_CANDLES, "type=a%20b", "type"},
    {QRY_EP_CANDLES, "type=%00", "type"},
    {QRY_EP_CANDLES, "type=x'--", "type"},
    /* names: syntax, count, repeats */
    {QRY_EP_INDICATORS, "names=sma", "names"},
    {QRY_EP_INDICATORS, "names=sma_", "names"},
    {QRY_EP_INDICATORS, "names=sma_0", "names"},
    {QRY_EP_INDICATORS, "names=sma_020", "names"},
    {QRY_EP_INDICATORS, "names=sma_10000", "names"},
    {QRY_EP_INDICATORS, "names=SMA_20", "names"},
    {QRY_EP_INDICATORS, "names=wma_20", "names"},
    {QRY_EP_INDICATORS, "names=rsi_14_2", "names"},
    {QRY_EP_INDICATORS, "names=macd_12_26", "names"},
    {QRY_EP_INDICATORS, "names=macd_signal_12_26_9_1", "names"},
    {QRY_EP_INDICATORS, "names=bb_upper_20", "names"},
    {QRY_EP_INDICATORS, "names=bb_upper_20_", "names"},
    {QRY_EP_INDICATORS, "names=bb_lower_20_2.", "names"},
    {QRY_EP_INDICATORS, "names=bb_middle_20_-2", "names"},
    {QRY_EP_INDICATORS, "names=sma_20,", "names"},
    {QRY_EP_INDICATORS, "names=,sma_20", "names"},
    {QRY_EP_INDICATORS, "names=sma_20,,rsi_14", "names"},
    {QRY_EP_INDICATORS, "names=sma_20,sma_20", "names"},
    {QRY_EP_INDICATORS, "names=sma_20%2C%20rsi_14", "names"},
    {QRY_EP_INDICATORS, "names=sma_20'}", "names"},
    {QRY_EP_INDICATORS, "names=sma_1,sma_2,sma_3,sma_4,sma_5,sma_6,sma_7,sma_8,sma_9,sma_10,"
                        "sma_11,sma_12,sma_13,sma_14,sma_15,sma_16,sma_17,sma_18,sma_19,sma_20,"
                        "sma_21,sma_22,sma_23,sma_24,sma_25", "names"},
    {QRY_EP_CANDLES, "names=sma_20", "names"}, /* names only on /indicators */
    /* unknown, repeated, empty, malformed */
    {QRY_EP_CANDLES, "interval=1m", "interval"},
    {QRY_EP_CANDLES, "event_type=trade", "event_type"},
    {QRY_EP_CANDLES, "timeframe=1m&timeframe=5m", "timeframe"},
    {QRY_EP_INDICATORS, "names=sma_20&names=rsi_14", "names"},
    {QRY_EP_CANDLES, "limit", "limit"},
    {QRY_EP_CANDLES, "type=", "type"},
    {QRY_EP_CANDLES, "limit=5&", "(query)"},
    {QRY_EP_CANDLES, "&limit=5", "(query)"},
    {QRY_EP_CANDLES, "type=%zz", "type"},
    {QRY_EP_CANDLES, "type=%C3%28", "type"},
    {QRY_EP_CANDLES, "%zz=1", "(name)"},
};

START_TEST(test_bad_parameter)
{
    const struct bad_case *bc = &bad_cases[_i];
    struct qry_agg_filter f;
    struct qry_error e;
    int rc = qry_agg_params_parse(bc->ep, bc->qs, &f, &e);
    if (rc != ASTRO_ERR || strcmp(e.param, bc->param) != 0)
        ck_abort_msg("%s: rc %d, param '%s' (%s), expected '%s'", bc->qs, rc, e.param, e.msg,
                     bc->param);
    ck_assert(e.msg[0] != '\0');
}
END_TEST

START_TEST(test_defaults)
{
    struct qry_agg_filter f;
    struct qry_error e;
    ck_assert_int_eq(qry_agg_params_parse(QRY_EP_CANDLES, NULL, &f, &e), ASTRO_OK);
    ck_assert_uint_eq(f.present, 0);
    ck_assert_str_eq(f.tf, "1m");
    ck_assert_int_eq(f.tf_us, INT64_C(60000000));
    ck_assert_int_eq(f.limit, 100);
    ck_assert_uint_eq(f.n_names, 0);
}
END_TEST

START_TEST(test_valid_indicators)
{
    struct qry_agg_filter f;
    struct qry_error e;
    const char *qs = "timeframe=4h&type=trade&names=sma_20,rsi_14%2Cbb_upper_20_2.5"
                     "&start_time=2026-01-01T00:00:00Z&end_time=1767312000000&limit=1000";
    ck_assert_int_eq(qry_agg_params_parse(QRY_EP_INDICATORS, qs, &f, &e), ASTRO_OK);
    ck_assert_uint_eq(f.present, QRY_A_TYPE | QRY_A_START | QRY_A_END | QRY_A_NAMES);
    ck_assert_str_eq(f.tf, "4h");
    ck_assert_int_eq(f.tf_us, INT64_C(4) * 3600 * 1000000);
    ck_assert_str_eq(f.type, "trade");
    ck_assert_int_eq(f.start_us, INT64_C(1767225600000000));
    ck_assert_int_eq(f.end_us, INT64_C(1767312000000000));
    ck_assert_int_eq(f.limit, 1000);
    ck_assert_uint_eq(f.n_names, 3);
    ck_assert_str_eq(f.names[0], "sma_20");
    ck_assert_str_eq(f.names[1], "rsi_14");
    ck_assert_str_eq(f.names[2], "bb_upper_20_2.5");
}
END_TEST

/* 24 names (one candle's worth) are accepted, the 25th is not (table above). */
START_TEST(test_names_bound)
{
    char qs[1024] = "names=";
    for (int i = 1; i <= QRY_AGG_NAMES_MAX; i++)
        snprintf(qs + strlen(qs), sizeof(qs) - strlen(qs), "%sema_%d", i > 1 ? "," : "", i);
    struct qry_agg_filter f;
    struct qry_error e;
    ck_assert_int_eq(qry_agg_params_parse(QRY_EP_INDICATORS, qs, &f, &e), ASTRO_OK);
    ck_assert_uint_eq(f.n_names, QRY_AGG_NAMES_MAX);
}
END_TEST

START_TEST(test_name_forms)
{
    static const char *good[] = {"sma_20", "ema_9999", "rsi_14", "macd_12_26_9",
                                 "macd_signal_12_26_9", "macd_hist_5_35_5", "bb_upper_20_2",
                                 "bb_middle_20_2", "bb_lower_20_0.5", "sma_1"};
    static const char *bad[] = {"", "sma", "sma_", "ema_0", "rsi_07", "macd_1_2",
                                "macd_x_26_9", "bb_upper_20", "bb_upper__2", "bb_upper_20_2e1",
                                "macd_signal_12_26_9_", "sma_20 ", "obv"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(qry_indicator_name_valid(good[i]), "%s refused", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!qry_indicator_name_valid(bad[i]), "%s accepted", bad[i]);
}
END_TEST

static Suite *
agg_params_suite(void)
{
    Suite *s = suite_create("query_agg_params");
    TCase *tc = tcase_create("agg_params");
    tcase_add_loop_test(tc, test_bad_parameter, 0,
                        (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_valid_indicators);
    tcase_add_test(tc, test_names_bound);
    tcase_add_test(tc, test_name_forms);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(agg_params_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

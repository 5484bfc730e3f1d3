/* astro-query's parameter validation: every hostile query string is refused with the name of
 * the parameter at fault, every valid one fills the filter as the user meant. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

struct bad_case {
    enum qry_endpoint ep;
    const char *qs;
    const char *param; /* expected in the error */
};

static const struct bad_case bad_cases[] = {
    /* unknown and misspelled parameters */
    {QRY_EP_MONO, "foo=1", "foo"},
    {QRY_EP_MONO, "Limit=10", "Limit"},
    {QRY_EP_MONO, "correlation_rule=r1", "correlation_rule"},
    {QRY_EP_MULTI, "source_stream=s", "source_stream"},
    {QRY_EP_MULTI, "event_type=t", "event_type"},
    {QRY_EP_STATS, "limit=5", "limit"},
    {QRY_EP_NONE, "x=1", "x"},
    {QRY_EP_MONO, "limit=5&%6cimit=6", "limit"},
    /* repeated parameters */
    {QRY_EP_MONO, "limit=5&limit=6", "limit"},
    {QRY_EP_MONO, "key=a&key=b", "key"},
    {QRY_EP_MULTI, "min_confidence=0.1&min_confidence=0.2", "min_confidence"},
    /* missing values and stray separators */
    {QRY_EP_MONO, "limit", "limit"},
    {QRY_EP_MONO, "limit=", "limit"},
    {QRY_EP_MONO, "key=a&", "(query)"},
    {QRY_EP_MONO, "&key=a", "(query)"},
    {QRY_EP_MONO, "key=a&&limit=1", "(query)"},
    /* limit and offset */
    {QRY_EP_MONO, "limit=0", "limit"},
    {QRY_EP_MONO, "limit=1001", "limit"},
    {QRY_EP_MONO, "limit=-1", "limit"},
    {QRY_EP_MONO, "limit=abc", "limit"},
    {QRY_EP_MONO, "limit=1e3", "limit"},
    {QRY_EP_MONO, "limit=10.5", "limit"},
    {QRY_EP_MONO, "limit=99999999999999999999999", "limit"},
    {QRY_EP_MONO, "limit=+5", "limit"},
    {QRY_EP_MONO, "limit=%205", "limit"},
    {QRY_EP_MONO, "limit=0x10", "limit"},
    {QRY_EP_MONO, "offset=-1", "offset"},
    {QRY_EP_MONO, "offset=100001", "offset"},
    {QRY_EP_MULTI, "limit=1;DROP TABLE multi_events", "limit"},
    /* times */
    {QRY_EP_MONO, "start_time=yesterday", "start_time"},
    {QRY_EP_MONO, "start_time=2026-13-01T00:00:00Z", "start_time"},
    {QRY_EP_MONO, "start_time=2026-02-30T00:00:00Z", "start_time"},
    {QRY_EP_MONO, "start_time=2026-01-01", "start_time"},
    {QRY_EP_MONO, "end_time=2026-01-01T25:00:00Z", "end_time"},
    {QRY_EP_MONO, "end_time=2026-01-01T00:00:00", "end_time"},
    {QRY_EP_MONO, "start_time=99999999999999999999", "start_time"},
    {QRY_EP_MONO, "start_time=1.5e12", "start_time"},
    {QRY_EP_MONO, "start_time=2026-01-01T00:00:00Z'%20OR%20'1'='1", "start_time"},
    {QRY_EP_MONO,
     "start_time=2026-01-02T00:00:00Z&end_time=2026-01-01T00:00:00Z", "end_time"},
    {QRY_EP_MONO, "start_time=1700000000000&end_time=1700000000000", "end_time"},
    {QRY_EP_STATS, "end_time=not-a-time", "end_time"},
    /* names and keys */
    {QRY_EP_MONO, "source_stream=a%20b", "source_stream"},
    {QRY_EP_MONO, "source_stream='%3B%20DROP%20TABLE%20mono_events%3B--", "source_stream"},
    {QRY_EP_MONO, "event_type=" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
     "event_type"},
    {QRY_EP_MULTI, "correlation_rule=r%0A1", "correlation_rule"},
    {QRY_EP_MONO, "key=%01abc", "key"},
    {QRY_EP_MONO, "key=a%7Fb", "key"},
    /* encoding */
    {QRY_EP_MONO, "key=%ff%fe", "key"},
    {QRY_EP_MONO, "key=%c3%28", "key"},
    {QRY_EP_MONO, "key=%ed%a0%80", "key"},
    {QRY_EP_MONO, "key=%c0%af", "key"},
    {QRY_EP_MONO, "key=%00", "key"},
    {QRY_EP_MONO, "key=%zz", "key"},
    {QRY_EP_MONO, "key=abc%4", "key"},
    {QRY_EP_MONO, "key=%", "key"},
    {QRY_EP_MONO, "%ff=1", "(name)"},
    /* confidence */
    {QRY_EP_MULTI, "min_confidence=1.5", "min_confidence"},
    {QRY_EP_MULTI, "min_confidence=-0.1", "min_confidence"},
    {QRY_EP_MULTI, "min_confidence=nan", "min_confidence"},
    {QRY_EP_MULTI, "min_confidence=inf", "min_confidence"},
    {QRY_EP_MULTI, "min_confidence=0.5x", "min_confidence"},
    {QRY_EP_MULTI, "min_confidence=%200.5", "min_confidence"},
    /* cursors */
    {QRY_EP_MONO, "cursor=abc", "cursor"},
    {QRY_EP_MONO, "cursor=!!!!", "cursor"},
    {QRY_EP_MONO, "cursor=AAAAAAAAAAAAAAAA", "cursor"},
    {QRY_EP_MONO, "cursor=AQAAAAAAAAAAA2FiYw==", "cursor"},
    {QRY_EP_MULTI, "cursor=' OR 1=1 --", "cursor"},
};

START_TEST(test_bad_parameter)
{
    const struct bad_case *c = &bad_cases[_i];
    struct qry_filter f;
    struct qry_error e;
    ck_assert_msg(qry_params_parse(c->ep, c->qs, &f, &e) == ASTRO_ERR, "accepted: %s", c->qs);
    ck_assert_msg(strcmp(e.param, c->param) == 0, "%s: named \"%s\" (%s), wanted \"%s\"", c->qs,
                  e.param, e.msg, c->param);
    ck_assert_msg(e.msg[0] != '\0', "%s: no reason", c->qs);
}
END_TEST

START_TEST(test_huge_values)
{
    struct qry_filter f;
    struct qry_error e;
    size_t n = 5000;
    char *qs = malloc(n + 8);
    memcpy(qs, "key=", 4);
    memset(qs + 4, 'a', n);
    qs[n + 4] = '\0';
    ck_assert_int_eq(qry_params_parse(QRY_EP_MONO, qs, &f, &e), ASTRO_ERR);
    ck_assert_str_eq(e.param, "(query)");
    qs[600] = '\0'; /* under the query bound, far over the key bound */
    ck_assert_int_eq(qry_params_parse(QRY_EP_MONO, qs, &f, &e), ASTRO_ERR);
    ck_assert_str_eq(e.param, "key");
    qs[4 + 257] = '\0'; /* one byte over the key bound */
    ck_assert_int_eq(qry_params_parse(QRY_EP_MONO, qs, &f, &e), ASTRO_ERR);
    ck_assert_str_eq(e.param, "key");
    free(qs);
}
END_TEST

START_TEST(test_cursor_with_offset)
{
    struct qry_filter f;
    struct qry_error e;
    char cur[QRY_CURSOR_MAX], qs[256];
    ck_assert_int_eq(qry_cursor_encode(1700000000000000, "ev-1", cur), ASTRO_OK);
    snprintf(qs, sizeof(qs), "cursor=%s&offset=5", cur);
    ck_assert_int_eq(qry_params_parse(QRY_EP_MONO, qs, &f, &e), ASTRO_ERR);
    ck_assert_str_eq(e.param, "offset");
}
END_TEST

START_TEST(test_defaults)
{
    struct qry_filter f;
    struct qry_error e;
    ck_assert_int_eq(qry_params_parse(QRY_EP_MONO, NULL, &f, &e), ASTRO_OK);
    ck_assert_int_eq(f.limit, 100);
    ck_assert_int_eq(f.offset, 0);
    ck_assert_uint_eq(f.present, 0);
    ck_assert_int_eq(qry_params_parse(QRY_EP_MONO, "", &f, &e), ASTRO_OK);
    ck_assert_int_eq(f.limit, 100);
}
END_TEST

START_TEST(test_valid_mono)
{
    struct qry_filter f;
    struct qry_error e;
    const char *qs = "start_time=2026-01-01T00:00:00Z&end_time=1767312000000"
                     "&source_stream=sensors&event_type=temp&key=room%2F1+north&limit=1000"
                     "&offset=20";
    ck_assert_int_eq(qry_params_parse(QRY_EP_MONO, qs, &f, &e), ASTRO_OK);
    ck_assert_uint_eq(f.present,
                      QRY_F_START | QRY_F_END | QRY_F_SOURCE | QRY_F_TYPE | QRY_F_KEY);
    ck_assert_int_eq(f.start_us, INT64_C(1767225600000000));
    ck_assert_int_eq(f.end_us, INT64_C(1767312000000000));
    ck_assert_str_eq(f.source, "sensors");
    ck_assert_str_eq(f.type, "temp");
    ck_assert_str_eq(f.key, "room/1 north");
    ck_assert_int_eq(f.limit, 1000);
    ck_assert_int_eq(f.offset, 20);
}
END_TEST

START_TEST(test_valid_multi)
{
    struct qry_filter f;
    struct qry_error e;
    char cur[QRY_CURSOR_MAX], qs[256];
    ck_assert_int_eq(qry_cursor_encode(1767225600000001, "abc", cur), ASTRO_OK);
    snprintf(qs, sizeof(qs), "correlation_rule=spike&min_confidence=0.75&key=%%C3%%A9&cursor=%s",
             cur);
    ck_assert_int_eq(qry_params_parse(QRY_EP_MULTI, qs, &f, &e), ASTRO_OK);
    ck_assert_uint_eq(f.present, QRY_F_RULE | QRY_F_CONF | QRY_F_KEY | QRY_F_CURSOR);
    ck_assert_str_eq(f.rule, "spike");
    ck_assert(f.min_conf == 0.75);
    ck_assert_str_eq(f.key, "\xc3\xa9");
    ck_assert_int_eq(f.cur_ts_us, INT64_C(1767225600000001));
    ck_assert_str_eq(f.cur_id, "abc");
}
END_TEST

START_TEST(test_time_forms)
{
    int64_t us;
    char err[200];
    ck_assert_int_eq(qry_parse_time("0", &us, err, sizeof(err)), ASTRO_OK);
    ck_assert_int_eq(us, 0);
    ck_assert_int_eq(qry_parse_time("2026-01-01T01:00:00+01:00", &us, err, sizeof(err)),
                     ASTRO_OK);
    ck_assert_int_eq(us, INT64_C(1767225600000000));
    ck_assert_int_eq(qry_parse_time("-1000", &us, err, sizeof(err)), ASTRO_OK);
    ck_assert_int_eq(us, -1000000);
    ck_assert_int_eq(qry_parse_time("", &us, err, sizeof(err)), ASTRO_ERR);
    ck_assert_int_eq(qry_parse_time("-", &us, err, sizeof(err)), ASTRO_ERR);
}
END_TEST

static Suite *
params_suite(void)
{
    Suite *s = suite_create("query_params");
    TCase *tc = tcase_create("params");
    tcase_add_loop_test(tc, test_bad_parameter, 0,
                        (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(tc, test_huge_values);
    tcase_add_test(tc, test_cursor_with_offset);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_valid_mono);
    tcase_add_test(tc, test_valid_multi);
    tcase_add_test(tc, test_time_forms);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(params_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

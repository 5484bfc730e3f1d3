/* RFC 3339 / epoch-ms parsing and formatting of event timestamps. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "astro/time.h"

struct good_case {
    const char *in;
    const char *out; /* canonical UTC form */
};

static const struct good_case good[] = {
    {"2026-12-01T02:03:04.123456Z", "2026-12-01T02:03:04.123456Z"},
    {"1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000Z"},
    {"1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999999Z"},
    {"2026-12-01t02:03:04.123456789z", "2026-12-01T02:03:04.123456Z"}, /* truncated, not rounded */
    {"2026-12-01T02:03:04.9999999Z", "2026-12-01T02:03:04.999999Z"},
    {"2026-12-01T02:03:04.5Z", "2026-12-01T02:03:04.500000Z"},
    {"2024-02-29T12:00:00+01:00", "2024-02-29T11:00:00.000000Z"},
    {"2000-02-29T00:00:00Z", "2000-02-29T00:00:00.000000Z"},
    {"2026-03-01T00:30:00+01:00", "2026-02-28T23:30:00.000000Z"},
    {"2026-01-01T00:30:00-01:00", "2026-01-01T01:30:00.000000Z"},
    {"2026-12-31T23:00:00-23:59", "2027-01-01T22:59:00.000000Z"},
    {"2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999999Z"},    /* leap second */
    {"2016-12-31T23:59:60.5Z", "2016-12-31T23:59:59.999999Z"},
    {"0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"},
    {"9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"},
    {"1900-03-01T00:00:00Z", "1900-03-01T00:00:00.000000Z"},
};

struct bad_case {
    const char *in;
    const char *err;
};

static const struct bad_case bad[] = {
    {"", "timestamp: not RFC 3339"},
    {"2026-02-30T00:00:00Z", "timestamp: day 30 out of range for 2026-02"},
    {"2026-02-29T00:00:00Z", "timestamp: day 29 out of range for 2026-02"},
    {"2100-02-29T00:00:00Z", "timestamp: day 29 out of range for 2100-02"},
    {"2026-04-31T00:00:00Z", "timestamp: day 31 out of range for 2026-04"},
    {"2026-01-00T00:00:00Z", "timestamp: day 0 out of range"},
    {"2026-13-01T00:00:00Z", "timestamp: month 13 out of range"},
    {"2026-00-10T00:00:00Z", "timestamp: month 0 out of range"},
    {"2026-12-01T24:00:00Z", "timestamp: hour 24 out of range"},
    {"2026-12-01T12:60:00Z", "timestamp: minute 60 out of range"},
    {"2026-12-01T12:00:61Z", "timestamp: second 61 out of range"},
    {"2026-12-01T02:03:04", "timestamp: missing time zone"},
    {"2026-12-01T02:03:04.123", "timestamp: missing time zone"},
    {"2026-12-01 02:03:04Z", "timestamp: not RFC 3339"},
    {"2026-1-01T02:03:04Z", "timestamp: not RFC 3339"},
    {"2026-12-01T02:03Z", "timestamp: not RFC 3339"},
    {"2026-12-01", "timestamp: not RFC 3339"},
    {"2026-12-01T02:03:04.Z", "timestamp: missing digits after '.'"},
    {"2026-12-01T02:03:04.1234567891Z", "timestamp: more than 9 fraction digits"},
    {"2026-12-01T02:03:04+01:60", "timestamp: time zone offset out of range"},
    {"2026-12-01T02:03:04+24:00", "timestamp: time zone offset out of range"},
    {"2026-12-01T02:03:04+0100", "timestamp: bad time zone"},
    {"2026-12-01T02:03:04UTC", "timestamp: bad time zone"},
    {"2026-12-01T02:03:04Zx", "timestamp: unexpected characters after the time zone"},
    {"2026-12-01T02:03:04Z ", "timestamp: unexpected characters after the time zone"},
    {" 2026-12-01T02:03:04Z", "timestamp: not RFC 3339"},
    {"0000-12-31T00:00:00Z", "timestamp: outside years 0001..9999 UTC"},
    {"0001-01-01T00:00:00+00:01", "timestamp: outside years 0001..9999 UTC"},
    {"9999-12-31T23:59:59-00:01", "timestamp: outside years 0001..9999 UTC"},
    {"+2026-12-01T02:03:04Z", "timestamp: not RFC 3339"},
};

START_TEST(test_parse_good)
{
    const struct good_case *c = &good[_i];
    int64_t us = 0;
    char err[128] = "", out[64];
    ck_assert_msg(astro_time_parse_rfc3339(c->in, strlen(c->in), &us, err, sizeof(err)) ==
                      ASTRO_OK, "%s: %s", c->in, err);
    ck_assert_int_eq(astro_time_format(us, out, sizeof(out)), ASTRO_OK);
    ck_assert_str_eq(out, c->out);
    /* The canonical form parses back to the same instant. */
    int64_t back = 0;
    ck_assert_int_eq(astro_time_parse_rfc3339(out, strlen(out), &back, err, sizeof(err)), ASTRO_OK);
    ck_assert_int_eq(back, us);
}
END_TEST

START_TEST(test_parse_bad)
{
    const struct bad_case *c = &bad[_i];
    int64_t us = 42;
    char err[128] = "";
    ck_assert_int_eq(astro_time_parse_rfc3339(c->in, strlen(c->in), &us, err, sizeof(err)),
                     ASTRO_ERR);
    ck_assert_msg(strstr(err, c->err) != NULL, "%s: got \"%s\", want \"%s\"", c->in, err, c->err);
    ck_assert_int_eq(us, 42);
}
END_TEST

START_TEST(test_known_instants)
{
    int64_t us;
    const char *s = "2026-12-01T02:03:04.123456Z";
    ck_assert_int_eq(astro_time_parse_rfc3339(s, strlen(s), &us, NULL, 0), ASTRO_OK);
    ck_assert_int_eq(us, INT64_C(1796090584123456));
    s = "0001-01-01T00:00:00Z";
    ck_assert_int_eq(astro_time_parse_rfc3339(s, strlen(s), &us, NULL, 0), ASTRO_OK);
    ck_assert_int_eq(us, ASTRO_TIME_MIN_US);
    s = "9999-12-31T23:59:59.999999Z";
    ck_assert_int_eq(astro_time_parse_rfc3339(s, strlen(s), &us, NULL, 0), ASTRO_OK);
    ck_assert_int_eq(us, ASTRO_TIME_MAX_US);
    /* Length-bounded: the bytes after len are never read. */
    s = "2026-12-01T02:03:04Zgarbage";
    ck_assert_int_eq(astro_time_parse_rfc3339(s, 20, &us, NULL, 0), ASTRO_OK);
    ck_assert_int_eq(us, INT64_C(1796090584000000));
}
END_TEST

struct ms_case {
    double ms;
    int ok;
    int64_t us;
};

static const struct ms_case ms_cases[] = {
    {0.0, 1, 0},
    {1796090584123.0, 1, INT64_C(1796090584123000)},
    {1796090584123.456, 1, INT64_C(1796090584123456)},
    {1.5, 1, 1500},
    {-1.5, 1, -1500},
    {1.001, 1, 1001}, /* 1.001 is 1.00099999.. as a double: rounded, not truncated */
    {253402300799999.0, 1, INT64_C(253402300799999000)},
    {-62135596800000.0, 1, ASTRO_TIME_MIN_US},
    {253402300800000.0, 0, 0},
    {-62135596800001.0, 0, 0},
    {1e20, 0, 0},
    {-1e20, 0, 0},
    {1e300, 0, 0},
};

START_TEST(test_epoch_ms)
{
    const struct ms_case *c = &ms_cases[_i];
    int64_t us = 0;
    char err[128] = "";
    int rc = astro_time_from_epoch_ms(c->ms, &us, err, sizeof(err));
    if (c->ok) {
        ck_assert_int_eq(rc, ASTRO_OK);
        ck_assert_int_eq(us, c->us);
    } else {
        ck_assert_int_eq(rc, ASTRO_ERR);
        ck_assert_str_eq(err, "timestamp: epoch ms out of range (years 0001..9999)");
    }
}
END_TEST

START_TEST(test_epoch_ms_not_finite)
{
    const double v[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < 3; i++) {
        int64_t us;
        char err[128] = "";
        ck_assert_int_eq(astro_time_from_epoch_ms(v[i], &us, err, sizeof(err)), ASTRO_ERR);
        ck_assert_str_eq(err, "timestamp: epoch ms must be a finite number");
    }
}
END_TEST

START_TEST(test_format_limits)
{
    char out[64];
    ck_assert_int_eq(astro_time_format(ASTRO_TIME_MAX_US + 1, out, sizeof(out)), ASTRO_ERR);
    ck_assert_int_eq(astro_time_format(ASTRO_TIME_MIN_US - 1, out, sizeof(out)), ASTRO_ERR);
    ck_assert_int_eq(astro_time_format(0, out, ASTRO_TIME_RFC3339_LEN), ASTRO_ERR);
    ck_assert_int_eq(astro_time_format(0, out, ASTRO_TIME_RFC3339_LEN + 1), ASTRO_OK);
    ck_assert_str_eq(out, "1970-01-01T00:00:00.000000Z");
    ck_assert_int_eq(astro_time_format(-1500, out, sizeof(out)), ASTRO_OK);
    ck_assert_str_eq(out, "1969-12-31T23:59:59.998500Z");
}
END_TEST

START_TEST(test_now)
{
    int64_t a = astro_now_us();
    int64_t b = astro_now_us();
    ck_assert_int_ge(b, a);
    ck_assert_int_gt(a, INT64_C(1700000000000000)); /* after 2023-11 */
    ck_assert_int_lt(a, INT64_C(4102444800000000)); /* before 2100 */
}
END_TEST

static Suite *
time_suite(void)
{
    Suite *s = suite_create("time");
    TCase *tc = tcase_create("time");
    tcase_add_loop_test(tc, test_parse_good, 0, (int)ASTRO_ARRAY_LEN(good));
    tcase_add_loop_test(tc, test_parse_bad, 0, (int)ASTRO_ARRAY_LEN(bad));
    tcase_add_loop_test(tc, test_epoch_ms, 0, (int)ASTRO_ARRAY_LEN(ms_cases));
    tcase_add_test(tc, test_known_instants);
    tcase_add_test(tc, test_epoch_ms_not_finite);
    tcase_add_test(tc, test_format_limits);
    tcase_add_test(tc, test_now);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(time_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

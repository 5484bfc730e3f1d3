/* astro-query's keyset cursor: round trips exactly, and anything not made by the encoder
 * (tampered, truncated, padded, other version) is refused. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "astro/time.h"
#include "query.h"

struct rt_case {
    int64_t ts;
    const char *id;
};

static const struct rt_case rt_cases[] = {
    {0, "a"},
    {1767225600123456, "0b6c9a4e-5f43-4d0e-9b55-6a1f8a3f2c11"},
    {-1, "x"},
    {ASTRO_TIME_MIN_US, "min"},
    {ASTRO_TIME_MAX_US, "max"},
    {1767225600000000, "id-with.dots_and:colons"},
    {42, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}, /* 64 */
    {43, "ab"},
    {44, "abcd"},
};

START_TEST(test_round_trip)
{
    const struct rt_case *c = &rt_cases[_i];
    char cur[QRY_CURSOR_MAX], id[ASTRO_EVENT_ID_MAX + 1], err[200];
    int64_t ts;
    ck_assert_int_eq(qry_cursor_encode(c->ts, c->id, cur), ASTRO_OK);
    for (const char *p = cur; *p; p++) /* URL-safe without escaping */
        ck_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
    ck_assert_int_eq(qry_cursor_decode(cur, strlen(cur), &ts, id, err, sizeof(err)), ASTRO_OK);
    ck_assert_int_eq(ts, c->ts);
    ck_assert_str_eq(id, c->id);
}
END_TEST

START_TEST(test_every_change_refused_or_different)
{
    /* Flipping any character gives either a refusal or a different (ts, id): never the same
     * position silently, and never a crash. */
    char cur[QRY_CURSOR_MAX], id[ASTRO_EVENT_ID_MAX + 1], err[200];
    int64_t ts;
    ck_assert_int_eq(qry_cursor_encode(1767225600000000, "ev-1", cur), ASTRO_OK);
    size_t n = strlen(cur);
    for (size_t i = 0; i < n; i++) {
        char t[QRY_CURSOR_MAX];
        memcpy(t, cur, n + 1);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        if (qry_cursor_decode(t, n, &ts, id, err, sizeof(err)) == ASTRO_OK)
            ck_assert(ts != 1767225600000000 || strcmp(id, "ev-1") != 0);
    }
}
END_TEST

static const char *const bad_cursors[] = {
    "", "A", "AQ", "AQAAAAAAAAAA", "====", "AQ==", "AQAAAAAAAAAAA2FiYw==",
    "AQAGR0hGIEAAA2FiY",   /* truncated */
    "AgAGR0hGIEAAA2FiYw",  /* version 2 */
    "AQAGR0hGIEAAA2FiYw+", "AQAGR0hGIEAAA2Fi Yw", "AQAGR0hGIEAAA2FiYw==",
    "AQAGR0hGIEAAA2FiYx",  /* unused tail bits set */
    "AQAGR0hGIEAABGFiYw",  /* id length says 4, 3 bytes follow */
    "AQAGR0hGIEAAAA",      /* empty id */
    "AUAAAAAAAAAAA2FiYw",  /* ts beyond year 9999 */
    "AQAGR0hGIEAAAyBiYw",  /* id with a space */
};

START_TEST(test_bad_cursor)
{
    const char *s = bad_cursors[_i];
    char id[ASTRO_EVENT_ID_MAX + 1], err[200];
    int64_t ts;
    ck_assert_msg(qry_cursor_decode(s, strlen(s), &ts, id, err, sizeof(err)) == ASTRO_ERR,
                  "accepted \"%s\"", s);
    ck_assert(err[0] != '\0');
}
END_TEST

START_TEST(test_known_encoding)
{
    /* The format is fixed: version 1, ts big-endian, id length, id (base64url, no padding). */
    char cur[QRY_CURSOR_MAX], id[ASTRO_EVENT_ID_MAX + 1], err[200];
    int64_t ts;
    ck_assert_int_eq(qry_cursor_encode(1767225600000000, "abc", cur), ASTRO_OK);
    ck_assert_str_eq(cur, "AQAGR0hGIEAAA2FiYw");
    ck_assert_int_eq(qry_cursor_decode("AQAGR0hGIEAAA2FiYw", 18, &ts, id, err, sizeof(err)),
                     ASTRO_OK);
    ck_assert_int_eq(ts, 1767225600000000);
    ck_assert_str_eq(id, "abc");
}
END_TEST

START_TEST(test_encode_refuses_bad_ids)
{
    char cur[QRY_CURSOR_MAX];
    ck_assert_int_eq(qry_cursor_encode(0, "", cur), ASTRO_ERR);
    char longid[80];
    memset(longid, 'a', 65);
    longid[65] = '\0';
    ck_assert_int_eq(qry_cursor_encode(0, longid, cur), ASTRO_ERR);
}
END_TEST

static Suite *
cursor_suite(void)
{
    Suite *s = suite_create("query_cursor");
    TCase *tc = tcase_create("cursor");
    tcase_add_loop_test(tc, test_round_trip, 0, (int)(sizeof(rt_cases) / sizeof(rt_cases[0])));
    tcase_add_loop_test(tc, test_bad_cursor, 0,
                        (int)(sizeof(bad_cursors) / sizeof(bad_cursors[0])));
    tcase_add_test(tc, test_every_change_refused_or_different);
    tcase_add_test(tc, test_encode_refuses_bad_ids);
    tcase_add_test(tc, test_known_encoding);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(cursor_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* The JSON text writer behind the event pages: what it writes parses back (cJSON) to the
 * values given, whatever bytes a stored string holds, and PostgreSQL's float text is copied
 * only when it is a JSON number. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "query.h"

/* The writer's text as a NUL-terminated string (owned by w). */
static const char *
text(struct qry_jw *w)
{
    qry_jw_raw(w, "", 1);
    ck_assert(!w->oom);
    return w->buf + QRY_JW_HEAD;
}

START_TEST(test_strings_round_trip)
{
    static const char *const values[] = {"", "plain", "quote \" and \\ backslash",
                                         "\x01\x02\t\n\r\x1f end", "caf\xc3\xa9 \xe2\x82\xac",
                                         "</script>", "\x7f del"};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        struct qry_jw w;
        qry_jw_init(&w, 1); /* tiny: every write grows the buffer */
        qry_jw_open(&w, NULL, '{');
        qry_jw_kstr(&w, "v", values[i]);
        qry_jw_kstr(&w, "k\"ey", "x");
        qry_jw_close(&w, '}');
        cJSON *j = cJSON_Parse(text(&w));
        ck_assert_msg(j != NULL, "not JSON: %s", text(&w));
        ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "v")->valuestring, values[i]);
        ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "k\"ey")->valuestring, "x");
        cJSON_Delete(j);
        qry_jw_cleanup(&w);
    }
}
END_TEST

START_TEST(test_nesting)
{
    struct qry_jw w;
    qry_jw_init(&w, 0);
    qry_jw_open(&w, NULL, '{');
    qry_jw_open(&w, "events", '[');
    for (int i = 0; i < 3; i++) {
        qry_jw_open(&w, NULL, '{');
        qry_jw_kint(&w, "i", i);
        qry_jw_knum(&w, "v", i == 1 ? "NaN" : "-1.5e-07");
        qry_jw_kraw(&w, "m", "{\"a\":[1,2]}");
        qry_jw_close(&w, '}');
    }
    qry_jw_close(&w, ']');
    qry_jw_open(&w, "empty", '[');
    qry_jw_close(&w, ']');
    qry_jw_kstr(&w, "next", NULL);
    qry_jw_close(&w, '}');
    ck_assert_str_eq(text(&w),
                     "{\"events\":[{\"i\":0,\"v\":-1.5e-07,\"m\":{\"a\":[1,2]}},"
                     "{\"i\":1,\"v\":null,\"m\":{\"a\":[1,2]}},"
                     "{\"i\":2,\"v\":-1.5e-07,\"m\":{\"a\":[1,2]}}],\"empty\":[],\"next\":null}");
    qry_jw_cleanup(&w);
}
END_TEST

START_TEST(test_json_numbers)
{
    static const char *const good[] = {"0", "-0", "7", "101.25", "-3.5", "1e+100", "5e-324",
                                       "1.7976931348623157e+308", "2E10"};
    static const char *const bad[] = {"", "-", "NaN", "Infinity", "-Infinity", "01", "1.",
                                      ".5", "+1", "1e", "1e+", "0x10", "1 ", " 1", "1,5"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(qry_is_json_number(good[i]), "%s refused", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!qry_is_json_number(bad[i]), "%s accepted", bad[i]);
}
END_TEST

static Suite *
jsonw_suite(void)
{
    Suite *s = suite_create("query_jsonw");
    TCase *tc = tcase_create("jsonw");
    tcase_add_test(tc, test_strings_round_trip);
    tcase_add_test(tc, test_nesting);
    tcase_add_test(tc, test_json_numbers);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(jsonw_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

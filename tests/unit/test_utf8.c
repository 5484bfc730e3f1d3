/* Strict UTF-8 validation, whole-buffer and incremental (Markus Kuhn style edge cases). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "astro/utf8.h"

struct utf8_case {
    const char *name;
    const char *bytes;
    size_t len;
    bool valid;
};

#define C(name, lit, valid) {name, lit, sizeof(lit) - 1, valid}

static const struct utf8_case cases[] = {
    C("empty", "", true),
    C("ascii", "hello, world", true),
    C("embedded NUL", "a\0b", true),
    C("2-byte e-acute", "\xc3\xa9", true),
    C("3-byte euro", "\xe2\x82\xac", true),
    C("4-byte emoji", "\xf0\x9f\x98\x80", true),
    C("greek kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true),
    C("first 2-byte U+0080", "\xc2\x80", true),
    C("first 3-byte U+0800", "\xe0\xa0\x80", true),
    C("first 4-byte U+10000", "\xf0\x90\x80\x80", true),
    C("last 1-byte U+007F", "\x7f", true),
    C("last 2-byte U+07FF", "\xdf\xbf", true),
    C("last 3-byte U+FFFF", "\xef\xbf\xbf", true),
    C("last valid U+10FFFF", "\xf4\x8f\xbf\xbf", true),
    C("before surrogates U+D7FF", "\xed\x9f\xbf", true),
    C("after surrogates U+E000", "\xee\x80\x80", true),
    C("noncharacter U+FFFE", "\xef\xbf\xbe", true),
    C("above U+10FFFF", "\xf4\x90\x80\x80", false),
    C("5-byte lead", "\xf8\x88\x80\x80\x80", false),
    C("6-byte lead", "\xfc\x84\x80\x80\x80\x80", false),
    C("lead F5", "\xf5\x80\x80\x80", false),
    C("byte FE", "\xfe", false),
    C("byte FF", "\xff", false),
    C("lone continuation 80", "\x80", false),
    C("lone continuation BF", "a\xbf", false),
    C("overlong slash 2", "\xc0\xaf", false),
    C("overlong slash 3", "\xe0\x80\xaf", false),
    C("overlong slash 4", "\xf0\x80\x80\xaf", false),
    C("overlong max 2", "\xc1\xbf", false),
    C("overlong max 3", "\xe0\x9f\xbf", false),
    C("overlong max 4", "\xf0\x8f\xbf\xbf", false),
    C("overlong NUL", "\xc0\x80", false),
    C("high surrogate D800", "\xed\xa0\x80", false),
    C("low surrogate DFFF", "\xed\xbf\xbf", false),
    C("surrogate pair", "\xed\xa0\x80\xed\xb0\x80", false),
    C("truncated 2", "\xc3", false),
    C("truncated 3", "\xe2\x82", false),
    C("truncated 4", "\xf0\x9f\x98", false),
    C("truncated then ascii", "\xe2\x82x", false),
    C("lead then lead", "\xc3\xc3\xa9", false),
    C("valid then bad", "abc\xc3\xa9\xff", false),
};

START_TEST(test_whole)
{
    const struct utf8_case *c = &cases[_i];
    ck_assert_msg(astro_utf8_valid(c->bytes, c->len) == c->valid, "%s", c->name);
}
END_TEST

/* Every split into two chunks, and byte-at-a-time, gives the same verdict as the whole. */
START_TEST(test_split)
{
    const struct utf8_case *c = &cases[_i];
    for (size_t cut = 0; cut <= c->len; cut++) {
        struct astro_utf8_state st;
        astro_utf8_init(&st);
        bool ok = astro_utf8_feed(&st, c->bytes, cut) == ASTRO_OK &&
                  astro_utf8_feed(&st, c->bytes + cut, c->len - cut) == ASTRO_OK &&
                  astro_utf8_finish(&st) == ASTRO_OK;
        ck_assert_msg(ok == c->valid, "%s split at %zu", c->name, cut);
    }
    struct astro_utf8_state st;
    astro_utf8_init(&st);
    bool ok = true;
    for (size_t i = 0; i < c->len && ok; i++)
        ok = astro_utf8_feed(&st, c->bytes + i, 1) == ASTRO_OK;
    ok = ok && astro_utf8_finish(&st) == ASTRO_OK;
    ck_assert_msg(ok == c->valid, "%s byte by byte", c->name);
}
END_TEST

START_TEST(test_open_sequence_between_chunks)
{
    struct astro_utf8_state st;
    astro_utf8_init(&st);
    ck_assert_int_eq(astro_utf8_feed(&st, "ok \xf0\x9f", 5), ASTRO_OK);
    ck_assert_int_eq(astro_utf8_finish(&st), ASTRO_ERR); /* message may not end here */
    ck_assert_int_eq(astro_utf8_feed(&st, "\x98", 1), ASTRO_OK);
    ck_assert_int_eq(astro_utf8_feed(&st, "\x80!", 2), ASTRO_OK);
    ck_assert_int_eq(astro_utf8_finish(&st), ASTRO_OK);
}
END_TEST

START_TEST(test_error_is_early_and_sticky)
{
    struct astro_utf8_state st;
    astro_utf8_init(&st);
    /* An overlong lead is refused at once, before the rest of the message arrives. */
    ck_assert_int_eq(astro_utf8_feed(&st, "ab\xe0\x80", 4), ASTRO_ERR);
    ck_assert_int_eq(astro_utf8_feed(&st, "valid", 5), ASTRO_ERR);
    ck_assert_int_eq(astro_utf8_finish(&st), ASTRO_ERR);
    /* A zeroed state is a fresh validator too. */
    struct astro_utf8_state z;
    memset(&z, 0, sizeof(z));
    ck_assert_int_eq(astro_utf8_feed(&z, "\xc3\xa9", 2), ASTRO_OK);
    ck_assert_int_eq(astro_utf8_finish(&z), ASTRO_OK);
}
END_TEST

static Suite *
utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("utf8");
    int n = (int)(sizeof(cases) / sizeof(cases[0]));
    tcase_add_loop_test(tc, test_whole, 0, n);
    tcase_add_loop_test(tc, test_split, 0, n);
    tcase_add_test(tc, test_open_sequence_between_chunks);
    tcase_add_test(tc, test_error_is_early_and_sticky);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(utf8_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* COPY text-format row building: every byte arrives as written, NULL stays distinct from "". */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "astro/pg.h"

#define END ((const char *)-1) /* terminates a field list; NULL is a SQL NULL field */

struct row_case {
    const char *name;
    const char *fields[5];
    const char *want;
};

static const struct row_case rows[] = {
    { "plain", { "a", "b", END }, "a\tb\n" },
    { "sql null", { NULL, "x", END }, "\\N\tx\n" },
    { "literal backslash-N is text", { "\\N", END }, "\\\\N\n" },
    { "empty string is not null", { "", END }, "\n" },
    { "two empty strings", { "", "", END }, "\t\n" },
    { "tab", { "tab\there", END }, "tab\\there\n" },
    { "newline and cr", { "line\nbreak\r", END }, "line\\nbreak\\r\n" },
    { "backslash", { "C:\\dir\\", END }, "C:\\\\dir\\\\\n" },
    { "end-of-data marker", { "\\.", END }, "\\\\.\n" },
    { "utf-8 untouched", { "caf\xc3\xa9 \xe2\x9c\x93", END }, "caf\xc3\xa9 \xe2\x9c\x93\n" },
    { "json metadata", { "{\"a\":\"x\\ty\"}", END }, "{\"a\":\"x\\\\ty\"}\n" },
    { "all nulls", { NULL, NULL, NULL, END }, "\\N\t\\N\t\\N\n" },
};

static struct astro_pg_copybuf buf;

static void
setup(void)
{
    astro_pg_copybuf_init(&buf);
}

static void
teardown(void)
{
    astro_pg_copybuf_cleanup(&buf);
}

static void
ck_buf_eq(const char *want)
{
    ck_assert_uint_eq(buf.len, strlen(want));
    ck_assert_msg(memcmp(buf.data, want, buf.len) == 0, "got \"%.*s\", want \"%s\"",
                  (int)buf.len, buf.data, want);
}

START_TEST(test_row_escaping)
{
    const struct row_case *c = &rows[_i];
    for (int f = 0; c->fields[f] != END; f++)
        ck_assert_msg(astro_pg_copybuf_str(&buf, c->fields[f]) == ASTRO_OK, "%s", c->name);
    ck_assert_int_eq(astro_pg_copybuf_end_row(&buf), ASTRO_OK);
    ck_assert_uint_eq(buf.rows, 1);
    ck_buf_eq(c->want);
}
END_TEST

START_TEST(test_field_with_length_keeps_bytes_after_it_out)
{
    ck_assert_int_eq(astro_pg_copybuf_field(&buf, "abcdef", 3), ASTRO_OK);
    ck_assert_int_eq(astro_pg_copybuf_end_row(&buf), ASTRO_OK);
    ck_buf_eq("abc\n");
}
END_TEST

START_TEST(test_nul_byte_is_refused)
{
    ck_assert_int_eq(astro_pg_copybuf_field(&buf, "a\0b", 3), ASTRO_ERR);
    ck_assert(buf.failed);
    /* A spoiled buffer is never sent. */
    struct astro_pg pg = { 0 };
    char err[128] = "";
    ck_assert_int_eq(astro_pg_copy_put(&pg, &buf, err, sizeof(err)), ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "NUL byte"));
}
END_TEST

START_TEST(test_half_built_row_is_not_sent)
{
    struct astro_pg pg = { 0 };
    char err[128] = "";
    ck_assert_int_eq(astro_pg_copybuf_str(&buf, "a"), ASTRO_OK);
    ck_assert_int_eq(astro_pg_copybuf_end_row(&buf), ASTRO_OK);
    ck_assert_int_eq(astro_pg_copybuf_str(&buf, "b"), ASTRO_OK);
    ck_assert_int_eq(astro_pg_copy_put(&pg, &buf, err, sizeof(err)), ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "half built"));
}
END_TEST

START_TEST(test_many_rows_and_growth)
{
    /* 3000 backslashes double to 6000 bytes: past the first 4 KiB allocation. */
    char big[3001];
    memset(big, '\\', 3000);
    big[3000] = '\0';
    for (int r = 0; r < 10; r++) {
        ck_assert_int_eq(astro_pg_copybuf_str(&buf, "k"), ASTRO_OK);
        ck_assert_int_eq(astro_pg_copybuf_str(&buf, big), ASTRO_OK);
        ck_assert_int_eq(astro_pg_copybuf_end_row(&buf), ASTRO_OK);
    }
    ck_assert_uint_eq(buf.rows, 10);
    ck_assert_uint_eq(buf.len, 10 * (1 + 1 + 6000 + 1));
    for (size_t i = 2; i < 6002; i++)
        ck_assert_int_eq(buf.data[i], '\\');
    size_t cap = buf.cap;
    astro_pg_copybuf_reset(&buf);
    ck_assert_uint_eq(buf.len, 0);
    ck_assert_uint_eq(buf.rows, 0);
    ck_assert_uint_eq(buf.cap, cap);
    ck_assert_int_eq(astro_pg_copybuf_str(&buf, "x"), ASTRO_OK);
    ck_assert_int_eq(astro_pg_copybuf_end_row(&buf), ASTRO_OK);
    ck_buf_eq("x\n");
}
END_TEST

static Suite *
pg_copy_suite(void)
{
    Suite *s = suite_create("pg_copy");
    TCase *tc = tcase_create("copybuf");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_row_escaping, 0, (int)ASTRO_ARRAY_LEN(rows));
    tcase_add_test(tc, test_field_with_length_keeps_bytes_after_it_out);
    tcase_add_test(tc, test_nul_byte_is_refused);
    tcase_add_test(tc, test_half_built_row_is_not_sent);
    tcase_add_test(tc, test_many_rows_and_growth);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(pg_copy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

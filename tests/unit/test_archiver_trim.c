/* The archiver's stream-id arithmetic and trim floor: what XTRIM MINID may remove. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "archiver.h"

static struct arc_id
id(const char *s)
{
    struct arc_id a;
    ck_assert_msg(arc_id_parse(s, &a) == ASTRO_OK, "parse %s", s);
    return a;
}

static void
ck_id(struct arc_id a, const char *want)
{
    char buf[48];
    arc_id_format(a, buf, sizeof(buf));
    ck_assert_str_eq(buf, want);
}

static const struct {
    const char *in;
    int ok;
    const char *out;
} parse_cases[] = {
    {"1700000000000-5", 1, "1700000000000-5"},
    {"0-0", 1, "0-0"},
    {"42", 1, "42-0"},
    {"18446744073709551615-18446744073709551615", 1, "18446744073709551615-18446744073709551615"},
    {"", 0, NULL},
    {"-1", 0, NULL},
    {"12-", 0, NULL},
    {"12-x", 0, NULL},
    {"12-3-4", 0, NULL},
    {"18446744073709551616-0", 0, NULL},
    {" 12-3", 0, NULL},
};

START_TEST(parse_table)
{
    struct arc_id a;
    int ok = arc_id_parse(parse_cases[_i].in, &a) == ASTRO_OK;
    ck_assert_msg(ok == parse_cases[_i].ok, "%s", parse_cases[_i].in);
    if (ok)
        ck_id(a, parse_cases[_i].out);
}
END_TEST

START_TEST(order_and_successor)
{
    ck_assert_int_lt(arc_id_cmp(id("5-9"), id("6-0")), 0);
    ck_assert_int_gt(arc_id_cmp(id("6-1"), id("6-0")), 0);
    ck_assert_int_eq(arc_id_cmp(id("6-1"), id("6-1")), 0);
    ck_id(arc_id_next(id("6-1")), "6-2");
    ck_id(arc_id_next(id("6-18446744073709551615")), "7-0");
}
END_TEST

struct floor_case {
    const char *name;
    struct arc_group_info g[3];
    size_t ng;
    const char *age;
    const char *rebuild; /* NULL: none */
    int trim;
    const char *want;
};

#define G_PEND(first, last) {true, {first, 0}, {last, 0}}
#define G_DONE(last) {false, {0, 0}, {last, 0}}

static const struct floor_case floor_cases[] = {
    {"no group: never trimmed", {{0}}, 0, "1000-0", NULL, 0, NULL},
    {"all read and acked: age wins", {G_DONE(5000)}, 1, "1000-0", NULL, 1, "1000-0"},
    {"acked up to 500: keeps 500-1 on", {G_DONE(500)}, 1, "1000-0", NULL, 1, "500-1"},
    {"pending entry is kept", {G_PEND(300, 900)}, 1, "1000-0", NULL, 1, "300-0"},
    {"slowest of several groups", {G_DONE(5000), G_PEND(700, 800), G_DONE(400)}, 3, "9000-0",
     NULL, 1, "400-1"},
    {"rebuild point older than everything", {G_DONE(5000)}, 1, "9000-0", "200-3", 1, "200-3"},
    {"rebuild point newer: group wins", {G_PEND(100, 200)}, 1, "9000-0", "150-0", 1, "100-0"},
    {"nothing old enough", {G_DONE(5000)}, 1, "0-0", NULL, 1, "0-0"},
};

START_TEST(floor_table)
{
    const struct floor_case *c = &floor_cases[_i];
    struct arc_id minid, rb;
    if (c->rebuild != NULL)
        rb = id(c->rebuild);
    bool trim = arc_trim_floor(c->g, c->ng, id(c->age), c->rebuild ? &rb : NULL, &minid);
    ck_assert_msg(trim == (c->trim != 0), "%s", c->name);
    if (trim)
        ck_id(minid, c->want);
}
END_TEST

static Suite *
trim_suite(void)
{
    Suite *s = suite_create("archiver_trim");
    TCase *tc = tcase_create("ids");
    tcase_add_loop_test(tc, parse_table, 0, (int)ASTRO_ARRAY_LEN(parse_cases));
    tcase_add_test(tc, order_and_successor);
    suite_add_tcase(s, tc);
    tc = tcase_create("floor");
    tcase_add_loop_test(tc, floor_table, 0, (int)ASTRO_ARRAY_LEN(floor_cases));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(trim_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

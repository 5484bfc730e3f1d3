/* The rule language: what parses into which rule, and where a bad file is reported. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

static struct cep_ruleset rs;
static char err[256];

static void
setup(void)
{
    memset(&rs, 0, sizeof(rs));
    err[0] = '\0';
}

static void
teardown(void)
{
    cep_ruleset_free(&rs);
}

static int
parse(const char *text)
{
    return cep_rules_parse(text, strlen(text), &rs, err, sizeof(err));
}

START_TEST(default_rules_file_loads)
{
    ck_assert_int_eq(cep_rules_load(ASTRO_SRCDIR "/deploy/rules/default.rules", &rs, err,
                                    sizeof(err)), ASTRO_OK);
    ck_assert_uint_eq(rs.n, 2);
    ck_assert_str_eq(rs.rules[0].name, "type_A_and_B_within_window");
    ck_assert_uint_eq(rs.rules[0].nparts, 2);
    ck_assert_str_eq(rs.rules[1].name, "type_A_B_C_convergence");
    ck_assert_uint_eq(rs.rules[1].nparts, 3);
    ck_assert_str_eq(rs.rules[1].parts[2].type, "C");
    ck_assert_int_eq(rs.rules[1].within_us, 2000000);
    ck_assert_int_eq(rs.max_within_us, 2000000);
}
END_TEST

START_TEST(all_of_with_sources_and_predicates)
{
    ck_assert_msg(parse("rule r1   # comment\n"
                        "  all A from axon_1 where value > 10 and value <= 20.5, * from axon_2\n"
                        "  within 1500ms\n  global\n  reuse\n  value max\n  emit spike\n"
                        "  confidence 0.5 + 0.5 * (matched / required)\n") == ASTRO_OK,
                  "%s", err);
    const struct cep_rule *r = &rs.rules[0];
    ck_assert_int_eq(r->op, CEP_OP_ALL);
    ck_assert_str_eq(r->parts[0].type, "A");
    ck_assert_str_eq(r->parts[0].src, "axon_1");
    ck_assert_uint_eq(r->parts[0].npreds, 2);
    ck_assert_int_eq(r->parts[0].preds[0].cmp, CEP_GT);
    ck_assert_double_eq(r->parts[0].preds[1].rhs, 20.5);
    ck_assert_str_eq(r->parts[1].type, "");
    ck_assert_str_eq(r->parts[1].src, "axon_2");
    ck_assert_int_eq(r->within_us, 1500000);
    ck_assert(r->global && r->reuse);
    ck_assert_int_eq(r->agg, CEP_AGG_MAX);
    ck_assert_str_eq(r->emit, "spike");
    ck_assert_double_eq_tol(cep_expr_eval(&r->conf, 1, 2), 0.75, 1e-12);
    ck_assert(cep_part_match(&r->parts[0], "A", "axon_1", 15));
    ck_assert(!cep_part_match(&r->parts[0], "A", "axon_1", 10));
    ck_assert(!cep_part_match(&r->parts[0], "A", "axon_2", 15));
    ck_assert(cep_part_match(&r->parts[1], "Z", "axon_2", -1));
}
END_TEST

START_TEST(other_operators_and_defaults)
{
    ck_assert_msg(parse("rule s\n seq A, B, C\n within 2s\n"
                        "rule c\n count 3 T where value != 0\n within 1m\n value sum\n"
                        "rule x\n absence A without B from b\n within 5s\n confidence 0.9\n"
                        "rule p\n all A, B, C\n within 2s\n min 2\n per key\n consume\n") ==
                      ASTRO_OK,
                  "%s", err);
    ck_assert_uint_eq(rs.n, 4);
    ck_assert_int_eq(rs.rules[0].op, CEP_OP_SEQ);
    ck_assert_str_eq(rs.rules[0].emit, "s");
    ck_assert(!rs.rules[0].global && !rs.rules[0].reuse);
    ck_assert_int_eq(rs.rules[0].agg, CEP_AGG_AVG);
    ck_assert_double_eq(cep_expr_eval(&rs.rules[0].conf, 2, 4), 0.5);
    ck_assert_int_eq(rs.rules[1].op, CEP_OP_COUNT);
    ck_assert_uint_eq(rs.rules[1].count, 3);
    ck_assert_int_eq(rs.rules[1].within_us, 60000000);
    ck_assert_int_eq(rs.rules[2].op, CEP_OP_ABSENCE);
    ck_assert_str_eq(rs.rules[2].parts[1].src, "b");
    ck_assert_double_eq(cep_expr_eval(&rs.rules[2].conf, 1, 1), 0.9);
    ck_assert_uint_eq(rs.rules[3].min_parts, 2);
    ck_assert_int_eq(rs.max_within_us, 60000000);
}
END_TEST

/* Each bad file is reported at the line and column of the offending token. */
static const struct {
    const char *text;
    const char *want; /* prefix of err */
} bad[] = {
    {"", "1:1: no rules"},
    {"  all A\n", "1:3: expected 'rule NAME'"},
    {"rule r\n  all A,\n  within 2s\n", "2:9: expected an event type"},
    {"rule r\n  all A from\n  within 2s\n", "2:13: expected source"},
    {"rule r\n  all A where value >> 3\n within 2s\n", "2:22: expected a number"},
    {"rule r\n  all A where size > 3\n within 2s\n", "2:15: expected 'value'"},
    {"rule r\n  all A\n  within 2 s\n", "3:12: unexpected \"s\""},
    {"rule r\n  all A\n  within soon\n", "3:10: expected a duration"},
    {"rule r\n  all A\n", "1:1: rule \"r\" has no window"},
    {"rule r\n  within 2s\nrule q\n", "1:1: rule \"r\" has no pattern"},
    {"rule r\n  all A\n  seq B\n  within 1s\n", "3:3: rule already has a pattern"},
    {"rule r\n  all A\n  within 1s\n  colour red\n", "4:3: unknown directive"},
    {"rule r\n  all A\n  within 1s\nrule r\n", "4:6: duplicate rule name"},
    {"rule r\n  count 0 A\n  within 1s\n", "2:9: expected a whole number"},
    {"rule r\n  absence A with B\n  within 1s\n", "2:13: expected 'without'"},
    {"rule r\n  all A\n  within 1s\n  confidence matched / (required\n",
     "4:33: expected ')'"},
    {"rule r\n  all A\n  within 1s\n  confidence matchd\n", "4:14: expected a number"},
    {"rule r\n  all A\n  within 1s\n  value median\n", "4:9: expected avg"},
    {"rule r\n  seq A, B\n  within 1s\n  min 1\n", "1:1: rule \"r\": min needs"},
    {"rule bad/name\n", "1:9: unexpected \"/\""},
    {"rule r\n  all A$\n within 1s\n", "2:8: unexpected \"$\""},
};

START_TEST(bad_files_report_line_and_column)
{
    ck_assert_int_eq(parse(bad[_i].text), ASTRO_ERR);
    ck_assert_msg(strncmp(err, bad[_i].want, strlen(bad[_i].want)) == 0,
                  "case %d: got \"%s\", want \"%s...\"", _i, err, bad[_i].want);
    ck_assert_uint_eq(rs.n, 0);
}
END_TEST

START_TEST(load_names_the_file)
{
    ck_assert_int_eq(cep_rules_load("/nonexistent/x.rules", &rs, err, sizeof(err)), ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/x.rules: "));
}
END_TEST

START_TEST(confidence_is_clamped)
{
    struct cep_expr x;
    ck_assert_int_eq(cep_expr_parse("2 * matched", &x, err, sizeof(err)), ASTRO_OK);
    ck_assert_double_eq(cep_expr_eval(&x, 3, 3), 1.0);
    ck_assert_int_eq(cep_expr_parse("matched - required", &x, err, sizeof(err)), ASTRO_OK);
    ck_assert_double_eq(cep_expr_eval(&x, 1, 3), 0.0);
    ck_assert_int_eq(cep_expr_parse("matched / 0", &x, err, sizeof(err)), ASTRO_OK);
    ck_assert_double_eq(cep_expr_eval(&x, 1, 3), 0.0);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("leaflet_rules");
    TCase *tc = tcase_create("rules");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, default_rules_file_loads);
    tcase_add_test(tc, all_of_with_sources_and_predicates);
    tcase_add_test(tc, other_operators_and_defaults);
    tcase_add_loop_test(tc, bad_files_report_line_and_column, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, load_names_the_file);
    tcase_add_test(tc, confidence_is_clamped);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

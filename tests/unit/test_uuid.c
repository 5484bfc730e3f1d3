/* UUID parsing, formatting, v4, v5 (RFC 4122 vector) and the multi-event id derivation. */
#include <check.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "astro/uuid.h"

struct parse_case {
    const char *in;
    const char *out; /* NULL = must be rejected */
};

static const struct parse_case cases[] = {
    {"2ed6657d-e927-568b-95e1-2665a8aea6a2", "2ed6657d-e927-568b-95e1-2665a8aea6a2"},
    {"2ED6657D-E927-568B-95E1-2665A8AEA6A2", "2ed6657d-e927-568b-95e1-2665a8aea6a2"},
    {"2Ed6657d-e927-568B-95e1-2665a8aeA6a2", "2ed6657d-e927-568b-95e1-2665a8aea6a2"},
    {"00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"},
    {"ffffffff-ffff-ffff-ffff-ffffffffffff", "ffffffff-ffff-ffff-ffff-ffffffffffff"},
    {"{2ed6657d-e927-568b-95e1-2665a8aea6a2}", NULL},
    {"urn:uuid:2ed6657d-e927-568b-95e1-2665a8aea6a2", NULL},
    {"2ed6657de927568b95e12665a8aea6a2", NULL},
    {"2ed6657d-e927-568b-95e1-2665a8aea6a", NULL},
    {"2ed6657d-e927-568b-95e1-2665a8aea6a2a", NULL},
    {"2ed6657d-e927-568b-95e1-2665a8aea6ag", NULL},
    {"2ed6657de-927-568b-95e1-2665a8aea6a2", NULL},
    {"2ed6657d-e927-568b-95e1_2665a8aea6a2", NULL},
    {"2ed6657d-e927-568b-95e1-2665a8aea6 2", NULL},
    {" 2ed6657d-e927-568b-95e1-2665a8aea6a", NULL},
    {"+ed6657d-e927-568b-95e1-2665a8aea6a2", NULL},
    {"", NULL},
};

START_TEST(test_parse)
{
    const struct parse_case *c = &cases[_i];
    struct astro_uuid u;
    char out[ASTRO_UUID_STR_LEN + 1];
    int rc = astro_uuid_parse(c->in, strlen(c->in), &u);
    if (c->out == NULL) {
        ck_assert_msg(rc == ASTRO_ERR, "accepted %s", c->in);
        return;
    }
    ck_assert_msg(rc == ASTRO_OK, "rejected %s", c->in);
    astro_uuid_format(&u, out);
    ck_assert_str_eq(out, c->out);
}
END_TEST

START_TEST(test_v5_rfc4122_example)
{
    struct astro_uuid dns, u;
    char out[ASTRO_UUID_STR_LEN + 1];
    const char *ns = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
    ck_assert_int_eq(astro_uuid_parse(ns, strlen(ns), &dns), ASTRO_OK);
    ck_assert_int_eq(astro_uuid_v5(&dns, "www.example.com", 15, &u), ASTRO_OK);
    astro_uuid_format(&u, out);
    ck_assert_str_eq(out, "2ed6657d-e927-568b-95e1-2665a8aea6a2");
}
END_TEST

START_TEST(test_v4)
{
    struct astro_uuid a, b;
    char sa[ASTRO_UUID_STR_LEN + 1], sb[ASTRO_UUID_STR_LEN + 1];
    ck_assert_int_eq(astro_uuid_v4(&a), ASTRO_OK);
    ck_assert_int_eq(astro_uuid_v4(&b), ASTRO_OK);
    astro_uuid_format(&a, sa);
    astro_uuid_format(&b, sb);
    ck_assert_str_ne(sa, sb);
    ck_assert_int_eq(sa[14], '4');                   /* version */
    ck_assert_ptr_nonnull(strchr("89ab", sa[19])); /* RFC 4122 variant */
    struct astro_uuid back;
    ck_assert_int_eq(astro_uuid_parse(sa, strlen(sa), &back), ASTRO_OK);
    ck_assert_mem_eq(back.b, a.b, 16);
}
END_TEST

START_TEST(test_derive_matches_reference)
{
    /* Python: uuid5(UUID(ASTRO_UUID_NAMESPACE), "r1\na-1\nb-2\nc-3") */
    const char *ids[] = {"b-2", "c-3", "a-1"};
    struct astro_uuid u;
    char out[ASTRO_UUID_STR_LEN + 1];
    ck_assert_int_eq(astro_uuid_derive("r1", ids, 3, &u), ASTRO_OK);
    astro_uuid_format(&u, out);
    ck_assert_str_eq(out, "0740ed20-d039-5807-a6b9-d3f8609dd039");
    /* The caller's array is not reordered. */
    ck_assert_str_eq(ids[0], "b-2");
    ck_assert_int_eq(astro_uuid_derive("r1", NULL, 0, &u), ASTRO_OK);
    astro_uuid_format(&u, out);
    ck_assert_str_eq(out, "47959ad1-0d71-5ec0-8a76-01229e131843");
}
END_TEST

START_TEST(test_derive_order_independent)
{
    const char *x[] = {"e1", "e2", "e3", "e4"};
    const char *y[] = {"e4", "e2", "e1", "e3"};
    const char *z[] = {"e1", "e2", "e3"};
    struct astro_uuid a, b, c, d;
    ck_assert_int_eq(astro_uuid_derive("rule", x, 4, &a), ASTRO_OK);
    ck_assert_int_eq(astro_uuid_derive("rule", y, 4, &b), ASTRO_OK);
    ck_assert_int_eq(astro_uuid_derive("rule", z, 3, &c), ASTRO_OK);
    ck_assert_int_eq(astro_uuid_derive("other", x, 4, &d), ASTRO_OK);
    ck_assert_mem_eq(a.b, b.b, 16);
    ck_assert(memcmp(a.b, c.b, 16) != 0);
    ck_assert(memcmp(a.b, d.b, 16) != 0);
    char out[ASTRO_UUID_STR_LEN + 1];
    astro_uuid_format(&a, out);
    ck_assert_int_eq(out[14], '5');
}
END_TEST

/* More sources than derive's stack copy holds: the id must still be v5 of "rule\n" + the sorted
 * ids joined by "\n", whatever order they come in. */
START_TEST(test_derive_many_ids_equals_v5_of_joined_name)
{
    enum { N = 40 };
    char names[N][8];
    const char *fwd[N], *rev[N];
    char joined[16 + N * 8] = "rule";
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "e%02d", i);
        fwd[i] = names[i];
        rev[N - 1 - i] = names[i];
        strcat(joined, "\n");
        strcat(joined, names[i]);
    }
    struct astro_uuid ns, want, a, b;
    ck_assert_int_eq(astro_uuid_parse(ASTRO_UUID_NAMESPACE, ASTRO_UUID_STR_LEN, &ns), ASTRO_OK);
    ck_assert_int_eq(astro_uuid_v5(&ns, joined, strlen(joined), &want), ASTRO_OK);
    ck_assert_int_eq(astro_uuid_derive("rule", fwd, N, &a), ASTRO_OK);
    ck_assert_int_eq(astro_uuid_derive("rule", rev, N, &b), ASTRO_OK);
    ck_assert_mem_eq(a.b, want.b, 16);
    ck_assert_mem_eq(b.b, want.b, 16);
}
END_TEST

static Suite *
uuid_suite(void)
{
    Suite *s = suite_create("uuid");
    TCase *tc = tcase_create("uuid");
    tcase_add_loop_test(tc, test_parse, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, test_v5_rfc4122_example);
    tcase_add_test(tc, test_v4);
    tcase_add_test(tc, test_derive_matches_reference);
    tcase_add_test(tc, test_derive_order_independent);
    tcase_add_test(tc, test_derive_many_ids_equals_v5_of_joined_name);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(uuid_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* astro-produce: flag parsing, reproducible generation (ids a user can recompute), latency
 * percentiles. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "produce.h"

struct bad_case {
    const char *flag, *value, *needle;
};

static const struct bad_case bad_cases[] = {
    {"--rate", "fast", "--rate"},
    {"--rate", "-1", "--rate"},
    {"--keys", "0", "--keys"},
    {"--keys", "10x", "--keys"},
    {"--duration", "ten", "--duration"},
    {"--pattern", "zigzag", "--pattern"},
    {"--url", "wss://h:1/x", "--url"},
    {"--url", "ws://h:99999/x", "port"},
    {"--batch", "0", "--batch"},
    {"--bogus", "1", "unknown flag"},
};

START_TEST(bad_flag_is_refused_and_named)
{
    const struct bad_case *c = &bad_cases[_i];
    char *argv[] = {"astro-produce", "--api-key", "k", (char *)c->flag, (char *)c->value, NULL};
    struct prd_config cfg;
    bool help;
    char err[256] = "";
    ck_assert_int_eq(prd_args_parse(5, argv, &cfg, &help, err, sizeof(err)), ASTRO_ERR);
    ck_assert_msg(strstr(err, c->needle) != NULL, "%s %s -> %s", c->flag, c->value, err);
}
END_TEST

START_TEST(good_flags_are_applied)
{
    char *argv[] = {"astro-produce", "--url", "ws://ingest.local:8101/stream?x=1", "--api-key",
                    "secret", "--rate", "250.5", "--keys", "7", "--duration", "2m", "--seed",
                    "42", "--pattern", "abc-pairs", "--count", "99", NULL};
    struct prd_config cfg;
    bool help;
    char err[256] = "";
    ck_assert_int_eq(prd_args_parse(17, argv, &cfg, &help, err, sizeof(err)), ASTRO_OK);
    ck_assert_str_eq(cfg.host, "ingest.local");
    ck_assert_int_eq(cfg.port, 8101);
    ck_assert_str_eq(cfg.path, "/stream?x=1");
    ck_assert_double_eq(cfg.rate, 250.5);
    ck_assert_int_eq(cfg.keys, 7);
    ck_assert_int_eq(cfg.duration_ms, 120000);
    ck_assert_int_eq(cfg.seed, 42);
    ck_assert_int_eq(cfg.count, 99);
    ck_assert_int_eq(cfg.pattern, PRD_ABC_PAIRS);
    ck_assert(!help);
}
END_TEST

START_TEST(http_url_selects_http_mode_with_default_path)
{
    char *argv[] = {"astro-produce", "--url", "http://10.0.0.5:8001", "--api-key", "k", NULL};
    struct prd_config cfg;
    bool help;
    char err[256] = "";
    ck_assert_int_eq(prd_args_parse(5, argv, &cfg, &help, err, sizeof(err)), ASTRO_OK);
    ck_assert(cfg.http);
    ck_assert_str_eq(cfg.host, "10.0.0.5");
    ck_assert_int_eq(cfg.port, 8001);
    ck_assert_str_eq(cfg.path, "/events");
    char *ws[] = {"astro-produce", "--url", "ws://h", "--api-key", "k", NULL};
    ck_assert_int_eq(prd_args_parse(5, ws, &cfg, &help, err, sizeof(err)), ASTRO_OK);
    ck_assert(!cfg.http);
    ck_assert_int_eq(cfg.port, 80);
    ck_assert_str_eq(cfg.path, "/stream");
}
END_TEST

START_TEST(missing_key_is_refused)
{
    unsetenv("ASTRO_API_KEY");
    char *argv[] = {"astro-produce", "--rate", "5", NULL};
    struct prd_config cfg;
    bool help;
    char err[256] = "";
    ck_assert_int_eq(prd_args_parse(3, argv, &cfg, &help, err, sizeof(err)), ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "--api-key"));
}
END_TEST

/* The documented id: uuid5(namespace, "produce:<pattern>:<seed>:<i>"), computed here
 * independently by Python's uuid.uuid5(uuid.UUID("94b66057-..."), "produce:abc-pairs:7:0"). */
START_TEST(ids_are_the_documented_uuid5)
{
    struct prd_gen g;
    struct prd_event ev;
    ck_assert_int_eq(prd_gen_init(&g, PRD_ABC_PAIRS, 7, 3), ASTRO_OK);
    ck_assert_int_eq(prd_gen_event(&g, 0, &ev), ASTRO_OK);
    ck_assert_str_eq(ev.id, "5a5de473-17cf-5cf1-80ed-4d52c7786f95");
}
END_TEST

START_TEST(same_seed_same_events_other_seed_other_ids)
{
    struct prd_gen a, b, c, d;
    ck_assert_int_eq(prd_gen_init(&a, PRD_DEMO, 5, 10), ASTRO_OK);
    ck_assert_int_eq(prd_gen_init(&b, PRD_DEMO, 5, 10), ASTRO_OK);
    ck_assert_int_eq(prd_gen_init(&c, PRD_DEMO, 6, 10), ASTRO_OK);
    ck_assert_int_eq(prd_gen_init(&d, PRD_TRADES, 5, 10), ASTRO_OK);
    for (uint64_t i = 0; i < 200; i++) {
        struct prd_event x, y, z, w;
        ck_assert_int_eq(prd_gen_event(&a, i, &x), ASTRO_OK);
        ck_assert_int_eq(prd_gen_event(&b, i, &y), ASTRO_OK);
        ck_assert_int_eq(prd_gen_event(&c, i, &z), ASTRO_OK);
        ck_assert_int_eq(prd_gen_event(&d, i, &w), ASTRO_OK);
        ck_assert_str_ne(x.id, w.id); /* another pattern, same seed: other ids */
        ck_assert_str_eq(x.id, y.id);
        ck_assert_str_eq(x.key, y.key);
        ck_assert_str_eq(x.type, y.type);
        ck_assert_double_eq(x.value, y.value);
        ck_assert_str_ne(x.id, z.id);
    }
}
END_TEST

/* abc-pairs: per key A/axon_1, B/axon_2, C/axon_3 back to back, keys in order, then repeat. */
START_TEST(abc_pairs_sequence)
{
    static const char *const want[][3] = {
        {"user_0", "axon_1", "A"}, {"user_0", "axon_2", "B"}, {"user_0", "axon_3", "C"},
        {"user_1", "axon_1", "A"}, {"user_1", "axon_2", "B"}, {"user_1", "axon_3", "C"},
        {"user_0", "axon_1", "A"},
    };
    struct prd_gen g;
    ck_assert_int_eq(prd_gen_init(&g, PRD_ABC_PAIRS, 1, 2), ASTRO_OK);
    for (uint64_t i = 0; i < 7; i++) {
        struct prd_event ev;
        ck_assert_int_eq(prd_gen_event(&g, i, &ev), ASTRO_OK);
        ck_assert_str_eq(ev.key, want[i][0]);
        ck_assert_str_eq(ev.src, want[i][1]);
        ck_assert_str_eq(ev.type, want[i][2]);
        ck_assert_int_eq(ev.kind, PRD_KIND_EVENT);
    }
}
END_TEST

START_TEST(demo_has_edge_messages_and_json_fits)
{
    struct prd_gen g;
    char buf[4096];
    int kinds[3] = {0};
    ck_assert_int_eq(prd_gen_init(&g, PRD_DEMO, 3, 4), ASTRO_OK);
    for (uint64_t i = 0; i < 100; i++) {
        struct prd_event ev;
        ck_assert_int_eq(prd_gen_event(&g, i, &ev), ASTRO_OK);
        kinds[ev.kind]++;
        size_t n = prd_gen_json(&g, i, &ev, 1764558000000000, buf, 0, sizeof(buf));
        ck_assert_uint_gt(n, 0);
        ck_assert_ptr_nonnull(strstr(buf, ev.id));
        if (ev.kind == PRD_KIND_RAW)
            ck_assert_ptr_nonnull(strstr(buf, "\"channels\":["));
        if (ev.kind == PRD_KIND_FEATURES)
            ck_assert_ptr_nonnull(strstr(buf, "\"band_powers\":{"));
    }
    ck_assert_int_eq(kinds[PRD_KIND_FEATURES], 10);
    ck_assert_int_eq(kinds[PRD_KIND_RAW], 10);
    ck_assert_uint_eq(prd_gen_json(&g, 0, &(struct prd_event){.id = "x", .key = "k",
                                                              .src = "s", .type = "A"},
                                   0, buf, 0, 16), 0);
}
END_TEST

START_TEST(latency_percentiles)
{
    struct prd_lat l = {0};
    ck_assert_int_eq(prd_lat_quantile(&l, 0.5), 0);
    for (int64_t v = 100; v >= 1; v--)
        ck_assert_int_eq(prd_lat_add(&l, v * 1000), ASTRO_OK);
    ck_assert_int_eq(prd_lat_quantile(&l, 0.50), 50000);
    ck_assert_int_eq(prd_lat_quantile(&l, 0.99), 99000);
    ck_assert_int_eq(prd_lat_quantile(&l, 1.0), 100000);
    prd_lat_cleanup(&l);
}
END_TEST

static Suite *
produce_suite(void)
{
    Suite *s = suite_create("produce");
    TCase *tc = tcase_create("args");
    tcase_add_loop_test(tc, bad_flag_is_refused_and_named, 0, (int)ASTRO_ARRAY_LEN(bad_cases));
    tcase_add_test(tc, good_flags_are_applied);
    tcase_add_test(tc, http_url_selects_http_mode_with_default_path);
    tcase_add_test(tc, missing_key_is_refused);
    suite_add_tcase(s, tc);
    tc = tcase_create("gen");
    tcase_add_test(tc, ids_are_the_documented_uuid5);
    tcase_add_test(tc, same_seed_same_events_other_seed_other_ids);
    tcase_add_test(tc, abc_pairs_sequence);
    tcase_add_test(tc, demo_has_edge_messages_and_json_fits);
    tcase_add_test(tc, latency_percentiles);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(produce_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

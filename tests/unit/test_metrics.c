/* Metrics: exact Prometheus exposition text, validation, and exact sums under concurrency. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "astro/metrics.h"

static struct astro_metrics *reg;

static void
setup(void)
{
    reg = astro_metrics_new();
    ck_assert_ptr_nonnull(reg);
}

static void
teardown(void)
{
    astro_metrics_free(reg);
    reg = NULL;
}

/* Renders and compares with want, freeing the buffer. */
static void
assert_render(const char *want)
{
    size_t len = 0;
    char *got = astro_metrics_render(reg, &len);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(len, strlen(got));
    ck_assert_str_eq(got, want);
    free(got);
}

START_TEST(exposition_text)
{
    char labels[128];
    ck_assert_int_eq(astro_metrics_labels(labels, sizeof(labels), "source", "axon\"1\\x\ny",
                                          (char *)NULL),
                     ASTRO_OK);
    ck_assert_str_eq(labels, "source=\"axon\\\"1\\\\x\\ny\"");
    struct astro_counter *c1 = astro_metrics_counter(reg, "astro_events_total", "Events accepted.",
                                                     labels);
    struct astro_counter *c2 = astro_metrics_counter(reg, "astro_events_total", "Events accepted.",
                                                     NULL);
    struct astro_gauge *g = astro_metrics_gauge(reg, "astro_queue_depth", "Queue depth.", NULL);
    struct astro_gauge *tenth = astro_metrics_gauge(reg, "astro_ratio", "A ratio.", "k=\"v\"");
    static const double bounds[] = {0.25, 0.5, 1};
    struct astro_histogram *h =
        astro_metrics_histogram(reg, "astro_latency_seconds", "Latency.\nIn \\ seconds.",
                                "op=\"copy\"", bounds, 3);
    ck_assert(c1 && c2 && g && tenth && h);
    astro_counter_add(c1, 2);
    astro_counter_inc(c1);
    astro_counter_add(c2, 5);
    astro_gauge_set(g, 1.5);
    astro_gauge_add(g, -0.25);
    astro_gauge_set(tenth, 0.1);
    astro_histogram_observe(h, 0.125);
    astro_histogram_observe(h, 0.25); /* on a bound: counts in that bucket (le) */
    astro_histogram_observe(h, 0.375);
    astro_histogram_observe(h, 2);
    assert_render("# HELP astro_events_total Events accepted.\n"
                  "# TYPE astro_events_total counter\n"
                  "astro_events_total{source=\"axon\\\"1\\\\x\\ny\"} 3\n"
                  "astro_events_total 5\n"
                  "# HELP astro_queue_depth Queue depth.\n"
                  "# TYPE astro_queue_depth gauge\n"
                  "astro_queue_depth 1.25\n"
                  "# HELP astro_ratio A ratio.\n"
                  "# TYPE astro_ratio gauge\n"
                  "astro_ratio{k=\"v\"} 0.1\n"
                  "# HELP astro_latency_seconds Latency.\\nIn \\\\ seconds.\n"
                  "# TYPE astro_latency_seconds histogram\n"
                  "astro_latency_seconds_bucket{op=\"copy\",le=\"0.25\"} 2\n"
                  "astro_latency_seconds_bucket{op=\"copy\",le=\"0.5\"} 3\n"
                  "astro_latency_seconds_bucket{op=\"copy\",le=\"1\"} 3\n"
                  "astro_latency_seconds_bucket{op=\"copy\",le=\"+Inf\"} 4\n"
                  "astro_latency_seconds_sum{op=\"copy\"} 2.75\n"
                  "astro_latency_seconds_count{op=\"copy\"} 4\n");
    ck_assert_uint_eq(astro_counter_get(c1), 3);
    ck_assert(astro_gauge_get(g) == 1.25);
}
END_TEST

START_TEST(histogram_without_labels_and_empty_registry)
{
    assert_render("");
    static const double bounds[] = {1};
    struct astro_histogram *h = astro_metrics_histogram(reg, "d_seconds", "D.", NULL, bounds, 1);
    ck_assert_ptr_nonnull(h);
    astro_gauge_set(astro_metrics_gauge(reg, "g", "G.", NULL), -INFINITY);
    assert_render("# HELP d_seconds D.\n# TYPE d_seconds histogram\n"
                  "d_seconds_bucket{le=\"1\"} 0\nd_seconds_bucket{le=\"+Inf\"} 0\n"
                  "d_seconds_sum 0\nd_seconds_count 0\n"
                  "# HELP g G.\n# TYPE g gauge\ng -Inf\n");
}
END_TEST

static const struct {
    const char *name;
    int valid;
} names[] = {
    {"astro_events_total", 1}, {"a:b_c1", 1}, {"_x", 1},  {":x", 1},        {"", 0},
    {"1abc", 0},               {"a-b", 0},    {"a b", 0}, {"caf\xc3\xa9", 0}, {"a{b}", 0},
};

START_TEST(metric_names)
{
    ck_assert_int_eq(astro_metrics_name_valid(names[_i].name) != 0, names[_i].valid);
    struct astro_counter *c = astro_metrics_counter(reg, names[_i].name, "h", NULL);
    ck_assert_int_eq(c != NULL, names[_i].valid);
}
END_TEST

static const char *const bad_labels[] = {
    "op=copy", "op=\"a", "1x=\"a\"", "op=\"a\\q\"", "op=\"a\",", "op=\"a\"x=\"b\"", "a:b=\"c\"",
};

START_TEST(malformed_label_text_refused)
{
    ck_assert_ptr_null(astro_metrics_counter(reg, "c_total", "h", bad_labels[_i]));
}
END_TEST

START_TEST(registration_rules)
{
    struct astro_counter *a = astro_metrics_counter(reg, "x_total", "X.", "k=\"1\"");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_eq(astro_metrics_counter(reg, "x_total", "X.", "k=\"1\""), a);
    ck_assert_ptr_null(astro_metrics_gauge(reg, "x_total", "X.", "k=\"2\"")); /* type clash */
    ck_assert_ptr_null(astro_metrics_counter(reg, "x_total", "Other.", NULL)); /* help clash */
    static const double up[] = {1, 2}, down[] = {2, 1}, nan_b[] = {1, NAN};
    ck_assert_ptr_null(astro_metrics_histogram(reg, "h1", "H.", NULL, down, 2));
    ck_assert_ptr_null(astro_metrics_histogram(reg, "h1", "H.", NULL, nan_b, 2));
    struct astro_histogram *h = astro_metrics_histogram(reg, "h1", "H.", NULL, up, 2);
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_eq(astro_metrics_histogram(reg, "h1", "H.", NULL, up, 2), h);
    ck_assert_ptr_null(astro_metrics_histogram(reg, "h1", "H.", NULL, up, 1));
}
END_TEST

START_TEST(label_helper_limits)
{
    char buf[16];
    ck_assert_int_eq(astro_metrics_labels(buf, sizeof(buf), "a", "b", "c", "d", (char *)NULL),
                     ASTRO_OK);
    ck_assert_str_eq(buf, "a=\"b\",c=\"d\"");
    ck_assert_int_eq(astro_metrics_labels(buf, sizeof(buf), "key", "0123456789", (char *)NULL),
                     ASTRO_ERR);
    ck_assert_str_eq(buf, "");
    ck_assert_int_eq(astro_metrics_labels(buf, sizeof(buf), "bad-name", "v", (char *)NULL),
                     ASTRO_ERR);
    ck_assert_int_eq(astro_metrics_labels(buf, sizeof(buf), (char *)NULL), ASTRO_OK);
    ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(default_buckets)
{
    size_t n = 0;
    const double *b = astro_metrics_default_buckets_seconds(&n);
    ck_assert_uint_ge(n, 10);
    ck_assert(b[0] == 0.0005);
    ck_assert(b[n - 1] == 10);
    for (size_t i = 1; i < n; i++)
        ck_assert(b[i] > b[i - 1]);
    ck_assert_ptr_nonnull(astro_metrics_histogram(reg, "lat_seconds", "L.", NULL, b, n));
}
END_TEST

enum { THREADS = 4, PER_THREAD = 200000 };

struct shared {
    struct astro_counter *c;
    struct astro_gauge *g;
    struct astro_histogram *h;
};

static void *
hammer(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        astro_counter_inc(s->c);
        astro_gauge_add(s->g, 1.0);
        astro_histogram_observe(s->h, (i % 2) ? 0.5 : 2.0);
    }
    return NULL;
}

START_TEST(concurrent_updates_sum_exactly)
{
    static const double bounds[] = {1};
    struct shared s = {
        .c = astro_metrics_counter(reg, "n_total", "N.", NULL),
        .g = astro_metrics_gauge(reg, "g", "G.", NULL),
        .h = astro_metrics_histogram(reg, "v", "V.", NULL, bounds, 1),
    };
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, &s), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    ck_assert_uint_eq(astro_counter_get(s.c), (uint64_t)THREADS * PER_THREAD);
    ck_assert(astro_gauge_get(s.g) == (double)THREADS * PER_THREAD);
    char *text = astro_metrics_render(reg, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(text, "v_bucket{le=\"1\"} 400000\n"));
    ck_assert_ptr_nonnull(strstr(text, "v_bucket{le=\"+Inf\"} 800000\n"));
    ck_assert_ptr_nonnull(strstr(text, "v_count 800000\n"));
    ck_assert_ptr_nonnull(strstr(text, "v_sum 1000000\n"));
    free(text);
}
END_TEST

START_TEST(process_metrics)
{
    ck_assert_int_eq(astro_metrics_register_process(reg, "astro-test", "1.2.3"), ASTRO_OK);
    char *text = astro_metrics_render(reg, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(
        strstr(text, "astro_build_info{service=\"astro-test\",version=\"1.2.3\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "# TYPE process_resident_memory_bytes gauge\n"));
    const char *rss = strstr(text, "\nprocess_resident_memory_bytes ");
    const char *start = strstr(text, "\nprocess_start_time_seconds ");
    ck_assert(rss && start);
    ck_assert(strtod(rss + 31, NULL) > 100000);
    double st = strtod(start + 28, NULL);
    ck_assert(st > (double)time(NULL) - 60 && st <= (double)time(NULL) + 1);
    free(text);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, exposition_text);
    tcase_add_test(tc, histogram_without_labels_and_empty_registry);
    tcase_add_loop_test(tc, metric_names, 0, (int)(sizeof(names) / sizeof(names[0])));
    tcase_add_loop_test(tc, malformed_label_text_refused, 0,
                        (int)(sizeof(bad_labels) / sizeof(bad_labels[0])));
    tcase_add_test(tc, registration_rules);
    tcase_add_test(tc, label_helper_limits);
    tcase_add_test(tc, default_buckets);
    tcase_add_test(tc, concurrent_updates_sum_exactly);
    tcase_add_test(tc, process_metrics);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

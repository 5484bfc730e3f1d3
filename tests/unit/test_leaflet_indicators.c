/* Indicators (services/leaflet/indicators.c) against a straightforward recomputation of every
 * point from the whole history (O(n) or worse per point, nothing shared with the O(1) code),
 * over long random series; against the published RSI example; and their warm-up. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "indicators.h"

#define LEN 3000

static double xs[LEN];

/* A random walk around 100 with occasional jumps, deterministic per seed. */
static void
series(unsigned seed)
{
    double p = 100.0;
    for (int i = 0; i < LEN; i++) {
        seed = seed * 1103515245u + 12345u;
        double u = (double)((seed >> 8) & 0xffff) / 65536.0 - 0.5;
        p += u * ((seed >> 4) % 50 == 0 ? 8.0 : 0.7);
        if (p < 1)
            p = 1;
        xs[i] = p;
    }
}

static void
assert_close(double got, double want, const char *what, int i)
{
    double tol = 1e-9 * fmax(1.0, fabs(want));
    ck_assert_msg(fabs(got - want) <= tol, "%s at %d: got %.15g, want %.15g", what, i, got,
                  want);
}

static double
ref_sma(int i, int n)
{
    double s = 0;
    for (int j = i - n + 1; j <= i; j++)
        s += xs[j];
    return s / n;
}

/* EMA of v[0..i] with the SMA seed at n-1, written as the explicit weighted sum. */
static double
ref_ema_of(const double *v, int i, int n)
{
    double a = 2.0 / (n + 1), seed = 0, acc = 0;
    for (int j = 0; j < n; j++)
        seed += v[j];
    seed /= n;
    for (int j = n; j <= i; j++)
        acc += a * pow(1 - a, i - j) * v[j];
    return pow(1 - a, i - (n - 1)) * seed + acc;
}

/* Wilder's RSI at close i, recomputed from the start. */
static double
ref_rsi(const double *v, int i, int n)
{
    double g = 0, l = 0;
    for (int j = 1; j <= n; j++) {
        double ch = v[j] - v[j - 1];
        g += ch > 0 ? ch : 0;
        l += ch < 0 ? -ch : 0;
    }
    g /= n;
    l /= n;
    for (int j = n + 1; j <= i; j++) {
        double ch = v[j] - v[j - 1];
        g = (g * (n - 1) + (ch > 0 ? ch : 0)) / n;
        l = (l * (n - 1) + (ch < 0 ? -ch : 0)) / n;
    }
    return g + l > 0 ? 100 * g / (g + l) : 50;
}

static double
ref_sigma(int i, int n)
{
    double m = ref_sma(i, n), s = 0;
    for (int j = i - n + 1; j <= i; j++)
        s += (xs[j] - m) * (xs[j] - m);
    return sqrt(s / n);
}

static const struct astro_indicator_value *
find(const struct astro_indicator_value *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    ck_abort_msg("no indicator %s", name);
    return NULL;
}

static void
check_value(const struct astro_indicator_value *v, bool has, double want, int i)
{
    ck_assert_msg(v->has_value == has && v->ready == has, "%s at %d: has_value %d, want %d",
                  v->name, i, v->has_value, has);
    if (has)
        assert_close(v->value, want, v->name, i);
}

static void
parse_cfg(struct cep_ind_cfg *cfg)
{
    static const struct cep_ind_spec specs[] = {
        {CEP_IND_SMA, {20, 0, 0}, 0, ""}, {CEP_IND_SMA, {7, 0, 0}, 0, ""},
        {CEP_IND_EMA, {20, 0, 0}, 0, ""}, {CEP_IND_EMA, {5, 0, 0}, 0, ""},
        {CEP_IND_RSI, {14, 0, 0}, 0, ""}, {CEP_IND_MACD, {12, 26, 9}, 0, ""},
        {CEP_IND_BB, {20, 0, 0}, 2.0, "2"}, {CEP_IND_BB, {10, 0, 0}, 1.5, "1.5"},
    };
    memset(cfg, 0, sizeof(*cfg));
    memcpy(cfg->v, specs, sizeof(specs));
    cfg->n = sizeof(specs) / sizeof(specs[0]);
}

static double macd_line[LEN];

static void
check_point(const struct astro_indicator_value *out, size_t n, int i)
{
    check_value(find(out, n, "sma_20"), i >= 19, i >= 19 ? ref_sma(i, 20) : 0, i);
    check_value(find(out, n, "sma_7"), i >= 6, i >= 6 ? ref_sma(i, 7) : 0, i);
    check_value(find(out, n, "ema_20"), i >= 19, i >= 19 ? ref_ema_of(xs, i, 20) : 0, i);
    check_value(find(out, n, "ema_5"), i >= 4, i >= 4 ? ref_ema_of(xs, i, 5) : 0, i);
    check_value(find(out, n, "rsi_14"), i >= 14, i >= 14 ? ref_rsi(xs, i, 14) : 0, i);
    check_value(find(out, n, "macd_12_26_9"), i >= 25, i >= 25 ? macd_line[i - 25] : 0, i);
    double sig = i >= 33 ? ref_ema_of(macd_line, i - 25, 9) : 0;
    check_value(find(out, n, "macd_signal_12_26_9"), i >= 33, sig, i);
    check_value(find(out, n, "macd_hist_12_26_9"), i >= 33, macd_line[i >= 25 ? i - 25 : 0] - sig,
                i);
    for (int b = 0; b < 2; b++) {
        int bn = b ? 10 : 20;
        double k = b ? 1.5 : 2.0, m = i >= bn - 1 ? ref_sma(i, bn) : 0;
        double sd = i >= bn - 1 ? ref_sigma(i, bn) : 0;
        char nu[32], nm[32], nl[32];
        snprintf(nu, sizeof(nu), "bb_upper_%d_%s", bn, b ? "1.5" : "2");
        snprintf(nm, sizeof(nm), "bb_middle_%d_%s", bn, b ? "1.5" : "2");
        snprintf(nl, sizeof(nl), "bb_lower_%d_%s", bn, b ? "1.5" : "2");
        check_value(find(out, n, nu), i >= bn - 1, m + k * sd, i);
        check_value(find(out, n, nm), i >= bn - 1, m, i);
        check_value(find(out, n, nl), i >= bn - 1, m - k * sd, i);
    }
}

START_TEST(every_indicator_matches_recomputation)
{
    struct cep_ind_cfg cfg;
    struct cep_ind_state st;
    struct astro_indicator_value out[ASTRO_AGG_IND_MAX];
    parse_cfg(&cfg);
    ck_assert_uint_eq(cep_ind_cfg_outputs(&cfg), 14);
    series(1000u + (unsigned)_i);
    ck_assert_int_eq(cep_ind_state_init(&st, &cfg), ASTRO_OK);
    for (int i = 25; i < LEN; i++)
        macd_line[i - 25] = ref_ema_of(xs, i, 12) - ref_ema_of(xs, i, 26);
    for (int i = 0; i < LEN; i++) {
        size_t n = cep_ind_update(&st, &cfg, xs[i], out);
        ck_assert_uint_eq(n, 14);
        check_point(out, n, i);
    }
    cep_ind_state_cleanup(&st, &cfg);
}
END_TEST

/* A flat series has sigma 0 (no negative variance from rounding) and RSI 50; a rising one 100. */
START_TEST(degenerate_series)
{
    struct cep_ind_cfg cfg;
    struct cep_ind_state st;
    struct astro_indicator_value out[ASTRO_AGG_IND_MAX];
    parse_cfg(&cfg);
    ck_assert_int_eq(cep_ind_state_init(&st, &cfg), ASTRO_OK);
    for (int i = 0; i < 100; i++)
        cep_ind_update(&st, &cfg, 0.1 * 3, out);
    ck_assert_double_eq(find(out, 14, "rsi_14")->value, 50.0);
    ck_assert(find(out, 14, "bb_upper_20_2")->value >= find(out, 14, "bb_middle_20_2")->value);
    ck_assert_double_eq_tol(find(out, 14, "bb_upper_20_2")->value, 0.3, 1e-12);
    cep_ind_state_cleanup(&st, &cfg);
    ck_assert_int_eq(cep_ind_state_init(&st, &cfg), ASTRO_OK);
    for (int i = 0; i < 30; i++)
        cep_ind_update(&st, &cfg, 10.0 + i, out);
    ck_assert_double_eq(find(out, 14, "rsi_14")->value, 100.0);
    cep_ind_state_cleanup(&st, &cfg);
}
END_TEST

/* The widely reproduced 14-period RSI example (StockCharts ChartSchool, "Relative Strength Index
 * (RSI)", spreadsheet cs-rsi.xls, after Wilder, New Concepts in Technical Trading Systems,
 * 1978): 31 of its 33 closes. The first RSI, at the 15th close, is 70.53 (average gain 0.24,
 * average loss 0.10, RS 2.39), then 66.32, 66.55, ...; the published values are rounded to two
 * decimals. The table's last two rows (closes 42.66 and 43.13) are left out: the copies we have
 * differ in their last digits. */
START_TEST(wilder_rsi_published_example)
{
    static const double closes[] = {
        44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245, 45.8433,
        46.0826, 45.8931, 46.0328, 45.6140, 46.2820, 46.2820, 46.0028, 46.0328, 46.4116,
        46.2222, 45.6439, 46.2122, 46.2521, 45.7137, 46.4515, 45.7835, 45.3548, 44.0288,
        44.1783, 44.2181, 44.5672, 43.4205,
    };
    static const double rsi[] = {70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93,
                                 63.26, 56.06, 62.38, 54.71, 50.42, 39.99, 41.46,
                                 41.87, 45.46, 37.30};
    struct cep_rsi s;
    double v = 0;
    cep_rsi_init(&s, 14);
    for (int i = 0; i < (int)ASTRO_ARRAY_LEN(closes); i++) {
        bool has = cep_rsi_push(&s, closes[i], &v);
        ck_assert_msg(has == (i >= 14), "close %d: has %d", i + 1, has);
        if (i == 14) {
            ck_assert_double_eq_tol(s.ag, 0.24, 0.005);
            ck_assert_double_eq_tol(s.al, 0.10, 0.005);
        }
        if (has)
            ck_assert_msg(fabs(v - rsi[i - 14]) <= 0.005 + 1e-9,
                          "close %d: RSI %.4f, published %.2f", i + 1, v, rsi[i - 14]);
    }
}
END_TEST

/* Warm-up: no value and not ready until exactly the documented number of closes. */
START_TEST(warm_up)
{
    struct cep_ind_cfg cfg;
    struct cep_ind_state st;
    struct astro_indicator_value out[ASTRO_AGG_IND_MAX];
    cep_ind_cfg_default(&cfg);
    ck_assert_uint_eq(cep_ind_cfg_outputs(&cfg), 9);
    ck_assert_int_eq(cep_ind_state_init(&st, &cfg), ASTRO_OK);
    static const struct {
        const char *name;
        int first; /* 1-based close count of the first value */
    } want[] = {{"sma_20", 20}, {"ema_20", 20}, {"rsi_14", 15}, {"macd_12_26_9", 26},
                {"macd_signal_12_26_9", 34}, {"macd_hist_12_26_9", 34}, {"bb_upper_20_2", 20},
                {"bb_middle_20_2", 20}, {"bb_lower_20_2", 20}};
    for (int i = 1; i <= 40; i++) {
        size_t n = cep_ind_update(&st, &cfg, 50.0 + (i % 5), out);
        for (size_t k = 0; k < ASTRO_ARRAY_LEN(want); k++) {
            const struct astro_indicator_value *v = find(out, n, want[k].name);
            ck_assert_msg(v->has_value == (i >= want[k].first) && v->ready == v->has_value,
                          "%s after %d closes: has_value %d ready %d", v->name, i, v->has_value,
                          v->ready);
        }
    }
    cep_ind_state_cleanup(&st, &cfg);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("leaflet_indicators");
    TCase *tc = tcase_create("indicators");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, every_indicator_matches_recomputation, 0, 3);
    tcase_add_test(tc, degenerate_series);
    tcase_add_test(tc, wilder_rsi_published_example);
    tcase_add_test(tc, warm_up);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

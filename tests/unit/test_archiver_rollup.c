/* The archiver's minute rollups counted in C (services/archiver/rollup.c): one group per UTC
 * minute, kind, source, type and rule, counting exactly the rows not skipped. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "archiver.h"

static struct arc_stream streams[3];

static void
setup(void)
{
    memset(streams, 0, sizeof(streams));
    streams[0].kind = ARC_MONO;
    streams[1].kind = ARC_MULTI;
    streams[2].kind = ARC_SESSION;
}

static struct arc_row
row(int stream, int64_t ts_us, char *src, char *type, char *rule)
{
    struct arc_row r;
    memset(&r, 0, sizeof(r));
    r.stream = stream;
    r.ev.ts_us = ts_us;
    r.ev.src = src;
    r.ev.type = type;
    r.ev.rule = rule;
    return r;
}

#define MIN_US INT64_C(60000000)
#define T0 (INT64_C(1700000000) * 1000000) /* 20 s into its minute */

START_TEST(groups_by_minute_kind_source_type_rule)
{
    int64_t m0 = T0 - 20 * INT64_C(1000000); /* start of T0's minute */
    struct arc_row rows[] = {
        row(0, m0 + 59999999, "axon_1", "B", NULL), /* last µs of the minute */
        row(0, m0, "axon_1", "B", NULL),
        row(0, m0 + MIN_US, "axon_1", "B", NULL),   /* next minute */
        row(0, m0 + 5, "axon_1", "A", NULL),
        row(0, m0 + 6, "axon_0", "B", NULL),
        row(1, m0 + 7, "leaflet", "B", "r1"),
        row(1, m0 + 8, "leaflet", "B", "r2"),
        row(1, m0 + 9, "leaflet", "B", "r1"),
        row(2, m0, "x", "x", NULL),                 /* a side row: no rollup */
    };
    struct arc_rollup *g;
    size_t n;
    ck_assert_int_eq(arc_rollups_count(rows, 0, 9, streams, NULL, &g, &n), ASTRO_OK);
    ck_assert_uint_eq(n, 6);
    /* Sorted: kind, minute, source, type, rule. */
    struct {
        enum arc_kind kind;
        int64_t minute;
        const char *src, *type, *rule;
        int64_t count;
    } want[] = {
        {ARC_MONO, m0, "axon_0", "B", "", 1},        {ARC_MONO, m0, "axon_1", "A", "", 1},
        {ARC_MONO, m0, "axon_1", "B", "", 2},        {ARC_MONO, m0 + MIN_US, "axon_1", "B", "", 1},
        {ARC_MULTI, m0, "leaflet", "B", "r1", 2},    {ARC_MULTI, m0, "leaflet", "B", "r2", 1},
    };
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(g[i].kind, want[i].kind);
        ck_assert_int_eq(g[i].minute_us, want[i].minute);
        ck_assert_str_eq(g[i].src, want[i].src);
        ck_assert_str_eq(g[i].type, want[i].type);
        ck_assert_str_eq(g[i].rule, want[i].rule);
        ck_assert_int_eq(g[i].count, want[i].count);
    }
    free(g);
}
END_TEST

/* Skipped rows (already archived, or repeated in the batch) are not counted; a sub-range
 * indexes skip from its own start. */
START_TEST(counts_only_rows_not_skipped)
{
    struct arc_row rows[] = {
        row(0, T0, "s", "A", NULL), row(0, T0, "s", "A", NULL), row(0, T0, "s", "A", NULL),
        row(0, T0, "s", "A", NULL),
    };
    bool skip[3] = {false, true, false}; /* for rows[1..4): rows 1 and 3 count */
    struct arc_rollup *g;
    size_t n;
    ck_assert_int_eq(arc_rollups_count(rows, 1, 4, streams, skip, &g, &n), ASTRO_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(g[0].count, 2);
    free(g);
    bool all[4] = {true, true, true, true};
    ck_assert_int_eq(arc_rollups_count(rows, 0, 4, streams, all, &g, &n), ASTRO_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(g);
}
END_TEST

/* Minutes are floors also before the epoch (the rollup minute of 1969-12-31T23:59:59.5Z is
 * 23:59:00). */
START_TEST(minutes_before_the_epoch_floor)
{
    struct arc_row rows[] = {row(0, -500000, "s", "A", NULL), row(0, -MIN_US, "s", "A", NULL)};
    struct arc_rollup *g;
    size_t n;
    ck_assert_int_eq(arc_rollups_count(rows, 0, 2, streams, NULL, &g, &n), ASTRO_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(g[0].minute_us, -MIN_US);
    ck_assert_int_eq(g[0].count, 2);
    free(g);
}
END_TEST

static Suite *
suite(void)
{
    Suite *s = suite_create("archiver_rollup");
    TCase *tc = tcase_create("rollup");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, groups_by_minute_kind_source_type_rule);
    tcase_add_test(tc, counts_only_rows_not_skipped);
    tcase_add_test(tc, minutes_before_the_epoch_floor);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* astro-broadcast's pure parts: position tokens (round trip, refusal of anything malformed)
 * and subscriber filters (query parameters per route, matching). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "broadcast.h"

static struct bc_pos pos;

static void
setup(void)
{
    memset(&pos, 0, sizeof(pos));
    pos.parts = 16;
    for (uint32_t i = 0; i < BC_KINDS * 16; i++) {
        pos.id[i].ms = 1700000000000ull + i * 7919;
        pos.id[i].seq = i % 3;
    }
}

static void
teardown(void)
{
}

START_TEST(token_round_trip)
{
    char tok[4096];
    struct bc_pos back;
    char err[128];
    size_t n = bc_token_encode(&pos, tok, sizeof(tok));
    ck_assert_uint_gt(n, 0);
    ck_assert_uint_eq(strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                      n);
    ck_assert_int_eq(bc_token_decode(tok, 16, &back, err, sizeof(err)), ASTRO_OK);
    for (uint32_t i = 0; i < BC_KINDS * 16; i++) {
        ck_assert_int_eq(bc_id_cmp(pos.id[i], back.id[i]), 0);
    }
    /* a deployment with another P cannot use it */
    ck_assert_int_eq(bc_token_decode(tok, 8, &back, err, sizeof(err)), ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "partition count"));
    /* too small a buffer is reported, not overrun */
    ck_assert_uint_eq(bc_token_encode(&pos, tok, 10), 0);
}
END_TEST

static const char *const bad_tokens[] = {
    "", "!!!!", "A", "AQ", "AhA", "not a token at all", "AhAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
};

START_TEST(token_malformed_refused)
{
    struct bc_pos back;
    char err[128] = "";
    ck_assert_int_eq(bc_token_decode(bad_tokens[_i], 16, &back, err, sizeof(err)), ASTRO_ERR);
    ck_assert_msg(strncmp(err, "since:", 6) == 0, "%s", err);
}
END_TEST

START_TEST(token_trailing_bytes_refused)
{
    char tok[4096], longer[4100];
    struct bc_pos back;
    char err[128];
    pos.parts = 1;
    ck_assert_uint_gt(bc_token_encode(&pos, tok, sizeof(tok)), 0);
    ck_assert_int_eq(bc_token_decode(tok, 1, &back, err, sizeof(err)), ASTRO_OK);
    snprintf(longer, sizeof(longer), "%sAAAA", tok);
    ck_assert_int_eq(bc_token_decode(longer, 1, &back, err, sizeof(err)), ASTRO_ERR);
}
END_TEST

/* A version-1 token (mono and multi only, before candles) still resumes: P=2, ids 5-1, 6-0,
 * 7-2, 8-0 for mono{0}, multi{0}, mono{1}, multi{1}; the candle streams start at 0-0. */
START_TEST(token_version_1_read)
{
    struct bc_pos back;
    char err[128] = "";
    ck_assert_msg(bc_token_decode("AQIFAQYABwIIAA", 2, &back, err, sizeof(err)) == ASTRO_OK, "%s",
                  err);
    ck_assert(back.id[bc_slot(0, BC_KIND_MONO)].ms == 5 &&
              back.id[bc_slot(0, BC_KIND_MONO)].seq == 1);
    ck_assert(back.id[bc_slot(0, BC_KIND_MULTI)].ms == 6);
    ck_assert(back.id[bc_slot(1, BC_KIND_MONO)].ms == 7 &&
              back.id[bc_slot(1, BC_KIND_MONO)].seq == 2);
    ck_assert(back.id[bc_slot(1, BC_KIND_MULTI)].ms == 8);
    ck_assert(back.id[bc_slot(0, BC_KIND_CANDLE)].ms == 0 &&
              back.id[bc_slot(1, BC_KIND_CANDLE)].ms == 0);
}
END_TEST

START_TEST(id_parse)
{
    struct bc_id id;
    ck_assert_int_eq(bc_id_parse("1700000000000-12", 16, &id), ASTRO_OK);
    ck_assert(id.ms == 1700000000000ull && id.seq == 12);
    ck_assert_int_eq(bc_id_parse("17-", 3, &id), ASTRO_ERR);
    ck_assert_int_eq(bc_id_parse("-1", 2, &id), ASTRO_ERR);
    ck_assert_int_eq(bc_id_parse("12", 2, &id), ASTRO_ERR);
    ck_assert_int_eq(bc_id_parse("1-2-3", 5, &id), ASTRO_ERR);
    ck_assert_int_eq(bc_id_parse("99999999999999999999999-0", 25, &id), ASTRO_ERR);
}
END_TEST

struct fcase {
    enum bc_route route;
    const char *name, *value;
    bool ok;
    const char *err; /* substring of the reason */
};

static const struct fcase fcases[] = {
    {BC_ROUTE_STREAM, "stream", "mono", true, NULL},
    {BC_ROUTE_STREAM, "stream", "all", true, NULL},
    {BC_ROUTE_STREAM, "stream", "astro:dead", false, "stream"},
    {BC_ROUTE_STREAM, "source", "axon_1", true, NULL},
    {BC_ROUTE_STREAM, "source_stream", "../../etc", false, "source_stream"},
    {BC_ROUTE_STREAM, "event_type", "A B", false, "event_type"},
    {BC_ROUTE_STREAM, "key", "user\n1", false, "key"},
    {BC_ROUTE_STREAM, "correlation_rule", "r1", true, NULL},
    {BC_ROUTE_STREAM, "since", "zzz", false, "since"},
    {BC_ROUTE_STREAM, "slow", "drop_oldest", true, NULL},
    {BC_ROUTE_STREAM, "slow", "ignore", false, "slow"},
    {BC_ROUTE_STREAM, "streams", "mono", false, "unknown parameter"},
    {BC_ROUTE_STATS, "stream", "mono", false, "unknown parameter"},
    {BC_ROUTE_STATS, "api_key", "k", true, NULL},
    {BC_ROUTE_USER, "key", "other_user", false, "unknown parameter"},
    {BC_ROUTE_USER, "since", "", false, "since"},
    {BC_ROUTE_STREAM, "stream", "candles", true, NULL},
    {BC_ROUTE_STREAM, "timeframe", "1m", false, "timeframe: only candles"},
    {BC_ROUTE_USER, "timeframe", "1m", false, "unknown parameter"},
};

/* Parameter pairs with stream=candles. */
static const struct fcase ccases[] = {
    {BC_ROUTE_STREAM, "timeframe", "5m", true, NULL},
    {BC_ROUTE_STREAM, "timeframe", "7m", false, "must divide one day"},
    {BC_ROUTE_STREAM, "timeframe", "1w", false, "timeframe"},
    {BC_ROUTE_STREAM, "key", "BTC-USD", true, NULL},
    {BC_ROUTE_STREAM, "event_type", "trade", true, NULL},
    {BC_ROUTE_STREAM, "source_stream", "s1", false, "source_stream: candles have none"},
    {BC_ROUTE_STREAM, "correlation_rule", "r1", false, "correlation_rule"},
};

START_TEST(filter_candle_params)
{
    const struct fcase *c = &ccases[_i];
    struct bc_param p[] = {{"stream", "candles"}, {c->name, c->value}};
    struct bc_filter f;
    char err[256] = "";
    int rc = bc_filter_parse(c->route, NULL, p, 2, 16, &f, err, sizeof(err));
    ck_assert_msg((rc == ASTRO_OK) == c->ok, "%s=%s: %s", c->name, c->value, err);
    if (c->err != NULL)
        ck_assert_msg(strstr(err, c->err) != NULL, "%s=%s: %s", c->name, c->value, err);
    if (rc == ASTRO_OK)
        bc_filter_cleanup(&f);
}
END_TEST

START_TEST(filter_candle_match)
{
    struct bc_param ps[] = {{"stream", "candles"}, {"key", "BTC"}, {"timeframe", "1m"}};
    struct bc_filter f, events;
    char err[256];
    struct bc_item it = {.kind = BC_KIND_CANDLE, .key = "BTC", .type = "trade", .tf = "1m"};
    ck_assert_int_eq(bc_filter_parse(BC_ROUTE_STREAM, NULL, ps, 3, 16, &f, err, sizeof(err)),
                     ASTRO_OK);
    ck_assert(bc_filter_match(&f, &it));
    it.tf = "5m";
    ck_assert(!bc_filter_match(&f, &it));
    it.tf = "1m";
    it.key = "ETH";
    ck_assert(!bc_filter_match(&f, &it));
    /* no stream= (and stream=all): events only, never candles */
    ck_assert_int_eq(bc_filter_parse(BC_ROUTE_STREAM, NULL, NULL, 0, 16, &events, err,
                                     sizeof(err)), ASTRO_OK);
    ck_assert(!bc_filter_match(&events, &it));
    ck_assert(bc_filter_wants_kind(&events, BC_KIND_MONO) &&
              !bc_filter_wants_kind(&events, BC_KIND_CANDLE));
    bc_filter_cleanup(&f);
    bc_filter_cleanup(&events);
}
END_TEST

START_TEST(filter_params)
{
    const struct fcase *c = &fcases[_i];
    struct bc_param p = {c->name, c->value};
    struct bc_filter f;
    char err[256] = "";
    int rc = bc_filter_parse(c->route, c->route == BC_ROUTE_USER ? "u1" : NULL, &p, 1, 16, &f,
                             err, sizeof(err));
    ck_assert_msg((rc == ASTRO_OK) == c->ok, "%s=%s: %s", c->name, c->value, err);
    if (c->err != NULL)
        ck_assert_msg(strstr(err, c->err) != NULL, "%s=%s: %s", c->name, c->value, err);
    if (rc == ASTRO_OK)
        bc_filter_cleanup(&f);
}
END_TEST

START_TEST(filter_repeat_and_rule_on_mono_refused)
{
    struct bc_param twice[] = {{"key", "a"}, {"key", "b"}};
    struct bc_param rule_mono[] = {{"stream", "mono"}, {"correlation_rule", "r"}};
    struct bc_filter f;
    char err[256];
    ck_assert_int_eq(bc_filter_parse(BC_ROUTE_STREAM, NULL, twice, 2, 16, &f, err, sizeof(err)),
                     ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "more than once"));
    ck_assert_int_eq(bc_filter_parse(BC_ROUTE_STREAM, NULL, rule_mono, 2, 16, &f, err,
                                     sizeof(err)), ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "correlation_rule"));
}
END_TEST

START_TEST(filter_match)
{
    struct bc_param ps[] = {{"stream", "multi"}, {"source", "s1"}, {"event_type", "A"}};
    struct bc_filter f, u;
    char err[256];
    struct bc_item it = {.kind = BC_KIND_MULTI, .src = "s1", .key = "k", .type = "A",
                         .rule = "r"};
    ck_assert_int_eq(bc_filter_parse(BC_ROUTE_STREAM, NULL, ps, 3, 16, &f, err, sizeof(err)),
                     ASTRO_OK);
    ck_assert(bc_filter_match(&f, &it));
    it.type = "B";
    ck_assert(!bc_filter_match(&f, &it));
    it.type = "A";
    it.kind = BC_KIND_MONO;
    ck_assert(!bc_filter_match(&f, &it));
    /* /subscribe/{user}: only that user's key, both kinds */
    ck_assert_int_eq(bc_filter_parse(BC_ROUTE_USER, "k", NULL, 0, 16, &u, err, sizeof(err)),
                     ASTRO_OK);
    ck_assert(bc_filter_match(&u, &it));
    it.key = "k2";
    ck_assert(!bc_filter_match(&u, &it));
    bc_filter_cleanup(&f);
    bc_filter_cleanup(&u);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("broadcast_token");
    TCase *tc = tcase_create("token");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, token_round_trip);
    tcase_add_loop_test(tc, token_malformed_refused, 0, (int)ASTRO_ARRAY_LEN(bad_tokens));
    tcase_add_test(tc, token_trailing_bytes_refused);
    tcase_add_test(tc, token_version_1_read);
    tcase_add_test(tc, id_parse);
    suite_add_tcase(s, tc);
    TCase *tf = tcase_create("filter");
    tcase_add_loop_test(tf, filter_params, 0, (int)ASTRO_ARRAY_LEN(fcases));
    tcase_add_test(tf, filter_repeat_and_rule_on_mono_refused);
    tcase_add_test(tf, filter_match);
    tcase_add_loop_test(tf, filter_candle_params, 0, (int)ASTRO_ARRAY_LEN(ccases));
    tcase_add_test(tf, filter_candle_match);
    suite_add_tcase(s, tf);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

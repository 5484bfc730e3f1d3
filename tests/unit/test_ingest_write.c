/* astro-ingest's write command (write_args.c): the layout the write script reads, and values
 * that are exactly what the shared stream encoder (astro_event_stream_encode, the stream
 * contract the archiver and leaflet decode) and the wire JSON encoder write. The command is
 * parsed back with hiredis' protocol reader. No Redis, no sockets. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "astro/time.h"
#include "ingest.h"

#define SHA "0123456789abcdef0123456789abcdef01234567"

static const char *const events_json[] = {
    "{\"event_id\":\"e-1\",\"timestamp\":\"2026-12-01T00:00:00.5Z\",\"source_stream\":\"s\","
    "\"key\":\"k1\",\"event_type\":\"A\",\"value\":10.5,\"metadata\":{\"a\":[1,\"x\\n\"]}}",
    "{\"event_id\":\"e-2\",\"timestamp\":\"2026-12-01T00:00:00.000001Z\",\"source_stream\":"
    "\"s2\",\"key\":\"k1\",\"event_type\":\"B\",\"value\":-0.0}",
    "{\"event_id\":\"e-3\",\"timestamp\":\"1969-12-31T23:59:59.999999Z\",\"source_stream\":\"s\","
    "\"key\":\"q\\\"uo\\u00e9\",\"event_type\":\"A\",\"value\":1e300,\"metadata\":null}",
    "{\"event_id\":\"e-4\",\"timestamp\":\"0001-01-01T00:00:00Z\",\"source_stream\":\"s\","
    "\"key\":\"k1\",\"event_type\":\"A\",\"value\":0.1}",
};
#define NEV (sizeof(events_json) / sizeof(events_json[0]))

static struct astro_event ev[NEV];
static struct ing_config cfg;
static struct ing_ctx ctx;

static void
setup(void)
{
    char err[256];
    struct astro_event_limits l = astro_event_limits_default();
    l.max_future_us = l.max_age_us = 0;
    memset(ev, 0, sizeof(ev));
    for (size_t i = 0; i < NEV; i++)
        ck_assert_msg(astro_event_parse_json(events_json[i], strlen(events_json[i]), &l,
                                             astro_now_us(), &ev[i], err, sizeof(err)) ==
                          ASTRO_OK, "%zu: %s", i, err);
    cfg = (struct ing_config){.dedup_ms = 600000, .recent_max = 1000};
    memset(&ctx, 0, sizeof(ctx));
    ctx.cfg = &cfg;
    memcpy(ctx.script_sha, SHA, sizeof(SHA));
}

static void
teardown(void)
{
    for (size_t i = 0; i < NEV; i++)
        astro_event_cleanup(&ev[i]);
}

/* Builds the command for ev[idx[0..n)] and parses it back into an array reply. */
static redisReply *
build_parsed(const size_t *idx, size_t n, bool eval_body)
{
    struct ing_text cmd;
    void *rep = NULL;
    ck_assert_int_eq(ing_call_cmd_build(&cmd, &ctx, 5, ev, idx, n, eval_body), ASTRO_OK);
    redisReader *r = redisReaderCreate();
    ck_assert_int_eq(redisReaderFeed(r, cmd.buf, cmd.len), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(r, &rep), REDIS_OK);
    ck_assert_ptr_nonnull(rep);
    void *more = NULL;
    ck_assert_int_eq(redisReaderGetReply(r, &more), REDIS_OK);
    ck_assert_ptr_null(more); /* exactly one command, nothing left over */
    redisReaderFree(r);
    free(cmd.buf);
    ck_assert_int_eq(((redisReply *)rep)->type, REDIS_REPLY_ARRAY);
    return rep;
}

static void
arg_eq(const redisReply *rep, size_t i, const char *want, size_t want_len)
{
    ck_assert_uint_lt(i, rep->elements);
    const redisReply *a = rep->element[i];
    ck_assert_int_eq(a->type, REDIS_REPLY_STRING);
    ck_assert_msg((size_t)a->len == want_len && memcmp(a->str, want, want_len) == 0,
                  "arg %zu: got \"%.*s\", want \"%.*s\"", i, (int)a->len, a->str, (int)want_len,
                  want);
}

static void
arg_str(const redisReply *rep, size_t i, const char *want)
{
    arg_eq(rep, i, want, strlen(want));
}

/* The encoder's value of field name ("" when the encoder leaves the field out). */
static void
arg_field(const redisReply *rep, size_t i, const struct astro_stream_fields *f, const char *name)
{
    for (int k = 0; k + 1 < f->argc; k += 2)
        if (strcmp(f->argv[k], name) == 0) {
            arg_eq(rep, i, f->argv[k + 1], f->argvlen[k + 1]);
            return;
        }
    arg_str(rep, i, "");
}

/* Checks one event's seven values at position at; returns the next position. */
static size_t
check_event(const redisReply *rep, size_t at, const struct astro_event *e, const char *run_key)
{
    struct astro_stream_fields f;
    astro_stream_fields_init(&f);
    ck_assert_int_eq(astro_event_stream_encode(e, &f), ASTRO_OK);
    static const char *const names[] = {"id", "ts", "src", "type", "val", "meta"};
    for (size_t k = 0; k < 6; k++)
        arg_field(rep, at + k, &f, names[k]);
    for (int k = 0; k + 1 < f.argc; k += 2) /* the key the script writes is the run's */
        if (strcmp(f.argv[k], "key") == 0)
            ck_assert_str_eq(f.argv[k + 1], run_key);
    astro_stream_fields_cleanup(&f);
    cJSON *j = astro_event_to_json(e); /* the recent buffer's text: the wire JSON */
    char *want = cJSON_PrintUnformatted(j);
    if (cfg.recent_max > 0)
        arg_str(rep, at + 6, want);
    else
        arg_str(rep, at + 6, "");
    free(want);
    cJSON_Delete(j);
    return at + 7;
}

START_TEST(layout_runs_and_values)
{
    /* k1 k1 | q"uo\u00e9 | k1: three runs, the last key repeated in a later run */
    size_t idx[] = {0, 1, 2, 3};
    redisReply *rep = build_parsed(idx, 4, false);
    ck_assert_uint_eq(rep->elements, 3 + 5 + 3 + 2 * 3 + 7 * 4);
    arg_str(rep, 0, "EVALSHA");
    arg_str(rep, 1, SHA);
    arg_str(rep, 2, "5");
    arg_str(rep, 3, "astro:mono:{5}");
    arg_str(rep, 4, "astro:dedupset:{5}:");
    arg_str(rep, 5, "astro:recent:{5}:k1");
    arg_str(rep, 6, "astro:recent:{5}:q\"uo\xc3\xa9");
    arg_str(rep, 7, "astro:recent:{5}:k1");
    arg_str(rep, 8, "600000");
    arg_str(rep, 9, "1000");
    char nb[8];
    snprintf(nb, sizeof(nb), "%d", ING_DEDUP_BUCKETS);
    arg_str(rep, 10, nb);
    size_t at = 11;
    arg_str(rep, at++, "k1");
    arg_str(rep, at++, "2");
    at = check_event(rep, at, &ev[0], "k1");
    at = check_event(rep, at, &ev[1], "k1");
    arg_str(rep, at++, "q\"uo\xc3\xa9");
    arg_str(rep, at++, "1");
    at = check_event(rep, at, &ev[2], "q\"uo\xc3\xa9");
    arg_str(rep, at++, "k1");
    arg_str(rep, at++, "1");
    at = check_event(rep, at, &ev[3], "k1");
    ck_assert_uint_eq(at, rep->elements);
    freeReplyObject(rep);
}
END_TEST

START_TEST(eval_body_and_no_recent_buffer)
{
    size_t idx[] = {3, 0};
    cfg.recent_max = 0;
    redisReply *rep = build_parsed(idx, 2, true);
    arg_str(rep, 0, "EVAL");
    arg_str(rep, 1, ing_write_script);
    arg_str(rep, 2, "3");
    arg_str(rep, 5, "astro:recent:{5}:k1"); /* one run: both events have key k1 */
    arg_str(rep, 7, "0");
    arg_str(rep, 9, "k1");
    arg_str(rep, 10, "2");
    size_t at = check_event(rep, 11, &ev[3], "k1");
    at = check_event(rep, at, &ev[0], "k1");
    ck_assert_uint_eq(at, rep->elements);
    freeReplyObject(rep);
}
END_TEST

/* The recent buffer's timestamp reuses the previous event's date when the second is the same:
 * every text must still be what astro_time_format writes, across seconds, days and 1970. */
START_TEST(event_json_timestamps)
{
    static const int64_t ts[] = {0, 999999, 1000000, -1, -1000000, -1000001, 1796000000000000,
                                 1796000000999999, 1796000001000000, 1796000000000001,
                                 ASTRO_TIME_MIN_US, ASTRO_TIME_MAX_US, 86399999999};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        char want[ASTRO_TIME_RFC3339_LEN + 1], *got;
        ev[1].ts_us = ts[i];
        ck_assert_int_eq(astro_time_format(ts[i], want, sizeof(want)), ASTRO_OK);
        got = ing_event_json(&ev[1], NULL);
        ck_assert_ptr_nonnull(got);
        ck_assert_msg(strstr(got, want) != NULL, "%lld: %s lacks %s", (long long)ts[i], got,
                      want);
        free(got);
    }
}
END_TEST

static Suite *
write_suite(void)
{
    Suite *s = suite_create("ingest_write");
    TCase *tc = tcase_create("command");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, layout_runs_and_values);
    tcase_add_test(tc, eval_body_and_no_recent_buffer);
    tcase_add_test(tc, event_json_timestamps);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(write_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

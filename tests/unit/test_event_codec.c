/* Round trips: JSON -> event -> JSON and event -> stream fields -> event, for mono and multi
 * events with doubles that must come back bit-identical; and stream decode errors, which the
 * archiver turns into astro:dead reasons. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "astro/event.h"
#include "astro/uuid.h"

#define NOW_US INT64_C(1796090400000000) /* 2026-12-01T02:00:00Z */

static struct astro_event_limits lim;
static struct astro_event a, b;
static struct astro_stream_fields sf;
static char err[256];

static void
setup(void)
{
    lim = astro_event_limits_default();
    lim.allow_multi = true;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    astro_stream_fields_init(&sf);
    err[0] = '\0';
}

static void
teardown(void)
{
    astro_event_cleanup(&a);
    astro_event_cleanup(&b);
    astro_stream_fields_cleanup(&sf);
}

static bool
same_double(double x, double y)
{
    return memcmp(&x, &y, sizeof(x)) == 0;
}

static char *
to_text(const struct astro_event *ev)
{
    cJSON *j = astro_event_to_json(ev);
    ck_assert_ptr_nonnull(j);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    ck_assert_ptr_nonnull(s);
    return s;
}

static const char mono_json[] =
    "{\"event_id\":\"123e4567-e89b-12d3-a456-426614174000\","
    "\"timestamp\":\"2026-12-01T01:59:30.123456Z\",\"source_stream\":\"axon_1\","
    "\"key\":\"user_123\",\"event_type\":\"A\",\"value\":10.5,"
    "\"metadata\":{\"ch\":[1,2.5],\"dev\":{\"fw\":\"1.2\"}}}";

static const char multi_json[] =
    "{\"event_id\":\"484f4607-7ef7-5c0b-a595-20d2ab40517a\","
    "\"timestamp\":\"2026-12-01T01:59:30.000001Z\",\"source_stream\":\"leaflet\","
    "\"key\":\"user_123\",\"event_type\":\"AB\",\"value\":0.1,"
    "\"correlation_rule\":\"r1\",\"integrated_value\":-0,\"confidence\":0.75,"
    "\"source_events\":[\"a-1\",\"b-2\"],"
    "\"lineage\":[{\"event_id\":\"a-1\",\"source_stream\":\"axon_1\",\"event_type\":\"A\","
    "\"timestamp\":\"2026-12-01T01:59:29.000000Z\",\"value\":1e-300},"
    "{\"event_id\":\"b-2\",\"source_stream\":\"axon_2\",\"event_type\":\"B\","
    "\"timestamp\":\"2026-12-01T01:59:30.000000Z\",\"value\":1.7976931348623157e+308}]}";

START_TEST(test_json_round_trip_mono)
{
    ck_assert_msg(astro_event_parse_json(mono_json, strlen(mono_json), &lim, NOW_US, &a, err,
                                         sizeof(err)) == ASTRO_OK, "%s", err);
    char *out = to_text(&a);
    ck_assert_str_eq(out, mono_json);
    free(out);
}
END_TEST

START_TEST(test_json_round_trip_multi)
{
    ck_assert_msg(astro_event_parse_json(multi_json, strlen(multi_json), &lim, NOW_US, &a, err,
                                         sizeof(err)) == ASTRO_OK, "%s", err);
    ck_assert(a.is_multi);
    ck_assert_uint_eq(a.n_sources, 2);
    ck_assert(signbit(a.integrated_value) && a.integrated_value == 0.0);
    ck_assert(same_double(a.lineage[1].value, DBL_MAX));
    char *out = to_text(&a);
    ck_assert_str_eq(out, multi_json);
    free(out);
    /* The id a leaflet would derive for these sources matches the one carried. */
    struct astro_uuid u;
    char id[ASTRO_UUID_STR_LEN + 1];
    const char *ids[] = {a.lineage[1].id, a.lineage[0].id};
    ck_assert_int_eq(astro_uuid_derive(a.rule, ids, 2, &u), ASTRO_OK);
    astro_uuid_format(&u, id);
    ck_assert_str_eq(id, a.id);
}
END_TEST

START_TEST(test_json_epoch_ms_becomes_rfc3339)
{
    const char *in = "{\"event_id\":\"e1\",\"timestamp\":1796090370123.456,"
                     "\"source_stream\":\"s\",\"event_type\":\"t\",\"value\":1}";
    ck_assert_int_eq(astro_event_parse_json(in, strlen(in), &lim, NOW_US, &a, err, sizeof(err)),
                     ASTRO_OK);
    char *out = to_text(&a);
    ck_assert_str_eq(out, "{\"event_id\":\"e1\",\"timestamp\":\"2026-12-01T01:59:30.123456Z\","
                          "\"source_stream\":\"s\",\"key\":\"\",\"event_type\":\"t\",\"value\":1}");
    free(out);
}
END_TEST

static const double doubles[] = {
    0.1, -0.0, 0.0, 1e-300, DBL_MAX, -DBL_MAX, DBL_MIN, 4.9406564584124654e-324, 0.1 + 0.2,
    1.0 / 3.0, 123456789.123456789, -2.5, 9007199254740993.0, 1e22, 42.0,
};

static void
fill_event(struct astro_event *ev, double d, bool multi)
{
    memset(ev, 0, sizeof(*ev));
    strcpy(ev->id, "123e4567-e89b-12d3-a456-426614174000");
    ev->ts_us = INT64_C(1796090370123456);
    ev->src = strdup("axon_1");
    ev->key = strdup("k\xc3\xa9y");
    ev->type = strdup("A");
    ev->value = d;
    ev->meta_json = strdup("{\"x\":[1,\"a,b\"]}");
    if (!multi)
        return;
    ev->is_multi = true;
    ev->rule = strdup("r1");
    ev->integrated_value = -d;
    ev->confidence = 0.3;
    ev->n_sources = 2;
    ev->lineage = calloc(2, sizeof(*ev->lineage));
    strcpy(ev->lineage[0].id, "a-1");
    strcpy(ev->lineage[0].stream, "axon_1");
    strcpy(ev->lineage[0].type, "A");
    ev->lineage[0].ts_us = INT64_C(253402300799999999);
    ev->lineage[0].value = d;
    strcpy(ev->lineage[1].id, "b-2");
    strcpy(ev->lineage[1].stream, "axon_2");
    strcpy(ev->lineage[1].type, "B");
    ev->lineage[1].ts_us = -1;
    ev->lineage[1].value = 0.1;
}

static void
assert_same(const struct astro_event *x, const struct astro_event *y)
{
    ck_assert_str_eq(x->id, y->id);
    ck_assert_int_eq(x->ts_us, y->ts_us);
    ck_assert_str_eq(x->src, y->src);
    ck_assert_str_eq(x->key, y->key);
    ck_assert_str_eq(x->type, y->type);
    ck_assert_msg(same_double(x->value, y->value), "value %.17g != %.17g", x->value, y->value);
    ck_assert_str_eq(x->meta_json, y->meta_json);
    ck_assert_int_eq(x->is_multi, y->is_multi);
    if (!x->is_multi)
        return;
    ck_assert_str_eq(x->rule, y->rule);
    ck_assert(same_double(x->integrated_value, y->integrated_value));
    ck_assert(same_double(x->confidence, y->confidence));
    ck_assert_uint_eq(x->n_sources, y->n_sources);
    for (size_t i = 0; i < x->n_sources; i++) {
        ck_assert_str_eq(x->lineage[i].id, y->lineage[i].id);
        ck_assert_str_eq(x->lineage[i].stream, y->lineage[i].stream);
        ck_assert_str_eq(x->lineage[i].type, y->lineage[i].type);
        ck_assert_int_eq(x->lineage[i].ts_us, y->lineage[i].ts_us);
        ck_assert(same_double(x->lineage[i].value, y->lineage[i].value));
    }
}

static void
stream_round_trip(double d, bool multi)
{
    fill_event(&a, d, multi);
    ck_assert_int_eq(astro_stream_fields_push(&sf, "XADD", 4), ASTRO_OK);
    ck_assert_int_eq(astro_stream_fields_push(&sf, "astro:mono:{3}", 14), ASTRO_OK);
    ck_assert_int_eq(astro_stream_fields_push(&sf, "*", 1), ASTRO_OK);
    ck_assert_int_eq(astro_event_stream_encode(&a, &sf), ASTRO_OK);
    ck_assert_int_eq(sf.argc, 3 + (multi ? 24 : 14));
    ck_assert_msg(astro_event_stream_decode_argv(sf.argv + 3, sf.argvlen + 3,
                                                 (size_t)sf.argc - 3, &b, err,
                                                 sizeof(err)) == ASTRO_OK, "%s", err);
    assert_same(&a, &b);
}

START_TEST(test_stream_round_trip_mono)
{
    stream_round_trip(doubles[_i], false);
}
END_TEST

START_TEST(test_stream_round_trip_multi)
{
    stream_round_trip(doubles[_i], true);
}
END_TEST

/* Doubles through the wire JSON come back bit-identical too (cJSON alone loses -0 and 1 ulp). */
START_TEST(test_json_round_trip_doubles)
{
    fill_event(&a, doubles[_i], true);
    a.ts_us = NOW_US;
    a.lineage[0].ts_us = NOW_US;
    char *text = to_text(&a);
    ck_assert_msg(astro_event_parse_json(text, strlen(text), &lim, NOW_US, &b, err,
                                         sizeof(err)) == ASTRO_OK, "%s: %s", text, err);
    assert_same(&a, &b);
    free(text);
}
END_TEST

START_TEST(test_stream_mono_wire_form)
{
    fill_event(&a, 10.5, false);
    free(a.meta_json);
    a.meta_json = NULL;
    ck_assert_int_eq(astro_event_stream_encode(&a, &sf), ASTRO_OK);
    const char *want[] = {"id", "123e4567-e89b-12d3-a456-426614174000", "ts", "1796090370123456",
                          "src", "axon_1", "key", "k\xc3\xa9y", "type", "A", "val", "10.5"};
    ck_assert_int_eq(sf.argc, 12);
    for (int i = 0; i < 12; i++) {
        ck_assert_uint_eq(sf.argvlen[i], strlen(want[i]));
        ck_assert_mem_eq(sf.argv[i], want[i], sf.argvlen[i]);
    }
    ck_assert_ptr_null(sf.heap[0]); /* mono: no heap allocation */
    ck_assert_int_eq(astro_stream_fields_push(&sf, "x", 1), ASTRO_OK);
}
END_TEST

START_TEST(test_stream_argv_full)
{
    fill_event(&a, 1.0, true);
    for (int i = 0; i < ASTRO_STREAM_MAX_ARGS - 20; i++)
        ck_assert_int_eq(astro_stream_fields_push(&sf, "p", 1), ASTRO_OK);
    ck_assert_int_eq(astro_event_stream_encode(&a, &sf), ASTRO_ERR);
}
END_TEST

/* The lin field written without cJSON: byte for byte what a cJSON tree prints (readers and
 * stored outputs stay as they were), escapes included. */
START_TEST(test_stream_multi_lineage_text)
{
    fill_event(&a, 42.0, true);
    strcpy(a.lineage[1].id, "b\"2\\\n\x01\x7f\xc3\xa9");
    a.lineage[1].value = -0.0;
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < a.n_sources; i++) {
        char ts[32], val[ASTRO_EVENT_DOUBLE_BUF];
        snprintf(ts, sizeof(ts), "%lld", (long long)a.lineage[i].ts_us);
        snprintf(val, sizeof(val), "%.17g", a.lineage[i].value);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", a.lineage[i].id);
        cJSON_AddStringToObject(o, "src", a.lineage[i].stream);
        cJSON_AddStringToObject(o, "type", a.lineage[i].type);
        cJSON_AddStringToObject(o, "ts", ts);
        cJSON_AddRawToObject(o, "val", val);
        cJSON_AddItemToArray(arr, o);
    }
    char *want = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    ck_assert_int_eq(astro_event_stream_encode(&a, &sf), ASTRO_OK);
    ck_assert_str_eq(sf.argv[sf.argc - 2], "lin");
    ck_assert_uint_eq(sf.argvlen[sf.argc - 1], strlen(want));
    ck_assert_mem_eq(sf.argv[sf.argc - 1], want, strlen(want));
    free(want);
}
END_TEST

/* Shortest round-trip text; integers take a fast path that must print the same digits. */
static const struct {
    double d;
    const char *text;
} dtext[] = {
    {0.0, "0"}, {-0.0, "-0"}, {42.0, "42"}, {-7.0, "-7"}, {999999999999999.0, "999999999999999"},
    {-999999999999999.0, "-999999999999999"}, {1e15, "1e+15"}, {0.1, "0.1"}, {2.5, "2.5"},
    {1e300, "1e+300"}, {0.30000000000000004, "0.30000000000000004"}, {DBL_MAX, "1.7976931348623157e+308"},
};

START_TEST(test_format_double)
{
    char buf[ASTRO_EVENT_DOUBLE_BUF];
    astro_event_format_double(dtext[_i].d, buf);
    ck_assert_str_eq(buf, dtext[_i].text);
}
END_TEST

/* Decoding from a hiredis reply, the archiver's path. */
START_TEST(test_stream_decode_reply)
{
    const char *kv[] = {"id", "e-1", "ts", "1796090370000000", "src", "s", "key", "",
                        "type", "t", "val", "-0", "future_field", "ignored"};
    redisReply r[14], *el[14];
    for (int i = 0; i < 14; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i].type = REDIS_REPLY_STRING;
        r[i].str = (char *)kv[i];
        r[i].len = strlen(kv[i]);
        el[i] = &r[i];
    }
    ck_assert_msg(astro_event_stream_decode(el, 14, &a, err, sizeof(err)) == ASTRO_OK, "%s", err);
    ck_assert_str_eq(a.id, "e-1");
    ck_assert_str_eq(a.key, "");
    ck_assert(a.value == 0.0 && signbit(a.value));
    ck_assert_ptr_null(a.meta_json);
    r[5].type = REDIS_REPLY_INTEGER;
    ck_assert_int_eq(astro_event_stream_decode(el, 14, &b, err, sizeof(err)), ASTRO_ERR);
    ck_assert_str_eq(err, "stream entry: element 4 is not a string");
    ck_assert_int_eq(astro_event_stream_decode(el, 13, &b, err, sizeof(err)), ASTRO_ERR);
    ck_assert_str_eq(err, "stream entry: odd number of field/value elements");
}
END_TEST

struct stream_bad {
    const char *field; /* field to replace (or drop when value is NULL) */
    const char *value;
    const char *err;
};

static const struct stream_bad stream_bad[] = {
    {"id", NULL, "stream entry: missing field \"id\""},
    {"ts", NULL, "stream entry: missing field \"ts\""},
    {"src", NULL, "stream entry: missing field \"src\""},
    {"key", NULL, "stream entry: missing field \"key\""},
    {"type", NULL, "stream entry: missing field \"type\""},
    {"val", NULL, "stream entry: missing field \"val\""},
    {"id", "bad id", "stream field id: must be a UUID or 1..64 characters of [A-Za-z0-9_.:-]"},
    {"id", "", "stream field id: must be a UUID or 1..64 characters of [A-Za-z0-9_.:-]"},
    {"ts", "12x", "stream field ts: not an integer"},
    {"ts", "", "stream field ts: not an integer"},
    {"ts", "1.5", "stream field ts: not an integer"},
    {"ts", "+5", "stream field ts: not an integer"},
    {"ts", "99999999999999999999", "stream field ts: not an integer"},
    {"ts", "253402300800000000", "stream field ts: out of range"},
    {"val", "inf", "stream field val: not a finite number"},
    {"val", "nan", "stream field val: not a finite number"},
    {"val", "1e400", "stream field val: not a finite number"},
    {"val", "0x10", "stream field val: not a finite number"},
    {"val", " 1", "stream field val: not a finite number"},
    {"val", "1 ", "stream field val: not a finite number"},
    {"val", "", "stream field val: not a finite number"},
    {"val", "1e", "stream field val: not a finite number"},
    {"src", "a b", "stream field src: invalid character at byte 1*"},
    {"src", "", "stream field src: must not be empty"},
    {"type", "\xc3\xa9", "stream field type: invalid character at byte 0*"},
    {"key", "a\x01", "stream field key: control characters are not allowed"},
    {"key", "\xc0\xaf", "stream field key: invalid UTF-8"},
    {"meta", "[1]", "stream field meta: not a JSON object"},
    {"meta", "{\xff}", "stream field meta: not a JSON object"},
    {"rule", NULL, "stream entry: missing field \"rule\""},
    {"lin", NULL, "stream entry: missing field \"lin\""},
    {"srcs", NULL, "stream entry: missing field \"srcs\""},
    {"conf", "abc", "stream field conf: not a finite number"},
    {"ival", "-inf", "stream field ival: not a finite number"},
    {"rule", "r 1", "stream field rule: invalid character at byte 1*"},
    {"srcs", "b-2,a-1", "stream field srcs: does not match the lineage ids"},
    {"lin", "[", "stream field lin: not a non-empty JSON array"},
    {"lin", "[]", "stream field lin: not a non-empty JSON array"},
    {"lin", "[1]", "stream field lin[0]: not an object"},
    {"lin", "[{\"id\":\"a-1\",\"src\":\"s\",\"type\":\"t\",\"ts\":\"x\",\"val\":1}]",
     "stream field lin.ts: not an integer"},
    {"lin", "[{\"id\":\"a-1\",\"src\":\"s\",\"type\":\"t\",\"ts\":\"1\",\"val\":\"1\"}]",
     "stream field lin[0].val: not a finite number"},
    {"lin", "[{\"src\":\"s\",\"type\":\"t\",\"ts\":\"1\",\"val\":1}]",
     "stream field lin[0].id: missing or not a string"},
};

START_TEST(test_stream_decode_errors)
{
    const struct stream_bad *c = &stream_bad[_i];
    fill_event(&a, 2.5, true);
    ck_assert_int_eq(astro_event_stream_encode(&a, &sf), ASTRO_OK);
    const char *argv[ASTRO_STREAM_MAX_ARGS];
    size_t len[ASTRO_STREAM_MAX_ARGS], n = 0;
    bool found = false;
    for (int i = 0; i < sf.argc; i += 2) {
        bool hit = strcmp(sf.argv[i], c->field) == 0;
        found = found || hit;
        if (hit && c->value == NULL)
            continue;
        argv[n] = sf.argv[i];
        len[n++] = sf.argvlen[i];
        argv[n] = hit ? c->value : sf.argv[i + 1];
        len[n++] = hit ? strlen(c->value) : sf.argvlen[i + 1];
    }
    ck_assert_msg(found, "no field %s", c->field);
    ck_assert_int_eq(astro_event_stream_decode_argv(argv, len, n, &b, err, sizeof(err)),
                     ASTRO_ERR);
    size_t m = strlen(c->err);
    if (c->err[m - 1] == '*')
        ck_assert_msg(strncmp(err, c->err, m - 1) == 0, "got \"%s\" want \"%s\"", err, c->err);
    else
        ck_assert_str_eq(err, c->err);
    ck_assert_ptr_null(b.src);
    ck_assert_ptr_null(b.lineage);
}
END_TEST

START_TEST(test_stream_duplicate_field)
{
    const char *argv[] = {"id", "e", "ts", "1", "src", "s", "key", "", "type", "t", "val", "1",
                          "val", "2"};
    size_t len[14];
    for (int i = 0; i < 14; i++)
        len[i] = strlen(argv[i]);
    ck_assert_int_eq(astro_event_stream_decode_argv(argv, len, 14, &a, err, sizeof(err)),
                     ASTRO_ERR);
    ck_assert_str_eq(err, "stream entry: duplicate field \"val\"");
    /* A NUL inside a string field is refused rather than silently truncated. */
    argv[7] = "a\0b";
    len[7] = 3;
    ck_assert_int_eq(astro_event_stream_decode_argv(argv, len, 12, &a, err, sizeof(err)),
                     ASTRO_ERR);
    ck_assert_str_eq(err, "stream field key: control characters are not allowed");
}
END_TEST

START_TEST(test_cleanup_zeroed_and_twice)
{
    struct astro_event z;
    memset(&z, 0, sizeof(z));
    astro_event_cleanup(&z);
    fill_event(&z, 1.0, true);
    astro_event_cleanup(&z);
    astro_event_cleanup(&z);
    ck_assert_ptr_null(z.lineage);
}
END_TEST

START_TEST(test_to_json_refuses_non_finite)
{
    fill_event(&a, NAN, false);
    ck_assert_ptr_null(astro_event_to_json(&a));
    ck_assert_int_eq(astro_event_stream_encode(&a, &sf), ASTRO_ERR);
}
END_TEST

static Suite *
codec_suite(void)
{
    Suite *s = suite_create("event_codec");
    TCase *tc = tcase_create("codec");
    int nd = (int)ASTRO_ARRAY_LEN(doubles);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_json_round_trip_mono);
    tcase_add_test(tc, test_json_round_trip_multi);
    tcase_add_test(tc, test_json_epoch_ms_becomes_rfc3339);
    tcase_add_loop_test(tc, test_stream_round_trip_mono, 0, nd);
    tcase_add_loop_test(tc, test_stream_round_trip_multi, 0, nd);
    tcase_add_loop_test(tc, test_json_round_trip_doubles, 0, nd);
    tcase_add_test(tc, test_stream_mono_wire_form);
    tcase_add_test(tc, test_stream_argv_full);
    tcase_add_test(tc, test_stream_multi_lineage_text);
    tcase_add_loop_test(tc, test_format_double, 0, (int)ASTRO_ARRAY_LEN(dtext));
    tcase_add_test(tc, test_stream_decode_reply);
    tcase_add_loop_test(tc, test_stream_decode_errors, 0, (int)ASTRO_ARRAY_LEN(stream_bad));
    tcase_add_test(tc, test_stream_duplicate_field);
    tcase_add_test(tc, test_cleanup_zeroed_and_twice);
    tcase_add_test(tc, test_to_json_refuses_non_finite);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(codec_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

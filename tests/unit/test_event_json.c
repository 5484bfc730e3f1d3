/* Decoding events from raw JSON: hostile and malformed inputs must fail with a message naming
 * the field and the reason; good inputs must decode to exactly what the producer sent. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "astro/event.h"
#include "astro/uuid.h"

#define NOW_US INT64_C(1796090400000000) /* 2026-12-01T02:00:00Z */

#define SRC "\"source_stream\":\"axon_1\""
#define TYP "\"event_type\":\"A\""
#define VAL "\"value\":10.5"
#define TS "\"timestamp\":\"2026-12-01T01:59:00Z\""
#define BASE SRC "," TYP "," TS
#define EV(...) "{" BASE "," VAL "," __VA_ARGS__ "}"
#define UUID "123e4567-e89b-12d3-a456-426614174000"
#define S65 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static struct astro_event_limits lim;
static struct astro_event ev;
static char err[256];

static void
setup(void)
{
    lim = astro_event_limits_default();
    memset(&ev, 0, sizeof(ev));
    err[0] = '\0';
}

static void
teardown(void)
{
    astro_event_cleanup(&ev);
}

static int
parse(const char *json, size_t len)
{
    return astro_event_parse_json(json, len, &lim, NOW_US, &ev, err, sizeof(err));
}

struct bad_case {
    const char *json;
    const char *err; /* exact message, or a prefix when it ends in '*' */
};

static const struct bad_case bad[] = {
    /* framing */
    {"", "JSON: empty input"},
    {" \n\t ", "JSON: empty input"},
    {"{" SRC ",\"value\":1", "JSON: syntax error at byte*"},
    {"{\"value\":", "JSON: syntax error at byte*"},
    {"{\"value\"", "JSON: syntax error at byte*"},
    {"[1,2]", "event: expected a JSON object"},
    {"42", "event: expected a JSON object"},
    {"null", "event: expected a JSON object"},
    {"\"event\"", "event: expected a JSON object"},
    {"true", "event: expected a JSON object"},
    {"{} {}", "JSON: unexpected data after the value at byte 3"},
    {"{}x", "JSON: unexpected data after the value at byte 2"},
    {"{" BASE ",\"value\":1,}", "JSON: syntax error at byte*"},
    {"{'value':1}", "JSON: syntax error at byte*"},
    {"{" BASE ", /* c */ \"value\":1}", "JSON: syntax error at byte*"},
    /* non-finite and out-of-range numbers */
    {"{" BASE ",\"value\":NaN}", "JSON: syntax error at byte*"},
    {"{" BASE ",\"value\":Infinity}", "JSON: syntax error at byte*"},
    {"{" BASE ",\"value\":-Infinity}", "JSON: invalid number at byte*"},
    /* the number grammar (cJSON alone would take each of these) */
    {"{" BASE ",\"value\":01}", "JSON: invalid number at byte*"},
    {"{" BASE ",\"value\":-007.5}", "JSON: invalid number at byte*"},
    {"{" BASE ",\"value\":+1}", "JSON: invalid number at byte*"},
    {"{" BASE ",\"value\":.5}", "JSON: invalid number at byte*"},
    {"{" BASE ",\"value\":1.}", "JSON: invalid number at byte*"},
    {"{" BASE ",\"value\":1e}", "JSON: invalid number at byte*"},
    {"{" BASE ",\"value\":1e+}", "JSON: invalid number at byte*"},
    {"{" BASE ",\"value\":1-2}", "JSON: invalid number at byte*"},
    {"{" BASE ",\"value\":--1}", "JSON: invalid number at byte*"},
    {"{" BASE ",\"value\":1,\"metadata\":{\"a\":[1,00]}}", "JSON: invalid number at byte*"},
    {"{" BASE ",\"value\":1e400}", "value: must be a finite number"},
    {"{" BASE ",\"value\":-1e400}", "value: must be a finite number"},
    /* value */
    {"{" BASE ",\"value\":\"10.5\"}", "value: must be a finite number"},
    {"{" BASE ",\"value\":true}", "value: must be a finite number"},
    {"{" BASE ",\"value\":null}", "value: must be a finite number"},
    {"{" BASE ",\"value\":[1]}", "value: must be a finite number"},
    {"{" BASE ",\"value\":{}}", "value: must be a finite number"},
    {"{" BASE "}", "value: missing"},
    /* source_stream / event_type */
    {"{" TYP "," TS "," VAL "}", "source_stream: missing"},
    {"{\"source_stream\":5," TYP "," VAL "}", "source_stream: must be a string"},
    {"{\"source_stream\":null," TYP "," VAL "}", "source_stream: must be a string"},
    {"{\"source_stream\":\"axon 1\"," TYP "," VAL "}",
     "source_stream: invalid character at byte 4 (allowed: A-Z a-z 0-9 _ . : -)"},
    {"{\"source_stream\":\"axon/1\"," TYP "," VAL "}", "source_stream: invalid character at byte 4*"},
    {"{\"source_stream\":\"" S65 "\"," TYP "," VAL "}", "source_stream: longer than 64 bytes"},
    {"{\"source_stream\":\"\"," TYP "," VAL "}", "source_stream: must not be empty"},
    {"{" SRC "," TS "," VAL "}", "event_type: missing"},
    {"{" SRC ",\"event_type\":[\"A\"]," VAL "}", "event_type: must be a string"},
    {"{" SRC ",\"event_type\":\"\xc3\xa9\"," VAL "}", "event_type: invalid character at byte 0*"},
    /* key */
    {EV("\"key\":123"), "key: must be a string"},
    {EV("\"key\":null"), "key: must be a string"},
    {EV("\"key\":\"a\\u0001b\""), "key: control characters are not allowed"},
    {EV("\"key\":\"a\\tb\""), "key: control characters are not allowed"},
    {EV("\"key\":\"a\\nb\""), "key: control characters are not allowed"},
    {EV("\"key\":\"\\u007f\""), "key: control characters are not allowed"},
    {EV("\"key\":\"\\u0085\""), "key: control characters are not allowed"},
    {EV("\"key\":\"a\x01\""), "key: control characters are not allowed"},
    /* event_id */
    {EV("\"event_id\":42"), "event_id: must be a string"},
    {EV("\"event_id\":\"{" UUID "}\""), "event_id: must be a UUID or 1..64 characters of [A-Za-z0-9_.:-]"},
    {EV("\"event_id\":\"\""), "event_id: must be a UUID or 1..64 characters*"},
    {EV("\"event_id\":\"has space\""), "event_id: must be a UUID or 1..64 characters*"},
    {EV("\"event_id\":\"" S65 "\""), "event_id: must be a UUID or 1..64 characters*"},
    /* timestamp */
    {"{" SRC "," TYP "," VAL ",\"timestamp\":true}", "timestamp: not RFC 3339 or epoch ms"},
    {"{" SRC "," TYP "," VAL ",\"timestamp\":null}", "timestamp: not RFC 3339 or epoch ms"},
    {"{" SRC "," TYP "," VAL ",\"timestamp\":{}}", "timestamp: not RFC 3339 or epoch ms"},
    {"{" SRC "," TYP "," VAL ",\"timestamp\":\"2026-02-30T00:00:00Z\"}",
     "timestamp: day 30 out of range for 2026-02"},
    {"{" SRC "," TYP "," VAL ",\"timestamp\":\"2026-12-01T24:00:00Z\"}",
     "timestamp: hour 24 out of range"},
    {"{" SRC "," TYP "," VAL ",\"timestamp\":\"2026-12-01T01:00:00\"}",
     "timestamp: missing time zone (Z or +hh:mm)"},
    {"{" SRC "," TYP "," VAL ",\"timestamp\":\"2026-13-01T00:00:00Z\"}",
     "timestamp: month 13 out of range"},
    {"{" SRC "," TYP "," VAL ",\"timestamp\":\"yesterday\"}",
     "timestamp: not RFC 3339 (YYYY-MM-DDTHH:MM:SS[.f]Z)"},
    {"{" SRC "," TYP "," VAL ",\"timestamp\":\"2026-12-01T02:05:01Z\"}",
     "timestamp: more than 300 s in the future"},
    {"{" SRC "," TYP "," VAL ",\"timestamp\":\"2099-01-01T00:00:00Z\"}",
     "timestamp: more than 300 s in the future"},
    {"{" SRC "," TYP "," VAL ",\"timestamp\":\"2026-10-31T00:00:00Z\"}",
     "timestamp: older than 2592000 s"},
    {"{" SRC "," TYP "," VAL ",\"timestamp\":0}", "timestamp: older than 2592000 s"},
    {"{" SRC "," TYP "," VAL ",\"timestamp\":1e20}",
     "timestamp: epoch ms out of range (years 0001..9999)"},
    {"{" SRC "," TYP "," VAL ",\"timestamp\":123456789012345678901234567890}",
     "timestamp: epoch ms out of range (years 0001..9999)"},
    {"{" SRC "," TYP "," VAL ",\"timestamp\":-9223372036854775809}",
     "timestamp: epoch ms out of range (years 0001..9999)"},
    {"{" SRC "," TYP "," VAL ",\"timestamp\":1e400}", "timestamp: epoch ms must be a finite number"},
    {"{" SRC "," TYP "," VAL ",\"timestamp\":-1e400}", "timestamp: epoch ms must be a finite number"},
    /* metadata */
    {EV("\"metadata\":[1]"), "metadata: must be an object"},
    {EV("\"metadata\":\"x\""), "metadata: must be an object"},
    {EV("\"metadata\":5"), "metadata: must be an object"},
    {EV("\"metadata\":true"), "metadata: must be an object"},
    {EV("\"metadata\":{\"a\":[1,1e400]}"), "metadata: numbers must be finite"},
    /* duplicate and unknown keys */
    {EV("\"value\":11"), "duplicate key \"value\""},
    {"{" BASE ",\"value\":1,\"\\u0076alue\":2}", "duplicate key \"value\""},
    {EV("\"metadata\":{\"a\":{\"b\":1,\"c\":2,\"b\":3}}"), "duplicate key \"b\""},
    {EV("\"metadata\":{\"l\":[{\"x\":1},{\"x\":1,\"x\":2}]}"), "duplicate key \"x\""},
    {EV("\"foo\":1"), "unknown field \"foo\""},
    {EV("\"type\":\"event\""), "unknown field \"type\""},
    {EV("\"Value\":1"), "unknown field \"Value\""},
    {EV("\"correlation_rule\":\"r\""), "unknown field \"correlation_rule\""},
    /* invalid UTF-8 (checked before cJSON sees the bytes) and hostile escapes */
    {EV("\"key\":\"\xc0\xaf\""), "JSON: invalid UTF-8"},
    {EV("\"key\":\"\xed\xa0\x80\""), "JSON: invalid UTF-8"},
    {EV("\"key\":\"\xe2\x82\""), "JSON: invalid UTF-8"},
    {EV("\"key\":\"\xf4\x90\x80\x80\""), "JSON: invalid UTF-8"},
    {EV("\"metadata\":{\"a\":\"\xed\xbf\xbf\"}"), "JSON: invalid UTF-8"},
    {EV("\"metadata\":{\"\xff\":1}"), "JSON: invalid UTF-8"},
    {EV("\"key\":\"a\\u0000b\""), "JSON: \\u0000 is not allowed in strings"},
    {EV("\"key\":\"\\ud800\""), "JSON: syntax error at byte*"},
    {EV("\"metadata\":{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"),
     "JSON: nesting deeper than 32 levels"},
};

START_TEST(test_bad)
{
    const struct bad_case *c = &bad[_i];
    ck_assert_msg(parse(c->json, strlen(c->json)) == ASTRO_ERR, "accepted: %s", c->json);
    size_t n = strlen(c->err);
    if (c->err[n - 1] == '*')
        ck_assert_msg(strncmp(err, c->err, n - 1) == 0, "%s\n got \"%s\"\nwant \"%s\"", c->json,
                      err, c->err);
    else
        ck_assert_msg(strcmp(err, c->err) == 0, "%s\n got \"%s\"\nwant \"%s\"", c->json, err,
                      c->err);
    /* A failed decode leaves nothing allocated and a zeroed event. */
    ck_assert_ptr_null(ev.src);
    ck_assert_ptr_null(ev.key);
    ck_assert_ptr_null(ev.meta_json);
}
END_TEST

/* Builds "{BASE,VAL,<prefix><n x fill><suffix>}" on the heap. */
static char *
big(const char *prefix, char fill, size_t n, const char *suffix)
{
    const char *head = "{" BASE "," VAL ",";
    size_t len = strlen(head) + strlen(prefix) + n + strlen(suffix) + 2;
    char *s = malloc(len);
    ck_assert_ptr_nonnull(s);
    size_t o = (size_t)sprintf(s, "%s%s", head, prefix);
    memset(s + o, fill, n);
    sprintf(s + o + n, "%s}", suffix);
    return s;
}

START_TEST(test_deep_nesting_10k)
{
    char *s = malloc(10001);
    memset(s, '[', 10000);
    s[10000] = '\0';
    ck_assert_int_eq(parse(s, 10000), ASTRO_ERR);
    ck_assert_str_eq(err, "JSON: nesting deeper than 32 levels");
    memset(s, '{', 10000);
    ck_assert_int_eq(parse(s, 10000), ASTRO_ERR);
    ck_assert_str_eq(err, "JSON: nesting deeper than 32 levels");
    free(s);
}
END_TEST

START_TEST(test_one_megabyte_key)
{
    char *s = big("\"key\":\"", 'k', 1 << 20, "\"");
    ck_assert_int_eq(parse(s, strlen(s)), ASTRO_ERR);
    ck_assert_str_eq(err, "key: longer than 256 bytes");
    free(s);
    s = big("\"key\":\"", 'k', 257, "\"");
    ck_assert_int_eq(parse(s, strlen(s)), ASTRO_ERR);
    ck_assert_str_eq(err, "key: longer than 256 bytes");
    free(s);
    s = big("\"key\":\"", 'k', 256, "\"");
    ck_assert_int_eq(parse(s, strlen(s)), ASTRO_OK);
    ck_assert_uint_eq(strlen(ev.key), 256);
    free(s);
}
END_TEST

START_TEST(test_metadata_too_big)
{
    char *s = big("\"metadata\":{\"blob\":\"", 'm', 1 << 20, "\"}");
    ck_assert_int_eq(parse(s, strlen(s)), ASTRO_ERR);
    ck_assert_str_eq(err, "metadata: larger than 65536 bytes");
    free(s);
    /* {"blob":"..."} is 11 bytes of framing: exactly at the limit passes, one more fails. */
    s = big("\"metadata\":{\"blob\":\"", 'm', 65536 - 11, "\"}");
    ck_assert_int_eq(parse(s, strlen(s)), ASTRO_OK);
    ck_assert_uint_eq(strlen(ev.meta_json), 65536);
    free(s);
    astro_event_cleanup(&ev);
    s = big("\"metadata\":{\"blob\":\"", 'm', 65536 - 10, "\"}");
    ck_assert_int_eq(parse(s, strlen(s)), ASTRO_ERR);
    ck_assert_str_eq(err, "metadata: larger than 65536 bytes");
    free(s);
}
END_TEST

/* An object with many keys takes the sorted path of the duplicate check. */
START_TEST(test_duplicate_in_large_object)
{
    char *s = malloc(64 * 1024);
    size_t o = (size_t)sprintf(s, "{" BASE "," VAL ",\"metadata\":{");
    for (int i = 0; i < 2000; i++)
        o += (size_t)sprintf(s + o, "\"k%d\":%d,", i, i);
    sprintf(s + o, "\"k1234\":0}}");
    ck_assert_int_eq(parse(s, strlen(s)), ASTRO_ERR);
    ck_assert_str_eq(err, "duplicate key \"k1234\"");
    sprintf(s + o, "\"k2000\":0}}");
    ck_assert_int_eq(parse(s, strlen(s)), ASTRO_OK);
    free(s);
}
END_TEST

START_TEST(test_nul_inside_buffer)
{
    const char s[] = "{" BASE "," VAL "}\0{}";
    ck_assert_int_eq(parse(s, sizeof(s) - 1), ASTRO_ERR);
    char want[96];
    snprintf(want, sizeof(want), "JSON: unexpected data after the value at byte %zu", strlen(s));
    ck_assert_str_eq(err, want);
    /* Without the tail, the same bytes are fine: len bounds the parse, not a terminator. */
    ck_assert_int_eq(parse(s, strlen(s)), ASTRO_OK);
}
END_TEST

START_TEST(test_good_all_fields)
{
    const char *s = "{\"event_id\":\"" UUID "\",\"timestamp\":\"2026-12-01T01:59:30.123456Z\","
                    "\"source_stream\":\"axon_1\",\"key\":\"user_123\",\"event_type\":\"A\","
                    "\"value\":10.5,\"metadata\":{\"ch\":[1,2.5],\"dev\":{\"fw\":\"1.2\"}}}  \n";
    ck_assert_msg(parse(s, strlen(s)) == ASTRO_OK, "%s", err);
    ck_assert_str_eq(ev.id, UUID);
    ck_assert_int_eq(ev.ts_us, INT64_C(1796090370123456));
    ck_assert_str_eq(ev.src, "axon_1");
    ck_assert_str_eq(ev.key, "user_123");
    ck_assert_str_eq(ev.type, "A");
    ck_assert(ev.value == 10.5);
    ck_assert_str_eq(ev.meta_json, "{\"ch\":[1,2.5],\"dev\":{\"fw\":\"1.2\"}}");
    ck_assert_uint_eq(ev.assign, 0);
    ck_assert(!ev.is_multi);
}
END_TEST

/* Every form the JSON number grammar allows still reads, inside strings anything goes. */
static const struct {
    const char *text;
    double want;
} good_numbers[] = {
    {"0", 0}, {"-0", -0.0}, {"0.5", 0.5}, {"-0.5e-3", -0.0005}, {"1E+2", 100}, {"10", 10},
    {"120.25", 120.25}, {"0e0", 0}, {"-9007199254740993", -9007199254740992.0},
};

START_TEST(test_good_numbers)
{
    char s[512];
    snprintf(s, sizeof(s), "{" BASE ",\"value\":%s,\"metadata\":{\"n\":[%s,-1],\"t\":\"01.+e\"}}",
             good_numbers[_i].text, good_numbers[_i].text);
    ck_assert_msg(parse(s, strlen(s)) == ASTRO_OK, "%s: %s", good_numbers[_i].text, err);
    ck_assert(ev.value == good_numbers[_i].want);
}
END_TEST

START_TEST(test_good_epoch_ms_and_offset)
{
    const char *s = "{" SRC "," TYP "," VAL ",\"timestamp\":1796090370123.456}";
    ck_assert_msg(parse(s, strlen(s)) == ASTRO_OK, "%s", err);
    ck_assert_int_eq(ev.ts_us, INT64_C(1796090370123456));
    astro_event_cleanup(&ev);
    s = "{" SRC "," TYP "," VAL ",\"timestamp\":1796090370000}";
    ck_assert_msg(parse(s, strlen(s)) == ASTRO_OK, "%s", err);
    ck_assert_int_eq(ev.ts_us, INT64_C(1796090370000000));
    astro_event_cleanup(&ev);
    s = "{" SRC "," TYP "," VAL ",\"timestamp\":\"2026-12-01T03:59:30.5+02:00\"}";
    ck_assert_msg(parse(s, strlen(s)) == ASTRO_OK, "%s", err);
    ck_assert_int_eq(ev.ts_us, INT64_C(1796090370500000));
    astro_event_cleanup(&ev);
    s = "{" SRC "," TYP "," VAL ",\"timestamp\":\"2026-11-30t20:59:30-05:00\"}";
    ck_assert_msg(parse(s, strlen(s)) == ASTRO_OK, "%s", err);
    ck_assert_int_eq(ev.ts_us, INT64_C(1796090370000000));
}
END_TEST

START_TEST(test_good_unicode_key)
{
    const char *s = EV("\"key\":\"\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87-\\u00e9-\xf0\x9f\x98\x80\"");
    ck_assert_msg(parse(s, strlen(s)) == ASTRO_OK, "%s", err);
    ck_assert_str_eq(ev.key, "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87-\xc3\xa9-\xf0\x9f\x98\x80");
}
END_TEST

START_TEST(test_defaults_assigned)
{
    const char *s = "{" SRC "," TYP "," VAL ",\"metadata\":null}";
    ck_assert_msg(parse(s, strlen(s)) == ASTRO_OK, "%s", err);
    ck_assert_uint_eq(ev.assign, ASTRO_EVENT_ASSIGN_ID | ASTRO_EVENT_ASSIGN_TS);
    ck_assert_str_eq(ev.key, "");
    ck_assert_ptr_null(ev.meta_json);
    ck_assert_int_eq(astro_event_assign_defaults(&ev, NOW_US), ASTRO_OK);
    ck_assert_uint_eq(ev.assign, 0);
    ck_assert_int_eq(ev.ts_us, NOW_US);
    struct astro_uuid u;
    ck_assert_int_eq(astro_uuid_parse(ev.id, strlen(ev.id), &u), ASTRO_OK);
    ck_assert_int_eq(ev.id[14], '4');
}
END_TEST

START_TEST(test_ids_normalised)
{
    const char *s = EV("\"event_id\":\"123E4567-E89B-12D3-A456-426614174000\"");
    ck_assert_msg(parse(s, strlen(s)) == ASTRO_OK, "%s", err);
    ck_assert_str_eq(ev.id, UUID);
    astro_event_cleanup(&ev);
    s = EV("\"event_id\":\"Dev-7:seq.42_A\"");
    ck_assert_msg(parse(s, strlen(s)) == ASTRO_OK, "%s", err);
    ck_assert_str_eq(ev.id, "Dev-7:seq.42_A");
}
END_TEST

START_TEST(test_extra_fields_and_limits)
{
    static const char *const envelope[] = {"type", "seq"};
    lim.extra_fields = envelope;
    lim.n_extra_fields = 2;
    const char *s = EV("\"type\":\"event\",\"seq\":7");
    ck_assert_msg(parse(s, strlen(s)) == ASTRO_OK, "%s", err);
    astro_event_cleanup(&ev);
    /* 0 = no timestamp window, for backfills. */
    lim.max_age_us = 0;
    lim.max_future_us = 0;
    s = "{" SRC "," TYP "," VAL ",\"timestamp\":\"1999-01-01T00:00:00Z\"}";
    ck_assert_msg(parse(s, strlen(s)) == ASTRO_OK, "%s", err);
    astro_event_cleanup(&ev);
    lim.max_name_bytes = 4;
    s = "{" SRC "," TYP "," VAL "}";
    ck_assert_int_eq(parse(s, strlen(s)), ASTRO_ERR);
    ck_assert_str_eq(err, "source_stream: longer than 4 bytes");
}
END_TEST

START_TEST(test_strict_parse_helpers)
{
    const char *s = " [ {\"a\":1}, {\"a\":2} ] ";
    cJSON *j = astro_json_parse_strict(s, strlen(s), 4, err, sizeof(err));
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(cJSON_GetArraySize(j), 2);
    cJSON_Delete(j);
    s = "[{\"a\":1,\"a\":2}]";
    ck_assert_ptr_null(astro_json_parse_strict(s, strlen(s), 4, err, sizeof(err)));
    ck_assert_str_eq(err, "duplicate key \"a\"");
    s = "[[[\"]]]]]]]]\"]]]";
    j = astro_json_parse_strict(s, strlen(s), 3, err, sizeof(err));
    ck_assert_ptr_nonnull(j); /* brackets inside strings do not count */
    cJSON_Delete(j);
    ck_assert_ptr_null(astro_json_parse_strict(s, strlen(s), 2, err, sizeof(err)));
    ck_assert_str_eq(err, "JSON: nesting deeper than 2 levels");
    s = "{\"a\\\"\\\\\":\"\\\\u0000\"}"; /* an escaped backslash, then literal u0000 text */
    j = astro_json_parse_strict(s, strlen(s), 2, err, sizeof(err));
    ck_assert_msg(j != NULL, "%s", err);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"x\":{\"y\":1,\"y\":1}}");
    ck_assert_int_eq(astro_json_check_duplicates(j, err, sizeof(err)), ASTRO_ERR);
    ck_assert_str_eq(err, "duplicate key \"y\"");
    cJSON_Delete(j);
}
END_TEST

START_TEST(test_decode_not_object)
{
    cJSON *j = cJSON_CreateArray();
    ck_assert_int_eq(astro_event_decode_json(j, &lim, NOW_US, &ev, err, sizeof(err)), ASTRO_ERR);
    ck_assert_str_eq(err, "event: expected a JSON object");
    cJSON_Delete(j);
    ck_assert_int_eq(astro_event_decode_json(NULL, &lim, NOW_US, &ev, err, sizeof(err)),
                     ASTRO_ERR);
}
END_TEST

static Suite *
event_json_suite(void)
{
    Suite *s = suite_create("event_json");
    TCase *tc = tcase_create("decode");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_bad, 0, (int)ASTRO_ARRAY_LEN(bad));
    tcase_add_test(tc, test_deep_nesting_10k);
    tcase_add_test(tc, test_one_megabyte_key);
    tcase_add_test(tc, test_metadata_too_big);
    tcase_add_test(tc, test_duplicate_in_large_object);
    tcase_add_test(tc, test_nul_inside_buffer);
    tcase_add_test(tc, test_good_all_fields);
    tcase_add_test(tc, test_good_epoch_ms_and_offset);
    tcase_add_loop_test(tc, test_good_numbers, 0, (int)(sizeof(good_numbers) / sizeof(good_numbers[0])));
    tcase_add_test(tc, test_good_unicode_key);
    tcase_add_test(tc, test_defaults_assigned);
    tcase_add_test(tc, test_ids_normalised);
    tcase_add_test(tc, test_extra_fields_and_limits);
    tcase_add_test(tc, test_strict_parse_helpers);
    tcase_add_test(tc, test_decode_not_object);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(event_json_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

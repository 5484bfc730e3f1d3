/* astro-ingest message parsing: the WebSocket envelope (auth, event, events, features, raw),
 * POST /events bodies (object, array, NDJSON), the auth message, error frames and the
 * backpressure hysteresis. Pure functions: no Redis, no sockets. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "astro/time.h"
#include "astro/uuid.h"
#include "ingest.h"

static struct astro_event_limits lim, ws_lim;
static struct ing_parse_opts ws_o, http_o;
static const char *const extra[] = {"type", "seq"};
static struct ing_parsed p;

static void
setup(void)
{
    lim = astro_event_limits_default();
    ws_lim = lim;
    ws_lim.extra_fields = extra;
    ws_lim.n_extra_fields = 2;
    ws_o = (struct ing_parse_opts){&ws_lim, 3, astro_now_us(), "user_123"};
    http_o = (struct ing_parse_opts){&lim, 3, astro_now_us(), ""};
    memset(&p, 0, sizeof(p));
}

static void
teardown(void)
{
    ing_parsed_cleanup(&p);
}

static const struct {
    const char *msg;
    int rc;
    enum ing_msg_kind kind;   /* when rc == ASTRO_OK */
    enum ing_reason reason;   /* when rc == ASTRO_ERR */
    size_t n;
    const char *type, *key, *meta_has;
} ws_cases[] = {
    {"{\"type\":\"auth\",\"api_key\":\"k\",\"user_id\":\"u\"}", ASTRO_OK, ING_MSG_AUTH, 0, 0,
     NULL, NULL, NULL},
    {"{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1}", ASTRO_OK,
     ING_MSG_EVENT, 0, 1, "A", "user_123", NULL},
    {"{\"type\":\"event\",\"key\":\"\",\"source_stream\":\"s\",\"event_type\":\"A\","
     "\"value\":1}", ASTRO_OK, ING_MSG_EVENT, 0, 1, "A", "", NULL},
    {"{\"type\":\"event\",\"key\":\"dev9\",\"seq\":3,\"source_stream\":\"s\",\"event_type\":"
     "\"A\",\"value\":1}", ASTRO_OK, ING_MSG_EVENT, 0, 1, "A", "dev9", NULL},
    {"{\"type\":\"events\",\"items\":[{\"source_stream\":\"s\",\"event_type\":\"B\","
     "\"value\":1},{\"source_stream\":\"s\",\"event_type\":\"B\",\"value\":2}]}", ASTRO_OK,
     ING_MSG_EVENTS, 0, 2, "B", "user_123", NULL},
    {"{\"type\":\"features\",\"workload\":0.65,\"confidence\":0.89,\"band_powers\":{\"a\":1},"
     "\"metrics\":{}}", ASTRO_OK, ING_MSG_FEATURES, 0, 1, "features", "user_123",
     "\"band_powers\":{\"a\":1}"},
    {"{\"type\":\"features\"}", ASTRO_OK, ING_MSG_FEATURES, 0, 1, "features", "user_123", NULL},
    {"{\"type\":\"raw\",\"channels\":[0.1,0.2]}", ASTRO_OK, ING_MSG_RAW, 0, 1, "raw",
     "user_123", "\"channels\":[0.1,0.2]"},
    {"nope", ASTRO_ERR, 0, ING_R_INVALID_JSON, 0, NULL, NULL, NULL},
    {"[1]", ASTRO_ERR, 0, ING_R_INVALID_JSON, 0, NULL, NULL, NULL},
    {"{\"type\":\"event\",\"type\":\"raw\"}", ASTRO_ERR, 0, ING_R_INVALID_JSON, 0, NULL, NULL,
     NULL},
    {"{\"seq\":1}", ASTRO_ERR, 0, ING_R_UNKNOWN_TYPE, 0, NULL, NULL, NULL},
    {"{\"type\":\"subscribe\"}", ASTRO_ERR, 0, ING_R_UNKNOWN_TYPE, 0, NULL, NULL, NULL},
    {"{\"type\":\"event\",\"seq\":-2}", ASTRO_ERR, 0, ING_R_INVALID_EVENT, 0, NULL, NULL, NULL},
    {"{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\"}", ASTRO_ERR, 0,
     ING_R_INVALID_EVENT, 0, NULL, NULL, NULL},
    {"{\"type\":\"events\",\"items\":[{},{},{},{}]}", ASTRO_ERR, 0, ING_R_TOO_MANY_ITEMS, 0,
     NULL, NULL, NULL},
    {"{\"type\":\"events\",\"items\":[]}", ASTRO_ERR, 0, ING_R_INVALID_EVENT, 0, NULL, NULL,
     NULL},
    {"{\"type\":\"features\",\"confidence\":2}", ASTRO_ERR, 0, ING_R_INVALID_EVENT, 0, NULL,
     NULL, NULL},
    {"{\"type\":\"raw\",\"channels\":[1,\"x\"]}", ASTRO_ERR, 0, ING_R_INVALID_EVENT, 0, NULL,
     NULL, NULL},
};

START_TEST(ws_table)
{
    const char *m = ws_cases[_i].msg;
    int rc = ing_msg_parse_ws(m, strlen(m), &ws_o, &p);
    ck_assert_msg(rc == ws_cases[_i].rc, "case %d: rc %d (%s)", _i, rc, p.message);
    if (rc != ASTRO_OK) {
        ck_assert_int_eq(p.reason, ws_cases[_i].reason);
        ck_assert(p.message[0] != '\0');
        return;
    }
    ck_assert_int_eq(p.kind, ws_cases[_i].kind);
    ck_assert_uint_eq(p.n, ws_cases[_i].n);
    for (size_t i = 0; i < p.n; i++) {
        ck_assert_str_eq(p.ev[i].type, ws_cases[_i].type);
        ck_assert_str_eq(p.ev[i].key, ws_cases[_i].key);
        ck_assert(p.ev[i].id[0] != '\0' && p.ev[i].ts_us > 0 && p.ev[i].assign == 0);
        if (ws_cases[_i].meta_has != NULL)
            ck_assert_msg(strstr(p.ev[i].meta_json, ws_cases[_i].meta_has) != NULL, "meta %s",
                          p.ev[i].meta_json);
    }
}
END_TEST

START_TEST(features_value_is_workload_source_defaults)
{
    const char *m = "{\"type\":\"features\",\"seq\":9,\"workload\":0.65}";
    ck_assert_int_eq(ing_msg_parse_ws(m, strlen(m), &ws_o, &p), ASTRO_OK);
    ck_assert(p.has_seq && p.seq == 9);
    ck_assert(p.ev[0].value == 0.65);
    ck_assert_str_eq(p.ev[0].src, "edge");
    ing_parsed_cleanup(&p);
    m = "{\"type\":\"raw\",\"source_stream\":\"eeg\",\"channels\":[1,2,3]}";
    ck_assert_int_eq(ing_msg_parse_ws(m, strlen(m), &ws_o, &p), ASTRO_OK);
    ck_assert(p.ev[0].value == 3);
    ck_assert_str_eq(p.ev[0].src, "eeg");
}
END_TEST

START_TEST(batch_errors_list_every_bad_item)
{
    const char *m = "{\"type\":\"events\",\"seq\":4,\"items\":[{\"source_stream\":\"s\","
                    "\"event_type\":\"A\",\"value\":1},{\"source_stream\":\"s s\",\"event_type\":"
                    "\"A\",\"value\":1},{\"event_type\":\"A\",\"value\":1}]}";
    ck_assert_int_eq(ing_msg_parse_ws(m, strlen(m), &ws_o, &p), ASTRO_ERR);
    ck_assert_int_eq(p.reason, ING_R_INVALID_EVENT);
    ck_assert_int_eq(cJSON_GetArraySize(p.items), 2);
    char *e = ing_msg_error_json(p.reason, p.message, &p, 0);
    ck_assert_msg(strstr(e, "\"code\":\"invalid_event\"") && strstr(e, "\"seq\":4") &&
                  strstr(e, "{\"index\":1,\"field\":\"source_stream\"") &&
                  strstr(e, "{\"index\":2,\"field\":\"source_stream\",\"reason\":\"missing\"}") &&
                  !strstr(e, "retry_after_ms"), "%s", e);
    free(e);
    e = ing_msg_error_json(ING_R_BACKPRESSURE, "later", NULL, 1500);
    ck_assert_str_eq(e, "{\"type\":\"error\",\"code\":\"backpressure\",\"message\":\"later\","
                        "\"retry_after_ms\":1500}");
    free(e);
}
END_TEST

static const struct {
    const char *body;
    int rc;
    size_t n;
    enum ing_reason reason;
} http_cases[] = {
    {"{\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1}", ASTRO_OK, 1, 0},
    {"  [{\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1}]\n", ASTRO_OK, 1, 0},
    {"{\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1}\n\n"
     "{\"source_stream\":\"s\",\"event_type\":\"B\",\"value\":2}\r\n", ASTRO_OK, 2, 0},
    {"", ASTRO_ERR, 0, ING_R_INVALID_JSON},
    {" \n \n", ASTRO_ERR, 0, ING_R_INVALID_JSON},
    {"{\"source_stream\":\"s\"", ASTRO_ERR, 0, ING_R_INVALID_JSON},
    {"{\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1}\nnot json\n", ASTRO_ERR, 0,
     ING_R_INVALID_JSON},
    {"1", ASTRO_ERR, 0, ING_R_INVALID_JSON},
    {"[]", ASTRO_ERR, 0, ING_R_INVALID_EVENT},
    {"[{},{},{},{}]", ASTRO_ERR, 0, ING_R_TOO_MANY_ITEMS},
    {"{}\n{}\n{}\n{}\n", ASTRO_ERR, 0, ING_R_TOO_MANY_ITEMS},
    {"{\"type\":\"event\",\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1}", ASTRO_ERR,
     0, ING_R_INVALID_EVENT},
};

START_TEST(http_table)
{
    const char *b = http_cases[_i].body;
    int rc = ing_msg_parse_http(b, strlen(b), &http_o, &p);
    ck_assert_msg(rc == http_cases[_i].rc, "case %d: rc %d (%s)", _i, rc, p.message);
    if (rc == ASTRO_OK) {
        ck_assert_uint_eq(p.n, http_cases[_i].n);
        ck_assert_str_eq(p.ev[0].key, ""); /* no user on HTTP: key stays "" */
    } else {
        ck_assert_int_eq(p.reason, http_cases[_i].reason);
    }
}
END_TEST

static const struct {
    const char *msg;
    int rc;
    const char *err_has;
} auth_cases[] = {
    {"{\"type\":\"auth\",\"api_key\":\"k\",\"user_id\":\"user_123\",\"device_info\":"
     "{\"device_type\":\"Emotiv EPOC\",\"sampling_rate\":128,\"channel_names\":[\"a\",\"b\"],"
     "\"channel_count\":2}}", ASTRO_OK, NULL},
    {"{\"type\":\"auth\",\"user_id\":\"u\"}", ASTRO_OK, NULL}, /* key may come in the query */
    {"{\"type\":\"auth\",\"api_key\":\"k\"}", ASTRO_ERR, "user_id"},
    {"{\"type\":\"auth\",\"api_key\":\"k\",\"user_id\":\"\"}", ASTRO_ERR, "user_id"},
    {"{\"type\":\"auth\",\"api_key\":\"k\",\"user_id\":7}", ASTRO_ERR, "user_id"},
    {"{\"type\":\"auth\",\"api_key\":7,\"user_id\":\"u\"}", ASTRO_ERR, "api_key"},
    {"{\"type\":\"auth\",\"api_key\":\"k\",\"user_id\":\"u\",\"x\":1}", ASTRO_ERR, "x"},
    {"{\"type\":\"auth\",\"api_key\":\"k\",\"user_id\":\"u\",\"device_info\":[]}", ASTRO_ERR,
     "device_info"},
    {"{\"type\":\"auth\",\"api_key\":\"k\",\"user_id\":\"u\",\"device_info\":"
     "{\"sampling_rate\":-1}}", ASTRO_ERR, "sampling_rate"},
    {"{\"type\":\"auth\",\"api_key\":\"k\",\"user_id\":\"u\",\"device_info\":"
     "{\"channel_names\":[\"a\"],\"channel_count\":2}}", ASTRO_ERR, "channel_count"},
    {"{\"type\":\"auth\",\"api_key\":\"k\",\"user_id\":\"u\",\"device_info\":"
     "{\"channel_names\":[1]}}", ASTRO_ERR, "channel_names"},
};

START_TEST(auth_table)
{
    const char *m = auth_cases[_i].msg, *key;
    char user[257], err[256] = "", *dev = NULL;
    ck_assert_int_eq(ing_msg_parse_ws(m, strlen(m), &ws_o, &p), ASTRO_OK);
    ck_assert_int_eq(p.kind, ING_MSG_AUTH);
    int rc = ing_msg_auth(&p, &key, user, sizeof(user), &dev, err, sizeof(err));
    ck_assert_msg(rc == auth_cases[_i].rc, "case %d: %s", _i, err);
    if (rc == ASTRO_ERR)
        ck_assert_msg(strstr(err, auth_cases[_i].err_has) != NULL, "case %d: %s", _i, err);
    if (_i == 0) {
        ck_assert_str_eq(user, "user_123");
        ck_assert_str_eq(key, "k");
        ck_assert_ptr_nonnull(strstr(dev, "\"Emotiv EPOC\""));
    }
    free(dev);
}
END_TEST

START_TEST(backpressure_hysteresis)
{
    /* off: turns on only above high; on: turns off only below low */
    ck_assert(!ing_bp_next(false, 1000, 1000, 500));
    ck_assert(ing_bp_next(false, 1001, 1000, 500));
    ck_assert(ing_bp_next(true, 800, 1000, 500));
    ck_assert(ing_bp_next(true, 500, 1000, 500));
    ck_assert(!ing_bp_next(true, 499, 1000, 500));
    ck_assert(!ing_bp_next(false, 800, 1000, 500));
    /* the marks must leave a band, or the state would flap */
    struct ing_config cfg = {.bp_high = 1000, .bp_low = 500};
    char err[160];
    ck_assert_int_eq(ing_config_check(&cfg, err, sizeof(err)), ASTRO_OK);
    cfg.bp_low = 1000;
    ck_assert_int_eq(ing_config_check(&cfg, err, sizeof(err)), ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "ASTRO_BACKPRESSURE_LOW"));
}
END_TEST

/* The recent buffer's JSON must be exactly what the shared encoder writes, escapes included. */
static const char *const text_events[] = {
    "{\"event_id\":\"e-1\",\"timestamp\":\"2026-12-01T00:00:00.5Z\",\"source_stream\":\"s\","
    "\"key\":\"k\",\"event_type\":\"A\",\"value\":10.5}",
    "{\"event_id\":\"e-2\",\"timestamp\":1796000000000,\"source_stream\":\"s\",\"key\":"
    "\"q\\\"uo\\\\te\u00e9\\ud83d\\ude80\",\"event_type\":\"A\",\"value\":-0.0,"
    "\"metadata\":{\"a\":[1,\"x\\n\"],\"b\":{}}}",
    "{\"event_id\":\"e-3\",\"timestamp\":\"2026-12-01T00:00:00Z\",\"source_stream\":\"s\","
    "\"key\":\"\",\"event_type\":\"A\",\"value\":1e300,\"metadata\":null}",
};

START_TEST(event_json_matches_shared_encoder)
{
    struct astro_event ev = {0};
    char err[256];
    struct astro_event_limits l = astro_event_limits_default();
    l.max_future_us = l.max_age_us = 0;
    const char *m = text_events[_i];
    ck_assert_msg(astro_event_parse_json(m, strlen(m), &l, astro_now_us(), &ev, err,
                                         sizeof(err)) == ASTRO_OK, "%s", err);
    cJSON *j = astro_event_to_json(&ev);
    char *want = cJSON_PrintUnformatted(j), *got = ing_event_json(&ev, NULL);
    ck_assert_str_eq(got, want);
    free(got);
    char num[ASTRO_EVENT_DOUBLE_BUF];
    astro_event_format_double(ev.value, num);
    got = ing_event_json(&ev, num); /* the stream encoder's text, as the write path passes it */
    ck_assert_str_eq(got, want);
    free(want);
    free(got);
    cJSON_Delete(j);
    astro_event_cleanup(&ev);
}
END_TEST

START_TEST(batch_ids_are_distinct_v4)
{
    const char *m = "[{\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1},"
                    "{\"event_id\":\"mine\",\"source_stream\":\"s\",\"event_type\":\"A\","
                    "\"value\":1},{\"source_stream\":\"s\",\"event_type\":\"A\",\"value\":1}]";
    ck_assert_int_eq(ing_msg_parse_http(m, strlen(m), &http_o, &p), ASTRO_OK);
    struct astro_uuid u;
    ck_assert_str_eq(p.ev[1].id, "mine");
    ck_assert_str_ne(p.ev[0].id, p.ev[2].id);
    for (int i = 0; i < 3; i += 2) {
        ck_assert_int_eq(astro_uuid_parse(p.ev[i].id, strlen(p.ev[i].id), &u), ASTRO_OK);
        ck_assert_int_eq(p.ev[i].id[14], '4');
        ck_assert_ptr_nonnull(strchr("89ab", p.ev[i].id[19]));
        ck_assert_int_eq(p.ev[i].assign, 0);
        ck_assert_int_eq(p.ev[i].ts_us, http_o.now_us);
    }
}
END_TEST

static Suite *
msg_suite(void)
{
    Suite *s = suite_create("ingest_msg");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, ws_table, 0, (int)(sizeof(ws_cases) / sizeof(ws_cases[0])));
    tcase_add_test(tc, features_value_is_workload_source_defaults);
    tcase_add_test(tc, batch_errors_list_every_bad_item);
    tcase_add_loop_test(tc, http_table, 0, (int)(sizeof(http_cases) / sizeof(http_cases[0])));
    tcase_add_loop_test(tc, auth_table, 0, (int)(sizeof(auth_cases) / sizeof(auth_cases[0])));
    tcase_add_test(tc, backpressure_hysteresis);
    tcase_add_loop_test(tc, event_json_matches_shared_encoder, 0,
                        (int)(sizeof(text_events) / sizeof(text_events[0])));
    tcase_add_test(tc, batch_ids_are_distinct_v4);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(msg_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

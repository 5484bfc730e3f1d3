/* Unit tests of the network layer's pure parts: percent-decoding and query parsing, route
 * matching, the handshake key, frame encoding of shared messages, limits and their ASTRO_*
 * table. The layer's behaviour on the wire is in tests/integration/test_net.c. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "astro/config.h"
#include "astro/loop.h"
#include "astro/net_limits.h"
#include "astro/ws.h"

/* The layer's private helpers are tested through its internal header. */
#include "../../common/net_internal.h"

/* ---- percent-decoding ---- */

static const struct {
    const char *in;
    bool plus;
    const char *out; /* NULL: refused */
} pct_cases[] = {
    {"abc", false, "abc"},
    {"a%20b", false, "a b"},
    {"a+b", true, "a b"},
    {"a+b", false, "a+b"},
    {"%2Fetc%2fpasswd", false, "/etc/passwd"},
    {"%C3%A9", false, "\xc3\xa9"},
    {"%", false, NULL},
    {"%2", false, NULL},
    {"%zz", false, NULL},
    {"a%00b", false, NULL},
    {"", false, ""},
};

START_TEST(pct_decode_table)
{
    char *got = net_pct_decode(pct_cases[_i].in, strlen(pct_cases[_i].in), pct_cases[_i].plus);
    if (pct_cases[_i].out == NULL) {
        ck_assert_msg(got == NULL, "\"%s\" should be refused", pct_cases[_i].in);
    } else {
        ck_assert_ptr_nonnull(got);
        ck_assert_str_eq(got, pct_cases[_i].out);
    }
    free(got);
}
END_TEST

/* ---- URL, query and route matching ---- */

static struct astro_http_req *
make_req(const char *method, const char *url)
{
    struct astro_http_req *r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    r->method = method;
    ck_assert_int_eq(net_strbuf_add(&r->url, url, strlen(url)), ASTRO_OK);
    return r;
}

START_TEST(url_query_parsing)
{
    char err[128];
    struct astro_http_req *r = make_req("GET", "/events/mono?limit=10&source_stream=a%2Bb&x&q=1+2#frag");
    ck_assert_int_eq(net_req_parse_url(r, err, sizeof(err)), ASTRO_OK);
    ck_assert_str_eq(astro_http_req_path(r), "/events/mono");
    ck_assert_uint_eq(astro_http_req_query_count(r), 4);
    ck_assert_str_eq(astro_http_req_query(r, "limit"), "10");
    ck_assert_str_eq(astro_http_req_query(r, "source_stream"), "a+b");
    ck_assert_str_eq(astro_http_req_query(r, "x"), "");
    ck_assert_str_eq(astro_http_req_query(r, "q"), "1 2");
    ck_assert_ptr_null(astro_http_req_query(r, "missing"));
    const char *n, *v;
    astro_http_req_query_at(r, 3, &n, &v);
    ck_assert_str_eq(n, "q");
    net_req_free(r);
    r = make_req("GET", "/x?bad=%G1");
    ck_assert_int_eq(net_req_parse_url(r, err, sizeof(err)), ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "query"));
    net_req_free(r);
    r = make_req("GET", "http://host/x");
    ck_assert_int_eq(net_req_parse_url(r, err, sizeof(err)), ASTRO_ERR);
    net_req_free(r);
}
END_TEST

static const struct {
    const char *method, *url;
    int route;  /* index into the routes, or -1 */
    int status; /* when route is -1 */
    const char *param, *value;
} match_cases[] = {
    {"GET", "/health", 0, 0, NULL, NULL},
    {"HEAD", "/health", 0, 0, NULL, NULL},
    {"POST", "/health", -1, 405, NULL, NULL},
    {"GET", "/subscribe/user_1", 1, 0, "user_id", "user_1"},
    {"GET", "/subscribe/a%2Fb?x=1", 1, 0, "user_id", "a/b"},
    {"GET", "/subscribe/", -1, 404, NULL, NULL},
    {"GET", "/subscribe/a/b", -1, 404, NULL, NULL},
    {"GET", "/events/mono/42", 2, 0, "id", "42"},
    {"POST", "/events", 3, 0, NULL, NULL},
    {"GET", "/events", -1, 405, NULL, NULL},
    {"GET", "/", 4, 0, NULL, NULL},
    {"GET", "/nothing", -1, 404, NULL, NULL},
};

START_TEST(route_match_table)
{
    static const char *patterns[][2] = {{"GET", "/health"}, {"GET", "/subscribe/{user_id}"},
                                        {"GET", "/events/mono/{id}"}, {"POST", "/events"},
                                        {"GET", "/"}};
    struct net_route routes[5];
    char err[128], allow[64];
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(net_route_init(&routes[i], patterns[i][0], patterns[i][1], err,
                                        sizeof(err)), ASTRO_OK);
    struct astro_http_req *r = make_req(match_cases[_i].method, match_cases[_i].url);
    int status = 0;
    const struct net_route *got = net_route_match(routes, 5, r, &status, allow, sizeof(allow));
    if (match_cases[_i].route < 0) {
        ck_assert_ptr_null(got);
        ck_assert_int_eq(status, match_cases[_i].status);
        if (status == 405)
            ck_assert_str_ne(allow, "");
    } else {
        ck_assert_ptr_eq(got, &routes[match_cases[_i].route]);
        if (match_cases[_i].param != NULL)
            ck_assert_str_eq(astro_http_req_param(r, match_cases[_i].param),
                             match_cases[_i].value);
    }
    net_req_free(r);
    for (int i = 0; i < 5; i++)
        net_route_cleanup(&routes[i]);
}
END_TEST

START_TEST(route_pattern_errors)
{
    struct net_route r;
    char err[128];
    ck_assert_int_eq(net_route_init(&r, "GET", "no-slash", err, sizeof(err)), ASTRO_ERR);
    ck_assert_int_eq(net_route_init(&r, "GET", "/a/x{id}", err, sizeof(err)), ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "whole segment"));
    ck_assert_int_eq(net_route_init(&r, "GET", "/a?x=1", err, sizeof(err)), ASTRO_ERR);
}
END_TEST

/* ---- handshake key and frames ---- */

START_TEST(accept_key_rfc_example)
{
    char out[29];
    /* RFC 6455 section 1.3 */
    ck_assert_int_eq(astro_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), ASTRO_OK);
    ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ck_assert_int_eq(astro_ws_accept_key("short", out), ASTRO_ERR);
    ck_assert_int_eq(astro_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=!", out), ASTRO_ERR);
    ck_assert_int_eq(astro_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ#=", out), ASTRO_ERR);
}
END_TEST

static const struct {
    size_t len;
    size_t header;
    uint8_t b1;
} frame_cases[] = {
    {0, 2, 0}, {125, 2, 125}, {126, 4, 126}, {65535, 4, 126}, {65536, 10, 127},
};

START_TEST(shared_frame_encoding)
{
    size_t len = frame_cases[_i].len;
    char *data = calloc(1, len + 1);
    struct astro_ws_msg *m = astro_ws_msg_new(ASTRO_WS_TEXT, data, len);
    ck_assert_ptr_nonnull(m);
    size_t flen;
    const uint8_t *f = net_ws_msg_frame(m, &flen);
    ck_assert_uint_eq(flen, frame_cases[_i].header + len);
    ck_assert_uint_eq(f[0], 0x81);                /* FIN + text, no RSV */
    ck_assert_uint_eq(f[1], frame_cases[_i].b1); /* no mask bit: server frame */
    uint64_t declared = f[1];
    if (f[1] == 126)
        declared = (uint64_t)f[2] << 8 | f[3];
    if (f[1] == 127)
        for (int i = 0; i < 8; i++)
            declared = (i == 0 ? 0 : declared << 8) | f[2 + i];
    ck_assert_uint_eq(declared, len);
    ck_assert_uint_eq(astro_ws_msg_payload_len(m), len);
    /* references: the last unref frees (ASan would flag a leak or double free) */
    astro_ws_msg_unref(astro_ws_msg_ref(m));
    astro_ws_msg_unref(m);
    astro_ws_msg_unref(NULL);
    free(data);
}
END_TEST

/* ---- limits and settings ---- */

struct svc_config {
    int other;
    struct astro_net_config net;
};

static const struct astro_cfg_var vars[] = {ASTRO_NET_CFG_VARS(struct svc_config, net)};

START_TEST(config_table_defaults_match)
{
    char err[512];
    struct svc_config cfg = {0};
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(vars); i++)
        unsetenv(vars[i].name);
    ck_assert_msg(astro_cfg_load(vars, ASTRO_ARRAY_LEN(vars), &cfg, err, sizeof(err)) == ASTRO_OK,
                  "%s", err);
    struct astro_net_limits from_env, defaults;
    astro_net_limits_from_config(&cfg.net, &from_env);
    astro_net_limits_defaults(&defaults);
    ck_assert_int_eq(memcmp(&from_env, &defaults, sizeof(defaults)), 0);
    ck_assert_int_eq(astro_net_limits_check(&defaults, err, sizeof(err)), ASTRO_OK);
    astro_cfg_free(vars, ASTRO_ARRAY_LEN(vars), &cfg);
}
END_TEST

START_TEST(config_table_parses_and_bounds)
{
    char err[1024];
    struct svc_config cfg = {0};
    setenv("ASTRO_WS_MAX_MESSAGE_BYTES", "2MiB", 1);
    setenv("ASTRO_NET_STALL_TIMEOUT", "3s", 1);
    ck_assert_int_eq(astro_cfg_load(vars, ASTRO_ARRAY_LEN(vars), &cfg, err, sizeof(err)),
                     ASTRO_OK);
    struct astro_net_limits l;
    astro_net_limits_from_config(&cfg.net, &l);
    ck_assert_uint_eq(l.ws_message_bytes, 2u << 20);
    ck_assert_uint_eq(l.stall_ms, 3000);
    astro_cfg_free(vars, ASTRO_ARRAY_LEN(vars), &cfg);
    setenv("ASTRO_HTTP_MAX_HEADER_BYTES", "10", 1); /* below the 1 KiB minimum */
    ck_assert_int_eq(astro_cfg_load(vars, ASTRO_ARRAY_LEN(vars), &cfg, err, sizeof(err)),
                     ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "ASTRO_HTTP_MAX_HEADER_BYTES"));
    unsetenv("ASTRO_HTTP_MAX_HEADER_BYTES");
    unsetenv("ASTRO_WS_MAX_MESSAGE_BYTES");
    unsetenv("ASTRO_NET_STALL_TIMEOUT");
}
END_TEST

START_TEST(limits_check_relations)
{
    char err[256];
    struct astro_net_limits l;
    astro_net_limits_defaults(&l);
    l.max_connections = 0;
    ck_assert_int_eq(astro_net_limits_check(&l, err, sizeof(err)), ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "ASTRO_NET_MAX_CONNECTIONS"));
    astro_net_limits_defaults(&l);
    l.pong_deadline_ms = 0;
    ck_assert_int_eq(astro_net_limits_check(&l, err, sizeof(err)), ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "ASTRO_WS_PONG_TIMEOUT"));
}
END_TEST

START_TEST(quota_counts_and_releases)
{
    struct net_quota *q = net_quota_new();
    ck_assert_int_eq(net_quota_take(q, "k", 2), ASTRO_OK);
    ck_assert_int_eq(net_quota_take(q, "k", 2), ASTRO_OK);
    ck_assert_int_eq(net_quota_take(q, "k", 2), ASTRO_ERR);
    ck_assert_int_eq(net_quota_take(q, "other", 2), ASTRO_OK);
    net_quota_release(q, "k");
    ck_assert_int_eq(net_quota_take(q, "k", 2), ASTRO_OK);
    ck_assert_int_eq(net_quota_take(q, "free", 0), ASTRO_OK); /* 0 = no limit */
    net_quota_free(q);
}
END_TEST


/* ---- loops ---- */

struct post_log {
    struct astro_loop *loop;
    int order[1000];
    int n;
    int off_thread;
};

struct post_job {
    struct post_log *log;
    int seq;
};

static void
record(void *arg)
{
    struct post_job *j = arg;
    if (!astro_loop_is_current(j->log->loop))
        j->log->off_thread++;
    j->log->order[j->log->n++] = j->seq;
    free(j);
}

START_TEST(loop_post_runs_in_order_on_the_loop)
{
    struct post_log log = {0};
    log.loop = astro_loop_new(0);
    ck_assert_ptr_nonnull(log.loop);
    ck_assert_int_eq(astro_loop_start(log.loop), ASTRO_OK);
    ck_assert(!astro_loop_is_current(log.loop));
    for (int i = 0; i < 1000; i++) {
        struct post_job *j = malloc(sizeof(*j));
        ck_assert_ptr_nonnull(j);
        *j = (struct post_job){&log, i};
        ck_assert_int_eq(astro_loop_post(log.loop, record, j), ASTRO_OK);
    }
    /* stop runs what is still queued before the thread exits */
    astro_loop_stop(log.loop);
    ck_assert_int_eq(log.n, 1000);
    ck_assert_int_eq(log.off_thread, 0);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(log.order[i], i);
    astro_loop_free(log.loop);
}
END_TEST

static Suite *
net_suite(void)
{
    Suite *s = suite_create("net");
    TCase *tc = tcase_create("parse");
    tcase_add_loop_test(tc, pct_decode_table, 0, (int)ASTRO_ARRAY_LEN(pct_cases));
    tcase_add_test(tc, url_query_parsing);
    tcase_add_loop_test(tc, route_match_table, 0, (int)ASTRO_ARRAY_LEN(match_cases));
    tcase_add_test(tc, route_pattern_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("ws");
    tcase_add_test(tc, accept_key_rfc_example);
    tcase_add_loop_test(tc, shared_frame_encoding, 0, (int)ASTRO_ARRAY_LEN(frame_cases));
    suite_add_tcase(s, tc);
    tc = tcase_create("limits");
    tcase_add_test(tc, config_table_defaults_match);
    tcase_add_test(tc, config_table_parses_and_bounds);
    tcase_add_test(tc, limits_check_relations);
    tcase_add_test(tc, quota_counts_and_releases);
    suite_add_tcase(s, tc);
    tc = tcase_create("loop");
    tcase_add_test(tc, loop_post_runs_in_order_on_the_loop);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(net_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

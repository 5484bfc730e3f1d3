/* The shared daemon skeleton: config fragment, /health, /health/ready, /metrics, SIGTERM drain. */
#include <check.h>
#include <event2/event.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "astro/http.h"
#include "astro/service.h"
#include "wsraw.h"

struct test_cfg {
    struct astro_service_config svc;
};

static const struct astro_cfg_var vars[] = {
    ASTRO_SERVICE_CFG_VARS(struct test_cfg, svc, "8090"),
};

struct fixture {
    struct test_cfg cfg;
    struct astro_service *svc;
    atomic_bool healthy;
    int ready_status_while_stopping;
    bool drain_on_stop;
};

static struct fixture fx;

static bool
health(void *arg, struct cJSON *detail)
{
    (void)detail;
    struct fixture *f = arg;
    return atomic_load(&f->healthy);
}

static int
get(const char *path, char *body, size_t size)
{
    struct wsraw *w = wsraw_connect("127.0.0.1", astro_http_server_port(astro_service_http(fx.svc)),
                                    2000);
    ck_assert_ptr_nonnull(w);
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                     path);
    int status = wsraw_http(w, req, (size_t)n, body, size, 3000);
    wsraw_close(w);
    return status;
}

static void
on_stop(void *arg)
{
    struct fixture *f = arg;
    char body[1024];
    f->ready_status_while_stopping = get("/health/ready", body, sizeof(body));
    if (f->drain_on_stop)
        astro_service_drained(f->svc);
}

static void
setup(void)
{
    memset(&fx, 0, sizeof(fx));
    atomic_store(&fx.healthy, true);
    fx.drain_on_stop = true;
    setenv("ASTRO_HTTP_PORT", "0", 1);
    setenv("ASTRO_HTTP_BIND", "127.0.0.1", 1);
    setenv("ASTRO_HTTP_THREADS", "1", 1);
    setenv("ASTRO_INSTANCE", "test-1", 1);
    setenv("ASTRO_SHUTDOWN_TIMEOUT", "300ms", 1);
    char err[1024];
    ck_assert_msg(astro_cfg_load(vars, ASTRO_ARRAY_LEN(vars), &fx.cfg, err, sizeof(err)) ==
                      ASTRO_OK, "%s", err);
    struct astro_service_opts o = {
        .name = "astro-test", .cfg = &fx.cfg.svc, .health = health, .health_arg = &fx,
        .on_stop = on_stop, .stop_arg = &fx,
    };
    fx.svc = astro_service_new(&o, err, sizeof(err));
    ck_assert_msg(fx.svc != NULL, "%s", err);
    ck_assert_msg(astro_service_start(fx.svc, err, sizeof(err)) == ASTRO_OK, "%s", err);
}

static void
teardown(void)
{
    astro_service_free(fx.svc);
    astro_cfg_free(vars, ASTRO_ARRAY_LEN(vars), &fx.cfg);
}

START_TEST(health_and_metrics_are_served)
{
    char body[65536];
    ck_assert_int_eq(get("/health/", body, sizeof(body)), 200);
    ck_assert_ptr_nonnull(strstr(body, "\"status\":\"ok\""));
    ck_assert_ptr_nonnull(strstr(body, "\"service\":\"astro-test\""));
    ck_assert_ptr_nonnull(strstr(body, "\"instance\":\"test-1\""));
    ck_assert_int_eq(get("/health/ready", body, sizeof(body)), 200);
    ck_assert_int_eq(get("/metrics", body, sizeof(body)), 200);
    ck_assert_ptr_nonnull(strstr(body, "astro_build_info{"));
    ck_assert_ptr_nonnull(strstr(body, "process_start_time_seconds "));
    atomic_store(&fx.healthy, false);
    ck_assert_int_eq(get("/health", body, sizeof(body)), 503);
    ck_assert_ptr_nonnull(strstr(body, "\"status\":\"unhealthy\""));
}
END_TEST

static void
raise_term(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    raise(SIGTERM);
}

static int
run_with_sigterm(void)
{
    struct timeval tv = {0, 50000};
    struct event *ev = evtimer_new(astro_service_base(fx.svc), raise_term, NULL);
    evtimer_add(ev, &tv);
    int rc = astro_service_run(fx.svc);
    event_free(ev);
    return rc;
}

START_TEST(sigterm_drains_and_exits_zero)
{
    ck_assert_int_eq(run_with_sigterm(), 0);
    ck_assert(astro_service_stopping(fx.svc));
    /* While draining, readiness says no so a load balancer stops sending work. */
    ck_assert_int_eq(fx.ready_status_while_stopping, 503);
}
END_TEST

START_TEST(drain_past_deadline_exits_one)
{
    fx.drain_on_stop = false;
    ck_assert_int_eq(run_with_sigterm(), 1);
}
END_TEST

START_TEST(bad_service_settings_name_the_variable)
{
    struct test_cfg c;
    char err[2048];
    setenv("ASTRO_HTTP_PORT", "70000", 1);
    setenv("ASTRO_LOG_LEVEL", "loud", 1);
    ck_assert_int_eq(astro_cfg_load(vars, ASTRO_ARRAY_LEN(vars), &c, err, sizeof(err)), ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "ASTRO_HTTP_PORT"));
    ck_assert_ptr_nonnull(strstr(err, "ASTRO_LOG_LEVEL"));
}
END_TEST

static Suite *
service_suite(void)
{
    Suite *s = suite_create("service");
    TCase *tc = tcase_create("service");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, health_and_metrics_are_served);
    tcase_add_test(tc, sigterm_drains_and_exits_zero);
    tcase_add_test(tc, drain_past_deadline_exits_one);
    tcase_add_test(tc, bad_service_settings_name_the_variable);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(service_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

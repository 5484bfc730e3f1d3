/* Graceful shutdown: signals raised inside a running libevent loop. */
#include <check.h>
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "astro/log.h"
#include "astro/shutdown.h"

static struct event_base *base;
static struct astro_shutdown *sd;
static struct event *failsafe;
static int stops;
static int failsafe_hit;
static int requested_in_on_stop;
static struct event *raisers[4];
static int nraisers;

static void
on_stop(void *arg)
{
    stops++;
    requested_in_on_stop = astro_shutdown_requested(*(struct astro_shutdown **)arg);
}

static void
on_failsafe(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    failsafe_hit = 1;
    event_base_loopbreak(base);
}

static void
on_raise(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    raise(*(int *)arg);
}

static void
setup(void)
{
    astro_log_init("test", "shutdown", ASTRO_LOG_ERROR);
    stops = failsafe_hit = requested_in_on_stop = 0;
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    struct timeval five = {5, 0};
    failsafe = evtimer_new(base, on_failsafe, NULL);
    evtimer_add(failsafe, &five);
}

static void
teardown(void)
{
    astro_shutdown_free(sd);
    sd = NULL;
    for (int i = 0; i < nraisers; i++)
        event_free(raisers[i]);
    nraisers = 0;
    event_free(failsafe);
    event_base_free(base);
}

/* Raises sig after ms milliseconds of loop time (the event is freed in the teardown). */
static void
raise_after(int *sig, long ms)
{
    struct timeval tv = {0, ms * 1000};
    struct event *ev = evtimer_new(base, on_raise, sig);
    ck_assert_ptr_nonnull(ev);
    ck_assert_int_lt(nraisers, 4);
    raisers[nraisers++] = ev;
    evtimer_add(ev, &tv);
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int sigterm = SIGTERM;
static int sigint = SIGINT;

START_TEST(first_sigterm_calls_on_stop_then_deadline_breaks)
{
    sd = astro_shutdown_new(base, 200, on_stop, &sd);
    ck_assert_ptr_nonnull(sd);
    ck_assert(!astro_shutdown_requested(sd));
    raise_after(&sigterm, 10);
    double t0 = now_s();
    event_base_dispatch(base);
    double elapsed = now_s() - t0;
    ck_assert_int_eq(stops, 1);
    ck_assert_int_eq(requested_in_on_stop, 1);
    ck_assert_int_eq(failsafe_hit, 0);
    ck_assert_int_eq(astro_shutdown_state(sd), ASTRO_SHUTDOWN_TIMED_OUT);
    ck_assert_msg(elapsed >= 0.2 && elapsed < 2.0, "loop ran %.3f s", elapsed);
}
END_TEST

START_TEST(second_signal_breaks_loop_now)
{
    sd = astro_shutdown_new(base, 60000, on_stop, &sd);
    ck_assert_ptr_nonnull(sd);
    raise_after(&sigterm, 10);
    raise_after(&sigint, 50);
    double t0 = now_s();
    event_base_dispatch(base);
    ck_assert_int_eq(stops, 1); /* on_stop runs once, not per signal */
    ck_assert_int_eq(failsafe_hit, 0);
    ck_assert_int_eq(astro_shutdown_state(sd), ASTRO_SHUTDOWN_FORCED);
    ck_assert(now_s() - t0 < 2.0);
}
END_TEST

START_TEST(no_deadline_waits_for_second_signal)
{
    sd = astro_shutdown_new(base, 0, on_stop, &sd);
    ck_assert_ptr_nonnull(sd);
    raise_after(&sigint, 10);
    raise_after(&sigterm, 300);
    event_base_dispatch(base);
    ck_assert_int_eq(stops, 1);
    ck_assert_int_eq(failsafe_hit, 0);
    ck_assert_int_eq(astro_shutdown_state(sd), ASTRO_SHUTDOWN_FORCED);
}
END_TEST

START_TEST(sigpipe_is_ignored)
{
    sd = astro_shutdown_new(base, 100, NULL, NULL);
    ck_assert_ptr_nonnull(sd);
    raise(SIGPIPE); /* would terminate the test process if not ignored */
    ck_assert(!astro_shutdown_requested(sd));
    astro_shutdown_free(NULL);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("shutdown");
    TCase *tc = tcase_create("signals");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, first_sigterm_calls_on_stop_then_deadline_breaks);
    tcase_add_test(tc, second_signal_breaks_loop_now);
    tcase_add_test(tc, no_deadline_waits_for_second_signal);
    tcase_add_test(tc, sigpipe_is_ignored);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

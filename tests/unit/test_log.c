/* Logging: line format, level filtering without evaluating arguments, truncation, one line per
 * call. stderr is captured through a pipe. */
#include <check.h>
#include <fcntl.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "astro/log.h"

static int saved_stderr = -1;
static int pipe_fd[2] = {-1, -1};
static char captured[65536];

static void
capture_start(void)
{
    ck_assert_int_eq(pipe(pipe_fd), 0);
    fcntl(pipe_fd[0], F_SETFL, O_NONBLOCK);
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_ge(saved_stderr, 0);
    ck_assert_int_ge(dup2(pipe_fd[1], STDERR_FILENO), 0);
}

/* Restores stderr and returns everything written meanwhile (NUL-terminated). */
static const char *
capture_end(void)
{
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    close(pipe_fd[1]);
    size_t len = 0;
    ssize_t n;
    while (len + 1 < sizeof(captured) &&
           (n = read(pipe_fd[0], captured + len, sizeof(captured) - 1 - len)) > 0)
        len += (size_t)n;
    captured[len] = '\0';
    close(pipe_fd[0]);
    return captured;
}

static void
setup(void)
{
    astro_log_init("astro-ingest", "host-1", ASTRO_LOG_INFO);
}

static int evaluations;

static int
count_evaluation(void)
{
    return ++evaluations;
}

START_TEST(line_format)
{
    regex_t re;
    ck_assert_int_eq(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z "
                             "INFO astro-ingest\\[host-1\\] hello 42\n$",
                             REG_EXTENDED),
                     0);
    capture_start();
    astro_log_info("hello %d", 42);
    const char *out = capture_end();
    ck_assert_msg(regexec(&re, out, 0, NULL, 0) == 0, "unexpected line: %s", out);
    regfree(&re);
}
END_TEST

START_TEST(disabled_level_does_not_evaluate_arguments)
{
    evaluations = 0;
    capture_start();
    astro_log_debug("value %d", count_evaluation());
    astro_log_info("value %d", count_evaluation());
    const char *out = capture_end();
    ck_assert_int_eq(evaluations, 1);
    ck_assert_ptr_null(strstr(out, "DEBUG"));
    ck_assert_ptr_nonnull(strstr(out, "INFO astro-ingest[host-1] value 1\n"));
}
END_TEST

START_TEST(level_threshold)
{
    astro_log_init("svc", "i", ASTRO_LOG_WARN);
    capture_start();
    astro_log_error("e");
    astro_log_warn("w");
    astro_log_info("i");
    astro_log_debug("d");
    const char *out = capture_end();
    ck_assert_ptr_nonnull(strstr(out, " ERROR svc[i] e\n"));
    ck_assert_ptr_nonnull(strstr(out, " WARN svc[i] w\n"));
    ck_assert_ptr_null(strstr(out, " INFO "));
    ck_assert_ptr_null(strstr(out, " DEBUG "));
}
END_TEST

START_TEST(long_line_truncated_to_one_line)
{
    char *big = malloc(20000);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', 19999);
    big[19999] = '\0';
    capture_start();
    astro_log_info("%s", big);
    const char *out = capture_end();
    free(big);
    size_t len = strlen(out);
    ck_assert_uint_le(len, 4096);
    ck_assert_uint_gt(len, 1000);
    ck_assert_str_eq(out + len - 4, "...\n");
    ck_assert_ptr_eq(strchr(out, '\n'), out + len - 1);
}
END_TEST

START_TEST(embedded_newline_cannot_forge_a_line)
{
    capture_start();
    astro_log_info("user %s", "bob\n2026-01-01T00:00:00.000000Z ERROR fake");
    const char *out = capture_end();
    ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
    ck_assert_ptr_nonnull(strstr(out, "user bob 2026-01-01"));
}
END_TEST

static const struct {
    const char *text;
    int ok;
    enum astro_log_level level;
} level_cases[] = {
    {"error", 1, ASTRO_LOG_ERROR}, {"WARN", 1, ASTRO_LOG_WARN}, {"Info", 1, ASTRO_LOG_INFO},
    {"debug", 1, ASTRO_LOG_DEBUG}, {"", 0, ASTRO_LOG_INFO},     {"verbose", 0, ASTRO_LOG_INFO},
    {"info ", 0, ASTRO_LOG_INFO},
};

START_TEST(parse_level)
{
    enum astro_log_level lvl = ASTRO_LOG_INFO;
    int rc = astro_log_parse_level(level_cases[_i].text, &lvl);
    ck_assert_int_eq(rc == ASTRO_OK, level_cases[_i].ok);
    if (level_cases[_i].ok)
        ck_assert_int_eq(lvl, level_cases[_i].level);
}
END_TEST

START_TEST(level_names)
{
    ck_assert_str_eq(astro_log_level_name(ASTRO_LOG_ERROR), "ERROR");
    ck_assert_str_eq(astro_log_level_name(ASTRO_LOG_DEBUG), "DEBUG");
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, line_format);
    tcase_add_test(tc, disabled_level_does_not_evaluate_arguments);
    tcase_add_test(tc, level_threshold);
    tcase_add_test(tc, long_line_truncated_to_one_line);
    tcase_add_test(tc, embedded_newline_cannot_forge_a_line);
    tcase_add_loop_test(tc, parse_level, 0, (int)(sizeof(level_cases) / sizeof(level_cases[0])));
    tcase_add_test(tc, level_names);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

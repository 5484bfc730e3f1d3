/* Configuration tables: defaults, strict parsing with the variable named in every error, all
 * errors reported together, bounds, units, masking of secrets, typo warnings and help text. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "astro/config.h"
#include "astro/log.h"

struct tcfg {
    char *node;
    char *redis_url;
    char *pg;
    char *password;
    int64_t batch;
    int64_t pin;
    int64_t offset;
    int64_t flush_ms;
    int64_t max_body;
    bool auth;
    char *mode;
    enum astro_log_level level;
};

#define F(x) offsetof(struct tcfg, x)
static const struct astro_cfg_var vars[] = {
    {"ASTRO_T_NODE", ASTRO_CFG_STRING, NULL, 0, 0, NULL, ASTRO_CFG_REQUIRED, F(node), "Node."},
    {"ASTRO_T_REDIS_URL", ASTRO_CFG_STRING, "redis://127.0.0.1:6379", 0, 0, NULL, 0,
     F(redis_url), "Redis URL."},
    {"ASTRO_T_PG", ASTRO_CFG_STRING, "", 0, 0, NULL, 0, F(pg), "libpq conninfo."},
    {"ASTRO_T_PASSWORD", ASTRO_CFG_STRING, "changeme", 0, 0, NULL, ASTRO_CFG_SECRET, F(password),
     "A password."},
    {"ASTRO_T_BATCH_SIZE", ASTRO_CFG_INT, "500", 1, 10000, NULL, 0, F(batch), "Batch size."},
    {"ASTRO_T_PIN", ASTRO_CFG_INT, "1234", 0, 9999, NULL, ASTRO_CFG_SECRET, F(pin), "A PIN."},
    {"ASTRO_T_OFFSET", ASTRO_CFG_INT, "-7", 0, 0, NULL, 0, F(offset), "Unbounded."},
    {"ASTRO_T_FLUSH", ASTRO_CFG_DURATION, "250ms", 1, 3600000, NULL, 0, F(flush_ms), "Flush."},
    {"ASTRO_T_MAX_BODY", ASTRO_CFG_BYTES, "16MiB", 1024, INT64_C(1) << 30, NULL, 0, F(max_body),
     "Body limit."},
    {"ASTRO_T_AUTH", ASTRO_CFG_BOOL, "true", 0, 0, NULL, 0, F(auth), "Require keys."},
    {"ASTRO_T_MODE", ASTRO_CFG_ENUM, "all", 0, 0, "mono|multi|all", 0, F(mode), "Streams."},
    {"ASTRO_T_LOG_LEVEL", ASTRO_CFG_LOGLEVEL, "info", 0, 0, NULL, 0, F(level), "Log level."},
};
#define NVARS ASTRO_ARRAY_LEN(vars)

static struct tcfg cfg;
static char err[4096];

static void
setup(void)
{
    for (char **e = environ; *e != NULL;) {
        if (strncmp(*e, "ASTRO_", 6) == 0) {
            char name[256];
            snprintf(name, sizeof(name), "%.*s", (int)strcspn(*e, "="), *e);
            unsetenv(name);
        } else {
            e++;
        }
    }
    setenv("ASTRO_T_NODE", "node-1", 1);
    memset(&cfg, 0, sizeof(cfg));
    err[0] = '\0';
    astro_log_init("astro-test", "t", ASTRO_LOG_INFO);
}

static void
teardown(void)
{
    astro_cfg_free(vars, NVARS, &cfg);
}

/* ---- stderr capture ---- */

static int saved_fd = -1, cap_fd[2];
static char captured[65536];

static void
capture_start(void)
{
    ck_assert_int_eq(pipe(cap_fd), 0);
    fcntl(cap_fd[0], F_SETFL, O_NONBLOCK);
    saved_fd = dup(STDERR_FILENO);
    dup2(cap_fd[1], STDERR_FILENO);
    close(cap_fd[1]);
}

static const char *
capture_end(void)
{
    dup2(saved_fd, STDERR_FILENO);
    close(saved_fd);
    ssize_t n = read(cap_fd[0], captured, sizeof(captured) - 1);
    captured[n > 0 ? n : 0] = '\0';
    close(cap_fd[0]);
    return captured;
}

START_TEST(defaults_applied)
{
    memset(&cfg, 0x5a, sizeof(cfg)); /* load must not trust what it finds there */
    ck_assert_int_eq(astro_cfg_load(vars, NVARS, &cfg, err, sizeof(err)), ASTRO_OK);
    ck_assert_str_eq(err, "");
    ck_assert_str_eq(cfg.node, "node-1");
    ck_assert_str_eq(cfg.redis_url, "redis://127.0.0.1:6379");
    ck_assert_str_eq(cfg.pg, "");
    ck_assert_int_eq(cfg.batch, 500);
    ck_assert_int_eq(cfg.offset, -7);
    ck_assert_int_eq(cfg.flush_ms, 250);
    ck_assert_int_eq(cfg.max_body, 16 << 20);
    ck_assert(cfg.auth);
    ck_assert_str_eq(cfg.mode, "all");
    ck_assert_int_eq(cfg.level, ASTRO_LOG_INFO);
}
END_TEST

static const struct {
    const char *var, *value, *want;
} bad[] = {
    {"ASTRO_T_BATCH_SIZE", "12x", "ASTRO_T_BATCH_SIZE: \"12x\" is not an integer"},
    {"ASTRO_T_BATCH_SIZE", "0", "ASTRO_T_BATCH_SIZE: 0 is below the minimum 1"},
    {"ASTRO_T_BATCH_SIZE", "-3", "ASTRO_T_BATCH_SIZE: -3 is below the minimum 1"},
    {"ASTRO_T_BATCH_SIZE", "10001", "ASTRO_T_BATCH_SIZE: 10001 is above the maximum 10000"},
    {"ASTRO_T_BATCH_SIZE", "1.5", "ASTRO_T_BATCH_SIZE: \"1.5\" is not an integer"},
    {"ASTRO_T_BATCH_SIZE", "1e3", "ASTRO_T_BATCH_SIZE: \"1e3\" is not an integer"},
    {"ASTRO_T_BATCH_SIZE", "", "ASTRO_T_BATCH_SIZE: is set but empty"},
    {"ASTRO_T_BATCH_SIZE", " 5", "ASTRO_T_BATCH_SIZE: \" 5\" is not an integer"},
    {"ASTRO_T_BATCH_SIZE", "5 ", "ASTRO_T_BATCH_SIZE: \"5 \" is not an integer"},
    {"ASTRO_T_BATCH_SIZE", "0x10", "ASTRO_T_BATCH_SIZE: \"0x10\" is not an integer"},
    {"ASTRO_T_BATCH_SIZE", "99999999999999999999",
     "ASTRO_T_BATCH_SIZE: \"99999999999999999999\" is out of range"},
    {"ASTRO_T_BATCH_SIZE", "5\n6", "ASTRO_T_BATCH_SIZE: \"5\\x0a6\" is not an integer"},
    {"ASTRO_T_OFFSET", "-9223372036854775809",
     "ASTRO_T_OFFSET: \"-9223372036854775809\" is out of range"},
    {"ASTRO_T_PIN", "12ab", "ASTRO_T_PIN: (secret value) is not an integer"},
    {"ASTRO_T_PIN", "123456", "ASTRO_T_PIN: the value is above the maximum 9999"},
    {"ASTRO_T_FLUSH", "5x", "ASTRO_T_FLUSH: \"5x\" is not a duration"},
    {"ASTRO_T_FLUSH", "-5s", "ASTRO_T_FLUSH: \"-5s\" is negative"},
    {"ASTRO_T_FLUSH", "1.5s", "ASTRO_T_FLUSH: \"1.5s\" is not a duration"},
    {"ASTRO_T_FLUSH", "5S", "ASTRO_T_FLUSH: \"5S\" is not a duration"},
    {"ASTRO_T_FLUSH", "s", "ASTRO_T_FLUSH: \"s\" is not a duration"},
    {"ASTRO_T_FLUSH", "2h", "ASTRO_T_FLUSH: 2h is above the maximum 1h"},
    {"ASTRO_T_FLUSH", "0", "ASTRO_T_FLUSH: 0ms is below the minimum 1ms"},
    {"ASTRO_T_FLUSH", "9223372036854775807h", "ASTRO_T_FLUSH: \"9223372036854775807h\" is out"},
    {"ASTRO_T_MAX_BODY", "16XB", "ASTRO_T_MAX_BODY: \"16XB\" is not a size"},
    {"ASTRO_T_MAX_BODY", "2GiB", "ASTRO_T_MAX_BODY: 2GiB is above the maximum 1GiB"},
    {"ASTRO_T_MAX_BODY", "512", "ASTRO_T_MAX_BODY: 512B is below the minimum 1KiB"},
    {"ASTRO_T_MAX_BODY", "-1KiB", "ASTRO_T_MAX_BODY: \"-1KiB\" is negative"},
    {"ASTRO_T_AUTH", "maybe", "ASTRO_T_AUTH: \"maybe\" is not a boolean"},
    {"ASTRO_T_AUTH", "2", "ASTRO_T_AUTH: \"2\" is not a boolean"},
    {"ASTRO_T_AUTH", "", "ASTRO_T_AUTH: is set but empty"},
    {"ASTRO_T_MODE", "both", "ASTRO_T_MODE: \"both\" is not one of mono|multi|all"},
    {"ASTRO_T_MODE", "mon", "ASTRO_T_MODE: \"mon\" is not one of mono|multi|all"},
    {"ASTRO_T_LOG_LEVEL", "loud", "ASTRO_T_LOG_LEVEL: \"loud\" is not a log level"},
    {"ASTRO_T_NODE", "", "ASTRO_T_NODE: is set but empty"},
    {"ASTRO_T_NODE", NULL, "ASTRO_T_NODE: is required but not set"},
};

START_TEST(bad_value_rejected_with_name)
{
    if (bad[_i].value != NULL)
        setenv(bad[_i].var, bad[_i].value, 1);
    else
        unsetenv(bad[_i].var);
    ck_assert_int_eq(astro_cfg_load(vars, NVARS, &cfg, err, sizeof(err)), ASTRO_ERR);
    ck_assert_msg(strstr(err, bad[_i].want) == err, "got: %s\nwant: %s", err, bad[_i].want);
    ck_assert_ptr_null(strchr(err, '\n')); /* exactly one error */
    ck_assert_ptr_null(strstr(err, "12ab"));
    ck_assert_ptr_null(strstr(err, "123456"));
    /* Nothing left allocated after a failed load. */
    ck_assert_ptr_null(cfg.node);
    ck_assert_ptr_null(cfg.mode);
}
END_TEST

START_TEST(all_errors_reported_together)
{
    setenv("ASTRO_T_BATCH_SIZE", "12x", 1);
    setenv("ASTRO_T_FLUSH", "soon", 1);
    setenv("ASTRO_T_AUTH", "perhaps", 1);
    unsetenv("ASTRO_T_NODE");
    ck_assert_int_eq(astro_cfg_load(vars, NVARS, &cfg, err, sizeof(err)), ASTRO_ERR);
    ck_assert_str_eq(err, "ASTRO_T_NODE: is required but not set\n"
                          "ASTRO_T_BATCH_SIZE: \"12x\" is not an integer\n"
                          "ASTRO_T_FLUSH: \"soon\" is not a duration (e.g. 250ms, 5s, 2m, 1h)\n"
                          "ASTRO_T_AUTH: \"perhaps\" is not a boolean (true/false, 1/0, yes/no, "
                          "on/off)");
}
END_TEST

START_TEST(small_error_buffer_still_fails_cleanly)
{
    char small[24];
    setenv("ASTRO_T_BATCH_SIZE", "x", 1);
    setenv("ASTRO_T_FLUSH", "y", 1);
    ck_assert_int_eq(astro_cfg_load(vars, NVARS, &cfg, small, sizeof(small)), ASTRO_ERR);
    ck_assert_uint_lt(strlen(small), sizeof(small));
    ck_assert(strncmp(small, "ASTRO_T_BATCH_SIZE", 18) == 0);
}
END_TEST

static const struct {
    const char *var, *value;
    int64_t want; /* for numbers and bools */
    const char *want_str;
} good[] = {
    {"ASTRO_T_BATCH_SIZE", "1", 1, NULL},
    {"ASTRO_T_BATCH_SIZE", "10000", 10000, NULL},
    {"ASTRO_T_BATCH_SIZE", "007", 7, NULL},
    {"ASTRO_T_OFFSET", "-9223372036854775808", INT64_MIN, NULL},
    {"ASTRO_T_FLUSH", "250ms", 250, NULL},
    {"ASTRO_T_FLUSH", "5s", 5000, NULL},
    {"ASTRO_T_FLUSH", "2m", 120000, NULL},
    {"ASTRO_T_FLUSH", "1h", 3600000, NULL},
    {"ASTRO_T_FLUSH", "1500", 1500, NULL},
    {"ASTRO_T_MAX_BODY", "1024", 1024, NULL},
    {"ASTRO_T_MAX_BODY", "2048B", 2048, NULL},
    {"ASTRO_T_MAX_BODY", "64KiB", 65536, NULL},
    {"ASTRO_T_MAX_BODY", "64k", 65536, NULL},
    {"ASTRO_T_MAX_BODY", "16MiB", 16 << 20, NULL},
    {"ASTRO_T_MAX_BODY", "3M", 3 << 20, NULL},
    {"ASTRO_T_MAX_BODY", "1GiB", 1 << 30, NULL},
    {"ASTRO_T_MAX_BODY", "1G", 1 << 30, NULL},
    {"ASTRO_T_AUTH", "FALSE", 0, NULL},
    {"ASTRO_T_AUTH", "no", 0, NULL},
    {"ASTRO_T_AUTH", "off", 0, NULL},
    {"ASTRO_T_AUTH", "0", 0, NULL},
    {"ASTRO_T_AUTH", "On", 1, NULL},
    {"ASTRO_T_AUTH", "yes", 1, NULL},
    {"ASTRO_T_AUTH", "1", 1, NULL},
    {"ASTRO_T_MODE", "MULTI", 0, "multi"},
    {"ASTRO_T_LOG_LEVEL", "DEBUG", ASTRO_LOG_DEBUG, NULL},
    {"ASTRO_T_PG", "host=db", 0, "host=db"},
};

START_TEST(good_values_parsed)
{
    setenv(good[_i].var, good[_i].value, 1);
    ck_assert_int_eq(astro_cfg_load(vars, NVARS, &cfg, err, sizeof(err)), ASTRO_OK);
    const char *v = good[_i].var + 8;
    if (strcmp(v, "BATCH_SIZE") == 0)
        ck_assert_int_eq(cfg.batch, good[_i].want);
    else if (strcmp(v, "OFFSET") == 0)
        ck_assert_int_eq(cfg.offset, good[_i].want);
    else if (strcmp(v, "FLUSH") == 0)
        ck_assert_int_eq(cfg.flush_ms, good[_i].want);
    else if (strcmp(v, "MAX_BODY") == 0)
        ck_assert_int_eq(cfg.max_body, good[_i].want);
    else if (strcmp(v, "AUTH") == 0)
        ck_assert_int_eq(cfg.auth, good[_i].want);
    else if (strcmp(v, "MODE") == 0)
        ck_assert_str_eq(cfg.mode, good[_i].want_str);
    else if (strcmp(v, "LOG_LEVEL") == 0)
        ck_assert_int_eq(cfg.level, good[_i].want);
    else
        ck_assert_str_eq(cfg.pg, good[_i].want_str);
}
END_TEST

START_TEST(broken_default_is_reported)
{
    static const struct astro_cfg_var broken[] = {
        {"ASTRO_T_BATCH_SIZE", ASTRO_CFG_INT, "lots", 1, 10, NULL, 0, F(batch), "x"},
    };
    ck_assert_int_eq(astro_cfg_load(broken, 1, &cfg, err, sizeof(err)), ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "ASTRO_T_BATCH_SIZE: the built-in default \"lots\""));
}
END_TEST

START_TEST(log_masks_secrets)
{
    setenv("ASTRO_T_PASSWORD", "hunter2", 1);
    setenv("ASTRO_T_REDIS_URL", "redis://user:s3cret@cache:6379/0", 1);
    setenv("ASTRO_T_PG", "host=db user=a password=pg-secret dbname=x", 1);
    setenv("ASTRO_T_FLUSH", "90000", 1);
    ck_assert_int_eq(astro_cfg_load(vars, NVARS, &cfg, err, sizeof(err)), ASTRO_OK);
    capture_start();
    astro_cfg_log(vars, NVARS, &cfg);
    const char *out = capture_end();
    ck_assert_ptr_null(strstr(out, "hunter2"));
    ck_assert_ptr_null(strstr(out, "s3cret"));
    ck_assert_ptr_null(strstr(out, "pg-secret"));
    ck_assert_ptr_null(strstr(out, "1234")); /* the secret PIN */
    ck_assert_ptr_nonnull(strstr(out, " INFO astro-test[t] config: ASTRO_T_PASSWORD=****\n"));
    ck_assert_ptr_nonnull(strstr(out, "config: ASTRO_T_PIN=**** (default)\n"));
    ck_assert_ptr_nonnull(strstr(out, "config: ASTRO_T_REDIS_URL=redis://user:****@cache:6379/0\n"));
    ck_assert_ptr_nonnull(
        strstr(out, "config: ASTRO_T_PG=host=db user=a password=**** dbname=x\n"));
    ck_assert_ptr_nonnull(strstr(out, "config: ASTRO_T_BATCH_SIZE=500 (default)\n"));
    ck_assert_ptr_nonnull(strstr(out, "config: ASTRO_T_FLUSH=90s\n"));
    ck_assert_ptr_nonnull(strstr(out, "config: ASTRO_T_MAX_BODY=16MiB (default)\n"));
    ck_assert_ptr_nonnull(strstr(out, "config: ASTRO_T_AUTH=true (default)\n"));
}
END_TEST

static const struct {
    const char *in, *out;
} masks[] = {
    {"redis://:pw@h:6379", "redis://:****@h:6379"},
    {"redis://h:6379/0", "redis://h:6379/0"},
    {"redis://u@h", "redis://u@h"},
    {"postgres://u:p@ss@h/db", "postgres://u:****@h/db"},
    {"postgresql://h/db?user=u&password=z&sslmode=require",
     "postgresql://h/db?user=u&password=****&sslmode=require"},
    {"a=1 password='x y' b=2", "a=1 password=**** b=2"},
    {"PASSWORD=abc", "PASSWORD=****"},
    {"mypassword=abc", "mypassword=abc"},
    {"", ""},
};

START_TEST(mask_values)
{
    char out[128];
    astro_cfg_mask(out, sizeof(out), masks[_i].in, false);
    ck_assert_str_eq(out, masks[_i].out);
    astro_cfg_mask(out, sizeof(out), masks[_i].in, true);
    ck_assert_str_eq(out, "****");
}
END_TEST

START_TEST(unknown_variables_warned_with_suggestion)
{
    setenv("ASTRO_T_BACH_SIZE", "5", 1);
    setenv("ASTRO_T_COMPLETELY_DIFFERENT", "1", 1);
    capture_start();
    size_t n = astro_cfg_warn_unknown(vars, NVARS);
    const char *out = capture_end();
    ck_assert_uint_eq(n, 2);
    ck_assert_ptr_nonnull(strstr(out, "WARN astro-test[t] config: ASTRO_T_BACH_SIZE is not a "
                                      "setting of this service; did you mean ASTRO_T_BATCH_SIZE?\n"));
    ck_assert_ptr_nonnull(strstr(out, "config: ASTRO_T_COMPLETELY_DIFFERENT is not a setting of "
                                      "this service; ignored\n"));
    ck_assert_ptr_null(strstr(out, "ASTRO_T_NODE"));
}
END_TEST

START_TEST(help_lists_every_setting)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    astro_cfg_help(f, vars, NVARS);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "  ASTRO_T_BATCH_SIZE (integer, range 1..10000, default "
                                       "500)\n      Batch size.\n"));
    ck_assert_ptr_nonnull(strstr(text, "ASTRO_T_FLUSH (duration, range 1ms..1h, default 250ms)"));
    ck_assert_ptr_nonnull(strstr(text, "ASTRO_T_MAX_BODY (size, range 1KiB..1GiB, default 16MiB)"));
    ck_assert_ptr_nonnull(strstr(text, "ASTRO_T_MODE (one of mono|multi|all, default all)"));
    ck_assert_ptr_nonnull(strstr(text, "ASTRO_T_NODE (string, default none, required)"));
    ck_assert_ptr_nonnull(strstr(text, "ASTRO_T_PASSWORD (string, default ****, secret)"));
    ck_assert_ptr_null(strstr(text, "changeme"));
    for (size_t i = 0; i < NVARS; i++)
        ck_assert_ptr_nonnull(strstr(text, vars[i].name));
    free(text);
}
END_TEST

START_TEST(main_load_exits_2_with_every_error)
{
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    setenv("ASTRO_T_BATCH_SIZE", "0", 1);
    setenv("ASTRO_T_MODE", "x", 1);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd[1], STDERR_FILENO);
        astro_cfg_main_load("astro-test", vars, NVARS, &cfg);
        _exit(0); /* not reached when the configuration is bad */
    }
    close(fd[1]);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ssize_t n = read(fd[0], captured, sizeof(captured) - 1);
    close(fd[0]);
    captured[n > 0 ? n : 0] = '\0';
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 2);
    ck_assert_str_eq(captured, "astro-test: invalid configuration:\n"
                               "ASTRO_T_BATCH_SIZE: 0 is below the minimum 1\n"
                               "ASTRO_T_MODE: \"x\" is not one of mono|multi|all\n");
}
END_TEST

START_TEST(format_round_trips)
{
    static const int64_t durations[] = {0, 1, 999, 1000, 1500, 90000, 3600000, 7200001};
    static const int64_t sizes[] = {0, 1, 1024, 1536, 65536, 16 << 20, INT64_C(3) << 40};
    char buf[64];
    int64_t back = -1;
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(durations); i++) {
        astro_cfg_format_duration(buf, sizeof(buf), durations[i]);
        ck_assert_int_eq(astro_cfg_parse_duration(buf, &back, NULL, 0), ASTRO_OK);
        ck_assert_int_eq(back, durations[i]);
    }
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(sizes); i++) {
        astro_cfg_format_bytes(buf, sizeof(buf), sizes[i]);
        ck_assert_int_eq(astro_cfg_parse_bytes(buf, &back, NULL, 0), ASTRO_OK);
        ck_assert_int_eq(back, sizes[i]);
    }
    astro_cfg_format_duration(buf, sizeof(buf), 90000);
    ck_assert_str_eq(buf, "90s");
    astro_cfg_format_bytes(buf, sizeof(buf), 1536);
    ck_assert_str_eq(buf, "1536B");
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, defaults_applied);
    tcase_add_loop_test(tc, bad_value_rejected_with_name, 0, (int)ASTRO_ARRAY_LEN(bad));
    tcase_add_test(tc, all_errors_reported_together);
    tcase_add_test(tc, small_error_buffer_still_fails_cleanly);
    tcase_add_loop_test(tc, good_values_parsed, 0, (int)ASTRO_ARRAY_LEN(good));
    tcase_add_test(tc, broken_default_is_reported);
    tcase_add_test(tc, log_masks_secrets);
    tcase_add_loop_test(tc, mask_values, 0, (int)ASTRO_ARRAY_LEN(masks));
    tcase_add_test(tc, unknown_variables_warned_with_suggestion);
    tcase_add_test(tc, help_lists_every_setting);
    tcase_add_test(tc, main_load_exits_2_with_every_error);
    tcase_add_test(tc, format_round_trips);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

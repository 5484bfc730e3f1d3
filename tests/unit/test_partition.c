/* Partitioning: pinned FNV-1a vectors (a wire contract), distribution, stream key names, and
 * the recorded-P check against a real redis-server started on a free loopback port. */
#include <check.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "astro/partition.h"
#include "servers.h"

/* Computed independently with Python:
 * h=0xcbf29ce484222325; for b in key.encode(): h=((h^b)*0x100000001b3)&(2**64-1) */
static const struct {
    const char *key;
    uint64_t hash;
    uint32_t p16;
} vectors[] = {
    {"", UINT64_C(0xcbf29ce484222325), 5},
    {"a", UINT64_C(0xaf63dc4c8601ec8c), 12},
    {"user_123", UINT64_C(0x4392e340cdbc6fe9), 9},
    {"AAPL", UINT64_C(0x89106b8b9f086ccb), 11},
    {"caf\xc3\xa9_\xc3\xbc\xf0\x9f\x9a\x80", UINT64_C(0xc8409282f63175b2), 2}, /* café_ü🚀 */
};

START_TEST(hash_vectors)
{
    const char *k = vectors[_i].key;
    ck_assert_uint_eq(astro_partition_hash(k, strlen(k)), vectors[_i].hash);
    ck_assert_uint_eq(astro_partition_of(k, strlen(k), 16), vectors[_i].p16);
    ck_assert_uint_eq(astro_partition_of(k, strlen(k), 1), 0);
}
END_TEST

START_TEST(hash_uses_bytes_not_c_string)
{
    /* An embedded NUL is part of the key: "a\0b" must differ from "a". */
    ck_assert_uint_ne(astro_partition_hash("a\0b", 3), astro_partition_hash("a", 1));
    ck_assert_uint_eq(astro_partition_hash(NULL, 0), UINT64_C(0xcbf29ce484222325));
}
END_TEST

START_TEST(distribution_is_uniform)
{
    enum { KEYS = 100000, P = 16 };
    unsigned counts[P] = {0};
    char key[32];
    for (int i = 0; i < KEYS; i++) {
        int n = snprintf(key, sizeof(key), "user_%d", i);
        counts[astro_partition_of(key, (size_t)n, P)]++;
    }
    for (int p = 0; p < P; p++) {
        ck_assert_msg(counts[p] >= KEYS / P * 9 / 10 && counts[p] <= KEYS / P * 11 / 10,
                      "partition %d got %u of %d keys", p, counts[p], KEYS);
    }
}
END_TEST

static const struct {
    const char *kind;
    uint32_t p;
    size_t size;
    int ok;
    const char *want;
} key_cases[] = {
    {"mono", 7, 64, 1, "astro:mono:{7}"},
    {"multi", 0, 64, 1, "astro:multi:{0}"},
    {"agg", 4095, 64, 1, "astro:agg:{4095}"},
    {"mono", 7, 15, 1, "astro:mono:{7}"}, /* exactly fits with its NUL */
    {"mono", 7, 14, 0, ""},               /* one byte short */
    {"mono", 4096, 64, 0, ""},            /* partition out of range */
    {"late", 1, 64, 0, ""},               /* unknown kind */
};

START_TEST(stream_keys)
{
    char buf[64];
    memset(buf, 'z', sizeof(buf));
    int rc = astro_stream_key(buf, key_cases[_i].size, key_cases[_i].kind, key_cases[_i].p);
    ck_assert_int_eq(rc == ASTRO_OK, key_cases[_i].ok);
    ck_assert_str_eq(buf, key_cases[_i].want);
}
END_TEST

/* ---- a private redis-server per test ---- */

static pid_t redis_pid = -1;
static redisContext *rc_ctx;

static void
redis_start(void)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", harness_free_port());
    redis_pid = fork();
    ck_assert_int_ge(redis_pid, 0);
    if (redis_pid == 0) {
        /* Die with the test process even when a failed assertion skips the teardown. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        rc_ctx = redisConnect("127.0.0.1", atoi(port));
        if (rc_ctx != NULL && rc_ctx->err == 0)
            return;
        redisFree(rc_ctx);
        rc_ctx = NULL;
        nanosleep(&ts, NULL);
    }
    ck_abort_msg("redis-server did not start on port %s", port);
}

static void
redis_stop(void)
{
    if (rc_ctx != NULL)
        redisFree(rc_ctx);
    rc_ctx = NULL;
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
    }
    redis_pid = -1;
}

/* Runs a command expected to succeed and returns its string reply (static copy) or "(nil)". */
static const char *
cmd(const char *fmt, const char *arg)
{
    static char out[128];
    redisReply *r = redisCommand(rc_ctx, fmt, arg);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_ne(r->type, REDIS_REPLY_ERROR);
    snprintf(out, sizeof(out), "%s", r->type == REDIS_REPLY_STRING ? r->str : "(nil)");
    freeReplyObject(r);
    return out;
}

START_TEST(first_start_records_partitions)
{
    char err[256] = "";
    ck_assert_str_eq(cmd("GET %s", ASTRO_PARTITION_META_KEY), "(nil)");
    ck_assert_int_eq(astro_partition_check_recorded(rc_ctx, 16, err, sizeof(err)), ASTRO_OK);
    ck_assert_str_eq(cmd("GET %s", ASTRO_PARTITION_META_KEY), "16");
    /* A restart with the same P agrees. */
    ck_assert_int_eq(astro_partition_check_recorded(rc_ctx, 16, err, sizeof(err)), ASTRO_OK);
}
END_TEST

START_TEST(mismatch_refused_with_clear_message)
{
    char err[512] = "";
    cmd("SET %s 8", ASTRO_PARTITION_META_KEY);
    ck_assert_int_eq(astro_partition_check_recorded(rc_ctx, 16, err, sizeof(err)), ASTRO_ERR);
    ck_assert_msg(strstr(err, "ASTRO_PARTITIONS=16 but this Redis was set up with 8 partitions") !=
                      NULL,
                  "message: %s", err);
    /* The recorded value is never overwritten by the newcomer. */
    ck_assert_str_eq(cmd("GET %s", ASTRO_PARTITION_META_KEY), "8");
}
END_TEST

START_TEST(corrupt_recorded_value_refused)
{
    char err[512] = "";
    cmd("SET %s 12abc", ASTRO_PARTITION_META_KEY);
    ck_assert_int_eq(astro_partition_check_recorded(rc_ctx, 12, err, sizeof(err)), ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, ASTRO_PARTITION_META_KEY));
    ck_assert_ptr_nonnull(strstr(err, "12abc"));
}
END_TEST

START_TEST(redis_error_reported)
{
    char err[512] = "";
    cmd("RPUSH %s x", ASTRO_PARTITION_META_KEY); /* wrong type: GET fails */
    ck_assert_int_eq(astro_partition_check_recorded(rc_ctx, 4, err, sizeof(err)), ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "WRONGTYPE"));
}
END_TEST

START_TEST(out_of_range_p_refused_before_recording)
{
    char err[256] = "";
    ck_assert_int_eq(astro_partition_check_recorded(rc_ctx, 0, err, sizeof(err)), ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "ASTRO_PARTITIONS=0"));
    ck_assert_int_eq(astro_partition_check_recorded(rc_ctx, 4097, err, sizeof(err)), ASTRO_ERR);
    ck_assert_str_eq(cmd("GET %s", ASTRO_PARTITION_META_KEY), "(nil)");
    ck_assert_int_eq(astro_partition_check_recorded(rc_ctx, 4096, err, sizeof(err)), ASTRO_OK);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("partition");
    TCase *pure = tcase_create("hash");
    tcase_add_loop_test(pure, hash_vectors, 0, (int)(sizeof(vectors) / sizeof(vectors[0])));
    tcase_add_test(pure, hash_uses_bytes_not_c_string);
    tcase_add_test(pure, distribution_is_uniform);
    tcase_add_loop_test(pure, stream_keys, 0, (int)(sizeof(key_cases) / sizeof(key_cases[0])));
    suite_add_tcase(s, pure);

    TCase *redis = tcase_create("recorded");
    tcase_add_checked_fixture(redis, redis_start, redis_stop);
    tcase_set_timeout(redis, 30);
    tcase_add_test(redis, first_start_records_partitions);
    tcase_add_test(redis, mismatch_refused_with_clear_message);
    tcase_add_test(redis, corrupt_recorded_value_refused);
    tcase_add_test(redis, redis_error_reported);
    tcase_add_test(redis, out_of_range_p_refused_before_recording);
    suite_add_tcase(s, redis);

    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

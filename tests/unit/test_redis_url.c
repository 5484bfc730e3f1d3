/* redis:// URL parsing: what is accepted, what it means, and what a user is told otherwise. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "astro/redis.h"

struct good_case {
    const char *url;
    const char *host;
    int port;
    int db;
    const char *user;
    const char *password; /* NULL: no password */
};

static const struct good_case good[] = {
    { "redis://localhost", "localhost", 6379, 0, "", NULL },
    { "redis://127.0.0.1:6380", "127.0.0.1", 6380, 0, "", NULL },
    { "redis://127.0.0.1:6380/", "127.0.0.1", 6380, 0, "", NULL },
    { "redis://redis:6379/3", "redis", 6379, 3, "", NULL },
    { "redis://:secret@redis", "redis", 6379, 0, "", "secret" },
    { "redis://:secret@redis:7000/15", "redis", 7000, 15, "", "secret" },
    { "redis://archiver:pw@redis:6379/1", "redis", 6379, 1, "archiver", "pw" },
    { "redis://u%40corp:p%3Aw%2F%25@h", "h", 6379, 0, "u@corp", "p:w/%" },
    { "redis://:p@ss@h:1", "h", 1, 0, "", "p@ss" },
    { "redis://[::1]:6390/2", "::1", 6390, 2, "", NULL },
    { "redis://[::1]", "::1", 6379, 0, "", NULL },
    { "redis://h:65535/0", "h", 65535, 0, "", NULL },
};

struct bad_case {
    const char *url;
    const char *message; /* substring the user must see */
};

static const struct bad_case bad[] = {
    { "", "empty" },
    { "rediss://h:6380/0", "TLS not supported by hiredis 0.14: terminate TLS in a proxy" },
    { "http://h:6379", "scheme must be redis://" },
    { "h:6379", "scheme must be redis://" },
    { "redis://", "host is empty" },
    { "redis://:6379/0", "host is empty" },
    { "redis://h:0", "port: \"0\" is not a number in 1..65535" },
    { "redis://h:65536", "port: \"65536\"" },
    { "redis://h:63x9", "port: \"63x9\"" },
    { "redis://h:", "port: \"\"" },
    { "redis://h/abc", "database: \"abc\" is not a number" },
    { "redis://h/-1", "database: \"-1\"" },
    { "redis://h/0?timeout=1", "query parameters are not supported" },
    { "redis://user@h", "credentials need a password" },
    { "redis://user:@h", "password is empty" },
    { "redis://:%zz@h", "password: bad percent-escape" },
    { "redis://:abc%4@h", "password: bad percent-escape" },
    { "redis://us%2@h:1", "credentials need a password" },
    { "redis://u%2:x@h", "user: bad percent-escape" },
    { "redis://:a%00b@h", "%00 is not allowed" },
    { "redis://[::1/0", "missing ']'" },
    { "redis://[::1]x/0", "junk after ']'" },
};

START_TEST(test_good_urls)
{
    const struct good_case *c = &good[_i];
    struct astro_redis_url u;
    char err[256] = "";
    ck_assert_msg(astro_redis_url_parse(c->url, &u, err, sizeof(err)) == ASTRO_OK, "%s: %s",
                  c->url, err);
    ck_assert_str_eq(u.host, c->host);
    ck_assert_int_eq(u.port, c->port);
    ck_assert_int_eq(u.db, c->db);
    ck_assert_str_eq(u.user, c->user);
    ck_assert_int_eq(u.has_password, c->password != NULL);
    if (c->password != NULL)
        ck_assert_str_eq(u.password, c->password);
}
END_TEST

START_TEST(test_bad_urls)
{
    const struct bad_case *c = &bad[_i];
    struct astro_redis_url u;
    char err[256] = "";
    ck_assert_msg(astro_redis_url_parse(c->url, &u, err, sizeof(err)) == ASTRO_ERR,
                  "%s: accepted", c->url);
    ck_assert_msg(strstr(err, c->message) != NULL, "%s: got \"%s\", want \"%s\"", c->url, err,
                  c->message);
    ck_assert_msg(strncmp(err, "redis url: ", 11) == 0, "%s: message lacks context: %s",
                  c->url, err);
}
END_TEST

START_TEST(test_masked_format_hides_password)
{
    struct astro_redis_url u;
    char buf[256];
    ck_assert_int_eq(astro_redis_url_parse("redis://app:hunter2@[::1]:7000/4", &u, NULL, 0),
                     ASTRO_OK);
    astro_redis_url_format_masked(&u, buf, sizeof(buf));
    ck_assert_str_eq(buf, "redis://app:***@[::1]:7000/4");
    ck_assert_ptr_null(strstr(buf, "hunter2"));
}
END_TEST

START_TEST(test_null_and_long_fields)
{
    struct astro_redis_url u;
    char err[256];
    ck_assert_int_eq(astro_redis_url_parse(NULL, &u, err, sizeof(err)), ASTRO_ERR);
    char url[600] = "redis://";
    memset(url + 8, 'h', 300);
    ck_assert_int_eq(astro_redis_url_parse(url, &u, err, sizeof(err)), ASTRO_ERR);
    ck_assert_ptr_nonnull(strstr(err, "host: longer than 255 bytes"));
}
END_TEST

static Suite *
redis_url_suite(void)
{
    Suite *s = suite_create("redis_url");
    TCase *tc = tcase_create("parse");
    tcase_add_loop_test(tc, test_good_urls, 0, (int)ASTRO_ARRAY_LEN(good));
    tcase_add_loop_test(tc, test_bad_urls, 0, (int)ASTRO_ARRAY_LEN(bad));
    tcase_add_test(tc, test_masked_format_hides_password);
    tcase_add_test(tc, test_null_and_long_fields);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(redis_url_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Decoding of the side streams (astro:sessions, astro:predictions, astro:late): what is
 * archived, and what is refused (and goes to astro:dead) with which reason. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "archiver.h"

/* A field/value array reply parsed from words (NULL-terminated). */
static redisReply *
fields_of(const char *const *w)
{
    char buf[4096];
    size_t n = 0, len = 0;
    while (w[n] != NULL)
        n++;
    len += (size_t)snprintf(buf + len, sizeof(buf) - len, "*%zu\r\n", n);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(w[i]);
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "$%zu\r\n", l);
        memcpy(buf + len, w[i], l);
        len += l;
        memcpy(buf + len, "\r\n", 2);
        len += 2;
    }
    redisReader *rd = redisReaderCreate();
    void *out = NULL;
    ck_assert_int_eq(redisReaderFeed(rd, buf, len), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &out), REDIS_OK);
    redisReaderFree(rd);
    ck_assert_ptr_nonnull(out);
    return out;
}

static const struct {
    const char *name;
    enum arc_kind kind;
    const char *words[24];
    const char *err; /* NULL: decodes; else a substring of the reason */
    int slot;        /* a slot to check when it decodes */
    const char *want;
} cases[] = {
    {"session start", ARC_SESSION,
     {"kind", "start", "sid", "s1", "user", "u", "ts", "1700000000000000", "dev", "{}", NULL},
     NULL, 4, "{}"},
    {"session end with reason", ARC_SESSION,
     {"kind", "end", "sid", "s1", "user", "u", "ts", "1", "reason", "bye", "extra", "x", NULL},
     NULL, 5, "bye"},
    {"session kind", ARC_SESSION, {"kind", "pause", "sid", "s", "user", "u", "ts", "1", NULL},
     "kind", 0, NULL},
    {"session without sid", ARC_SESSION, {"kind", "start", "user", "u", "ts", "1", NULL},
     "\"sid\"", 0, NULL},
    {"session empty user", ARC_SESSION, {"kind", "end", "sid", "s", "user", "", "ts", "1", NULL},
     "\"user\"", 0, NULL},
    {"session ts not integer", ARC_SESSION,
     {"kind", "end", "sid", "s", "user", "u", "ts", "12x", NULL}, "ts", 0, NULL},
    {"prediction", ARC_PREDICTION,
     {"id", "p", "user", "u", "ts", "5", "payload", "{\"a\":1}", NULL}, NULL, 3, "{\"a\":1}"},
    {"prediction repeated id", ARC_PREDICTION,
     {"id", "p", "id", "q", "user", "u", "ts", "5", "payload", "{}", NULL}, "duplicate", 0, NULL},
    {"prediction without payload", ARC_PREDICTION, {"id", "p", "user", "u", "ts", "5", NULL},
     "\"payload\"", 0, NULL},
    {"late, full", ARC_LATE,
     {"reason", "r", "stream", "astro:mono:{0}", "entry", "1-1", "id", "e", "ts", "9", "src",
      "s", NULL},
     NULL, 2, "1-1"},
    {"late, reason only", ARC_LATE, {"reason", "r", NULL}, NULL, 1, NULL},
    {"late without reason", ARC_LATE, {"id", "e", NULL}, "\"reason\"", 0, NULL},
    {"late bad utf-8", ARC_LATE, {"reason", "\xc3\x28", NULL}, "UTF-8", 0, NULL},
};

START_TEST(decode_table)
{
    redisReply *f = fields_of(cases[_i].words);
    struct arc_side side;
    char err[160] = "";
    int rc = arc_side_decode(cases[_i].kind, f, &side, err, sizeof(err));
    if (cases[_i].err == NULL) {
        ck_assert_msg(rc == ASTRO_OK, "%s: %s", cases[_i].name, err);
        if (cases[_i].want == NULL)
            ck_assert_ptr_null(side.v[cases[_i].slot]);
        else
            ck_assert_str_eq(side.v[cases[_i].slot], cases[_i].want);
    } else {
        ck_assert_msg(rc == ASTRO_ERR, "%s: decoded", cases[_i].name);
        ck_assert_msg(strstr(err, cases[_i].err) != NULL, "%s: %s", cases[_i].name, err);
    }
    freeReplyObject(f);
}
END_TEST

static Suite *
side_suite(void)
{
    Suite *s = suite_create("archiver_side");
    TCase *tc = tcase_create("decode");
    tcase_add_loop_test(tc, decode_table, 0, (int)ASTRO_ARRAY_LEN(cases));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(side_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

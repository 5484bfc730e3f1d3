/* The archiver's batch decoding and COPY rows: what reaches PostgreSQL, byte for byte, and
 * what is set aside as undecodable. Replies are real hiredis replies parsed from RESP text. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "archiver.h"

static struct arc_batch b;
static const struct arc_stream streams[2] = {
    {.key = "astro:mono:{0}", .kind = ARC_MONO},
    {.key = "astro:multi:{0}", .kind = ARC_MULTI},
};

static void
setup(void)
{
    arc_batch_init(&b);
}

static void
teardown(void)
{
    arc_batch_cleanup(&b);
}

/* RESP text of an entry array: n entries given as (id, words...) lists. */
struct resp {
    char buf[8192];
    size_t len;
};

static void
put(struct resp *r, const char *s, size_t n)
{
    r->len += (size_t)snprintf(r->buf + r->len, sizeof(r->buf) - r->len, "$%zu\r\n", n);
    memcpy(r->buf + r->len, s, n);
    r->len += n;
    memcpy(r->buf + r->len, "\r\n", 2);
    r->len += 2;
}

static void
entry(struct resp *r, const char *id, const char *const *w, size_t nw)
{
    r->len += (size_t)snprintf(r->buf + r->len, sizeof(r->buf) - r->len, "*2\r\n");
    put(r, id, strlen(id));
    r->len += (size_t)snprintf(r->buf + r->len, sizeof(r->buf) - r->len, "*%zu\r\n", nw);
    for (size_t i = 0; i < nw; i++)
        put(r, w[i], strlen(w[i]));
}

static redisReply *
parse(struct resp *r)
{
    redisReader *rd = redisReaderCreate();
    void *out = NULL;
    ck_assert_int_eq(redisReaderFeed(rd, r->buf, r->len), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &out), REDIS_OK);
    ck_assert_ptr_nonnull(out);
    redisReaderFree(rd);
    return out;
}

static const char *const MONO_OK[] = {"id", "E1", "ts", "1700000000000123", "src", "axon_1",
                                      "key", "user_1", "type", "A", "val", "10.5",
                                      "meta", "{\"note\":\"a\\\\b\\tc\"}"};
static const char *const MONO_BAD[] = {"id", "E2", "ts", "soon", "src", "axon_1", "key", "",
                                       "type", "A", "val", "1"};
static const char *const MULTI_OK[] = {
    "id", "M1", "ts", "1700000000000000", "src", "leaflet", "key", "k", "type", "pair",
    "val", "3", "rule", "r1", "ival", "3", "conf", "0.5", "srcs", "a,b",
    "lin", "[{\"id\":\"a\",\"src\":\"s1\",\"type\":\"A\",\"ts\":\"1700000000000000\",\"val\":1},"
           "{\"id\":\"b\",\"src\":\"s2\",\"type\":\"B\",\"ts\":\"1700000000000001\",\"val\":2}]"};

static long
add(const char *const *w, size_t nw, int stream, const char *id)
{
    struct resp r = {.len = 0};
    r.len += (size_t)snprintf(r.buf, sizeof(r.buf), "*1\r\n");
    entry(&r, id, w, nw);
    redisReply *rep = parse(&r);
    return arc_batch_add_entries(&b, rep, rep, stream, streams[stream].kind);
}

START_TEST(decodes_good_sets_aside_bad)
{
    ck_assert_int_eq(add(MONO_OK, ASTRO_ARRAY_LEN(MONO_OK), 0, "1-1"), 1);
    ck_assert_int_eq(add(MONO_BAD, ASTRO_ARRAY_LEN(MONO_BAD), 0, "1-2"), 1);
    ck_assert_int_eq(add(MULTI_OK, ASTRO_ARRAY_LEN(MULTI_OK), 0, "1-3"), 1); /* wrong stream */
    ck_assert_int_eq(add(MULTI_OK, ASTRO_ARRAY_LEN(MULTI_OK), 1, "1-4"), 1);
    ck_assert_uint_eq(b.n, 2);
    ck_assert_str_eq(b.rows[0].entry_id, "1-1");
    ck_assert_str_eq(b.rows[0].ev.id, "E1");
    ck_assert_str_eq(b.rows[1].entry_id, "1-4");
    ck_assert_int_eq(b.rows[1].stream, 1);
    ck_assert_uint_eq(b.nrej, 2);
    ck_assert_str_eq(b.rejects[0].entry_id, "1-2");
    ck_assert_msg(strstr(b.rejects[0].reason, "ts") != NULL, "%s", b.rejects[0].reason);
    ck_assert_str_eq(b.rejects[1].entry_id, "1-3");
    ck_assert_msg(strstr(b.rejects[1].reason, "mono stream") != NULL, "%s",
                  b.rejects[1].reason);
    arc_batch_reset(&b);
    ck_assert_uint_eq(b.n + b.nrej + b.nrep, 0);
}
END_TEST

/* Leaflet's idle watermark markers are acked without a row and are never dead-lettered. */
START_TEST(watermark_markers_are_set_aside_for_ack)
{
    static const char *const MARK[] = {"wm", "1700000000000000"};
    static const char *const NOT_MARK[] = {"wm", "1700000000000000", "id", "x"};
    ck_assert_int_eq(add(MARK, ASTRO_ARRAY_LEN(MARK), 0, "2-1"), 1);
    ck_assert_int_eq(add(NOT_MARK, ASTRO_ARRAY_LEN(NOT_MARK), 0, "2-2"), 1);
    ck_assert_uint_eq(b.n, 0);
    ck_assert_uint_eq(b.nrej, 2);
    ck_assert(b.rejects[0].marker);
    ck_assert_str_eq(b.rejects[0].entry_id, "2-1");
    ck_assert(!b.rejects[1].marker); /* a malformed event that happens to carry "wm" */
    arc_batch_reset(&b);
}
END_TEST

START_TEST(copy_rows_escape_exactly)
{
    ck_assert_int_eq(add(MONO_OK, ASTRO_ARRAY_LEN(MONO_OK), 0, "1-1"), 1);
    ck_assert_int_eq(add(MULTI_OK, ASTRO_ARRAY_LEN(MULTI_OK), 1, "1-4"), 1);
    struct astro_pg_copybuf buf;
    astro_pg_copybuf_init(&buf);
    ck_assert_int_eq(arc_rows_copy(b.rows, 0, b.n, ARC_MONO, streams, NULL, false, &buf), 1);
    /* mono_events columns; the metadata's JSON backslashes arrive doubled for COPY text. */
    const char *want = "E1\t2023-11-14T22:13:20.000123Z\taxon_1\tuser_1\tA\t10.5\t"
                       "{\"note\":\"a\\\\\\\\b\\\\tc\"}\t1-1\n";
    ck_assert_uint_eq(buf.len, strlen(want));
    ck_assert(memcmp(buf.data, want, buf.len) == 0);
    astro_pg_copybuf_reset(&buf);
    ck_assert_int_eq(arc_rows_copy(b.rows, 0, b.n, ARC_MULTI, streams, NULL, false, &buf), 1);
    buf.data[buf.len] = '\0';
    /* No metadata is '{}' (NOT NULL column); source_events as an array literal. */
    const char *head = "M1\t2023-11-14T22:13:20.000000Z\tleaflet\tk\tpair\t3\t{}\t1-4\t"
                       "r1\t3\t0.5\t{\"a\",\"b\"}\t[{";
    ck_assert_msg(strncmp(buf.data, head, strlen(head)) == 0, "%s", buf.data);
    ck_assert_msg(strstr(buf.data, "\"event_id\":\"b\"") != NULL, "%s", buf.data);
    ck_assert_msg(strstr(buf.data, "\"source_stream\":\"s2\"") != NULL, "%s", buf.data);
    astro_pg_copybuf_reset(&buf);
    ck_assert_int_eq(arc_rows_copy(b.rows, 0, b.n, ARC_MULTI, streams, NULL, true, &buf), 1);
    const char *keys = "1\tM1\t2023-11-14T22:13:20.000000Z\n";
    ck_assert_uint_eq(buf.len, strlen(keys));
    ck_assert(memcmp(buf.data, keys, buf.len) == 0);
    astro_pg_copybuf_cleanup(&buf);
}
END_TEST

/* Within one batch, the same event (id and time) in the same table is written once. */
START_TEST(duplicates_in_batch_are_skipped)
{
    const char *other[ASTRO_ARRAY_LEN(MONO_OK)];
    memcpy(other, MONO_OK, sizeof(other));
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof(id), "1-%d", i);
        ck_assert_int_eq(add(MONO_OK, ASTRO_ARRAY_LEN(MONO_OK), 0, id), 1);
    }
    other[1] = "E9"; /* another event */
    ck_assert_int_eq(add(other, ASTRO_ARRAY_LEN(other), 0, "1-4"), 1);
    other[1] = "E1";
    other[3] = "1700000000000124"; /* same id, another time: another row */
    ck_assert_int_eq(add(other, ASTRO_ARRAY_LEN(other), 0, "1-5"), 1);
    bool skip[6] = {false};
    ck_assert_int_eq(arc_rows_mark_dups(b.rows, 0, b.n, streams, skip), 3);
    ck_assert(!skip[0] && skip[1] && skip[2] && skip[3] && !skip[4] && !skip[5]);
    struct astro_pg_copybuf buf;
    astro_pg_copybuf_init(&buf);
    ck_assert_int_eq(arc_rows_copy(b.rows, 0, b.n, ARC_MONO, streams, skip, true, &buf), 3);
    buf.data[buf.len] = '\0';
    ck_assert_msg(strncmp(buf.data, "0\tE1\t", 5) == 0, "%s", buf.data);
    ck_assert_msg(strstr(buf.data, "\n4\tE9\t") != NULL, "%s", buf.data);
    ck_assert_msg(strstr(buf.data, "\n5\tE1\t2023-11-14T22:13:20.000124Z") != NULL, "%s",
                  buf.data);
    /* A sub-range (a split batch) indexes skip from its own start. */
    bool sub[2] = {false};
    ck_assert_int_eq(arc_rows_mark_dups(b.rows, 2, 4, streams, sub), 1);
    ck_assert(!sub[0] && sub[1]);
    astro_pg_copybuf_cleanup(&buf);
}
END_TEST

START_TEST(dead_payload_is_json_of_fields)
{
    struct resp r = {.len = 0};
    const char *w[] = {"id", "x\"1", "ts", "now"};
    r.len += (size_t)snprintf(r.buf, sizeof(r.buf), "*4\r\n");
    for (size_t i = 0; i < 4; i++)
        put(&r, w[i], strlen(w[i]));
    put(&r, "bin", 3);
    put(&r, "\xff\xfe", 2);
    r.buf[1] = '6';
    redisReply *rep = parse(&r);
    char *s = arc_fields_json(rep);
    ck_assert_ptr_nonnull(s);
    cJSON *o = cJSON_Parse(s);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "id")->valuestring, "x\"1");
    ck_assert_str_eq(cJSON_GetObjectItem(o, "ts")->valuestring, "now");
    ck_assert_str_eq(cJSON_GetObjectItem(o, "bin")->valuestring, "<2 bytes, not UTF-8 text>");
    cJSON_Delete(o);
    cJSON_free(s);
    freeReplyObject(rep);
}
END_TEST

static Suite *
rows_suite(void)
{
    Suite *s = suite_create("archiver_rows");
    TCase *tc = tcase_create("rows");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, decodes_good_sets_aside_bad);
    tcase_add_test(tc, watermark_markers_are_set_aside_for_ack);
    tcase_add_test(tc, copy_rows_escape_exactly);
    tcase_add_test(tc, duplicates_in_batch_are_skipped);
    tcase_add_test(tc, dead_payload_is_json_of_fields);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(rows_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

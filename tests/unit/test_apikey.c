/* API keys: hashing (a wire contract: operators may hash keys themselves), scopes, the Redis
 * record parser (a corrupt record must never grant access) and the per-thread cache. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "astro/apikey.h"

START_TEST(hash_is_sha256_hex)
{
    char hex[ASTRO_APIKEY_HEX_LEN + 1], fp[ASTRO_APIKEY_FP_LEN + 1];
    ck_assert_int_eq(astro_apikey_hash("abc", 3, hex), ASTRO_OK);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    astro_apikey_fingerprint(hex, fp);
    ck_assert_str_eq(fp, "ba7816bf8f01");
    char rkey[96];
    ck_assert_int_eq(astro_apikey_redis_key(rkey, sizeof(rkey), hex), ASTRO_OK);
    ck_assert_str_eq(rkey, "astro:apikey:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff6"
                           "1f20015ad");
    ck_assert_int_eq(astro_apikey_redis_key(rkey, 20, hex), ASTRO_ERR);
}
END_TEST

static const struct {
    const char *in;
    int rc;
    unsigned mask;
    const char *canonical;
} scope_cases[] = {
    {"ingest", ASTRO_OK, ASTRO_SCOPE_INGEST, "ingest"},
    {"read,ingest", ASTRO_OK, ASTRO_SCOPE_INGEST | ASTRO_SCOPE_READ, "ingest,read"},
    {"admin,read,ingest", ASTRO_OK, ASTRO_SCOPE_ALL, "ingest,read,admin"},
    {"", ASTRO_ERR, 0, NULL},
    {"ingest,", ASTRO_ERR, 0, NULL},
    {",ingest", ASTRO_ERR, 0, NULL},
    {"ingest,ingest", ASTRO_ERR, 0, NULL},
    {"Ingest", ASTRO_ERR, 0, NULL},
    {"ingest read", ASTRO_ERR, 0, NULL},
    {"write", ASTRO_ERR, 0, NULL},
};

START_TEST(scopes_table)
{
    unsigned mask = 99;
    char err[128] = "", buf[64];
    int rc = astro_apikey_scopes_parse(scope_cases[_i].in, &mask, err, sizeof(err));
    ck_assert_int_eq(rc, scope_cases[_i].rc);
    ck_assert_uint_eq(mask, scope_cases[_i].mask);
    if (rc == ASTRO_OK) {
        astro_apikey_scopes_format(mask, buf, sizeof(buf));
        ck_assert_str_eq(buf, scope_cases[_i].canonical);
    } else {
        ck_assert_msg(strncmp(err, "scopes: ", 8) == 0, "%s", err);
    }
}
END_TEST

START_TEST(key_format)
{
    ck_assert_int_eq(astro_apikey_check_format("0123456789abcdef", 16, NULL, 0), ASTRO_OK);
    ck_assert_int_eq(astro_apikey_check_format("0123456789abcde", 15, NULL, 0), ASTRO_ERR);
    ck_assert_int_eq(astro_apikey_check_format("0123456789 abcdef", 17, NULL, 0), ASTRO_ERR);
    ck_assert_int_eq(astro_apikey_check_format("0123456789\nabcdef", 17, NULL, 0), ASTRO_ERR);
    char gen[ASTRO_APIKEY_GEN_LEN + 1], gen2[ASTRO_APIKEY_GEN_LEN + 1];
    ck_assert_int_eq(astro_apikey_generate(gen), ASTRO_OK);
    ck_assert_int_eq(astro_apikey_generate(gen2), ASTRO_OK);
    ck_assert_int_eq((int)strlen(gen), ASTRO_APIKEY_GEN_LEN);
    ck_assert(strncmp(gen, "ak_", 3) == 0 && strcmp(gen, gen2) != 0);
    ck_assert_int_eq(astro_apikey_check_format(gen, strlen(gen), NULL, 0), ASTRO_OK);
}
END_TEST

/* Builds an HGETALL-shaped reply from field/value strings (NULL-terminated list). */
static redisReply *
hash_reply(const char *const *kv)
{
    size_t n = 0;
    while (kv[n] != NULL)
        n++;
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n + 1, sizeof(*r->element));
    for (size_t i = 0; i < n; i++) {
        r->element[i] = calloc(1, sizeof(redisReply));
        r->element[i]->type = REDIS_REPLY_STRING;
        r->element[i]->str = strdup(kv[i]);
        r->element[i]->len = strlen(kv[i]);
    }
    return r;
}

START_TEST(record_parsing)
{
    const char *good[] = {"name", "ci", "scopes", "ingest,read", "created", "1700000000", NULL};
    const char *revoked[] = {"name", "old", "scopes", "ingest", "revoked", "1700000001", NULL};
    const char *empty[] = {NULL};
    const char *no_scopes[] = {"name", "x", NULL};
    const char *bad_scopes[] = {"name", "x", "scopes", "ingest,root", NULL};
    struct astro_apikey_info info;
    char err[128];
    redisReply *r = hash_reply(good);
    ck_assert_int_eq(astro_apikey_info_from_reply(r, &info, err, sizeof(err)), ASTRO_OK);
    ck_assert(info.found && !info.revoked);
    ck_assert_str_eq(info.name, "ci");
    ck_assert_uint_eq(info.scopes, ASTRO_SCOPE_INGEST | ASTRO_SCOPE_READ);
    ck_assert_int_eq(info.created, 1700000000);
    freeReplyObject(r);
    r = hash_reply(revoked);
    ck_assert_int_eq(astro_apikey_info_from_reply(r, &info, err, sizeof(err)), ASTRO_OK);
    ck_assert(info.found && info.revoked);
    freeReplyObject(r);
    r = hash_reply(empty);
    ck_assert_int_eq(astro_apikey_info_from_reply(r, &info, err, sizeof(err)), ASTRO_OK);
    ck_assert(!info.found);
    freeReplyObject(r);
    r = hash_reply(no_scopes);
    ck_assert_int_eq(astro_apikey_info_from_reply(r, &info, err, sizeof(err)), ASTRO_ERR);
    ck_assert(!info.found && info.scopes == 0);
    freeReplyObject(r);
    r = hash_reply(bad_scopes);
    ck_assert_int_eq(astro_apikey_info_from_reply(r, &info, err, sizeof(err)), ASTRO_ERR);
    ck_assert(!info.found && info.scopes == 0);
    freeReplyObject(r);
    ck_assert_int_eq(astro_apikey_info_from_reply(NULL, &info, err, sizeof(err)), ASTRO_ERR);
}
END_TEST

static struct astro_apikey_cache *cache;

static void
cache_setup(void)
{
    cache = astro_apikey_cache_new(64, 1000);
    ck_assert_ptr_nonnull(cache);
}

static void
cache_teardown(void)
{
    astro_apikey_cache_free(cache);
}

START_TEST(cache_hit_expiry_and_replacement)
{
    char a[65], b[65];
    struct astro_apikey_info in = {.found = true, .scopes = ASTRO_SCOPE_INGEST}, out;
    ck_assert_int_eq(astro_apikey_hash("key-a-0123456789", 16, a), ASTRO_OK);
    ck_assert_int_eq(astro_apikey_hash("key-b-0123456789", 16, b), ASTRO_OK);
    snprintf(in.name, sizeof(in.name), "a");
    ck_assert(!astro_apikey_cache_get(cache, a, 100, &out));
    astro_apikey_cache_put(cache, a, &in, 100);
    ck_assert(astro_apikey_cache_get(cache, a, 1099, &out));
    ck_assert_str_eq(out.name, "a");
    ck_assert(!astro_apikey_cache_get(cache, a, 1100, &out)); /* TTL over: ask Redis again */
    ck_assert(!astro_apikey_cache_get(cache, b, 200, &out));
    /* same first digits, other key: never a false hit */
    char c[65];
    memcpy(c, a, sizeof(c));
    c[63] = c[63] == '0' ? '1' : '0';
    ck_assert(!astro_apikey_cache_get(cache, c, 200, &out));
    struct astro_apikey_info neg = {.found = false};
    astro_apikey_cache_put(cache, b, &neg, 200); /* unknown keys are cached too */
    ck_assert(astro_apikey_cache_get(cache, b, 300, &out));
    ck_assert(!out.found);
}
END_TEST

START_TEST(cache_ttl_zero_disables)
{
    struct astro_apikey_cache *c0 = astro_apikey_cache_new(8, 0);
    char a[65];
    struct astro_apikey_info in = {.found = true}, out;
    ck_assert_int_eq(astro_apikey_hash("key-a-0123456789", 16, a), ASTRO_OK);
    astro_apikey_cache_put(c0, a, &in, 1);
    ck_assert(!astro_apikey_cache_get(c0, a, 1, &out));
    astro_apikey_cache_free(c0);
    astro_apikey_cache_free(NULL);
}
END_TEST

static Suite *
apikey_suite(void)
{
    Suite *s = suite_create("apikey");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, hash_is_sha256_hex);
    tcase_add_loop_test(tc, scopes_table, 0, (int)(sizeof(scope_cases) / sizeof(scope_cases[0])));
    tcase_add_test(tc, key_format);
    tcase_add_test(tc, record_parsing);
    suite_add_tcase(s, tc);
    tc = tcase_create("cache");
    tcase_add_checked_fixture(tc, cache_setup, cache_teardown);
    tcase_add_test(tc, cache_hit_expiry_and_replacement);
    tcase_add_test(tc, cache_ttl_zero_disables);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(apikey_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* `astro-admin status`, the platform half (needs ASTRO_REDIS_URL): recorded partition count,
 * partition owners (leaflet leases), consumer-group lags, hot-tier size and archive lag. Reads
 * only; safe against a running platform. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "admin.h"
#include "astro/redis.h"
#include "astro/time.h"

#define PLT_MAX_PARTITIONS 4096

struct astro_redis *
adm_redis_connect(const char *cmd, FILE *errout)
{
    char err[512];
    const char *url = getenv("ASTRO_REDIS_URL");
    if (url == NULL || url[0] == '\0') {
        fprintf(errout, "astro-admin %s: ASTRO_REDIS_URL is not set "
                "(e.g. redis://127.0.0.1:6379/0)\n", cmd);
        return NULL;
    }
    struct astro_redis_options o = {.client_name = "astro-admin", .max_attempts = 3,
                                    .backoff_initial_ms = 100};
    struct astro_redis *r = astro_redis_connect(url, &o, err, sizeof(err));
    if (r == NULL)
        fprintf(errout, "astro-admin %s: %s\n", cmd, err);
    return r;
}

/* Runs a command of up to 4 NUL-terminated words; NULL on a transport error. */
static redisReply *
cmd(struct astro_redis *r, const char *a0, const char *a1, const char *a2, const char *a3)
{
    const char *argv[4] = {a0, a1, a2, a3};
    int argc = a3 != NULL ? 4 : a2 != NULL ? 3 : a1 != NULL ? 2 : 1;
    char err[256];
    return astro_redis_command(r, argc, argv, NULL, err, sizeof(err));
}

static long long
reply_int(const redisReply *rep)
{
    if (rep == NULL)
        return -1;
    if (rep->type == REDIS_REPLY_INTEGER)
        return rep->integer;
    if (rep->type == REDIS_REPLY_STRING)
        return strtoll(rep->str, NULL, 10);
    return -1;
}

/* The value of field name in a flat field/value array reply (XINFO), or NULL. */
static const redisReply *
field(const redisReply *arr, const char *name)
{
    for (size_t i = 0; arr != NULL && arr->type == REDIS_REPLY_ARRAY && i + 1 < arr->elements;
         i += 2)
        if (arr->element[i]->type == REDIS_REPLY_STRING && strcmp(arr->element[i]->str, name) == 0)
            return arr->element[i + 1];
    return NULL;
}

static int
recorded_partitions(struct astro_redis *r, FILE *out)
{
    redisReply *rep = cmd(r, "GET", "astro:meta:partitions", NULL, NULL);
    long long p = rep != NULL && rep->type == REDIS_REPLY_STRING ? reply_int(rep) : -1;
    freeReplyObject(rep);
    if (p < 1 || p > PLT_MAX_PARTITIONS) {
        fputs("partitions: none recorded yet (astro:meta:partitions; ingest records P at its "
              "first start)\n", out);
        return 0;
    }
    fprintf(out, "partitions: %lld\n", p);
    return (int)p;
}

static void
print_owners(struct astro_redis *r, int parts, FILE *out)
{
    char key[64];
    int unowned = 0;
    fputs("partition owners (astro-leaflet leases):\n", out);
    for (int p = 0; p < parts; p++) {
        snprintf(key, sizeof(key), "astro:lease:{%d}", p);
        redisReply *rep = cmd(r, "GET", key, NULL, NULL);
        if (rep != NULL && rep->type == REDIS_REPLY_STRING)
            fprintf(out, "  %-4d %s\n", p, rep->str);
        else
            unowned++;
        freeReplyObject(rep);
    }
    if (unowned > 0)
        fprintf(out, "  %d partition(s) without an owner (no astro-leaflet running?)\n", unowned);
}

struct group_sum {
    char name[64];
    long long lag, pending;
    bool lag_unknown;
};

struct kind_sum {
    struct group_sum g[8];
    size_t n;
    long long entries;
    int64_t oldest_unarchived_ms; /* 0 = none */
};

static struct group_sum *
group_slot(struct kind_sum *k, const char *name)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->g[i].name, name) == 0)
            return &k->g[i];
    if (k->n == ASTRO_ARRAY_LEN(k->g))
        return NULL;
    struct group_sum *g = &k->g[k->n++];
    snprintf(g->name, sizeof(g->name), "%s", name);
    return g;
}

/* Oldest entry the archiver group still has to commit: its oldest pending entry, else the
 * first entry after its last-delivered id. Stream ids start with epoch ms. */
static int64_t
oldest_unarchived(struct astro_redis *r, const char *key, const redisReply *grp)
{
    redisReply *rep = NULL;
    int64_t ms = 0;
    if (reply_int(field(grp, "pending")) > 0) {
        rep = cmd(r, "XPENDING", key, "archiver", NULL);
        if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2 &&
            rep->element[1]->type == REDIS_REPLY_STRING)
            ms = strtoll(rep->element[1]->str, NULL, 10);
    } else if (reply_int(field(grp, "lag")) > 0) {
        const redisReply *last = field(grp, "last-delivered-id");
        char start[80];
        snprintf(start, sizeof(start), "(%s", last != NULL && last->str != NULL ? last->str : "0");
        const char *argv[] = {"XRANGE", key, start, "+", "COUNT", "1"};
        char err[256];
        rep = astro_redis_command(r, 6, argv, NULL, err, sizeof(err));
        if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 1)
            ms = strtoll(rep->element[0]->element[0]->str, NULL, 10);
    }
    freeReplyObject(rep);
    return ms;
}

static void
add_stream(struct astro_redis *r, const char *key, struct kind_sum *k)
{
    redisReply *len = cmd(r, "XLEN", key, NULL, NULL);
    if (reply_int(len) > 0)
        k->entries += reply_int(len);
    freeReplyObject(len);
    redisReply *groups = cmd(r, "XINFO", "GROUPS", key, NULL);
    for (size_t i = 0; groups != NULL && groups->type == REDIS_REPLY_ARRAY &&
                       i < groups->elements; i++) {
        const redisReply *grp = groups->element[i], *name = field(grp, "name");
        struct group_sum *g = name != NULL ? group_slot(k, name->str) : NULL;
        if (g == NULL)
            continue;
        long long lag = reply_int(field(grp, "lag"));
        g->lag_unknown = g->lag_unknown || lag < 0;
        g->lag += lag > 0 ? lag : 0;
        g->pending += reply_int(field(grp, "pending")) > 0 ? reply_int(field(grp, "pending")) : 0;
        if (strcmp(name->str, "archiver") == 0) {
            int64_t ms = oldest_unarchived(r, key, grp);
            if (ms > 0 && (k->oldest_unarchived_ms == 0 || ms < k->oldest_unarchived_ms))
                k->oldest_unarchived_ms = ms;
        }
    }
    freeReplyObject(groups);
}

static void
print_kind(const char *kind, const struct kind_sum *k, FILE *out)
{
    for (size_t i = 0; i < k->n; i++)
        fprintf(out, "  astro:%s:{*}  group %-9s  lag %lld%s  pending %lld\n", kind, k->g[i].name,
                k->g[i].lag, k->g[i].lag_unknown ? "+ (some unknown)" : "", k->g[i].pending);
}

static void
print_archive(struct astro_redis *r, const struct kind_sum *mono, const struct kind_sum *multi,
              FILE *out)
{
    long long unarchived = 0;
    for (size_t i = 0; i < mono->n; i++)
        if (strcmp(mono->g[i].name, "archiver") == 0)
            unarchived += mono->g[i].lag + mono->g[i].pending;
    for (size_t i = 0; i < multi->n; i++)
        if (strcmp(multi->g[i].name, "archiver") == 0)
            unarchived += multi->g[i].lag + multi->g[i].pending;
    redisReply *rep = cmd(r, "GET", "astro:hot:unarchived", NULL, NULL);
    fprintf(out, "hot tier: %lld mono + %lld multi entries in Redis; archiver report "
            "(astro:hot:unarchived): %s\n", mono->entries, multi->entries,
            rep != NULL && rep->type == REDIS_REPLY_STRING ? rep->str : "none (no archiver?)");
    freeReplyObject(rep);
    int64_t oldest = mono->oldest_unarchived_ms;
    if (multi->oldest_unarchived_ms > 0 && (oldest == 0 || multi->oldest_unarchived_ms < oldest))
        oldest = multi->oldest_unarchived_ms;
    if (oldest > 0)
        fprintf(out, "archive lag: %lld entries not archived yet, the oldest %.1f s old\n",
                unarchived, (double)(astro_now_us() / 1000 - oldest) / 1000.0);
    else
        fprintf(out, "archive lag: %lld entries not archived yet\n", unarchived);
}

static void
print_side(struct astro_redis *r, FILE *out)
{
    static const char *const side[] = {"astro:sessions", "astro:late", "astro:dead",
                                       "astro:predictions"};
    fputs("side streams:", out);
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(side); i++) {
        redisReply *rep = cmd(r, "XLEN", side[i], NULL, NULL);
        fprintf(out, " %s %lld%s", side[i], reply_int(rep) > 0 ? reply_int(rep) : 0,
                i + 1 < ASTRO_ARRAY_LEN(side) ? "," : "\n");
        freeReplyObject(rep);
    }
}

int
adm_platform_status(FILE *out, FILE *errout)
{
    struct astro_redis *r = adm_redis_connect("status", errout);
    if (r == NULL)
        return ADM_EXIT_FAIL;
    int parts = recorded_partitions(r, out);
    if (parts > 0)
        print_owners(r, parts, out);
    struct kind_sum *mono = calloc(1, sizeof(*mono)), *multi = calloc(1, sizeof(*multi));
    char key[64];
    for (int p = 0; mono != NULL && multi != NULL && p < parts; p++) {
        snprintf(key, sizeof(key), "astro:mono:{%d}", p);
        add_stream(r, key, mono);
        snprintf(key, sizeof(key), "astro:multi:{%d}", p);
        add_stream(r, key, multi);
    }
    if (mono != NULL && multi != NULL && parts > 0) {
        fputs("consumer groups (summed over partitions):\n", out);
        print_kind("mono", mono, out);
        print_kind("multi", multi, out);
        print_archive(r, mono, multi, out);
    }
    print_side(r, out);
    free(mono);
    free(multi);
    astro_redis_free(r);
    return ADM_EXIT_OK;
}

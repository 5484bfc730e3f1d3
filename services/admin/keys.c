/* `astro-admin keys create|list|revoke`: API keys in Redis (astro/apikey.h). The secret is
 * printed once, at creation, and never stored: Redis holds only its SHA-256. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "admin.h"
#include "astro/apikey.h"
#include "astro/event.h"
#include "astro/redis.h"

#define KEYS_USAGE                                                                              \
    "usage: astro-admin keys create --name NAME --scopes ingest,read,admin\n"                   \
    "       astro-admin keys list\n"                                                            \
    "       astro-admin keys revoke <name|fingerprint>\n"

struct key_row {
    char hex[ASTRO_APIKEY_HEX_LEN + 1];
    struct astro_apikey_info info;
};

/* Reads every key record (SCAN + HGETALL). Returns the number of rows (*rows malloc'ed) or -1. */
static int
load_keys(struct astro_redis *r, struct key_row **rows, char *err, size_t errlen)
{
    char cursor[32] = "0";
    int n = 0;
    *rows = NULL;
    do {
        const char *scan[] = {"SCAN", cursor, "MATCH", ASTRO_APIKEY_PREFIX "*", "COUNT", "1000"};
        redisReply *rep = astro_redis_command(r, 6, scan, NULL, err, errlen);
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            if (rep != NULL)
                astro_fail(err, errlen, "SCAN: unexpected reply");
            freeReplyObject(rep);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        redisReply *keys = rep->element[1];
        struct key_row *grown = realloc(*rows, (size_t)(n + (int)keys->elements + 1) *
                                                   sizeof(**rows));
        if (grown == NULL) {
            freeReplyObject(rep);
            return astro_fail(err, errlen, "out of memory");
        }
        *rows = grown;
        for (size_t i = 0; i < keys->elements; i++) {
            const char *k = keys->element[i]->str;
            const char *hget[] = {"HGETALL", k};
            redisReply *h = astro_redis_command(r, 2, hget, NULL, err, errlen);
            struct key_row *row = &(*rows)[n];
            if (h != NULL && astro_apikey_info_from_reply(h, &row->info, NULL, 0) == ASTRO_OK &&
                row->info.found) {
                snprintf(row->hex, sizeof(row->hex), "%s", k + strlen(ASTRO_APIKEY_PREFIX));
                n++;
            }
            freeReplyObject(h);
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    return n;
}

static struct astro_redis *
connect_redis(FILE *errout)
{
    char err[512];
    const char *url = getenv("ASTRO_REDIS_URL");
    if (url == NULL || url[0] == '\0') {
        fputs("astro-admin keys: ASTRO_REDIS_URL is not set "
              "(e.g. redis://127.0.0.1:6379/0)\n", errout);
        return NULL;
    }
    struct astro_redis_options o = {.client_name = "astro-admin", .max_attempts = 3,
                                    .backoff_initial_ms = 100};
    struct astro_redis *r = astro_redis_connect(url, &o, err, sizeof(err));
    if (r == NULL)
        fprintf(errout, "astro-admin keys: %s\n", err);
    return r;
}

static int
cmd_create(struct astro_redis *r, const char *name, const char *scopes, FILE *out,
           FILE *errout)
{
    char err[512], key[ASTRO_APIKEY_GEN_LEN + 1], hex[ASTRO_APIKEY_HEX_LEN + 1];
    char fp[ASTRO_APIKEY_FP_LEN + 1];
    unsigned mask;
    struct key_row *rows = NULL;
    if (astro_event_check_name("name", name, strlen(name), ASTRO_APIKEY_NAME_MAX, err,
                               sizeof(err)) != ASTRO_OK ||
        astro_apikey_scopes_parse(scopes, &mask, err, sizeof(err)) != ASTRO_OK) {
        fprintf(errout, "astro-admin keys create: %s\n", err);
        return ADM_EXIT_USAGE;
    }
    int n = load_keys(r, &rows, err, sizeof(err));
    for (int i = 0; i < n; i++)
        if (strcmp(rows[i].info.name, name) == 0 && !rows[i].info.revoked) {
            fprintf(errout, "astro-admin keys create: a key named %s exists\n", name);
            free(rows);
            return ADM_EXIT_FAIL;
        }
    free(rows);
    if (n < 0 || astro_apikey_generate(key) != ASTRO_OK ||
        astro_apikey_store(r, key, name, mask, false, err, sizeof(err)) != ASTRO_OK ||
        astro_apikey_hash(key, strlen(key), hex) != ASTRO_OK) {
        fprintf(errout, "astro-admin keys create: %s\n", err);
        return ADM_EXIT_FAIL;
    }
    astro_apikey_fingerprint(hex, fp);
    astro_apikey_scopes_format(mask, err, sizeof(err));
    fprintf(out, "created key %s (fingerprint %s, scopes %s)\n%s\n"
            "store it now: it is not shown again\n", name, fp, err, key);
    return ADM_EXIT_OK;
}

static int
cmd_list(struct astro_redis *r, FILE *out, FILE *errout)
{
    char err[512], sc[32], fp[ASTRO_APIKEY_FP_LEN + 1];
    struct key_row *rows = NULL;
    int n = load_keys(r, &rows, err, sizeof(err));
    if (n < 0) {
        fprintf(errout, "astro-admin keys list: %s\n", err);
        return ADM_EXIT_FAIL;
    }
    fprintf(out, "%-12s  %-24s  %-18s  %-10s  %s\n", "FINGERPRINT", "NAME", "SCOPES", "CREATED",
            "STATE");
    for (int i = 0; i < n; i++) {
        astro_apikey_fingerprint(rows[i].hex, fp);
        astro_apikey_scopes_format(rows[i].info.scopes, sc, sizeof(sc));
        fprintf(out, "%-12s  %-24s  %-18s  %-10lld  %s\n", fp, rows[i].info.name, sc,
                (long long)rows[i].info.created, rows[i].info.revoked ? "revoked" : "active");
    }
    free(rows);
    return ADM_EXIT_OK;
}

static int
cmd_revoke(struct astro_redis *r, const char *which, FILE *out, FILE *errout)
{
    char err[512], rkey[96], now[24];
    struct key_row *rows = NULL;
    int n = load_keys(r, &rows, err, sizeof(err)), hit = -1, hits = 0;
    size_t wl = strlen(which);
    for (int i = 0; i < n; i++) {
        bool by_fp = wl >= 8 && strncmp(rows[i].hex, which, wl) == 0;
        if ((strcmp(rows[i].info.name, which) == 0 || by_fp) && !rows[i].info.revoked) {
            hit = i;
            hits++;
        }
    }
    if (n < 0 || hits != 1) {
        fprintf(errout, "astro-admin keys revoke: %s\n",
                n < 0 ? err : hits == 0 ? "no active key with that name or fingerprint"
                                        : "ambiguous: more than one key matches");
        free(rows);
        return ADM_EXIT_FAIL;
    }
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    if (astro_apikey_redis_key(rkey, sizeof(rkey), rows[hit].hex) != ASTRO_OK) {
        free(rows);
        return ADM_EXIT_FAIL;
    }
    const char *argv[] = {"HSET", rkey, "revoked", now};
    redisReply *rep = astro_redis_command(r, 4, argv, NULL, err, sizeof(err));
    bool ok = rep != NULL && rep->type == REDIS_REPLY_INTEGER;
    freeReplyObject(rep);
    if (ok)
        fprintf(out, "revoked key %s (services stop accepting it within their cache TTL)\n",
                rows[hit].info.name);
    else
        fprintf(errout, "astro-admin keys revoke: %s\n", err);
    free(rows);
    return ok ? ADM_EXIT_OK : ADM_EXIT_FAIL;
}

int
adm_keys(int argc, char **argv, FILE *out, FILE *errout)
{
    const char *name = NULL, *scopes = NULL;
    bool create = argc >= 3 && strcmp(argv[2], "create") == 0;
    for (int i = 3; create && i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--name") == 0)
            name = argv[i + 1];
        else if (strcmp(argv[i], "--scopes") == 0)
            scopes = argv[i + 1];
    }
    bool ok = (create && argc == 7 && name != NULL && scopes != NULL) ||
              (argc == 3 && strcmp(argv[2], "list") == 0) ||
              (argc == 4 && strcmp(argv[2], "revoke") == 0);
    if (!ok) {
        fputs(KEYS_USAGE, errout);
        return ADM_EXIT_USAGE;
    }
    struct astro_redis *r = connect_redis(errout);
    if (r == NULL)
        return ADM_EXIT_FAIL;
    int rc = create ? cmd_create(r, name, scopes, out, errout)
             : argc == 3 ? cmd_list(r, out, errout) : cmd_revoke(r, argv[3], out, errout);
    astro_redis_free(r);
    return rc;
}

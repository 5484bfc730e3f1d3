/* `astro-admin replay-dead`: puts entries of astro:dead back on the stream they came from, once
 * the cause is fixed (a schema or rule change, PostgreSQL refusing a value). Only entries the
 * archiver recorded with their original fields can be replayed; the others are listed. The
 * replayed entry is a new entry of that stream: every consumer group of the stream sees it
 * again (the archiver inserts idempotently; astro-leaflet treats it as any late arrival). Each
 * entry is XADDed first and XDELed from astro:dead after, so a crash in between replays it
 * twice at worst, never loses it. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "admin.h"
#include "astro/config.h"
#include "astro/redis.h"

#define DEAD_STREAM "astro:dead"
#define REPLAY_MAX_FIELDS 64

struct replay_opts {
    bool dry_run;
    const char *stream; /* only entries from this stream, or NULL */
    int64_t limit;      /* 0 = all */
};

struct replay_count {
    long long replayed, skipped;
};

static const char *
entry_field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (strcmp(fields->element[i]->str, name) == 0)
            return fields->element[i + 1]->str;
    return NULL;
}

/* XADD stream * <the fields of the JSON object>; ASTRO_ERR with a reason. */
static int
xadd_original(struct astro_redis *r, const char *stream, const char *json, char *err,
              size_t errlen)
{
    const char *argv[3 + 2 * REPLAY_MAX_FIELDS] = {"XADD", stream, "*"};
    int argc = 3;
    cJSON *o = cJSON_Parse(json);
    if (!cJSON_IsObject(o) || o->child == NULL) {
        cJSON_Delete(o);
        return astro_fail(err, errlen, "fields is not a non-empty JSON object");
    }
    for (cJSON *m = o->child; m != NULL; m = m->next) {
        if (!cJSON_IsString(m) || argc + 2 > (int)ASTRO_ARRAY_LEN(argv)) {
            cJSON_Delete(o);
            return astro_fail(err, errlen, "field %s is not a string (or too many fields)",
                              m->string);
        }
        argv[argc++] = m->string;
        argv[argc++] = m->valuestring;
    }
    redisReply *rep = astro_redis_command(r, argc, argv, NULL, err, errlen);
    int rc = rep != NULL && rep->type == REDIS_REPLY_STRING ? ASTRO_OK : ASTRO_ERR;
    if (rep != NULL && rc != ASTRO_OK)
        astro_fail(err, errlen, "XADD %s: %s", stream, rep->str != NULL ? rep->str : "?");
    freeReplyObject(rep);
    cJSON_Delete(o);
    return rc;
}

static int
replay_one(struct astro_redis *r, const redisReply *entry, const struct replay_opts *o,
           struct replay_count *c, FILE *out)
{
    const char *id = entry->element[0]->str, *reason, *stream, *fields;
    const redisReply *f = entry->element[1];
    char err[512];
    stream = entry_field(f, "stream");
    fields = entry_field(f, "fields");
    reason = entry_field(f, "reason");
    if (stream == NULL || (o->stream != NULL && strcmp(stream, o->stream) != 0))
        return ASTRO_OK;
    if (fields == NULL || strncmp(stream, "astro:", 6) != 0) {
        fprintf(out, "skip    %s from %s: no original fields recorded (reason: %s)\n", id, stream,
                reason != NULL ? reason : "?");
        c->skipped++;
        return ASTRO_OK;
    }
    if (o->dry_run) {
        fprintf(out, "would replay %s -> %s (reason: %s)\n", id, stream, reason ? reason : "?");
        c->replayed++;
        return ASTRO_OK;
    }
    if (xadd_original(r, stream, fields, err, sizeof(err)) != ASTRO_OK) {
        fprintf(out, "skip    %s from %s: %s\n", id, stream, err);
        c->skipped++;
        return ASTRO_OK;
    }
    const char *del[] = {"XDEL", DEAD_STREAM, id};
    redisReply *rep = astro_redis_command(r, 3, del, NULL, err, sizeof(err));
    freeReplyObject(rep);
    fprintf(out, "replayed %s -> %s\n", id, stream);
    c->replayed++;
    return rep != NULL ? ASTRO_OK : ASTRO_ERR;
}

static int
replay_all(struct astro_redis *r, const struct replay_opts *o, struct replay_count *c, FILE *out,
           FILE *errout)
{
    char start[64] = "-", err[512];
    for (;;) {
        const char *argv[] = {"XRANGE", DEAD_STREAM, start, "+", "COUNT", "500"};
        redisReply *rep = astro_redis_command(r, 6, argv, NULL, err, sizeof(err));
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
            fprintf(errout, "astro-admin replay-dead: XRANGE: %s\n",
                    rep != NULL && rep->str != NULL ? rep->str : err);
            freeReplyObject(rep);
            return ASTRO_ERR;
        }
        size_t n = rep->elements;
        for (size_t i = 0; i < n; i++) {
            if (o->limit > 0 && c->replayed >= o->limit)
                n = 0;
            else if (replay_one(r, rep->element[i], o, c, out) != ASTRO_OK)
                fprintf(errout, "astro-admin replay-dead: XDEL failed; entry may replay twice\n");
            if (n > 0)
                snprintf(start, sizeof(start), "(%s", rep->element[i]->element[0]->str);
        }
        freeReplyObject(rep);
        if (n == 0)
            return ASTRO_OK;
    }
}

static int
parse_opts(int argc, char **argv, struct replay_opts *o, FILE *errout)
{
    *o = (struct replay_opts){0};
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0) {
            o->dry_run = true;
        } else if (strcmp(argv[i], "--stream") == 0 && i + 1 < argc) {
            o->stream = argv[++i];
        } else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            if (astro_cfg_parse_int(argv[++i], &o->limit, NULL, 0) != ASTRO_OK || o->limit < 1) {
                fprintf(errout, "astro-admin replay-dead: --limit: not a positive integer\n");
                return ASTRO_ERR;
            }
        } else {
            fprintf(errout, "astro-admin replay-dead: unknown or incomplete argument %s\n"
                    "usage: astro-admin replay-dead [--dry-run] [--stream KEY] [--limit N]\n",
                    argv[i]);
            return ASTRO_ERR;
        }
    }
    return ASTRO_OK;
}

int
adm_replay_dead(int argc, char **argv, FILE *out, FILE *errout)
{
    struct replay_opts o;
    struct replay_count c = {0};
    if (parse_opts(argc, argv, &o, errout) != ASTRO_OK)
        return ADM_EXIT_USAGE;
    struct astro_redis *r = adm_redis_connect("replay-dead", errout);
    if (r == NULL)
        return ADM_EXIT_FAIL;
    int rc = replay_all(r, &o, &c, out, errout);
    fprintf(out, "%s %lld, skipped %lld\n", o.dry_run ? "would replay" : "replayed", c.replayed,
            c.skipped);
    astro_redis_free(r);
    return rc == ASTRO_OK ? ADM_EXIT_OK : ADM_EXIT_FAIL;
}

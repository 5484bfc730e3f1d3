/* The side streams: low-volume records archived row by row, idempotently, in the batch's
 * transaction. Field layouts (all values are strings; ts is epoch µs):
 *   astro:sessions     kind=start|end, sid, user, ts, [dev (device_info JSON, start)],
 *                      [reason (end)]                       -> sessions (upsert by session_id)
 *   astro:predictions  id, user, ts, payload (JSON)        -> predictions (by prediction_id)
 *   astro:late         reason, [stream, entry] (where the event came from), [id, ts] plus the
 *                      event's other fields                 -> late_events (by stream, entry_id;
 *                      without stream/entry: astro:late and the late entry's own id)
 * Unknown fields are ignored; a missing required field, a repeated field, a value with a NUL
 * or invalid UTF-8, or a ts that is not an integer makes the entry undecodable (astro:dead). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "archiver.h"
#include "astro/time.h"
#include "astro/utf8.h"

struct layout {
    const char *names[ARC_SIDE_FIELDS];
    unsigned required; /* bit i: names[i] must be present */
    int ts;            /* index of the epoch-µs field, -1 none */
};

static const struct layout layouts[ARC_KINDS] = {
    [ARC_SESSION] = {{"kind", "sid", "user", "ts", "dev", "reason"}, 0xF, 3},
    [ARC_PREDICTION] = {{"id", "user", "ts", "payload"}, 0xF, 2},
    [ARC_LATE] = {{"reason", "stream", "entry", "id", "ts"}, 0x1, 4},
};

static int
check_ts(const char *s, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < ASTRO_TIME_MIN_US || v > ASTRO_TIME_MAX_US)
        return astro_fail(err, errlen, "stream field ts: not an epoch-µs integer in range");
    return ASTRO_OK;
}

/* Stores field value v under its layout slot, refusing repeats and non-text values. */
static int
take(const struct layout *l, const redisReply *k, const redisReply *v, struct arc_side *out,
     char *err, size_t errlen)
{
    for (int i = 0; i < ARC_SIDE_FIELDS && l->names[i] != NULL; i++) {
        if (strcmp(k->str, l->names[i]) != 0)
            continue;
        if (out->v[i] != NULL)
            return astro_fail(err, errlen, "stream entry: duplicate field \"%s\"", l->names[i]);
        if (strlen(v->str) != v->len || !astro_utf8_valid(v->str, v->len))
            return astro_fail(err, errlen, "stream field %s: not UTF-8 text", l->names[i]);
        out->v[i] = v->str;
    }
    return ASTRO_OK;
}

int
arc_side_decode(enum arc_kind kind, const redisReply *fields, struct arc_side *out, char *err,
                size_t errlen)
{
    const struct layout *l = &layouts[kind];
    memset(out, 0, sizeof(*out));
    if (fields->elements % 2 != 0)
        return astro_fail(err, errlen, "stream entry: odd number of field/value elements");
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            return astro_fail(err, errlen, "stream entry: element %zu is not a string", i);
        if (take(l, k, v, out, err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
    }
    for (int i = 0; i < ARC_SIDE_FIELDS && l->names[i] != NULL; i++)
        if ((l->required & (1u << i)) && (out->v[i] == NULL || out->v[i][0] == '\0'))
            return astro_fail(err, errlen, "stream entry: missing field \"%s\"", l->names[i]);
    if (l->ts >= 0 && out->v[l->ts] != NULL && check_ts(out->v[l->ts], err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if (kind == ARC_SESSION && strcmp(out->v[0], "start") != 0 && strcmp(out->v[0], "end") != 0)
        return astro_fail(err, errlen, "stream field kind: must be start or end");
    return ASTRO_OK;
}

#define TS_SQL(n) "timestamptz 'epoch' + $" #n "::bigint * interval '1 microsecond'"

static const char SESSION_START_SQL[] =
    "INSERT INTO sessions (session_id, user_id, device_info, started_at)"
    " VALUES ($1, $2, COALESCE($3::jsonb, '{}'::jsonb), " TS_SQL(4) ")"
    " ON CONFLICT (session_id) DO UPDATE SET user_id = excluded.user_id,"
    " device_info = excluded.device_info, started_at = excluded.started_at";
/* An end seen without its start still records the session (started_at = its end). */
static const char SESSION_END_SQL[] =
    "INSERT INTO sessions (session_id, user_id, started_at, ended_at, end_reason)"
    " VALUES ($1, $2, " TS_SQL(3) ", " TS_SQL(3) ", $4)"
    " ON CONFLICT (session_id) DO UPDATE SET ended_at = excluded.ended_at,"
    " end_reason = COALESCE(excluded.end_reason, sessions.end_reason)";
static const char PREDICTION_SQL[] =
    "INSERT INTO predictions (prediction_id, user_id, ts, payload)"
    " VALUES ($1, $2, " TS_SQL(3) ", $4::jsonb) ON CONFLICT (prediction_id) DO NOTHING";
static const char LATE_SQL[] =
    "INSERT INTO late_events (stream, entry_id, event_id, ts, reason, payload)"
    " VALUES ($1, $2, $3, " TS_SQL(4) ", $5, $6::jsonb) ON CONFLICT (stream, entry_id) DO NOTHING";

static int
exec_count(struct astro_pg *pg, const char *sql, int n, const char *const *params,
           uint64_t *rows, char *err, size_t errlen)
{
    PGresult *res = astro_pg_exec(pg, sql, n, params, err, errlen);
    if (res == NULL)
        return ASTRO_ERR;
    *rows += strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return ASTRO_OK;
}

int
arc_side_write(struct astro_pg *pg, const struct arc_row *row, enum arc_kind kind,
               uint64_t *rows, char *err, size_t errlen)
{
    const char *const *v = row->side.v;
    if (kind == ARC_SESSION && strcmp(v[0], "start") == 0) {
        const char *p[] = {v[1], v[2], v[4], v[3]};
        return exec_count(pg, SESSION_START_SQL, 4, p, rows, err, errlen);
    }
    if (kind == ARC_SESSION) {
        const char *p[] = {v[1], v[2], v[3], v[5]};
        return exec_count(pg, SESSION_END_SQL, 4, p, rows, err, errlen);
    }
    if (kind == ARC_PREDICTION) {
        const char *p[] = {v[0], v[1], v[2], v[3]};
        return exec_count(pg, PREDICTION_SQL, 4, p, rows, err, errlen);
    }
    char *payload = arc_fields_json(row->fields);
    if (payload == NULL)
        return astro_fail(err, errlen, "late payload: out of memory");
    const char *p[] = {v[1] ? v[1] : ARC_LATE_STREAM, v[2] ? v[2] : row->entry_id, v[3], v[4],
                       v[0], payload};
    int rc = exec_count(pg, LATE_SQL, 6, p, rows, err, errlen);
    cJSON_free(payload);
    return rc;
}

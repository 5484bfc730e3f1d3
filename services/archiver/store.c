/* PostgreSQL side of archiving: one transaction per (sub-)batch, written so that a redelivered
 * entry never becomes a second row nor a second count, at COPY speed:
 *   1. duplicates inside the batch are dropped in memory (same table, event id and time);
 *   2. direct path, for batches of first deliveries (no claimed entry): the rows are COPYed
 *      straight into the event tables. A COPY inserts all its rows or fails, so after it
 *      succeeds the rows inserted are exactly the rows sent. A row already archived (the same
 *      event XADDed twice, groups recreated after a Redis loss) fails it with a unique
 *      violation (23505): the transaction is rolled back and redone by the probe path;
 *   3. probe path, for batches with claimed entries (maybe committed by a dead consumer before
 *      its XACK): the batch's keys are COPYed into a temp table (ON COMMIT DELETE ROWS) and
 *      those already archived are deleted from it (DELETE ... USING the event table's primary
 *      key, RETURNING their row index): they are skipped, the rest is COPYed as in 2;
 *   4. the minute rollups of exactly the rows inserted are counted in C and upserted last, just
 *      before COMMIT (rollup.c), so parallel writers hold those row locks only briefly.
 * An archiver inserting the same event concurrently makes the probe path's COPY fail with a
 * unique violation (class 23): like any refused data the batch is split and retried, and the
 * retry skips it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archiver.h"
#include "astro/log.h"
#include "astro/time.h"

static const char STAGE_SQL[] =
    "CREATE TEMP TABLE IF NOT EXISTS arc_keys_mono (idx integer, event_id text,"
    " ts timestamptz) ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS arc_keys_multi (idx integer, event_id text,"
    " ts timestamptz) ON COMMIT DELETE ROWS";

static const char *const KEYS_COPY_SQL[2] = {
    "COPY arc_keys_mono FROM STDIN",
    "COPY arc_keys_multi FROM STDIN",
};

static const char *const ROWS_COPY_SQL[2] = {
    "COPY mono_events (event_id, ts, source_stream, key, event_type, value, metadata,"
    " stream_entry_id) FROM STDIN",
    "COPY multi_events (event_id, ts, source_stream, key, event_type, value, metadata,"
    " stream_entry_id, correlation_rule, integrated_value, confidence, source_events, lineage)"
    " FROM STDIN",
};

/* Index probes, one per key: the planner knows nothing of the temp table's size and would
 * otherwise hash the whole event table (enable_* are SET LOCAL in the transaction). */
static const char *const EXISTING_SQL[2] = {
    "DELETE FROM arc_keys_mono k USING mono_events m WHERE m.event_id = k.event_id"
    " AND m.ts = k.ts RETURNING k.idx",
    "DELETE FROM arc_keys_multi k USING multi_events m WHERE m.event_id = k.event_id"
    " AND m.ts = k.ts RETURNING k.idx",
};

/* Data errors (class 22 data exception, 23 integrity violation) are the row's fault: split
 * the batch. Anything else (connection, shutdown, deadlock, resources) is retried as a whole. */
static enum arc_store_result
classify(const struct astro_pg *pg, const char *err)
{
    if (PQstatus(pg->conn) != CONNECTION_OK)
        return ARC_STORE_RETRY;
    if (strncmp(err, "SQLSTATE 22", 11) == 0 || strncmp(err, "SQLSTATE 23", 11) == 0)
        return ARC_STORE_DATA;
    return ARC_STORE_RETRY;
}

static int
ensure_staging(struct arc_store *st, char *err, size_t errlen)
{
    if (astro_pg_ensure(st->pg, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if (st->staged && st->staged_gen == st->pg->reconnects)
        return ASTRO_OK;
    /* XACK follows COMMIT: the commit must be durable when COMMIT returns, whatever the
     * server's default (docs/archiver.md "Durability"). */
    if (astro_pg_exec_ok(st->pg, "SET client_min_messages = warning; SET synchronous_commit = on",
                         err, errlen) != ASTRO_OK ||
        astro_pg_exec_ok(st->pg, STAGE_SQL, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    st->staged = true;
    st->staged_gen = st->pg->reconnects;
    return ASTRO_OK;
}

/* One COPY of the rows of a kind (keys or full rows) not skipped; *n gets how many. */
static int
copy_rows(struct arc_store *st, const struct arc_row *rows, size_t lo, size_t hi,
          enum arc_kind kind, const struct arc_stream *streams, const bool *skip, bool keys,
          long *n, char *err, size_t errlen)
{
    struct astro_pg_copybuf buf;
    astro_pg_copybuf_init(&buf);
    *n = arc_rows_copy(rows, lo, hi, kind, streams, skip, keys, &buf);
    int rc = ASTRO_ERR;
    if (*n < 0) {
        astro_fail(err, errlen, "building COPY rows: out of memory or bad timestamp");
        goto done;
    }
    if (*n == 0) {
        rc = ASTRO_OK;
        goto done;
    }
    const char *sql = keys ? KEYS_COPY_SQL[kind] : ROWS_COPY_SQL[kind];
    if (astro_pg_copy_begin(st->pg, sql, err, errlen) != ASTRO_OK)
        goto done;
    if (astro_pg_copy_put(st->pg, &buf, err, errlen) != ASTRO_OK) {
        uint64_t ignored;
        char e2[64];
        if (astro_pg_copy_end(st->pg, "archiver: send failed", &ignored, e2, sizeof(e2)) !=
            ASTRO_OK) {
            /* the send error in err is the one worth reporting */
        }
        goto done;
    }
    rc = astro_pg_copy_end(st->pg, NULL, NULL, err, errlen);
done:
    astro_pg_copybuf_cleanup(&buf);
    return rc;
}

/* Deletes the keys already archived and marks their rows skipped. */
static int
skip_existing(struct arc_store *st, enum arc_kind kind, size_t lo, size_t hi, bool *skip,
              char *err, size_t errlen)
{
    PGresult *res = astro_pg_exec(st->pg, EXISTING_SQL[kind], 0, NULL, err, errlen);
    if (res == NULL)
        return ASTRO_ERR;
    for (int i = 0; i < PQntuples(res); i++) {
        size_t idx = strtoull(PQgetvalue(res, i, 0), NULL, 10);
        if (idx >= lo && idx < hi)
            skip[idx - lo] = true;
    }
    PQclear(res);
    return ASTRO_OK;
}

/* The probe path for one kind: keys COPYed, archived ones skipped, the rest COPYed. */
static int
write_probed(struct arc_store *st, const struct arc_row *rows, size_t lo, size_t hi,
             enum arc_kind kind, const struct arc_stream *streams, bool *skip, long *inserted,
             char *err, size_t errlen)
{
    long keys;
    *inserted = 0;
    if (copy_rows(st, rows, lo, hi, kind, streams, skip, true, &keys, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if (keys == 0)
        return ASTRO_OK;
    if (skip_existing(st, kind, lo, hi, skip, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    return copy_rows(st, rows, lo, hi, kind, streams, skip, false, inserted, err, errlen);
}

static int
write_rollups(struct arc_store *st, const struct arc_row *rows, size_t lo, size_t hi,
              const struct arc_stream *streams, const bool *skip, char *err, size_t errlen)
{
    struct arc_rollup *g;
    size_t n;
    if (arc_rollups_count(rows, lo, hi, streams, skip, &g, &n) != ASTRO_OK)
        return astro_fail(err, errlen, "rollups: out of memory");
    int rc = arc_rollups_write(st->pg, g, n, err, errlen);
    free(g);
    return rc;
}

/* One transaction: events (direct or probed), side rows, rollups, COMMIT. */
static int
write_txn(struct arc_store *st, const struct arc_row *rows, size_t lo, size_t hi,
          const struct arc_stream *streams, bool *skip, bool probe, struct arc_store_counts *c,
          char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = lo; i < hi; i++)
        c->offered[streams[rows[i].stream].kind]++;
    /* Probes: the planner knows nothing of the temp table's size and would otherwise hash
     * the whole event table. */
    if (astro_pg_exec_ok(st->pg,
                         probe ? "BEGIN; SET LOCAL enable_hashjoin = off;"
                                 " SET LOCAL enable_mergejoin = off"
                               : "BEGIN",
                         err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    for (int k = ARC_MONO; k <= ARC_MULTI; k++) {
        long n;
        int rc = probe ? write_probed(st, rows, lo, hi, (enum arc_kind)k, streams, skip, &n, err,
                                      errlen)
                       : copy_rows(st, rows, lo, hi, (enum arc_kind)k, streams, skip, false, &n,
                                   err, errlen);
        if (rc != ASTRO_OK)
            return ASTRO_ERR;
        c->inserted[k] = (uint64_t)n;
    }
    for (size_t i = lo; i < hi; i++) {
        enum arc_kind k = streams[rows[i].stream].kind;
        int rc = k == ARC_CANDLE ? arc_candle_write(st->pg, rows[i].candle, c, err, errlen)
                 : k > ARC_MULTI ? arc_side_write(st->pg, &rows[i], k, &c->inserted[k], err,
                                                  errlen)
                                 : ASTRO_OK;
        if (rc != ASTRO_OK)
            return ASTRO_ERR;
    }
    if (write_rollups(st, rows, lo, hi, streams, skip, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    return astro_pg_exec_ok(st->pg, "COMMIT", err, errlen);
}

static void
rollback(struct arc_store *st)
{
    if (PQstatus(st->pg->conn) == CONNECTION_OK) {
        char e2[128];
        if (astro_pg_exec_ok(st->pg, "ROLLBACK", e2, sizeof(e2)) != ASTRO_OK) {
            /* the connection's state is checked again before the next write */
        }
    }
}

static bool
any_redelivered(const struct arc_row *rows, size_t lo, size_t hi)
{
    for (size_t i = lo; i < hi; i++)
        if (rows[i].redelivered)
            return true;
    return false;
}

enum arc_store_result
arc_store_write(struct arc_store *st, const struct arc_row *rows, size_t lo, size_t hi,
                const struct arc_stream *streams, struct arc_store_counts *counts, char *err,
                size_t errlen)
{
    memset(counts, 0, sizeof(*counts));
    if (ensure_staging(st, err, errlen) != ASTRO_OK)
        return ARC_STORE_RETRY;
    bool *skip = calloc(hi - lo, sizeof(*skip));
    if (skip == NULL) {
        astro_fail(err, errlen, "out of memory");
        return ARC_STORE_RETRY;
    }
    if (arc_rows_mark_dups(rows, lo, hi, streams, skip) < 0) {
        free(skip);
        astro_fail(err, errlen, "duplicate check: out of memory");
        return ARC_STORE_RETRY;
    }
    int64_t t0 = astro_now_us();
    bool probe = any_redelivered(rows, lo, hi);
    int rc = write_txn(st, rows, lo, hi, streams, skip, probe, counts, err, errlen);
    if (rc != ASTRO_OK && !probe && strncmp(err, "SQLSTATE 23505", 14) == 0 &&
        PQstatus(st->pg->conn) == CONNECTION_OK) {
        astro_log_debug("direct COPY met an archived row (%s): probing the batch's keys", err);
        rollback(st);
        rc = write_txn(st, rows, lo, hi, streams, skip, true, counts, err, errlen);
    }
    free(skip);
    if (rc == ASTRO_OK) {
        astro_log_debug("txn: %zu rows in %lld us (%s)", hi - lo,
                        (long long)(astro_now_us() - t0), probe ? "probed" : "direct");
        return ARC_STORE_OK;
    }
    enum arc_store_result r = classify(st->pg, err);
    rollback(st);
    memset(counts, 0, sizeof(*counts));
    return r;
}

int
arc_store_dead(struct astro_pg *pg, const char *stream, const char *entry_id, const char *reason,
               int64_t attempts, const char *payload_json, char *err, size_t errlen)
{
    char att[24];
    snprintf(att, sizeof(att), "%" PRId64, attempts);
    const char *params[] = {stream, entry_id, reason, att, payload_json};
    PGresult *res = astro_pg_exec(
        pg,
        "INSERT INTO dead_events (stream, entry_id, reason, attempts, payload)"
        " VALUES ($1, $2, $3, $4::integer, $5::jsonb) ON CONFLICT (stream, entry_id) DO NOTHING",
        5, params, err, errlen);
    if (res == NULL)
        return ASTRO_ERR;
    PQclear(res);
    return ASTRO_OK;
}

static int
call_count(struct astro_pg *pg, const char *sql, const char *a, const char *b, long *out,
           char *err, size_t errlen)
{
    const char *params[] = {a, b};
    PGresult *res = astro_pg_exec(pg, sql, 2, params, err, errlen);
    if (res == NULL)
        return ASTRO_ERR;
    *out += strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return ASTRO_OK;
}

int
arc_store_partitions(struct astro_pg *pg, int64_t ahead_days, int64_t keep_days, long *created,
                     long *dropped, char *err, size_t errlen)
{
    static const char *const tables[] = {"mono_events", "multi_events"};
    char days[24], keep[24];
    /* Yesterday too: events of the last minutes of a day arrive after midnight. */
    snprintf(days, sizeof(days), "%" PRId64, ahead_days + 2);
    snprintf(keep, sizeof(keep), "%" PRId64, keep_days);
    *created = *dropped = 0;
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(tables); i++) {
        if (call_count(pg,
                       "SELECT astro_ensure_day_partitions($1::regclass,"
                       " (now() AT TIME ZONE 'UTC')::date - 1, $2::integer)",
                       tables[i], days, created, err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
        if (keep_days > 0 &&
            call_count(pg, "SELECT astro_drop_day_partitions($1::regclass, $2::integer)",
                       tables[i], keep, dropped, err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
    }
    return ASTRO_OK;
}

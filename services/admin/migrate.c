/* `astro-admin migrate`: applies pending migrations under an advisory lock.
 *
 * Each migration runs in its own transaction together with its schema_migrations row, so a
 * failing migration leaves no trace and the next run retries it. Migrations already applied
 * are checked against their recorded SHA-256: an edited, already-released migration is refused
 * rather than silently skipped, because databases would then differ by deployment history. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "astro/backoff.h"
#include "astro/pg.h"

static const char create_table_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL,"
    " checksum text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

/* Takes the session-level migration lock, saying so when another run holds it. */
static int
take_lock(struct astro_pg *pg, FILE *out, char *err, size_t errlen)
{
    PGresult *res = astro_pg_exec(pg, "SELECT pg_try_advisory_lock(" ADM_MIGRATION_LOCK_KEY ")",
                                  0, NULL, err, errlen);
    if (res == NULL)
        return ASTRO_ERR;
    bool got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (got)
        return ASTRO_OK;
    fputs("waiting for the migration lock (another astro-admin migrate is running)\n", out);
    fflush(out);
    return astro_pg_exec_ok(pg, "SELECT pg_advisory_lock(" ADM_MIGRATION_LOCK_KEY ")", err,
                            errlen);
}

static const struct adm_migration *
find(const struct adm_migration *list, size_t n, int version)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].version == version)
            return &list[i];
    return NULL;
}

/* Checks every applied row against the embedded list; returns the highest applied version. */
static int
verify_applied(PGresult *res, const struct adm_migration *list, size_t n, int *top, char *err,
               size_t errlen)
{
    *top = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        int version = atoi(PQgetvalue(res, r, 0));
        const char *name = PQgetvalue(res, r, 1);
        const char *sum = PQgetvalue(res, r, 2);
        const struct adm_migration *m = find(list, n, version);
        if (m == NULL)
            return astro_fail(err, errlen, "the database has migration %d (%s), which this "
                              "astro-admin does not know: the schema is newer than this binary; "
                              "use a newer astro-admin", version, name);
        if (strcmp(m->checksum, sum) != 0)
            return astro_fail(err, errlen, "migration %s was changed after it was applied "
                              "(recorded checksum %.12s..., this binary has %.12s...): released "
                              "migrations must not be edited; add a new migration instead",
                              m->name, sum, m->checksum);
        if (version > *top)
            *top = version;
    }
    return ASTRO_OK;
}

static int
apply_one(struct astro_pg *pg, const struct adm_migration *m, char *err, size_t errlen)
{
    char version[16], msg[1024];
    snprintf(version, sizeof(version), "%d", m->version);
    const char *params[] = { version, m->name, m->checksum };
    if (astro_pg_exec_ok(pg, "BEGIN", msg, sizeof(msg)) != ASTRO_OK)
        goto fail;
    if (astro_pg_exec_ok(pg, m->sql, msg, sizeof(msg)) != ASTRO_OK)
        goto fail;
    PGresult *res = astro_pg_exec(pg, "INSERT INTO schema_migrations (version, name, checksum) "
                                  "VALUES ($1::integer, $2, $3)", 3, params, msg, sizeof(msg));
    if (res == NULL)
        goto fail;
    PQclear(res);
    if (astro_pg_exec_ok(pg, "COMMIT", msg, sizeof(msg)) != ASTRO_OK)
        goto fail;
    return ASTRO_OK;
fail:
    PQclear(PQexec(pg->conn, "ROLLBACK"));
    return astro_fail(err, errlen, "migration %s failed and was rolled back (the schema is "
                      "unchanged by it): %s", m->name, msg);
}

/* Applies list entries above `top` in order; stops at the first failure. */
static int
apply_pending(struct astro_pg *pg, const struct adm_migration *list, size_t n, int top,
              FILE *out, char *err, size_t errlen)
{
    int applied = 0;
    for (size_t i = 0; i < n; i++) {
        if (list[i].version <= top)
            continue;
        uint64_t t0 = astro_backoff_now_ms();
        if (apply_one(pg, &list[i], err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
        fprintf(out, "applied %s (%" PRIu64 " ms)\n", list[i].name, astro_backoff_now_ms() - t0);
        fflush(out);
        top = list[i].version;
        applied++;
    }
    if (applied == 0)
        fprintf(out, "schema is up to date (version %d)\n", top);
    else
        fprintf(out, "schema is now at version %d (%d migration%s applied)\n", top, applied,
                applied == 1 ? "" : "s");
    return ASTRO_OK;
}

int
adm_migrate(const char *url, const struct adm_migration *list, size_t n, FILE *out,
            FILE *errout)
{
    char err[1536];
    int top = 0;
    PGresult *res = NULL;
    struct astro_pg *pg = adm_connect(url, errout);
    if (pg == NULL)
        return ADM_EXIT_FAIL;
    if (take_lock(pg, out, err, sizeof(err)) != ASTRO_OK)
        goto fail;
    if (astro_pg_exec_ok(pg, create_table_sql, err, sizeof(err)) != ASTRO_OK)
        goto fail;
    res = astro_pg_exec(pg, "SELECT version, name, checksum FROM schema_migrations "
                        "ORDER BY version", 0, NULL, err, sizeof(err));
    if (res == NULL)
        goto fail;
    if (verify_applied(res, list, n, &top, err, sizeof(err)) != ASTRO_OK)
        goto fail;
    if (apply_pending(pg, list, n, top, out, err, sizeof(err)) != ASTRO_OK)
        goto fail;
    PQclear(res);
    astro_pg_free(pg); /* closing the session releases the advisory lock */
    return ADM_EXIT_OK;
fail:
    fprintf(errout, "astro-admin migrate: %s\n", err);
    PQclear(res);
    astro_pg_free(pg);
    return ADM_EXIT_FAIL;
}

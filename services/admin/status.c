/* `astro-admin status`: which migrations are applied, which are pending. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "astro/pg.h"

static bool
is_applied(PGresult *res, int version)
{
    for (int r = 0; r < PQntuples(res); r++)
        if (atoi(PQgetvalue(res, r, 0)) == version)
            return true;
    return false;
}

int
adm_status(const char *url, const struct adm_migration *list, size_t n, FILE *out,
           FILE *errout)
{
    char err[1024];
    PGresult *res = NULL;
    struct astro_pg *pg = adm_connect(url, errout);
    if (pg == NULL)
        return ADM_EXIT_FAIL;
    /* to_regclass: report an empty database instead of failing on the missing table. */
    res = astro_pg_exec(pg, "SELECT version, name, checksum, "
                        "to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                        "FROM schema_migrations WHERE to_regclass('schema_migrations') IS NOT NULL "
                        "ORDER BY version", 0, NULL, err, sizeof(err));
    if (res == NULL && strstr(err, "42P01") != NULL) {
        fputs("no migrations applied (schema_migrations does not exist)\n", out);
        res = astro_pg_exec(pg, "SELECT 1 WHERE false", 0, NULL, err, sizeof(err));
    }
    if (res == NULL)
        goto fail;
    for (int r = 0; r < PQntuples(res); r++)
        fprintf(out, "applied  %s  %s  sha256:%.12s\n", PQgetvalue(res, r, 1),
                PQgetvalue(res, r, 3), PQgetvalue(res, r, 2));
    for (size_t i = 0; i < n; i++)
        if (!is_applied(res, list[i].version))
            fprintf(out, "pending  %s\n", list[i].name);
    PQclear(res);
    astro_pg_free(pg);
    return ADM_EXIT_OK;
fail:
    fprintf(errout, "astro-admin status: %s\n", err);
    astro_pg_free(pg);
    return ADM_EXIT_FAIL;
}

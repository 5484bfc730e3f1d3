/* PostgreSQL connection, reconnect with backoff, and exec helpers that report SQLSTATE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "astro/log.h"
#include "astro/pg.h"

/* The libpq message ends with a newline; keep log lines and errors on one line. */
static void
chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

int
astro_pg_result_error(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
    if (err == NULL || errlen == 0)
        return ASTRO_ERR;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
    if (msg == NULL)
        msg = conn ? PQerrorMessage(conn) : "no connection";
    snprintf(err, errlen, "SQLSTATE %s: %s%s%s%s%s%s", state ? state : "(none)", msg,
             detail ? " (" : "", detail ? detail : "", detail ? ")" : "", hint ? " hint: " : "",
             hint ? hint : "");
    chomp(err);
    return ASTRO_ERR;
}

/* Server notices (e.g. "relation already exists, skipping") are routine: debug level, one line,
 * instead of libpq's default of printing them raw on stderr. */
static void
on_notice(void *arg, const char *message)
{
    (void)arg;
    astro_log_debug("postgres notice: %.*s", (int)strcspn(message, "\n"), message);
}

struct astro_pg *
astro_pg_connect(const char *conninfo, const struct astro_pg_options *opt, char *err,
                 size_t errlen)
{
    struct astro_pg *pg = calloc(1, sizeof(*pg));
    if (pg == NULL) {
        astro_fail(err, errlen, "postgres: out of memory");
        return NULL;
    }
    if (opt != NULL)
        pg->opt = *opt;
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%u", pg->opt.connect_timeout_s ? pg->opt.connect_timeout_s : 5);
    /* Our defaults come first so that values written in the URL itself override them. */
    const char *keys[] = { "connect_timeout", "application_name", "dbname", NULL };
    const char *vals[] = { timeout, pg->opt.application_name ? pg->opt.application_name
                                                             : "astrocyte",
                           conninfo ? conninfo : "", NULL };
    pg->opt.application_name = NULL; /* never keep the caller's pointer */
    astro_backoff_init(&pg->backoff, pg->opt.backoff_initial_ms, pg->opt.backoff_max_ms, 0.2);
    pg->conn = PQconnectdbParams(keys, vals, 1);
    if (pg->conn == NULL) {
        astro_fail(err, errlen, "postgres: out of memory");
        goto fail;
    }
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        astro_fail(err, errlen, "postgres: connect: %s", PQerrorMessage(pg->conn));
        if (err != NULL)
            chomp(err);
        goto fail;
    }
    PQsetNoticeProcessor(pg->conn, on_notice, NULL);
    return pg;
fail:
    astro_pg_free(pg);
    return NULL;
}

int
astro_pg_ensure(struct astro_pg *pg, char *err, size_t errlen)
{
    if (PQstatus(pg->conn) == CONNECTION_OK)
        return ASTRO_OK;
    uint64_t start = astro_backoff_now_ms();
    astro_backoff_reset(&pg->backoff);
    for (uint32_t attempt = 1;; attempt++) {
        PQreset(pg->conn);
        if (PQstatus(pg->conn) == CONNECTION_OK) {
            pg->reconnects++;
            astro_log_info("postgres: reconnected after %u attempt(s)", attempt);
            return ASTRO_OK;
        }
        astro_fail(err, errlen, "postgres: reconnect: %s", PQerrorMessage(pg->conn));
        if (err != NULL)
            chomp(err);
        uint32_t delay = astro_backoff_next(&pg->backoff);
        uint64_t now = astro_backoff_now_ms();
        bool out_of_attempts = pg->opt.max_attempts ? attempt >= pg->opt.max_attempts
                                                    : pg->opt.deadline_ms == 0;
        bool out_of_time = pg->opt.deadline_ms && now + delay - start > pg->opt.deadline_ms;
        if (out_of_attempts || out_of_time)
            return ASTRO_ERR;
        astro_log_warn("postgres: reconnect attempt %u failed, retrying in %u ms", attempt,
                       delay);
        astro_backoff_sleep_ms(delay);
    }
}

PGresult *
astro_pg_exec(struct astro_pg *pg, const char *sql, int nparams, const char *const *params,
              char *err, size_t errlen)
{
    if (astro_pg_ensure(pg, err, errlen) != ASTRO_OK)
        return NULL;
    PGresult *res = nparams == 0 ? PQexec(pg->conn, sql)
                                 : PQexecParams(pg->conn, sql, nparams, NULL, params, NULL,
                                                NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (res != NULL && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK))
        return res;
    astro_pg_result_error(pg->conn, res, err, errlen);
    PQclear(res);
    return NULL;
}

int
astro_pg_exec_ok(struct astro_pg *pg, const char *sql, char *err, size_t errlen)
{
    PGresult *res = astro_pg_exec(pg, sql, 0, NULL, err, errlen);
    if (res == NULL)
        return ASTRO_ERR;
    PQclear(res);
    return ASTRO_OK;
}

void
astro_pg_free(struct astro_pg *pg)
{
    if (pg == NULL)
        return;
    PQfinish(pg->conn);
    free(pg);
}

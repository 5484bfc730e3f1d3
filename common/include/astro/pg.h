/* PostgreSQL: connection with reconnect-and-backoff, exec helpers that report SQLSTATE, and a
 * COPY FROM STDIN (text format) writer with a row builder that escapes fields correctly. */
#ifndef ASTRO_PG_H
#define ASTRO_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "astro/backoff.h"
#include "astro/common.h"

struct astro_pg_options {
    const char *application_name; /* shown in pg_stat_activity; NULL means "astrocyte" */
    uint32_t connect_timeout_s;   /* 0 means 5; a connect_timeout in the URL wins */
    /* astro_pg_ensure() bounds: attempts and total time (0 = no bound; both 0 = one try). */
    uint32_t max_attempts;
    uint32_t deadline_ms;
    uint32_t backoff_initial_ms; /* 0 means 100 */
    uint32_t backoff_max_ms;     /* 0 means 30000 */
};

struct astro_pg {
    PGconn *conn;
    struct astro_pg_options opt;
    struct astro_backoff backoff;
    uint64_t reconnects; /* successful resets since creation */
};

/* Connects once to conninfo (a postgresql:// URL or "key=value" string, e.g. the value of
 * ASTRO_DATABASE_URL). Returns a new connection (free with astro_pg_free()) or NULL with the
 * reason in err (password never included). opt may be NULL; it is copied. */
struct astro_pg *astro_pg_connect(const char *conninfo, const struct astro_pg_options *opt,
                                  char *err, size_t errlen) ASTRO_MUST_CHECK;

/* Makes sure the connection is usable: when PQstatus is bad it is reset (PQreset, same
 * parameters) with backoff within the options' bounds. Any open transaction was lost with the
 * old connection; callers must redo it. Returns ASTRO_OK or ASTRO_ERR with the reason. */
int astro_pg_ensure(struct astro_pg *pg, char *err, size_t errlen) ASTRO_MUST_CHECK;

/* Runs sql (several statements allowed when nparams is 0) after astro_pg_ensure(). Returns
 * the result on PGRES_COMMAND_OK / PGRES_TUPLES_OK (caller frees with PQclear()), else NULL
 * with "SQLSTATE xxxxx: message" (plus detail/hint when present) in err. params are text
 * values, NULL for SQL NULL; they are borrowed. A statement that fails because the connection
 * dropped is not retried (it may have committed before the drop); the next call reconnects. */
PGresult *astro_pg_exec(struct astro_pg *pg, const char *sql, int nparams,
                        const char *const *params, char *err, size_t errlen) ASTRO_MUST_CHECK;

/* astro_pg_exec() for statements whose result is not needed. */
int astro_pg_exec_ok(struct astro_pg *pg, const char *sql, char *err, size_t errlen)
    ASTRO_MUST_CHECK;

/* Formats a failed result as "SQLSTATE xxxxx: message[ (detail)][ hint: ...]" into err and
 * returns ASTRO_ERR; res may be NULL (then the connection's message is used). */
int astro_pg_result_error(PGconn *conn, const PGresult *res, char *err, size_t errlen);

/* Closes and frees pg; NULL is a no-op. */
void astro_pg_free(struct astro_pg *pg);

/* ---- COPY FROM STDIN, text format ---------------------------------------------------- */

/* A growable buffer of complete COPY rows. Caller's storage: astro_pg_copybuf_init() before
 * use, astro_pg_copybuf_cleanup() after. */
struct astro_pg_copybuf {
    char *data;
    size_t len;
    size_t cap;
    size_t rows;      /* completed rows in data */
    size_t row_start; /* offset of the row being built */
    int fields;       /* fields in the row being built */
    bool failed;      /* an allocation or a NUL byte spoiled the buffer */
};

void astro_pg_copybuf_init(struct astro_pg_copybuf *b);
void astro_pg_copybuf_cleanup(struct astro_pg_copybuf *b);
/* Empties the buffer for reuse, keeping its memory. */
void astro_pg_copybuf_reset(struct astro_pg_copybuf *b);

/* Appends one field of n bytes: backslash, tab, newline and carriage return are escaped so
 * the value arrives byte for byte; s == NULL writes SQL NULL (\N). A NUL byte cannot be
 * represented in a text column: it fails (ASTRO_ERR) and marks the buffer failed. */
int astro_pg_copybuf_field(struct astro_pg_copybuf *b, const char *s, size_t n)
    ASTRO_MUST_CHECK;
/* As above for a NUL-terminated string (NULL = SQL NULL). */
int astro_pg_copybuf_str(struct astro_pg_copybuf *b, const char *s) ASTRO_MUST_CHECK;
/* Terminates the current row. */
int astro_pg_copybuf_end_row(struct astro_pg_copybuf *b) ASTRO_MUST_CHECK;

/* Starts "COPY t (cols) FROM STDIN" (text format). ASTRO_OK when the server is ready for data. */
int astro_pg_copy_begin(struct astro_pg *pg, const char *copy_sql, char *err, size_t errlen)
    ASTRO_MUST_CHECK;
/* Sends the buffer's complete rows and empties it. A half-built row is refused. */
int astro_pg_copy_put(struct astro_pg *pg, struct astro_pg_copybuf *b, char *err, size_t errlen)
    ASTRO_MUST_CHECK;
/* Ends the COPY (or aborts it with errmsg when abort_reason is not NULL) and reads the command
 * result. Returns ASTRO_OK with the row count in *rows (may be NULL), or ASTRO_ERR with the
 * SQLSTATE and message (e.g. a constraint violation in the data). */
int astro_pg_copy_end(struct astro_pg *pg, const char *abort_reason, uint64_t *rows, char *err,
                      size_t errlen) ASTRO_MUST_CHECK;

#endif

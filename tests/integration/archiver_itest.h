/* Shared fixture of the astro-archiver integration tests: private redis-server + postgres
 * (migrated with astro-admin), a producer that XADDs real stream-encoded events, the daemon as
 * a child process, and SQL/Redis probes. Everything is started inside the test (Check's forked
 * child) and torn down by arc_env_stop(). */
#ifndef ARC_ITEST_H
#define ARC_ITEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#define ARC_IT_P 4
#define ARC_IT_MAX_CHILDREN 4

struct arc_env {
    struct harness_server *redis, *pg;
    char db_url[256];
    redisContext *rc;
    PGconn *db;
    pid_t children[ARC_IT_MAX_CHILDREN];
};

/* Starts both servers, migrates the schema, connects the probes. */
void arc_env_start(struct arc_env *e);
/* Kills children still running, disconnects, stops the servers. */
void arc_env_stop(struct arc_env *e);

/* Starts astro-archiver with the base settings plus extra "NAME=value" strings (NULL-ended).
 * Returns its pid (also remembered for teardown). */
pid_t arc_start(struct arc_env *e, const char *const *extra);
/* SIGTERM and wait (bounded); returns the exit status (WEXITSTATUS) or -1 if it had to be
 * killed or died of a signal. */
int arc_stop(struct arc_env *e, pid_t pid);
/* Waits up to ms for pid to exit on its own; returns the exit status or -1. */
int arc_wait_exit(struct arc_env *e, pid_t pid, int ms);

/* XADDs n mono events (ids "<tag>-<i>") spread over the partitions; returns them in the order
 * written. ts_us is the base event time. */
void arc_produce_mono(struct arc_env *e, const char *tag, int from, int n, int64_t ts_us);
/* XADDs n multi events (ids "<tag>-<i>") to the multi streams. */
void arc_produce_multi(struct arc_env *e, const char *tag, int n, int64_t ts_us);
/* XADD of raw field/value words to a key; returns the entry id (static buffer). */
const char *arc_xadd_raw(struct arc_env *e, const char *key, int nwords, const char **words);

/* The value of a one-row, one-column query as an integer. */
long long arc_sql_int(struct arc_env *e, const char *sql);
/* Polls sql until it yields want or ms passes; returns the last value. */
long long arc_wait_sql(struct arc_env *e, const char *sql, long long want, int ms);
/* A Redis command whose reply is an integer (e.g. XLEN). */
long long arc_redis_int(struct arc_env *e, const char *fmt, ...);
/* Entries pending in the archiver group over every archived stream. */
long long arc_pending(struct arc_env *e);

/* Sum of event_rollups counts of kind equals count(*) of its table, for each group key. */
void arc_check_rollups(struct arc_env *e);

void arc_sleep_ms(int ms);

/* A loopback TCP port that was free a moment ago. */
int arc_free_port(void);
/* GET path on 127.0.0.1:port (retried until the server answers, up to 5 s); returns the status
 * and copies the body into body. */
int arc_http_get(int port, const char *path, char *body, size_t size);

#endif

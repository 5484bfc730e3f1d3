/* Test harness: private redis-server and PostgreSQL instances for integration tests.
 *
 * Each server runs on a free loopback port (found by binding port 0; a collision at start is
 * retried on a new port) with its data, sockets and log in a private temp dir. Servers are
 * always torn down: explicitly (harness_server_free), at exit (atexit), on SIGTERM, SIGINT and
 * SIGABRT in the test process (handler kills the servers and removes their dirs, then re-raises),
 * and, if the test process is SIGKILLed, by PR_SET_PDEATHSIG in each server child; the temp
 * dirs such a process leaves (named astro-<kind>-<pid>-XXXXXX) are removed by the next
 * harness start (harness_sweep_stale).
 *
 * Check fork mode: only the process that started a server tears it down (a forked test child
 * exiting does not kill a server its parent started). So either start servers in an unchecked
 * fixture (started once per TCase in the runner process; tests use them but must not stop or
 * restart them), or start them inside the test function / a checked fixture (they belong to
 * the forked child; this is what tests that stop and restart servers do). Logs: a failed
 * start prints the server log; a test process that exits with a server still running prints
 * it at exit; and a test process that died without teardown (Check's fork mode leaves a failed
 * test with _exit, so neither teardown nor atexit runs; its servers die by PDEATHSIG) has its
 * server log printed by the next sweep: the next harness start or the test program's exit.
 *
 * Running as root, PostgreSQL (initdb and postgres) runs as the `postgres` user. Binaries:
 * redis-server from PATH (override: HARNESS_REDIS_SERVER), PostgreSQL from
 * /usr/lib/postgresql/15/bin (override: HARNESS_PG_BINDIR). Not thread-safe. */
#ifndef HARNESS_SERVERS_H
#define HARNESS_SERVERS_H

#include <stdio.h>
#include <sys/types.h>

struct harness_server;

/* Starts redis-server (--save '' --appendonly no); password non-NULL adds --requirepass and
 * puts it in the URL. Returns the server (free with harness_server_free()) or NULL after
 * printing why and the server log to stderr. URL: redis://[:password@]127.0.0.1:N/0. */
struct harness_server *harness_redis_start(const char *password);

/* initdb -A trust -U astro, then postgres with fsync, full_page_writes and synchronous_commit
 * off; waits until SELECT 1 works. URL: postgresql://astro@127.0.0.1:N/postgres. */
struct harness_server *harness_pg_start(void);

/* Creates database `name` (a plain identifier) and writes its URL into url. 0 or -1. */
int harness_pg_create_db(struct harness_server *s, const char *name, char *url, size_t urllen);

/* The server's URL (owned by s), port, and current pid (0 while stopped). */
const char *harness_server_url(const struct harness_server *s);
int harness_server_port(const struct harness_server *s);
pid_t harness_server_pid(const struct harness_server *s);
/* The server's private temp dir (data, socket, server.log); owned by s. */
const char *harness_server_dir(const struct harness_server *s);

/* Removes temp dirs left by test processes that no longer exist (called on every start). */
void harness_sweep_stale(void);

/* Stops the server (graceful signal, SIGKILL after 10 s) and reaps it; data dir is kept.
 * hard != 0 sends SIGKILL at once (a crash). 0 or -1. */
int harness_server_stop(struct harness_server *s, int hard);

/* Starts a stopped server again on the same port with the same data. 0 or -1. */
int harness_server_restart(struct harness_server *s);

/* Copies the server log to f. */
void harness_server_dump_log(const struct harness_server *s, FILE *f);

/* Stops the server, removes its temp dir, frees s. NULL is a no-op. */
void harness_server_free(struct harness_server *s);

/* A port on 127.0.0.1 that was free a moment ago (the kernel's pick for port 0), or -1. A
 * daemon started on it may still lose a race with another process: retry on EADDRINUSE. */
int harness_free_port(void);

/* CLOCK_MONOTONIC in milliseconds, for test deadlines. */
long harness_now_ms(void);

#endif

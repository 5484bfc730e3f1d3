/* astro-admin migrate against a real PostgreSQL started by the harness.
 *
 * PostgreSQL is started once per TCase in an unchecked fixture (runner process); each test
 * works in its own database so tests stay independent in Check's fork mode. The last test
 * starts its own servers to check the harness leaves no process behind. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "astro/pg.h"
#include "servers.h"
#include "spawn.h"

static struct harness_server *pg;

static void
pg_setup(void)
{
    pg = harness_pg_start();
    ck_assert_msg(pg != NULL, "postgres did not start");
}

static void
pg_teardown(void)
{
    harness_server_free(pg);
    pg = NULL;
}

/* A fresh database for the calling test; its URL goes to url. */
static void
fresh_db(const char *name, char *url, size_t len)
{
    ck_assert_int_eq(harness_pg_create_db(pg, name, url, len), 0);
}

struct run {
    pid_t pid;
    int fd;
    char out[16384];
    int status;
};

/* Starts astro-admin with args (NULL-terminated, after argv[0]); stdout+stderr captured. */
static void
admin_start(struct run *r, const char *url, const char *arg)
{
    const char *admin = getenv("ASTRO_ADMIN");
    ck_assert_msg(admin != NULL, "ASTRO_ADMIN (path of astro-admin) is not set");
    char db[560];
    snprintf(db, sizeof(db), "ASTRO_DATABASE_URL=%s", url != NULL ? url : "");
    const char *const set[] = {db, NULL};
    const char *const unset[] = {"ASTRO_DATABASE_URL", NULL};
    const char *const argv[] = {"astro-admin", arg, NULL};
    int p[2];
    /* Close-on-exec: the child gets only its stdout and stderr (dup2 clears the flag). */
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    memset(r, 0, sizeof(*r));
    r->pid = harness_spawn_fd(admin, argv, url != NULL ? set : NULL, url != NULL ? NULL : unset,
                              p[1]);
    ck_assert_int_ge(r->pid, 0);
    close(p[1]);
    r->fd = p[0];
}

static int
admin_wait(struct run *r)
{
    size_t len = 0;
    ssize_t n;
    while ((n = read(r->fd, r->out + len, sizeof(r->out) - 1 - len)) > 0)
        len += (size_t)n;
    r->out[len] = '\0';
    close(r->fd);
    ck_assert_int_eq(waitpid(r->pid, &r->status, 0), r->pid);
    ck_assert(WIFEXITED(r->status));
    return WEXITSTATUS(r->status);
}

static int
admin(struct run *r, const char *url, const char *arg)
{
    admin_start(r, url, arg);
    return admin_wait(r);
}

static void
quiet(void *arg, const char *msg)
{
    (void)arg, (void)msg;
}

static PGconn *
db(const char *url)
{
    PGconn *c = PQconnectdb(url);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);
    return c;
}

/* Runs a one-value query and returns the value as a malloc'ed string ("" for no row). */
static char *
scalar(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    char *v = strdup(PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return v;
}

static void
ck_scalar(PGconn *c, const char *sql, const char *want)
{
    char *got = scalar(c, sql);
    ck_assert_msg(strcmp(got, want) == 0, "%s: got \"%s\", want \"%s\"", sql, got, want);
    free(got);
}

static void
exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

static int
count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

START_TEST(test_migrate_twice_second_is_noop)
{
    char url[256];
    struct run r;
    fresh_db("twice", url, sizeof(url));
    ck_assert_msg(admin(&r, url, "migrate") == 0, "%s", r.out);
    ck_assert_msg(strstr(r.out, "applied 0001_event_tables") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "applied 0005_candles") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "schema is now at version 6") != NULL, "%s", r.out);
    ck_assert_msg(admin(&r, url, "migrate") == 0, "%s", r.out);
    ck_assert_msg(strstr(r.out, "schema is up to date (version 6)") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "applied") == NULL, "second run applied something: %s", r.out);
    ck_assert_msg(admin(&r, url, "status") == 0, "%s", r.out);
    ck_assert_int_eq(count_of(r.out, "applied  "), 6);
    ck_assert_ptr_null(strstr(r.out, "pending"));
    PGconn *c = db(url);
    ck_scalar(c, "SELECT string_agg(version::text || ':' || name, ',' ORDER BY version) "
                 "FROM schema_migrations",
              "1:0001_event_tables,2:0002_aggregates,3:0003_operations,4:0004_roles,"
              "5:0005_candles,6:0006_agg_query");
    PQfinish(c);
}
END_TEST

START_TEST(test_schema_shape)
{
    char url[256];
    struct run r;
    fresh_db("shape", url, sizeof(url));
    ck_assert_msg(admin(&r, url, "migrate") == 0, "%s", r.out);
    PGconn *c = db(url);
    const char *tables[] = { "mono_events", "multi_events", "candles", "indicators", "sessions",
                             "predictions", "dead_events", "late_events", "event_rollups",
                             "api_keys", "schema_migrations" };
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        char sql[160];
        snprintf(sql, sizeof(sql), "SELECT to_regclass('%s') IS NOT NULL", tables[i]);
        ck_scalar(c, sql, "t");
    }
    for (int i = 0; i < 2; i++) {
        const char *t = i == 0 ? "mono_events" : "multi_events";
        char sql[512];
        snprintf(sql, sizeof(sql), "SELECT relkind FROM pg_class WHERE relname = '%s'", t);
        ck_scalar(c, sql, "p");
        snprintf(sql, sizeof(sql),
                 "SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM pg_index x "
                 "CROSS JOIN unnest(x.indkey) WITH ORDINALITY k(att, ord) "
                 "JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.att "
                 "WHERE x.indrelid = '%s'::regclass AND x.indisprimary", t);
        ck_scalar(c, sql, "event_id,ts");
        snprintf(sql, sizeof(sql),
                 "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                 "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '%s'::regclass "
                 "AND c.relname = '%s_default'", t, t);
        ck_scalar(c, sql, "DEFAULT");
    }
    ck_scalar(c, "SELECT count(*) FROM pg_roles WHERE rolname IN "
                 "('astro_archiver','astro_query','astro_ingest') AND NOT rolcanlogin", "3");
    PQfinish(c);
}
END_TEST

START_TEST(test_day_partitions_and_idempotent_insert)
{
    char url[256];
    struct run r;
    fresh_db("parts", url, sizeof(url));
    ck_assert_msg(admin(&r, url, "migrate") == 0, "%s", r.out);
    PGconn *c = db(url);
    /* An outlier lands in DEFAULT, then moves into its day partition when that is created. */
    exec_ok(c, "INSERT INTO mono_events (event_id, ts, source_stream, event_type, value) "
               "VALUES ('e1', '2030-01-02 12:00Z', 's', 'A', 1.5)");
    ck_scalar(c, "SELECT tableoid::regclass FROM mono_events", "mono_events_default");
    ck_scalar(c, "SELECT astro_ensure_day_partitions('mono_events', '2030-01-01', 3)", "3");
    ck_scalar(c, "SELECT astro_ensure_day_partitions('mono_events', '2030-01-01', 3)", "0");
    ck_scalar(c, "SELECT astro_ensure_day_partitions('mono_events', '2030-01-02', 3)", "1");
    ck_scalar(c, "SELECT tableoid::regclass FROM mono_events", "mono_events_p20300102");
    ck_scalar(c, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'mono_events'::regclass",
              "5");
    /* Redelivery of the same (event_id, ts) keeps one row. */
    for (int i = 0; i < 2; i++)
        exec_ok(c, "INSERT INTO mono_events (event_id, ts, source_stream, event_type, value) "
                   "VALUES ('e2', '2030-01-03 00:00Z', 's', 'A', 2) ON CONFLICT DO NOTHING");
    ck_scalar(c, "SELECT count(*) FROM mono_events WHERE event_id = 'e2'", "1");
    /* The archiver's role may create partitions through the function, nothing more. */
    exec_ok(c, "SET ROLE astro_archiver");
    ck_scalar(c, "SELECT astro_ensure_day_partitions('multi_events', '2000-01-01', 2)", "2");
    exec_ok(c, "RESET ROLE");
    /* Retention drops whole old days and never the DEFAULT partition. */
    ck_scalar(c, "SELECT astro_drop_day_partitions('multi_events', 30)", "2");
    ck_scalar(c, "SELECT string_agg(c.relname, ',') FROM pg_inherits i JOIN pg_class c "
                 "ON c.oid = i.inhrelid WHERE i.inhparent = 'multi_events'::regclass",
              "multi_events_default");
    PQfinish(c);
}
END_TEST

START_TEST(test_failing_migration_changes_nothing)
{
    char url[256];
    struct run r;
    fresh_db("failing", url, sizeof(url));
    PGconn *c = db(url);
    /* A table in the way of 0002 makes it fail halfway (candles is created first). */
    exec_ok(c, "CREATE TABLE event_rollups (x int)");
    ck_assert_int_eq(admin(&r, url, "migrate"), 1);
    ck_assert_msg(strstr(r.out, "applied 0001_event_tables") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "migration 0002_aggregates failed") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "SQLSTATE 42P07") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "event_rollups") != NULL, "%s", r.out);
    ck_scalar(c, "SELECT string_agg(version::text, ',') FROM schema_migrations", "1");
    ck_scalar(c, "SELECT to_regclass('candles') IS NULL", "t");
    ck_scalar(c, "SELECT string_agg(attname, ',') FROM pg_attribute WHERE attrelid = "
                 "'event_rollups'::regclass AND attnum > 0", "x");
    exec_ok(c, "DROP TABLE event_rollups");
    ck_assert_msg(admin(&r, url, "migrate") == 0, "%s", r.out);
    ck_assert_msg(strstr(r.out, "applied 0002_aggregates") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "applied 0001") == NULL, "%s", r.out);
    ck_scalar(c, "SELECT max(version) FROM schema_migrations", "6");
    PQfinish(c);
}
END_TEST

START_TEST(test_changed_migration_is_refused)
{
    char url[256];
    struct run r;
    fresh_db("checksum", url, sizeof(url));
    ck_assert_msg(admin(&r, url, "migrate") == 0, "%s", r.out);
    PGconn *c = db(url);
    exec_ok(c, "UPDATE schema_migrations SET checksum = 'deadbeef' WHERE version = 2");
    ck_assert_int_eq(admin(&r, url, "migrate"), 1);
    ck_assert_msg(strstr(r.out, "migration 0002_aggregates was changed after it was applied")
                      != NULL, "%s", r.out);
    exec_ok(c, "DELETE FROM schema_migrations WHERE version = 2");
    exec_ok(c, "INSERT INTO schema_migrations VALUES (9, '0009_future', 'abc')");
    ck_assert_int_eq(admin(&r, url, "migrate"), 1);
    ck_assert_msg(strstr(r.out, "newer than this binary") != NULL, "%s", r.out);
    PQfinish(c);
}
END_TEST

/* Waits until some session waits for an advisory lock in this database. */
static bool
advisory_waiter(PGconn *c)
{
    for (int i = 0; i < 200; i++) {
        char *n = scalar(c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                            "AND NOT granted AND database = (SELECT oid FROM pg_database "
                            "WHERE datname = current_database())");
        bool found = strcmp(n, "0") != 0;
        free(n);
        if (found)
            return true;
        usleep(50000);
    }
    return false;
}

START_TEST(test_concurrent_migrates_serialize)
{
    char url[256];
    struct run a, b;
    fresh_db("concurrent", url, sizeof(url));
    PGconn *c = db(url);
    /* Hold the documented lock: migrate must wait and touch nothing meanwhile. */
    ck_scalar(c, "SELECT pg_advisory_lock(7022084278845270375)", "");
    admin_start(&a, url, "migrate");
    ck_assert_msg(advisory_waiter(c), "migrate never waited for the advisory lock");
    ck_scalar(c, "SELECT to_regclass('schema_migrations') IS NULL", "t");
    ck_scalar(c, "SELECT pg_advisory_unlock(7022084278845270375)", "t");
    ck_assert_msg(admin_wait(&a) == 0, "%s", a.out);
    ck_assert_msg(strstr(a.out, "waiting for the migration lock") != NULL, "%s", a.out);
    ck_assert_msg(strstr(a.out, "schema is now at version 6") != NULL, "%s", a.out);
    /* Two at once on a fresh database: one applies, the other finds it up to date. */
    char url2[256];
    fresh_db("concurrent2", url2, sizeof(url2));
    admin_start(&a, url2, "migrate");
    admin_start(&b, url2, "migrate");
    ck_assert_msg(admin_wait(&a) == 0, "%s", a.out);
    ck_assert_msg(admin_wait(&b) == 0, "%s", b.out);
    ck_assert_int_eq(count_of(a.out, "applied 0001") + count_of(b.out, "applied 0001"), 1);
    ck_assert_int_eq(count_of(a.out, "up to date (version 6)") +
                         count_of(b.out, "up to date (version 6)"), 1);
    PQfinish(c);
}
END_TEST

START_TEST(test_cli_usage)
{
    struct run r;
    ck_assert_int_eq(admin(&r, "postgresql://x@127.0.0.1:1/x", "--help"), 0);
    ck_assert_ptr_nonnull(strstr(r.out, "usage: astro-admin"));
    ck_assert_int_eq(admin(&r, "postgresql://x@127.0.0.1:1/x", "frobnicate"), 2);
    ck_assert_ptr_nonnull(strstr(r.out, "unknown command or arguments: frobnicate"));
    ck_assert_ptr_nonnull(strstr(r.out, "usage: astro-admin"));
    ck_assert_int_eq(admin(&r, NULL, "migrate"), 2);
    ck_assert_ptr_nonnull(strstr(r.out, "ASTRO_DATABASE_URL is not set"));
    ck_assert_int_eq(admin(&r, "postgresql://astro@127.0.0.1:1/none", "migrate"), 1);
    ck_assert_ptr_nonnull(strstr(r.out, "connect"));
}
END_TEST

static bool
process_gone(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d", (int)pid);
    for (int i = 0; i < 200; i++) {
        struct stat st;
        if (stat(path, &st) != 0 && errno == ENOENT)
            return true;
        usleep(25000);
    }
    return false;
}

static void
copy_row(struct astro_pg_copybuf *b, const char *id, const char *key, const char *meta,
         const char *entry)
{
    const char *f[] = { id, "2030-02-01 00:00:00+00", "src", key, "A", "1.25", meta, entry };
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        ck_assert_int_eq(astro_pg_copybuf_str(b, f[i]), ASTRO_OK);
    ck_assert_int_eq(astro_pg_copybuf_end_row(b), ASTRO_OK);
}

#define COPY_SQL "COPY mono_events (event_id, ts, source_stream, key, event_type, value, " \
                 "metadata, stream_entry_id) FROM STDIN"

START_TEST(test_copy_round_trip_and_errors)
{
    char url[256], err[512] = "";
    struct run r;
    fresh_db("copy", url, sizeof(url));
    ck_assert_msg(admin(&r, url, "migrate") == 0, "%s", r.out);
    struct astro_pg *c = astro_pg_connect(url, NULL, err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    struct astro_pg_copybuf b;
    astro_pg_copybuf_init(&b);
    ck_assert_msg(astro_pg_copy_begin(c, COPY_SQL, err, sizeof(err)) == ASTRO_OK, "%s", err);
    copy_row(&b, "e1", "tab\there\nnew\\line\rcr", "{\"a\": \"x\\\\y\"}", NULL);
    copy_row(&b, "e2", "\\N", "{}", "1-0");
    ck_assert_msg(astro_pg_copy_put(c, &b, err, sizeof(err)) == ASTRO_OK, "%s", err);
    uint64_t rows = 0;
    ck_assert_msg(astro_pg_copy_end(c, NULL, &rows, err, sizeof(err)) == ASTRO_OK, "%s", err);
    ck_assert_uint_eq(rows, 2);
    PGresult *res = astro_pg_exec(c, "SELECT key, metadata->>'a', stream_entry_id IS NULL "
                                  "FROM mono_events ORDER BY event_id", 0, NULL, err,
                                  sizeof(err));
    ck_assert_msg(res != NULL, "%s", err);
    ck_assert_str_eq(PQgetvalue(res, 0, 0), "tab\there\nnew\\line\rcr");
    ck_assert_str_eq(PQgetvalue(res, 0, 1), "x\\y");
    ck_assert_str_eq(PQgetvalue(res, 0, 2), "t");
    ck_assert_str_eq(PQgetvalue(res, 1, 0), "\\N");
    ck_assert_str_eq(PQgetvalue(res, 1, 2), "f");
    PQclear(res);
    /* A duplicate key fails the whole COPY with its SQLSTATE; the connection stays usable. */
    ck_assert_int_eq(astro_pg_copy_begin(c, COPY_SQL, err, sizeof(err)), ASTRO_OK);
    copy_row(&b, "e1", "k", "{}", NULL);
    ck_assert_int_eq(astro_pg_copy_put(c, &b, err, sizeof(err)), ASTRO_OK);
    ck_assert_int_eq(astro_pg_copy_end(c, NULL, &rows, err, sizeof(err)), ASTRO_ERR);
    ck_assert_msg(strstr(err, "SQLSTATE 23505") != NULL, "%s", err);
    ck_assert_int_eq(astro_pg_exec_ok(c, "SELECT 1", err, sizeof(err)), ASTRO_OK);
    ck_assert_int_eq(astro_pg_exec_ok(c, "SELECT * FROM nope", err, sizeof(err)), ASTRO_ERR);
    ck_assert_msg(strstr(err, "SQLSTATE 42P01: relation \"nope\" does not exist") != NULL,
                  "%s", err);
    astro_pg_copybuf_cleanup(&b);
    astro_pg_free(c);
}
END_TEST

START_TEST(test_pg_reconnects_after_restart)
{
    struct harness_server *own = harness_pg_start();
    ck_assert_ptr_nonnull(own);
    char err[512] = "";
    struct astro_pg_options opt = { .application_name = "astro-test", .max_attempts = 50,
                                    .deadline_ms = 20000, .backoff_initial_ms = 50,
                                    .backoff_max_ms = 500 };
    struct astro_pg *c = astro_pg_connect(harness_server_url(own), &opt, err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    PGresult *res = astro_pg_exec(c, "SELECT current_setting('application_name')", 0, NULL,
                                  err, sizeof(err));
    ck_assert_msg(res != NULL, "%s", err);
    ck_assert_str_eq(PQgetvalue(res, 0, 0), "astro-test");
    PQclear(res);
    ck_assert_int_eq(harness_server_restart(own), 0);
    /* The first statement on the dead connection fails (its session is gone); the caller
     * retries, and astro_pg_ensure() has reset the connection by then. */
    if (astro_pg_exec_ok(c, "SELECT 1", err, sizeof(err)) != ASTRO_OK)
        ck_assert_msg(astro_pg_exec_ok(c, "SELECT 1", err, sizeof(err)) == ASTRO_OK, "%s", err);
    ck_assert_uint_eq(c->reconnects, 1);
    astro_pg_free(c);
    harness_server_free(own);
}
END_TEST

static bool
path_gone(const char *path)
{
    struct stat st;
    return stat(path, &st) != 0 && errno == ENOENT;
}

START_TEST(test_harness_leaves_nothing_behind)
{
    struct harness_server *p = harness_pg_start();
    struct harness_server *rs = harness_redis_start(NULL);
    ck_assert(p != NULL && rs != NULL);
    pid_t ppid = harness_server_pid(p), rpid = harness_server_pid(rs);
    char pdir[256], rdir[256];
    snprintf(pdir, sizeof(pdir), "%s", harness_server_dir(p));
    snprintf(rdir, sizeof(rdir), "%s", harness_server_dir(rs));
    ck_assert(ppid > 0 && rpid > 0 && !path_gone(pdir) && !path_gone(rdir));
    harness_server_free(p);
    harness_server_free(rs);
    ck_assert_msg(process_gone(ppid), "postgres %d still running", (int)ppid);
    ck_assert_msg(process_gone(rpid), "redis-server %d still running", (int)rpid);
    ck_assert_msg(path_gone(pdir) && path_gone(rdir), "temp dirs left: %s %s", pdir, rdir);

    /* A test process killed with SIGKILL takes its servers along (PR_SET_PDEATHSIG), and the
     * next harness start removes the temp dir it left. */
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t child = fork();
    if (child == 0) {
        struct harness_server *s = harness_redis_start(NULL);
        struct { pid_t pid; char dir[256]; } msg = { 0 };
        if (s != NULL) {
            msg.pid = harness_server_pid(s);
            snprintf(msg.dir, sizeof(msg.dir), "%s", harness_server_dir(s));
        }
        if (write(fds[1], &msg, sizeof(msg)) != (ssize_t)sizeof(msg))
            _exit(1);
        pause();
        _exit(0);
    }
    struct { pid_t pid; char dir[256]; } msg;
    ck_assert_int_eq(read(fds[0], &msg, sizeof(msg)), (int)sizeof(msg));
    ck_assert_int_gt(msg.pid, 0);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    ck_assert_msg(process_gone(msg.pid), "redis-server %d outlived its SIGKILLed parent",
                  (int)msg.pid);
    /* Any harness user may sweep it from here on (each sweeps dirs of dead owners). */
    harness_sweep_stale();
    ck_assert_msg(path_gone(msg.dir), "stale dir %s not swept", msg.dir);
}
END_TEST

static Suite *
migrate_suite(void)
{
    Suite *s = suite_create("migrate");
    TCase *tc = tcase_create("postgres");
    tcase_add_unchecked_fixture(tc, pg_setup, pg_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_migrate_twice_second_is_noop);
    tcase_add_test(tc, test_schema_shape);
    tcase_add_test(tc, test_day_partitions_and_idempotent_insert);
    tcase_add_test(tc, test_failing_migration_changes_nothing);
    tcase_add_test(tc, test_changed_migration_is_refused);
    tcase_add_test(tc, test_concurrent_migrates_serialize);
    tcase_add_test(tc, test_cli_usage);
    tcase_add_test(tc, test_copy_round_trip_and_errors);
    suite_add_tcase(s, tc);
    TCase *th = tcase_create("harness");
    tcase_set_timeout(th, 120);
    tcase_add_test(th, test_harness_leaves_nothing_behind);
    tcase_add_test(th, test_pg_reconnects_after_restart);
    suite_add_tcase(s, th);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(migrate_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Private redis-server / PostgreSQL processes for integration tests (see servers.h). */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "servers.h"

enum kind { KIND_REDIS, KIND_PG };

struct harness_server {
    enum kind kind;
    pid_t pid;   /* 0 while stopped */
    pid_t owner; /* process that started it; only it tears it down */
    int port;
    char dir[128];
    char log[192];
    char url[256];
    char password[64];
};

#define MAX_LIVE 32
static struct harness_server *live[MAX_LIVE];
static bool hooks_installed;

static void
sleep_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

long
harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- teardown paths ------------------------------------------------------------------- */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void
remove_dir(const char *dir)
{
    if (dir[0] != '\0')
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Async-signal-safe: kill, fork, execve, waitpid only. */
static void
on_fatal_signal(int sig)
{
    pid_t self = getpid();
    for (int i = 0; i < MAX_LIVE; i++) {
        struct harness_server *s = live[i];
        if (s == NULL || s->owner != self)
            continue;
        if (s->pid > 0)
            kill(s->pid, SIGKILL);
        pid_t rm = fork();
        if (rm == 0) {
            char *const argv[] = { "/bin/rm", "-rf", s->dir, NULL };
            char *const envp[] = { NULL };
            execve(argv[0], argv, envp);
            _exit(127);
        }
        if (rm > 0)
            waitpid(rm, NULL, 0);
    }
    raise(sig); /* SA_RESETHAND restored the default action */
}

static void
on_exit_teardown(void)
{
    pid_t self = getpid();
    for (int i = 0; i < MAX_LIVE; i++) {
        struct harness_server *s = live[i];
        if (s == NULL || s->owner != self)
            continue;
        fprintf(stderr, "harness: %s on port %d still running at exit; its log follows\n",
                s->kind == KIND_REDIS ? "redis-server" : "postgres", s->port);
        harness_server_dump_log(s, stderr);
        harness_server_free(s);
    }
}

static void
install_hooks(void)
{
    if (hooks_installed)
        return;
    hooks_installed = true;
    atexit(on_exit_teardown);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fatal_signal;
    sa.sa_flags = (int)SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGABRT, &sa, NULL);
}

static void
track(struct harness_server *s, bool on)
{
    for (int i = 0; i < MAX_LIVE; i++) {
        if (on && live[i] == NULL) {
            live[i] = s;
            return;
        }
        if (!on && live[i] == s)
            live[i] = NULL;
    }
}

/* ---- processes ------------------------------------------------------------------------ */

/* Binds port 0 on loopback to let the kernel pick a free port; the small window before the
 * server binds it is covered by retrying start on a collision. */
int
harness_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static bool
lookup_postgres_user(uid_t *uid, gid_t *gid)
{
    struct passwd *pw = getpwnam("postgres");
    if (pw == NULL)
        return false;
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return true;
}

/* Child side of spawn(): never returns. */
static void
exec_child(pid_t parent, const char *logpath, bool as_postgres, uid_t uid, gid_t gid,
           char *const argv[])
{
    /* Die with the test process even if it is SIGKILLed; re-check the parent to close the
     * race where it died before prctl. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(126);
    int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int nul = open("/dev/null", O_RDONLY);
    if (fd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
        _exit(126);
    if (as_postgres && (setgid(gid) != 0 || setuid(uid) != 0))
        _exit(126);
    execvp(argv[0], argv);
    dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static pid_t
spawn(const char *logpath, bool as_postgres, char *const argv[])
{
    uid_t uid = 0;
    gid_t gid = 0;
    as_postgres = as_postgres && geteuid() == 0;
    if (as_postgres && !lookup_postgres_user(&uid, &gid)) {
        fprintf(stderr, "harness: running as root but there is no `postgres` user\n");
        return -1;
    }
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        exec_child(parent, logpath, as_postgres, uid, gid, argv);
    return pid;
}

/* Waits up to timeout_ms for pid to exit; returns its wait status or -1 on timeout. */
static int
wait_exit(pid_t pid, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0)
            return errno == ECHILD ? 0 : -1;
        if (harness_now_ms() > deadline)
            return -1;
        sleep_ms(10);
    }
}

static bool
log_contains(const struct harness_server *s, const char *needle)
{
    FILE *f = fopen(s->log, "r");
    if (f == NULL)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

void
harness_server_dump_log(const struct harness_server *s, FILE *f)
{
    FILE *in = fopen(s->log, "r");
    if (in == NULL)
        return;
    fprintf(f, "----- %s -----\n", s->log);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        fwrite(buf, 1, n, f);
    fprintf(f, "----- end of %s -----\n", s->log);
    fclose(in);
}

/* ---- readiness ------------------------------------------------------------------------ */

/* Any reply to PING (PONG, or NOAUTH with --requirepass) means the server accepts commands. */
static bool
redis_answers(const struct harness_server *s)
{
    struct timeval tv = { .tv_sec = 0, .tv_usec = 300000 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
    bool ok = false;
    if (c != NULL && !c->err) {
        redisSetTimeout(c, tv);
        redisReply *r = redisCommand(c, "PING");
        ok = r != NULL && (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "LOADING", 7) != 0);
        if (r != NULL)
            freeReplyObject(r);
    }
    redisFree(c);
    return ok;
}

static bool
pg_answers(const struct harness_server *s)
{
    char conninfo[128];
    snprintf(conninfo, sizeof(conninfo),
             "host=127.0.0.1 port=%d user=astro dbname=postgres connect_timeout=2", s->port);
    PGconn *c = PQconnectdb(conninfo);
    bool ok = false;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, "SELECT 1");
        ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
    }
    PQfinish(c);
    return ok;
}

/* 1 ready, 0 exited with a port collision (retry elsewhere), -1 failed. */
static int
wait_ready(struct harness_server *s, long timeout_ms)
{
    long deadline = harness_now_ms() + timeout_ms;
    while (harness_now_ms() < deadline) {
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            return log_contains(s, "in use") ? 0 : -1;
        }
        if (s->kind == KIND_REDIS ? redis_answers(s) : pg_answers(s))
            return 1;
        sleep_ms(50);
    }
    return -1;
}

/* ---- start, stop, restart ------------------------------------------------------------- */

static const char *
pg_bindir(void)
{
    const char *d = getenv("HARNESS_PG_BINDIR");
    return d && d[0] ? d : "/usr/lib/postgresql/15/bin";
}

static pid_t
launch(struct harness_server *s)
{
    char port[16], bin[256], data[160];
    snprintf(port, sizeof(port), "%d", s->port);
    if (s->kind == KIND_REDIS) {
        const char *rs = getenv("HARNESS_REDIS_SERVER");
        snprintf(bin, sizeof(bin), "%s", rs && rs[0] ? rs : "redis-server");
        char *argv[] = { bin, "--port", port, "--bind", "127.0.0.1", "--save", "",
                         "--appendonly", "no", "--dir", s->dir, "--daemonize", "no",
                         s->password[0] ? "--requirepass" : NULL, s->password, NULL };
        return spawn(s->log, false, argv);
    }
    snprintf(bin, sizeof(bin), "%s/postgres", pg_bindir());
    snprintf(data, sizeof(data), "%s/data", s->dir);
    char *argv[] = { bin, "-D", data, "-k", s->dir, "-h", "127.0.0.1", "-p", port,
                     "-c", "fsync=off", "-c", "full_page_writes=off",
                     "-c", "synchronous_commit=off", NULL };
    return spawn(s->log, true, argv);
}

/* Starts the server on s->port; on a port collision (only allowed when pick_port) picks
 * another free port and tries again. */
static int
start_process(struct harness_server *s, bool pick_port)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        if (pick_port && (s->port = harness_free_port()) < 0)
            return -1;
        if ((s->pid = launch(s)) < 0) {
            s->pid = 0;
            return -1;
        }
        int r = wait_ready(s, s->kind == KIND_REDIS ? 10000 : 30000);
        if (r == 1)
            return 0;
        if (r < 0 || !pick_port)
            break;
    }
    fprintf(stderr, "harness: %s did not start on port %d\n",
            s->kind == KIND_REDIS ? "redis-server" : "postgres", s->port);
    harness_server_dump_log(s, stderr);
    harness_server_stop(s, 1);
    return -1;
}

static const char *
tmp_root(void)
{
    const char *tmp = getenv("TMPDIR");
    return tmp && tmp[0] ? tmp : "/tmp";
}

void
harness_sweep_stale(void)
{
    DIR *d = opendir(tmp_root());
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int pid = 0;
        char kind[8];
        if (sscanf(e->d_name, "astro-%7[a-z]-%d-", kind, &pid) != 2 || pid <= 0)
            continue;
        char path[512];
        snprintf(path, sizeof(path), "/proc/%d", pid);
        if (access(path, F_OK) == 0)
            continue; /* its test process is alive (or the pid was reused): leave it */
        snprintf(path, sizeof(path), "%s/%s", tmp_root(), e->d_name);
        /* A dir whose owner died is a test that never reached its teardown: a failed assertion
         * (Check's fork mode leaves with _exit, skipping atexit) or a kill. Show its log. */
        struct harness_server dead = { .kind = strcmp(kind, "pg") == 0 ? KIND_PG : KIND_REDIS };
        snprintf(dead.log, sizeof(dead.log), "%.150s/server.log", path);
        fprintf(stderr, "harness: test process %d ended without stopping its %s; its log:\n",
                pid, kind);
        harness_server_dump_log(&dead, stderr);
        remove_dir(path);
    }
    closedir(d);
}

/* Runs when the test program exits normally (the Check runner, after every test), so the
 * logs of servers whose test died are printed even when no later test starts a server. */
__attribute__((destructor)) static void
sweep_at_exit(void)
{
    harness_sweep_stale();
}

static struct harness_server *
new_server(enum kind kind)
{
    install_hooks();
    harness_sweep_stale();
    struct harness_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->kind = kind;
    s->owner = getpid();
    /* The owner's pid in the name lets harness_sweep_stale() find dirs of SIGKILLed tests. */
    snprintf(s->dir, sizeof(s->dir), "%s/astro-%s-%d-XXXXXX", tmp_root(),
             kind == KIND_REDIS ? "redis" : "pg", (int)s->owner);
    if (mkdtemp(s->dir) == NULL) {
        fprintf(stderr, "harness: mkdtemp %s: %s\n", s->dir, strerror(errno));
        free(s);
        return NULL;
    }
    snprintf(s->log, sizeof(s->log), "%s/server.log", s->dir);
    track(s, true);
    return s;
}

struct harness_server *
harness_redis_start(const char *password)
{
    struct harness_server *s = new_server(KIND_REDIS);
    if (s == NULL)
        return NULL;
    if (password != NULL)
        snprintf(s->password, sizeof(s->password), "%s", password);
    if (start_process(s, true) != 0)
        goto fail;
    snprintf(s->url, sizeof(s->url), "redis://%s%s%s127.0.0.1:%d/0", s->password[0] ? ":" : "",
             s->password, s->password[0] ? "@" : "", s->port);
    return s;
fail:
    harness_server_free(s);
    return NULL;
}

/* initdb into <dir>/data as the postgres user (when root). */
static int
run_initdb(struct harness_server *s)
{
    if (geteuid() == 0) {
        uid_t uid;
        gid_t gid;
        if (!lookup_postgres_user(&uid, &gid) || chown(s->dir, uid, gid) != 0) {
            fprintf(stderr, "harness: cannot hand %s to the postgres user\n", s->dir);
            return -1;
        }
    }
    char bin[256], data[160];
    snprintf(bin, sizeof(bin), "%s/initdb", pg_bindir());
    snprintf(data, sizeof(data), "%s/data", s->dir);
    char *argv[] = { bin, "-A", "trust", "-U", "astro", "-D", data, "-E", "UTF8",
                     "--locale=C", "--no-sync", NULL };
    pid_t pid = spawn(s->log, true, argv);
    int status = pid > 0 ? wait_exit(pid, 120000) : -1;
    if (status == -1 && pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    fprintf(stderr, "harness: initdb failed\n");
    harness_server_dump_log(s, stderr);
    return -1;
}

struct harness_server *
harness_pg_start(void)
{
    struct harness_server *s = new_server(KIND_PG);
    if (s == NULL)
        return NULL;
    if (run_initdb(s) != 0 || start_process(s, true) != 0)
        goto fail;
    snprintf(s->url, sizeof(s->url), "postgresql://astro@127.0.0.1:%d/postgres", s->port);
    return s;
fail:
    harness_server_free(s);
    return NULL;
}

int
harness_pg_create_db(struct harness_server *s, const char *name, char *url, size_t urllen)
{
    PGconn *c = PQconnectdb(s->url);
    char sql[160];
    snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", name);
    PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "harness: CREATE DATABASE %s: %s", name, PQerrorMessage(c));
    else
        snprintf(url, urllen, "postgresql://astro@127.0.0.1:%d/%s", s->port, name);
    PQclear(r);
    PQfinish(c);
    return rc;
}

const char *
harness_server_url(const struct harness_server *s)
{
    return s->url;
}

int
harness_server_port(const struct harness_server *s)
{
    return s->port;
}

const char *
harness_server_dir(const struct harness_server *s)
{
    return s->dir;
}

pid_t
harness_server_pid(const struct harness_server *s)
{
    return s->pid;
}

int
harness_server_stop(struct harness_server *s, int hard)
{
    if (s->pid <= 0)
        return 0;
    /* postgres: SIGINT is the "fast" shutdown (SIGTERM would wait for clients to leave). */
    int sig = hard ? SIGKILL : (s->kind == KIND_PG ? SIGINT : SIGTERM);
    kill(s->pid, sig);
    if (wait_exit(s->pid, 10000) == -1) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
    if (hard && s->kind == KIND_PG)
        sleep_ms(200); /* backends notice the postmaster's death and leave the port */
    return 0;
}

int
harness_server_restart(struct harness_server *s)
{
    if (harness_server_stop(s, 0) != 0)
        return -1;
    return start_process(s, false);
}

void
harness_server_free(struct harness_server *s)
{
    if (s == NULL)
        return;
    harness_server_stop(s, 0);
    track(s, false);
    remove_dir(s->dir);
    free(s);
}

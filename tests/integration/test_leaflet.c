/* astro-leaflet, the real binary against a private redis-server: the determinism the issue asks
 * for. One input log (preloaded into astro:mono:{p} with fixed stream ids) is processed
 *   1. by one uninterrupted worker (the reference),
 *   2. with a different batch size,
 *   3. by workers SIGKILLed at random points and restarted (some under a new name, so their
 *      leases must expire and the new owner claims the dead one's pending entries),
 *   4. with 1 -> 3 -> 2 workers rebalancing,
 * and every run must give the identical multi events (ids and lineage) and late events, with
 * nothing left pending. Also: SIGTERM drains and exits 0, a bad rules file exits 2. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "astro/partition.h"
#include "servers.h"
#include "spawn.h"

#define NPART 4
#define NEVENTS 24000
#define MAXW 4

static const char *RULES =
    "rule type_A_and_B_within_window\n  all A, B\n  within 2s\n"
    "rule type_A_B_C_convergence\n  all A, B, C\n  within 2s\n"
    "rule a_then_d\n  seq A, D from axon_2\n  within 1s\n  value last\n"
    "rule no_b_after_c\n  absence C without B\n  within 1s\n  confidence 0.5\n"
    "rule three_d\n  count 3 D\n  within 2s\n  reuse\n  value sum\n";

static struct harness_server *srv;
static redisContext *rc;
static bool passed;
static char dir[256], rules_path[300];
static pid_t workers[MAXW];
static char names[MAXW][32];
static const char *series_ttl; /* ASTRO_LEAFLET_SERIES_TTL=... of the workers spawned */

static void
msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void
dump_logs(void)
{
    char cmd[700];
    snprintf(cmd, sizeof(cmd),
             "grep -h -A12 'ERROR: AddressSanitizer\\|runtime error' %s/*.log >&2; "
             "tail -n 20 %s/*.log >&2", dir, dir);
    (void)!system(cmd);
}

static redisReply *
cmdv(int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(rc, argc, argv, NULL);
    ck_assert_msg(r != NULL, "redis: %s", rc->errstr);
    return r;
}

static long long
cmd_int(const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(rc, fmt, arg);
    ck_assert_ptr_nonnull(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

/* The input log: NEVENTS events over 30 keys, mostly in order, some out of order within the
 * 500 ms lateness, some beyond it (late), a few duplicate deliveries. */
static void
load_log(void)
{
    unsigned seed = 42;
    long long ts = 1700000000000000LL;
    redisReply *r = redisCommand(rc, "FLUSHALL");
    freeReplyObject(r);
    for (int i = 0; i < NEVENTS; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned x = seed >> 8;
        ts += (long long)(x % 120) * 1000;
        long long jitter = x % 50 == 0 ? 900000 : (long long)((x >> 7) % 300) * 1000;
        int idn = (x % 97 == 0 && i > 10) ? i - 3 : i;
        char key[16], id[24], sid[32], tsb[32], val[16];
        snprintf(key, sizeof(key), "k%u", (x >> 3) % 30);
        snprintf(id, sizeof(id), "ev-%d", idn);
        snprintf(sid, sizeof(sid), "%d-1", i + 1);
        snprintf(tsb, sizeof(tsb), "%lld", ts - jitter);
        snprintf(val, sizeof(val), "%u", x % 17);
        static const char *types[] = {"A", "B", "C", "D"};
        char stream[32];
        uint32_t p = astro_partition_of(key, strlen(key), NPART);
        ck_assert_int_eq(astro_stream_key(stream, sizeof(stream), "mono", p), 0);
        const char *argv[] = {"XADD", stream, sid, "id", id, "ts", tsb, "src",
                              (x >> 11) % 2 ? "axon_1" : "axon_2", "key", key, "type",
                              types[(x >> 5) % 4], "val", val};
        freeReplyObject(cmdv(15, argv));
    }
}

static pid_t
spawn(int slot, const char *name, int batch)
{
    char url[320], b[48], log[320], rules[320], inst[160];
    const char *bin = getenv("ASTRO_LEAFLET_BIN");
    ck_assert_msg(bin != NULL, "ASTRO_LEAFLET_BIN not set");
    snprintf(url, sizeof(url), "ASTRO_REDIS_URL=%s", harness_server_url(srv));
    snprintf(b, sizeof(b), "ASTRO_LEAFLET_BATCH=%d", batch);
    snprintf(log, sizeof(log), "%s/%s.log", dir, name);
    snprintf(rules, sizeof(rules), "ASTRO_RULES_FILE=%s", rules_path);
    snprintf(inst, sizeof(inst), "ASTRO_INSTANCE=%s", name);
    snprintf(names[slot], sizeof(names[slot]), "%s", name);
    const char *const set[] = {url, "ASTRO_PARTITIONS=4", rules, "ASTRO_HTTP_PORT=0",
                               "ASTRO_HTTP_BIND=127.0.0.1", "ASTRO_HTTP_THREADS=1", inst,
                               "ASTRO_LEAFLET_LATENESS=500ms", "ASTRO_LEAFLET_IDLE=300ms",
                               "ASTRO_LEAFLET_LEASE=1s", b, "ASTRO_LOG_LEVEL=info", series_ttl,
                               NULL};
    const char *const argv[] = {"astro-leaflet", NULL};
    pid_t pid = harness_spawn(bin, argv, set, NULL, log);
    ck_assert_int_ge(pid, 0);
    workers[slot] = pid;
    return pid;
}

/* Sends sig and waits (bounded) for the exit; returns the exit status (or -signal). */
static int
stop_worker(int slot, int sig)
{
    if (workers[slot] <= 0)
        return 0;
    int st = 0;
    kill(workers[slot], sig);
    for (int i = 0; i < 200; i++) {
        if (waitpid(workers[slot], &st, WNOHANG) == workers[slot]) {
            workers[slot] = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
        }
        msleep(50);
    }
    kill(workers[slot], SIGKILL);
    waitpid(workers[slot], &st, 0);
    workers[slot] = 0;
    ck_abort_msg("worker %s did not exit within 10 s of signal %d", names[slot], sig);
    return -1;
}

static void
kill_all(void)
{
    for (int i = 0; i < MAXW; i++)
        if (workers[i] > 0) {
            kill(workers[i], SIGKILL);
            waitpid(workers[i], NULL, 0);
            workers[i] = 0;
        }
}

/* Sum over partitions of pending entries plus undelivered ones, and the total stream length. */
static long long
backlog(long long *total_len)
{
    long long left = 0;
    *total_len = 0;
    for (uint32_t p = 0; p < NPART; p++) {
        char mono[32], multi[32];
        (void)!astro_stream_key(mono, sizeof(mono), "mono", p);
        (void)!astro_stream_key(multi, sizeof(multi), "multi", p);
        *total_len += cmd_int("XLEN %s", mono) + cmd_int("XLEN %s", multi);
        redisReply *g = redisCommand(rc, "XINFO GROUPS %s", mono);
        redisReply *s = redisCommand(rc, "XINFO STREAM %s", mono);
        const char *delivered = NULL, *generated = NULL;
        long long pending = 1;
        for (size_t i = 0; g && g->type == REDIS_REPLY_ARRAY && i < g->elements; i++) {
            const redisReply *gr = g->element[i];
            for (size_t k = 0; k + 1 < gr->elements; k += 2) {
                if (strcmp(gr->element[k]->str, "pending") == 0)
                    pending = gr->element[k + 1]->integer;
                if (strcmp(gr->element[k]->str, "last-delivered-id") == 0)
                    delivered = gr->element[k + 1]->str;
            }
        }
        for (size_t k = 0; s && s->type == REDIS_REPLY_ARRAY && k + 1 < s->elements; k += 2)
            if (strcmp(s->element[k]->str, "last-generated-id") == 0)
                generated = s->element[k + 1]->str;
        left += pending + (delivered && generated && strcmp(delivered, generated) == 0 ? 0 : 1);
        freeReplyObject(g);
        freeReplyObject(s);
    }
    return left;
}

/* Waits until everything is delivered and acked and the streams stop growing (no marker for
 * 1.2 s: every window is closed). */
static void
wait_quiet(int timeout_s)
{
    long long last_len = -1;
    int stable = 0;
    for (int i = 0; i < timeout_s * 10; i++) {
        long long len;
        long long left = backlog(&len);
        stable = (left == 0 && len == last_len) ? stable + 1 : 0;
        last_len = len;
        if (stable >= 12)
            return;
        msleep(100);
    }
    dump_logs(); /* a failed test in fork mode skips the teardown */
    ck_abort_msg("leaflet did not drain within %d s", timeout_s);
}

struct outset {
    char **v;
    size_t n;
};

static int
cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every multi event as "id|lineage" and every late event as "late|id", sorted. */
static void
collect(struct outset *o)
{
    o->n = 0;
    o->v = calloc(4 * NEVENTS, sizeof(char *));
    char key[NPART + 1][32];
    for (uint32_t p = 0; p < NPART; p++)
        (void)!astro_stream_key(key[p], sizeof(key[p]), "multi", p);
    snprintf(key[NPART], sizeof(key[NPART]), "astro:late");
    for (int s = 0; s <= NPART; s++) {
        redisReply *r = redisCommand(rc, "XRANGE %s - +", key[s]);
        ck_assert(r && r->type == REDIS_REPLY_ARRAY);
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *fv = r->element[i]->element[1];
            const char *id = "", *lin = "";
            for (size_t k = 0; k + 1 < fv->elements; k += 2) {
                if (strcmp(fv->element[k]->str, "id") == 0)
                    id = fv->element[k + 1]->str;
                if (strcmp(fv->element[k]->str, "lin") == 0)
                    lin = fv->element[k + 1]->str;
            }
            size_t len = strlen(id) + strlen(lin) + 8;
            ck_assert_uint_lt(o->n, 4 * NEVENTS);
            o->v[o->n] = malloc(len);
            snprintf(o->v[o->n++], len, "%s|%s", s == NPART ? "late" : id, s == NPART ? id : lin);
        }
        freeReplyObject(r);
    }
    qsort(o->v, o->n, sizeof(*o->v), cmpstr);
}

static void
free_set(struct outset *o)
{
    for (size_t i = 0; i < o->n; i++)
        free(o->v[i]);
    free(o->v);
}

static void
assert_same(const struct outset *want, const char *what)
{
    struct outset got;
    collect(&got);
    ck_assert_msg(got.n == want->n, "%s: %zu outputs, reference run has %zu", what, got.n,
                  want->n);
    for (size_t i = 0; i < got.n; i++)
        ck_assert_msg(strcmp(got.v[i], want->v[i]) == 0, "%s: output %zu differs:\n %s\n %s",
                      what, i, got.v[i], want->v[i]);
    free_set(&got);
}

static void
setup(void)
{
    passed = false;
    series_ttl = "ASTRO_LEAFLET_SERIES_TTL=168h";
    snprintf(dir, sizeof(dir), "/tmp/astro-leaflet-it-%d-XXXXXX", (int)getpid());
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(rules_path, sizeof(rules_path), "%s/test.rules", dir);
    FILE *f = fopen(rules_path, "w");
    fputs(RULES, f);
    fclose(f);
    srv = harness_redis_start(NULL);
    ck_assert_ptr_nonnull(srv);
    rc = redisConnect("127.0.0.1", harness_server_port(srv));
    ck_assert(rc && !rc->err);
}


static void
teardown(void)
{
    kill_all();
    if (!passed)
        dump_logs();
    redisFree(rc);
    harness_server_free(srv);
    char cmd[320];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    (void)!system(cmd);
}


static struct outset reference;

static void
reference_run(void)
{
    load_log();
    spawn(0, "ref", 500);
    wait_quiet(60);
    ck_assert_int_eq(stop_worker(0, SIGTERM), 0);
    collect(&reference);
    ck_assert_uint_gt(reference.n, 200);
}

START_TEST(same_outputs_under_batches_kills_and_rebalancing)
{
    reference_run();
    size_t nmulti = 0, nlate = 0;
    for (size_t i = 0; i < reference.n; i++) {
        if (strncmp(reference.v[i], "late|", 5) == 0)
            nlate++;
        else
            nmulti++;
    }
    fprintf(stderr, "reference: %zu multi events, %zu late events\n", nmulti, nlate);
    ck_assert_uint_gt(nlate, 0);

    /* a different batch size */
    load_log();
    spawn(0, "batch7", 7);
    wait_quiet(240);
    ck_assert_int_eq(stop_worker(0, SIGTERM), 0);
    assert_same(&reference, "batch size 7");

    /* SIGKILL at random points; every other restart under a new name */
    load_log();
    srand(7);
    char name[32];
    int mid_run_kills = 0;
    for (int k = 0; k < 6; k++) {
        snprintf(name, sizeof(name), "crash%d", k / 2);
        spawn(0, name, 1 + k % 3);
        msleep(100 + rand() % 300);
        ck_assert_int_eq(stop_worker(0, SIGKILL), -SIGKILL);
        long long len, left = backlog(&len);
        fprintf(stderr, "SIGKILL %d: backlog %lld (pending entries + partitions not fully read)\n", k,
                left);
        mid_run_kills += left > 0;
    }
    ck_assert_msg(mid_run_kills >= 3, "the kills must interrupt work in progress");
    spawn(0, "crash-final", 50);
    wait_quiet(240);
    ck_assert_int_eq(stop_worker(0, SIGTERM), 0);
    assert_same(&reference, "SIGKILL and restarts");

    /* 1 -> 3 -> 2 workers */
    load_log();
    spawn(0, "w1", 1);
    msleep(200);
    spawn(1, "w2", 1);
    spawn(2, "w3", 1);
    msleep(600);
    long long len;
    ck_assert_msg(backlog(&len) > 0, "the rebalancing must happen while work is left");
    ck_assert_int_eq(stop_worker(1, SIGTERM), 0);
    wait_quiet(240);
    ck_assert_int_eq(stop_worker(0, SIGTERM), 0);
    ck_assert_int_eq(stop_worker(2, SIGTERM), 0);
    assert_same(&reference, "1->3->2 workers");
    free_set(&reference);
    passed = true;
}
END_TEST

START_TEST(bad_rules_file_exits_2)
{
    FILE *f = fopen(rules_path, "w");
    fputs("rule r\n  all A,\n  within 2s\n", f);
    fclose(f);
    spawn(0, "bad", 10);
    int st = 0;
    for (int i = 0; i < 100 && waitpid(workers[0], &st, WNOHANG) == 0; i++)
        msleep(50);
    workers[0] = 0;
    ck_assert(WIFEXITED(st));
    ck_assert_int_ne(WEXITSTATUS(st), 0);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "grep -q 'test.rules:2:9: expected an event type' %s/bad.log",
             dir);
    ck_assert_msg(system(cmd) == 0, "the log names the file, line and column");
    passed = true;
}
END_TEST

static bool
log_has(const char *name, const char *text)
{
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "grep -qF '%s' %s/%s.log", text, dir, name);
    return system(cmd) == 0;
}

static void
write_rules(const char *text)
{
    FILE *f = fopen(rules_path, "w");
    fputs(text, f);
    fclose(f);
}

/* SIGHUP: a bad file is refused with line:column and the old rules keep matching; a good file
 * replaces them. */
START_TEST(sighup_reloads_rules)
{
    redisReply *r = redisCommand(rc, "FLUSHALL");
    freeReplyObject(r);
    spawn(0, "hup", 50);
    char stream[32], multi[32];
    uint32_t p = astro_partition_of("k1", 2, NPART);
    (void)!astro_stream_key(stream, sizeof(stream), "mono", p);
    (void)!astro_stream_key(multi, sizeof(multi), "multi", p);
    msleep(800);
    write_rules("rule r\n  seq A, B\n  within 2s oops\n");
    kill(workers[0], SIGHUP);
    msleep(500);
    ck_assert(log_has("hup", "rules reload refused"));
    ck_assert(log_has("hup", "test.rules:3:13: unexpected \"oops\""));
    /* the old rules still run: A and B of k1 match type_A_and_B_within_window */
    freeReplyObject(redisCommand(rc, "XADD %s * id h1 ts 1000000 src s key k1 type A val 1",
                                 stream));
    freeReplyObject(redisCommand(rc, "XADD %s * id h2 ts 1100000 src s key k1 type B val 1",
                                 stream));
    write_rules("rule two_d\n  count 2 D\n  within 1s\n");
    msleep(1500); /* the idle marker (300 ms) closes the windows */
    ck_assert_int_eq(cmd_int("XLEN %s", multi), 1);
    kill(workers[0], SIGHUP);
    msleep(500);
    ck_assert(log_has("hup", "rules reloaded: 1 rules"));
    freeReplyObject(redisCommand(rc, "XADD %s * id h3 ts 5000000 src s key k1 type D val 1",
                                 stream));
    freeReplyObject(redisCommand(rc, "XADD %s * id h4 ts 5100000 src s key k1 type D val 1",
                                 stream));
    long long n = 0;
    for (int i = 0; i < 50 && (n = cmd_int("XLEN %s", multi)) < 2; i++)
        msleep(100);
    ck_assert_int_eq(n, 2);
    redisReply *last = redisCommand(rc, "XREVRANGE %s + - COUNT 1", multi);
    ck_assert(last && last->elements == 1);
    const redisReply *fv = last->element[0]->element[1];
    bool rule_ok = false;
    for (size_t k = 0; k + 1 < fv->elements; k += 2)
        if (strcmp(fv->element[k]->str, "rule") == 0)
            rule_ok = strcmp(fv->element[k + 1]->str, "two_d") == 0;
    freeReplyObject(last);
    ck_assert_msg(rule_ok, "the new rule produced the last output");
    /* an undecodable entry goes to astro:dead with its reason and does not block the rest */
    freeReplyObject(redisCommand(rc, "XADD %s * id h5 ts notatime src s key k1 type D val 1",
                                 stream));
    for (int i = 0; i < 50 && cmd_int("XLEN %s", "astro:dead") < 1; i++)
        msleep(100);
    ck_assert_int_eq(cmd_int("XLEN %s", "astro:dead"), 1);
    redisReply *pend = redisCommand(rc, "XPENDING %s leaflet", stream);
    ck_assert(pend && pend->type == REDIS_REPLY_ARRAY && pend->element[0]->integer == 0);
    freeReplyObject(pend);
    ck_assert_int_eq(stop_worker(0, SIGTERM), 0);
    ck_assert(log_has("hup", "leases released"));
    passed = true;
}
END_TEST

/* A Redis restart (its data gone: the harness runs it without persistence): the worker
 * reconnects, retakes its partitions and matches what comes next. */
START_TEST(survives_redis_restart)
{
    char stream[32], multi[32];
    uint32_t p = astro_partition_of("k1", 2, NPART);
    (void)!astro_stream_key(stream, sizeof(stream), "mono", p);
    (void)!astro_stream_key(multi, sizeof(multi), "multi", p);
    freeReplyObject(redisCommand(rc, "FLUSHALL"));
    spawn(0, "rr", 50);
    msleep(800);
    ck_assert_int_eq(harness_server_stop(srv, 1), 0);
    msleep(700);
    ck_assert_int_eq(harness_server_restart(srv), 0);
    redisFree(rc);
    rc = redisConnect("127.0.0.1", harness_server_port(srv));
    ck_assert(rc && !rc->err);
    long long n = 0;
    for (int i = 0; i < 100 && n < 1; i++) {
        if (i % 20 == 0) { /* until the worker has retaken the partition and reads again */
            char id[16];
            snprintf(id, sizeof(id), "r%d", i);
            freeReplyObject(redisCommand(rc, "XADD %s * id %sa ts %d000000 src s key k1 type A "
                                             "val 1", stream, id, i + 1));
            freeReplyObject(redisCommand(rc, "XADD %s * id %sb ts %d000001 src s key k1 type B "
                                             "val 1", stream, id, i + 1));
        }
        msleep(100);
        n = cmd_int("XLEN %s", multi);
    }
    ck_assert_int_ge(n, 1);
    ck_assert_int_eq(stop_worker(0, SIGTERM), 0);
    passed = true;
}
END_TEST

/* Candles and outliers (issue 9): a trade log over 40 keys with out-of-order, late, duplicate,
 * bad-volume and price-spike events, closed at the end by far-future "flush" trades, so which
 * candles close does not depend on idle markers. Spikes are diverted by the outlier screen: they
 * must stay out of the candles and of the rule on trades, also after a takeover's replay. */
#define NTRADES 12000
#define CANDLE_RULES                                                                            \
    "rule a_b\n  all A, B\n  within 2s\n"                                                     \
    "rule trade_pair\n  count 2 trade\n  within 5s\n"                                         \
    "outliers trade window 15 k 6 mode divert\n"                                             \
    "candles trade timeframes 1s 5s 1m volume qty\n"                                          \
    "indicators sma 3 ema 3 rsi 3 macd 2 4 2 bollinger 3 2\n"

static void
load_trades(void)
{
    unsigned seed = 9;
    long long ts = 1700000000000000LL;
    freeReplyObject(redisCommand(rc, "FLUSHALL"));
    for (int i = 0; i < NTRADES + NPART * 8; i++) {
        char key[16], id[24], sid[32], tsb[32], val[24], meta[48], stream[32];
        seed = seed * 1103515245u + 12345u;
        unsigned x = seed >> 8;
        bool flush = i >= NTRADES;
        ts += (long long)(x % 40) * 1000;
        long long jitter = x % 60 == 0 ? 900000 : (long long)((x >> 7) % 400) * 1000;
        snprintf(key, sizeof(key), flush ? "~flush%d" : "S%u", flush ? i : (int)((x >> 3) % 40));
        snprintf(id, sizeof(id), "t-%d", (x % 89 == 0 && i > 10 && !flush) ? i - 3 : i);
        snprintf(sid, sizeof(sid), "%d-1", i + 1);
        snprintf(tsb, sizeof(tsb), "%lld", flush ? ts + 600000000LL : ts - jitter);
        /* spikes once every key's outlier window is warm (15 values) */
        snprintf(val, sizeof(val), "%u.%02u",
                 (100 + (x >> 5) % 50) * (x % 53 == 0 && i > 2000 ? 4 : 1), (x >> 11) % 100);
        if (x % 23 == 0)
            snprintf(meta, sizeof(meta), "{\"qty\":\"lots\"}"); /* bad volume */
        else if (x % 7 == 0)
            snprintf(meta, sizeof(meta), "{\"venue\":\"x\"}"); /* no volume: 1 */
        else
            snprintf(meta, sizeof(meta), "{\"qty\":%u.5}", (x >> 13) % 20);
        uint32_t p = astro_partition_of(key, strlen(key), NPART);
        ck_assert_int_eq(astro_stream_key(stream, sizeof(stream), "mono", p), 0);
        const char *argv[] = {"XADD", stream, sid, "id", id, "ts", tsb, "src", "exchange",
                              "key", key, "type", "trade", "val", val, "meta", meta};
        freeReplyObject(cmdv(17, argv));
    }
}

/* Every candle entry (flush keys excluded) as its field/value text, sorted; *sum_n[t] adds up
 * the counts per timeframe (1s, 5s, 1m). */
static void
collect_candles(struct outset *o, long long sum_n[3])
{
    o->n = 0;
    o->v = calloc(2 * NTRADES, sizeof(char *));
    memset(sum_n, 0, 3 * sizeof(*sum_n));
    for (uint32_t p = 0; p < NPART; p++) {
        char agg[32];
        ck_assert_int_eq(astro_stream_key(agg, sizeof(agg), "agg", p), 0);
        redisReply *r = redisCommand(rc, "XRANGE %s - +", agg);
        ck_assert(r && r->type == REDIS_REPLY_ARRAY);
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *fv = r->element[i]->element[1];
            char buf[4096];
            size_t len = 0;
            bool flush = false;
            const char *tf = "", *n = "0";
            for (size_t k = 0; k + 1 < fv->elements; k += 2) {
                const char *f = fv->element[k]->str, *v = fv->element[k + 1]->str;
                flush = flush || (strcmp(f, "key") == 0 && v[0] == '~');
                tf = strcmp(f, "tf") == 0 ? v : tf;
                n = strcmp(f, "n") == 0 ? v : n;
                len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s=%s|", f, v);
                ck_assert_uint_lt(len, sizeof(buf));
            }
            if (flush)
                continue;
            sum_n[strcmp(tf, "1s") == 0 ? 0 : strcmp(tf, "5s") == 0 ? 1 : 2] += atoll(n);
            ck_assert_uint_lt(o->n, 2 * NTRADES);
            o->v[o->n++] = strdup(buf);
        }
        freeReplyObject(r);
    }
    qsort(o->v, o->n, sizeof(*o->v), cmpstr);
}

/* Every astro:outliers entry as "entry|mode|median|mad". */
static void
collect_outliers(struct outset *o)
{
    redisReply *r = redisCommand(rc, "XRANGE astro:outliers - +");
    ck_assert(r && r->type == REDIS_REPLY_ARRAY);
    o->n = 0;
    o->v = calloc(r->elements + 1, sizeof(char *));
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *fv = r->element[i]->element[1];
        const char *f[4] = {"", "", "", ""}, *want[4] = {"entry", "mode", "median", "mad"};
        for (size_t k = 0; k + 1 < fv->elements; k += 2)
            for (int j = 0; j < 4; j++)
                if (strcmp(fv->element[k]->str, want[j]) == 0)
                    f[j] = fv->element[k + 1]->str;
        char buf[256];
        snprintf(buf, sizeof(buf), "%s|%s|%s|%s", f[0], f[1], f[2], f[3]);
        o->v[o->n++] = strdup(buf);
    }
    freeReplyObject(r);
    qsort(o->v, o->n, sizeof(*o->v), cmpstr);
}

static void
assert_same_candles(const struct outset *want, const struct outset *want_multi,
                    const struct outset *want_out, const char *what)
{
    struct outset got, out;
    long long sum[3];
    assert_same(want_multi, what); /* the rule on trades and the late events */
    collect_outliers(&out);
    ck_assert_msg(out.n == want_out->n, "%s: %zu outliers, reference run has %zu", what, out.n,
                  want_out->n);
    for (size_t i = 0; i < out.n; i++)
        ck_assert_str_eq(out.v[i], want_out->v[i]);
    free_set(&out);
    collect_candles(&got, sum);
    ck_assert_msg(got.n == want->n, "%s: %zu candles, reference run has %zu", what, got.n,
                  want->n);
    for (size_t i = 0; i < got.n; i++)
        ck_assert_msg(strcmp(got.v[i], want->v[i]) == 0, "%s: candle %zu differs:\n %s\n %s",
                      what, i, got.v[i], want->v[i]);
    free_set(&got);
}

/* The candle state fields ("b"/"i") in every astro:aggstate:{p} whose key starts with prefix. */
static size_t
state_fields(const char *prefix)
{
    size_t n = 0;
    for (uint32_t p = 0; p < NPART; p++) {
        redisReply *r = redisCommand(rc, "HKEYS astro:aggstate:{%u}", p);
        ck_assert(r && r->type == REDIS_REPLY_ARRAY);
        for (size_t i = 0; i < r->elements; i++) {
            const char *f = r->element[i]->str, *key = strrchr(f, 0x1f);
            n += (f[0] == 'b' || f[0] == 'i') && key && strncmp(key + 1, prefix,
                                                                  strlen(prefix)) == 0;
        }
        freeReplyObject(r);
    }
    return n;
}

/* The trades end 600 s (event time) before the flush keys: with a 2 s TTL every S key's series
 * has expired and its state fields are gone from astro:aggstate, while the flush keys' stay
 * (their 1m candles are open: idle markers close them only some 45 s of wall time later). Keys
 * idle across a candle edge also expire and come back during the run, identically under kills
 * and rebalancing. */
static void
assert_idle_series_dropped(const char *what)
{
    size_t idle = state_fields("S"), live = state_fields("~flush");
    ck_assert_msg(idle == 0, "%s: %zu state fields of expired keys left", what, idle);
    ck_assert_msg(live > 0, "%s: the state of the flush keys is gone", what);
}

START_TEST(same_candles_under_kills_and_rebalancing)
{
    struct outset ref, multi, outl;
    long long sum[3];
    series_ttl = "ASTRO_LEAFLET_SERIES_TTL=2s";
    write_rules(CANDLE_RULES);
    load_trades();
    spawn(0, "cref", 200);
    wait_quiet(60);
    ck_assert_int_eq(stop_worker(0, SIGTERM), 0);
    collect_candles(&ref, sum);
    assert_idle_series_dropped("reference run");
    collect(&multi);
    collect_outliers(&outl);
    long long late = cmd_int("XLEN %s", "astro:late");
    fprintf(stderr, "candles: %zu entries, %lld events in them, %lld late, %zu outliers, %zu "
            "multi+late\n", ref.n, sum[0], late, outl.n, multi.n);
    ck_assert_uint_gt(ref.n, 1000);
    ck_assert_int_gt(late, 0);
    ck_assert_uint_gt(outl.n, 20);
    ck_assert_uint_gt(multi.n, (size_t)late + 20);
    /* every accepted trade is in exactly one candle per timeframe: none lost, none twice; the
     * diverted ones in none */
    ck_assert_int_eq(sum[0], sum[1]);
    ck_assert_int_eq(sum[1], sum[2]);
    ck_assert_int_le(sum[0], NTRADES - late - (long long)outl.n);
    ck_assert_int_ge(sum[0], NTRADES - late - (long long)outl.n - NTRADES / 89 - 1);
    for (size_t i = 0; i < ref.n; i++)
        ck_assert_msg(strstr(ref.v[i], "|h=4") == NULL && strstr(ref.v[i], "|h=5") == NULL,
                      "a spike reached a candle: %s", ref.v[i]);
    for (size_t i = 1; i < ref.n; i++) { /* one entry per (key, type, tf, bucket) */
        const char *a = strstr(ref.v[i - 1], "|o="), *b = strstr(ref.v[i], "|o=");
        ck_assert(a && b);
        ck_assert_msg(a - ref.v[i - 1] != b - ref.v[i] ||
                          strncmp(ref.v[i - 1], ref.v[i], (size_t)(a - ref.v[i - 1])) != 0,
                      "duplicate candle %s", ref.v[i]);
    }

    load_trades();
    srand(11);
    int mid_run_kills = 0;
    for (int k = 0; k < 5; k++) {
        char name[32];
        snprintf(name, sizeof(name), "ccrash%d", k / 2);
        spawn(0, name, 1 + k % 3);
        msleep(60 + rand() % 200);
        ck_assert_int_eq(stop_worker(0, SIGKILL), -SIGKILL);
        long long len;
        mid_run_kills += backlog(&len) > 0;
    }
    ck_assert_msg(mid_run_kills >= 3, "the kills must interrupt work in progress");
    spawn(0, "ccrash-final", 50);
    wait_quiet(120);
    ck_assert_int_eq(stop_worker(0, SIGTERM), 0);
    assert_same_candles(&ref, &multi, &outl, "SIGKILL and restarts");
    assert_idle_series_dropped("SIGKILL and restarts");

    load_trades();
    spawn(0, "c1", 5);
    msleep(300);
    long long len;
    ck_assert_msg(backlog(&len) > 0, "the rebalancing must happen while work is left");
    spawn(1, "c2", 5);
    wait_quiet(120);
    ck_assert_int_eq(stop_worker(0, SIGTERM), 0);
    ck_assert_int_eq(stop_worker(1, SIGTERM), 0);
    assert_same_candles(&ref, &multi, &outl, "1->2 workers");
    assert_idle_series_dropped("1->2 workers");
    free_set(&ref);
    free_set(&multi);
    free_set(&outl);
    passed = true;
}
END_TEST

/* `publish`: each commit PUBLISHes the running state of the open candles it changed. And a
 * quiet key's last candle is closed by an idle watermark marker (no later trade needed). */
START_TEST(open_candles_published)
{
    freeReplyObject(redisCommand(rc, "FLUSHALL"));
    write_rules("candles trade timeframes 1s 1h volume qty publish\n");
    redisContext *sub = redisConnect("127.0.0.1", harness_server_port(srv));
    ck_assert(sub && !sub->err);
    struct timeval tv = {1, 0};
    redisSetTimeout(sub, tv);
    freeReplyObject(redisCommand(sub, "SUBSCRIBE astro:candles:live"));
    spawn(0, "live", 50);
    char stream[32];
    uint32_t p = astro_partition_of("k1", 2, NPART);
    (void)!astro_stream_key(stream, sizeof(stream), "mono", p);
    static const char *const vals[] = {"10", "12.5", "11"};
    bool seen = false;
    for (int i = 0; i < 3; i++)
        freeReplyObject(redisCommand(rc, "XADD %s * id live%d ts %d src x key k1 type trade "
                                         "val %s meta {\"qty\":2}", stream, i,
                                     1700000000 + i, vals[i]));
    for (int tries = 0; tries < 15 && !seen; tries++) { /* messages as commits happen */
        redisReply *m = NULL;
        if (redisGetReply(sub, (void **)&m) != REDIS_OK) {
            sub->err = 0; /* a read timeout: keep waiting */
            continue;
        }
        if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 && m->element[2]->str != NULL) {
            const char *t = m->element[2]->str;
            ck_assert_ptr_nonnull(strstr(t, "\"key\":\"k1\""));
            seen = strstr(t, "\"timeframe\":\"1s\"") && strstr(t, "\"count\":3") &&
                   strstr(t, "\"high\":12.5") && strstr(t, "\"close\":11") &&
                   strstr(t, "\"volume\":6");
        }
        freeReplyObject(m);
    }
    redisFree(sub);
    ck_assert_msg(seen, "no live 1s candle of k1 with all three trades");
    /* the 1s bucket ends 1 s after the trades: with lateness 500 ms and idle 300 ms, markers
     * close it within about 2 s of wall time; the 1h bucket stays open */
    char agg[32];
    (void)!astro_stream_key(agg, sizeof(agg), "agg", p);
    for (int i = 0; i < 80 && cmd_int("XLEN %s", agg) < 1; i++)
        msleep(100);
    msleep(500);
    redisReply *r = redisCommand(rc, "XRANGE %s - +", agg);
    ck_assert(r && r->type == REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 1);
    const redisReply *fv = r->element[0]->element[1];
    for (size_t k = 0; k + 1 < fv->elements; k += 2) {
        if (strcmp(fv->element[k]->str, "tf") == 0)
            ck_assert_str_eq(fv->element[k + 1]->str, "1s");
        if (strcmp(fv->element[k]->str, "n") == 0)
            ck_assert_str_eq(fv->element[k + 1]->str, "3");
    }
    freeReplyObject(r);
    ck_assert_int_eq(stop_worker(0, SIGTERM), 0);
    passed = true;
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("leaflet");
    TCase *tc = tcase_create("determinism");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 170);
    tcase_add_test(tc, same_outputs_under_batches_kills_and_rebalancing);
    tcase_add_test(tc, bad_rules_file_exits_2);
    tcase_add_test(tc, sighup_reloads_rules);
    tcase_add_test(tc, survives_redis_restart);
    tcase_add_test(tc, same_candles_under_kills_and_rebalancing);
    tcase_add_test(tc, open_candles_published);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* The matcher, table-driven: each operator, per-key isolation, consumption vs reuse,
 * out-of-order input within the lateness, late events, duplicates, absence at the watermark,
 * the idle advance (a watermark marker), window edges; and the rebuild property the daemon
 * relies on: replaying silently from the checkpoint reproduces exactly the uninterrupted run. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matcher.h"

struct out {
    char s[16384];
    size_t len;
    const struct cep_ruleset *rs;
};

static void
on_match(void *arg, size_t rule, const struct astro_event *ev)
{
    struct out *o = arg;
    int n = snprintf(o->s + o->len, sizeof(o->s) - o->len, "%s/%s/", o->rs->rules[rule].name,
                     ev->key);
    o->len += (size_t)n;
    for (size_t i = 0; i < ev->n_sources; i++)
        o->len += (size_t)snprintf(o->s + o->len, sizeof(o->s) - o->len, "%s%s", i ? "+" : "",
                                   ev->lineage[i].id);
    o->len += (size_t)snprintf(o->s + o->len, sizeof(o->s) - o->len, "@%lld=%g~%g;",
                               (long long)(ev->ts_us / 1000), ev->integrated_value,
                               ev->confidence);
}

static void
on_late(void *arg, const struct astro_event *ev, struct cep_sid sid, int64_t wm)
{
    struct out *o = arg;
    (void)sid, (void)wm;
    o->len += (size_t)snprintf(o->s + o->len, sizeof(o->s) - o->len, "late:%s;", ev->id);
}

/* One input entry: "id:type:src:key:ts_ms:value" or "w:ts_ms" (a watermark marker). */
static void
feed_one(struct cep_matcher *m, const char *entry, uint64_t seq)
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof(buf), "%s", entry);
    struct cep_sid sid = {seq, 0};
    char *f[6] = {0};
    int n = 0;
    for (char *t = strtok_r(buf, ":", &save); t && n < 6; t = strtok_r(NULL, ":", &save))
        f[n++] = t;
    if (n == 2 && strcmp(f[0], "w") == 0) {
        ck_assert_int_eq(cep_matcher_mark(m, atoll(f[1]) * 1000, sid), ASTRO_OK);
        return;
    }
    ck_assert_msg(n == 6, "bad entry %s", entry);
    struct astro_event ev = {.ts_us = atoll(f[4]) * 1000, .src = f[2], .key = f[3],
                             .type = f[1], .value = atof(f[5])};
    snprintf(ev.id, sizeof(ev.id), "%s", f[0]);
    ck_assert_int_eq(cep_matcher_push(m, &ev, sid), ASTRO_OK);
}

static void
feed(struct cep_matcher *m, const char *script)
{
    char buf[4096], *save = NULL;
    uint64_t seq = 1;
    snprintf(buf, sizeof(buf), "%s", script);
    for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
        feed_one(m, t, seq++);
}

#define ALL_AB "rule r\n all A, B\n within 2s\n"
#define REUSE_AB "rule r\n all A, B\n within 2s\n reuse\n"

static const struct mcase {
    const char *name;
    const char *rules;
    int lateness_ms;
    const char *input;
    const char *want;
} cases[] = {
    {"all-of in order", ALL_AB, 0, "a1:A:s:k:0:1 b1:B:s:k:1000:3 w:9000",
     "r/k/a1+b1@1000=2~1;"},
    {"all-of any order", ALL_AB, 0, "b1:B:s:k:0:1 a1:A:s:k:1000:3 w:9000",
     "r/k/b1+a1@1000=2~1;"},
    {"window edge inclusive", ALL_AB, 0, "a1:A:s:k:0:1 b1:B:s:k:2000:3 w:9000",
     "r/k/a1+b1@2000=2~1;"},
    {"window edge exceeded by 1ms", ALL_AB, 0, "a1:A:s:k:0:1 b1:B:s:k:2001:3 w:9000", ""},
    {"per-key isolation", ALL_AB, 0,
     "a1:A:s:k1:0:1 b1:B:s:k2:100:1 b2:B:s:k1:200:1 w:9000", "r/k1/a1+b2@200=1~1;"},
    {"consumption: each event in one match", ALL_AB, 0,
     "a1:A:s:k:0:1 b1:B:s:k:100:1 b2:B:s:k:200:1 a2:A:s:k:300:1 w:9000",
     "r/k/a1+b1@100=1~1;r/k/b2+a2@300=1~1;"},
    {"reuse: each arrival fires with the newest partners", REUSE_AB, 0,
     "a1:A:s:k:0:1 b1:B:s:k:100:1 b2:B:s:k:200:1 a2:A:s:k:300:1 w:9000",
     "r/k/a1+b1@100=1~1;r/k/a1+b2@200=1~1;r/k/b2+a2@300=1~1;"},
    {"out of order within lateness = in order", ALL_AB, 1000,
     "a2:A:s:k:100:1 a1:A:s:k:0:1 b1:B:s:k:500:1 w:9000", "r/k/a1+b1@500=1~1;"},
    {"late event goes out with nothing else", ALL_AB, 0,
     "a1:A:s:k:1000:1 b1:B:s:k:500:1 w:9000", "late:b1;"},
    {"within lateness is not late", ALL_AB, 1000, "a1:A:s:k:1000:1 b1:B:s:k:500:1 w:9000",
     "r/k/b1+a1@1000=1~1;"},
    {"duplicate id ignored", ALL_AB, 0,
     "a1:A:s:k:0:1 a1:A:s:k:0:1 b1:B:s:k:100:1 b2:B:s:k:150:1 w:9000",
     "r/k/a1+b1@100=1~1;"},
    {"absence fires once the watermark passes the window",
     "rule x\n absence A without B\n within 1s\n", 0, "a1:A:s:k:0:7 w:1000 w:1001",
     "x/k/a1@1000=7~1;"},
    {"absence: no output before the watermark passes",
     "rule x\n absence A without B\n within 1s\n", 0, "a1:A:s:k:0:7 w:1000", ""},
    {"absence cancelled by B at the window edge",
     "rule x\n absence A without B\n within 1s\n", 0, "a1:A:s:k:0:7 b1:B:s:k:1000:1 w:5000",
     ""},
    {"absence: B after the window does not cancel",
     "rule x\n absence A without B\n within 1s\n", 0, "a1:A:s:k:0:7 b1:B:s:k:1001:1 w:5000",
     "x/k/a1@1000=7~1;"},
    {"absence: B at the same instant cancels",
     "rule x\n absence A without B\n within 1s\n", 0, "b1:B:s:k:0:1 a1:A:s:k:0:7 w:5000", ""},
    {"idle marker closes windows and makes older events late", ALL_AB, 0,
     "a1:A:s:k:0:1 w:5000 b1:B:s:k:1000:1", "late:b1;"},
    {"sequence in order", "rule s\n seq A, B, C\n within 2s\n", 0,
     "a1:A:s:k:0:1 b1:B:s:k:10:1 c1:C:s:k:20:1 w:9000", "s/k/a1+b1+c1@20=1~1;"},
    {"sequence out of order does not fire", "rule s\n seq A, B\n within 2s\n", 0,
     "b1:B:s:k:0:1 a1:A:s:k:10:1 w:9000", ""},
    {"sequence ties follow stream order", "rule s\n seq A, B\n within 2s\n", 0,
     "a1:A:s:k:0:1 b1:B:s:k:0:1 b2:B:s:k:5:1 a2:A:s:k:5:1 w:9000", "s/k/a1+b1@0=1~1;"},
    {"count consumes", "rule c\n count 3 T\n within 1s\n value sum\n", 0,
     "t1:T:s:k:0:1 t2:T:s:k:100:2 t3:T:s:k:200:3 t4:T:s:k:300:4 w:9000",
     "c/k/t1+t2+t3@200=6~1;"},
    {"count with reuse slides", "rule c\n count 3 T\n within 1s\n value sum\n reuse\n", 0,
     "t1:T:s:k:0:1 t2:T:s:k:100:2 t3:T:s:k:200:3 t4:T:s:k:300:4 w:9000",
     "c/k/t1+t2+t3@200=6~1;c/k/t2+t3+t4@300=9~1;"},
    {"count window", "rule c\n count 2 T\n within 1s\n", 0,
     "t1:T:s:k:0:1 t2:T:s:k:1001:2 t3:T:s:k:2001:3 w:9000", "c/k/t2+t3@2001=2.5~1;"},
    {"predicates on value and source",
     "rule p\n all A where value > 5, B from s2\n within 1s\n value max\n", 0,
     "a1:A:s:k:0:3 b1:B:s1:k:10:9 a2:A:s:k:20:6 b2:B:s2:k:30:1 w:9000",
     "p/k/a2+b2@30=6~1;"},
    {"global scope spans keys", "rule g\n all A, B\n within 1s\n global\n", 0,
     "a1:A:s:k1:0:1 b1:B:s:k2:10:1 w:9000", "g//a1+b1@10=1~1;"},
    {"min: a partial match fires at the window end",
     "rule p\n all A, B, C\n within 1s\n min 2\n value first\n", 0,
     "a1:A:s:k:0:4 b1:B:s:k:100:8 w:5000", "p/k/a1+b1@1000=4~0.666667;"},
    {"min: too few parts do not fire", "rule p\n all A, B, C\n within 1s\n min 2\n", 0,
     "a1:A:s:k:0:4 a2:A:s:k:100:8 w:5000", ""},
    {"last value and formula confidence",
     "rule r\n all A, B\n within 1s\n value last\n confidence 0.5 * matched / required\n", 0,
     "b1:B:s:k:0:4 a1:A:s:k:100:8 w:5000", "r/k/b1+a1@100=8~0.5;"},
    {"two rules see the same event (convergence)",
     "rule ab\n all A, B\n within 2s\nrule abc\n all A, B, C\n within 2s\n", 0,
     "a1:A:s:k:0:1 b1:B:s:k:10:1 c1:C:s:k:20:1 w:9000",
     "ab/k/a1+b1@10=1~1;abc/k/a1+b1+c1@20=1~1;"},
};

START_TEST(operator_table)
{
    const struct mcase *c = &cases[_i];
    struct cep_ruleset rs;
    char err[256];
    ck_assert_msg(cep_rules_parse(c->rules, strlen(c->rules), &rs, err, sizeof(err)) ==
                      ASTRO_OK, "%s: %s", c->name, err);
    struct out o = {.len = 0, .rs = &rs};
    o.s[0] = '\0';
    struct cep_sink sink = {on_match, on_late, &o};
    struct cep_matcher_opts opt = {.lateness_us = c->lateness_ms * 1000};
    struct cep_matcher *m = cep_matcher_new(&rs, &opt, &sink);
    ck_assert_ptr_nonnull(m);
    feed(m, c->input);
    ck_assert_msg(strcmp(o.s, c->want) == 0, "%s:\n got  %s\n want %s", c->name, o.s, c->want);
    cep_matcher_free(m);
    cep_ruleset_free(&rs);
}
END_TEST

START_TEST(eviction_is_counted_and_bounded)
{
    struct cep_ruleset rs;
    char err[256];
    ck_assert_int_eq(cep_rules_parse(ALL_AB, strlen(ALL_AB), &rs, err, sizeof(err)), ASTRO_OK);
    struct out o = {.len = 0, .rs = &rs};
    struct cep_sink sink = {on_match, on_late, &o};
    struct cep_matcher_opts opt = {.lateness_us = 0, .max_held = 2};
    struct cep_matcher *m = cep_matcher_new(&rs, &opt, &sink);
    feed(m, "a1:A:s:k:0:1 a2:A:s:k:1:1 a3:A:s:k:2:1 a4:A:s:k:3:1 b1:B:s:k:4:1 w:9000");
    struct cep_matcher_stats st;
    cep_matcher_stats(m, &st);
    /* the rule keeps 2 items: a1 and a2 were evicted (oldest first) to make room */
    ck_assert_uint_eq(st.evicted, 2);
    ck_assert_str_eq(o.s, "r/k/a3+b1@4=1~1;");
    ck_assert_uint_eq(st.matches[0], 1);
    ck_assert_uint_eq(st.held, 0);
    ck_assert(!cep_matcher_busy(m));
    cep_matcher_free(m);
    cep_ruleset_free(&rs);
}
END_TEST

/* ---- rebuild: replay from the checkpoint reproduces the uninterrupted run ---------------- */

#define NENT 400
static char entries[NENT][96];

struct rec {
    char line[NENT * 2][160];
    int at[NENT * 2]; /* entry index being fed when the output came */
    size_t n;
    int cur;
    const struct cep_ruleset *rs;
};

static void
rec_match(void *arg, size_t rule, const struct astro_event *ev)
{
    struct rec *r = arg;
    ck_assert_uint_lt(r->n, NENT * 2);
    int n = snprintf(r->line[r->n], sizeof(r->line[0]), "%s %s %s:", r->rs->rules[rule].name,
                     ev->id, ev->key);
    for (size_t i = 0; i < ev->n_sources && n < 150; i++)
        n += snprintf(r->line[r->n] + n, sizeof(r->line[0]) - (size_t)n, " %s",
                      ev->lineage[i].id);
    r->at[r->n++] = r->cur;
}

static void
rec_late(void *arg, const struct astro_event *ev, struct cep_sid sid, int64_t wm)
{
    (void)arg, (void)ev, (void)sid, (void)wm;
}

static void
make_log(unsigned seed)
{
    static const char *types[] = {"A", "B", "C", "D"};
    long long ts = 0;
    for (int i = 0; i < NENT; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 8;
        if (r % 29 == 0) {
            snprintf(entries[i], sizeof(entries[i]), "w:%lld", ts + (long long)(r % 3000));
            continue;
        }
        ts += (long long)(r % 400);
        long long jitter = (long long)((r >> 9) % 700); /* some beyond the 500 ms lateness */
        int dup = (r % 37 == 0 && i > 0);
        snprintf(entries[i], sizeof(entries[i]), "e%d:%s:s:k%u:%lld:%u", dup ? i - 1 : i,
                 types[(r >> 3) % 4], (r >> 5) % 3, ts - jitter, r % 100);
    }
}

static const char *REBUILD_RULES =
    "rule ab\n all A, B\n within 2s\n"
    "rule abc\n all A, B, C\n within 2s\n min 2\n"
    "rule seq\n seq A, C\n within 1s\n"
    "rule cnt\n count 3 D\n within 1500ms\n reuse\n"
    "rule abs\n absence A without B\n within 1s\n"
    "rule glob\n all C, D\n within 500ms\n global\n";

static struct rec full, part1, part2;

static bool
consumed(void *arg, size_t rule, const char *id)
{
    const struct rec *r = arg;
    const char *name = r->rs->rules[rule].name;
    char needle[80];
    snprintf(needle, sizeof(needle), " %s", id);
    size_t nl = strlen(name), il = strlen(needle);
    for (size_t i = 0; i < r->n; i++) {
        const char *l = r->line[i];
        if (strncmp(l, name, nl) != 0 || l[nl] != ' ')
            continue;
        for (const char *p = strchr(l, ':'); p && (p = strstr(p, needle)); p += il)
            if (p[il] == ' ' || p[il] == '\0')
                return true;
    }
    return false;
}

static struct cep_matcher *
new_matcher(const struct cep_ruleset *rs, struct rec *r)
{
    static struct cep_sink sinks[3];
    int i = r == &full ? 0 : r == &part1 ? 1 : 2;
    sinks[i] = (struct cep_sink){rec_match, rec_late, r};
    struct cep_matcher_opts opt = {.lateness_us = 500000};
    memset(r, 0, sizeof(*r));
    r->rs = rs;
    return cep_matcher_new(rs, &opt, &sinks[i]);
}

START_TEST(replay_from_checkpoint_is_exact)
{
    struct cep_ruleset rs;
    char err[256];
    ck_assert_int_eq(cep_rules_parse(REBUILD_RULES, strlen(REBUILD_RULES), &rs, err,
                                     sizeof(err)), ASTRO_OK);
    make_log(1234u + (unsigned)_i);
    struct cep_matcher *m = new_matcher(&rs, &full);
    for (int i = 0; i < NENT; i++) {
        full.cur = i;
        feed_one(m, entries[i], (uint64_t)i + 1);
    }
    ck_assert_uint_gt(full.n, 20);
    cep_matcher_free(m);
    for (int cut = 1; cut < NENT; cut += 7) {
        m = new_matcher(&rs, &part1);
        for (int i = 0; i < cut; i++)
            feed_one(m, entries[i], (uint64_t)i + 1);
        struct cep_sid r;
        int64_t wm;
        ck_assert(cep_matcher_checkpoint(m, &r, &wm));
        cep_matcher_free(m);
        struct cep_matcher *m2 = new_matcher(&rs, &part2);
        cep_matcher_set_watermark(m2, wm);
        cep_matcher_set_silent(m2, true, consumed, &part1);
        for (int i = (int)r.ms - 1; i < cut; i++)
            feed_one(m2, entries[i], (uint64_t)i + 1);
        cep_matcher_set_silent(m2, false, NULL, NULL);
        for (int i = cut; i < NENT; i++)
            feed_one(m2, entries[i], (uint64_t)i + 1);
        cep_matcher_free(m2);
        /* part1 + part2 must be the full run, in order */
        ck_assert_uint_eq(part1.n + part2.n, full.n);
        for (size_t k = 0; k < full.n; k++) {
            const char *got = k < part1.n ? part1.line[k] : part2.line[k - part1.n];
            ck_assert_msg(strcmp(got, full.line[k]) == 0, "cut %d output %zu: %s != %s", cut,
                          k, got, full.line[k]);
        }
    }
    cep_ruleset_free(&rs);
}
END_TEST

/* ---- storage at scale ---------------------------------------------------------------------
 * 6000 events over 300 keys and 3 sources, 1 ms apart, about 2000 held at once (several slabs
 * of the hold queue, thousands of ids and keys in the indexes), arriving up to 1.5 s out of
 * order (beyond the reorder run's reach, so through its heap too) with a 2 s lateness: the
 * outputs are exactly those of the same events fed in event-time order; and sending every event
 * twice adds only counted duplicates. */

#define NBIG 6000

struct bigev {
    char id[16], key[8], src[8];
    const char *type;
    long long ts_ms, arrive;
};
static struct bigev big[NBIG];

struct digest {
    uint64_t h;
    size_t n;
    const struct cep_ruleset *rs;
};

static void
mix(struct digest *d, const char *s)
{
    for (; *s; s++)
        d->h = (d->h ^ (unsigned char)*s) * 1099511628211u;
    d->h = (d->h ^ '|') * 1099511628211u;
}

static void
digest_match(void *arg, size_t rule, const struct astro_event *ev)
{
    struct digest *d = arg;
    char ts[32];
    mix(d, d->rs->rules[rule].name);
    mix(d, ev->id);
    mix(d, ev->key);
    for (size_t i = 0; i < ev->n_sources; i++)
        mix(d, ev->lineage[i].id);
    snprintf(ts, sizeof(ts), "%lld %.17g", (long long)ev->ts_us, ev->integrated_value);
    mix(d, ts);
    d->n++;
}

static int
by_arrival(const void *a, const void *b)
{
    const struct bigev *x = a, *y = b;
    if (x->arrive != y->arrive)
        return x->arrive < y->arrive ? -1 : 1;
    return x->ts_ms < y->ts_ms ? -1 : x->ts_ms > y->ts_ms;
}

static void
make_big(bool shuffled)
{
    static const char *types[] = {"A", "B", "C", "D"};
    unsigned seed = 99;
    for (int i = 0; i < NBIG; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 8;
        struct bigev *e = &big[i];
        snprintf(e->id, sizeof(e->id), "big-%d", i);
        snprintf(e->key, sizeof(e->key), "k%u", r % 300);
        snprintf(e->src, sizeof(e->src), "s%u", (r >> 9) % 3);
        e->type = types[(r >> 11) % 4];
        e->ts_ms = 1000 + i;
        long long delay = r % 50 == 0 ? (long long)((r >> 13) % 1500) : (long long)(r % 20);
        e->arrive = shuffled ? e->ts_ms + delay : e->ts_ms;
    }
    qsort(big, NBIG, sizeof(big[0]), by_arrival);
}

static struct digest
run_big(const struct cep_ruleset *rs, bool twice, struct cep_matcher_stats *st)
{
    struct digest d = {14695981039346656037u, 0, rs};
    struct cep_sink sink = {digest_match, rec_late, &d}; /* late events: counted in stats */
    struct cep_matcher_opts opt = {.lateness_us = 2000000};
    struct cep_matcher *m = cep_matcher_new(rs, &opt, &sink);
    ck_assert_ptr_nonnull(m);
    uint64_t seq = 1;
    for (int i = 0; i < NBIG; i++) {
        for (int k = 0; k < (twice ? 2 : 1); k++) {
            struct astro_event ev = {.ts_us = big[i].ts_ms * 1000, .src = big[i].src,
                                     .key = big[i].key, .type = (char *)big[i].type,
                                     .value = (double)(big[i].ts_ms % 17)};
            memcpy(ev.id, big[i].id, sizeof(big[i].id));
            ck_assert_int_eq(cep_matcher_push(m, &ev, (struct cep_sid){seq++, 0}), ASTRO_OK);
        }
    }
    ck_assert_int_eq(cep_matcher_mark(m, INT64_C(1) << 60, (struct cep_sid){seq, 0}), ASTRO_OK);
    cep_matcher_stats(m, st);
    st->matches = NULL;
    ck_assert_uint_eq(st->held, 0);
    ck_assert_uint_eq(st->keys, 0);
    cep_matcher_free(m);
    return d;
}

START_TEST(storage_at_scale_keeps_the_semantics)
{
    struct cep_ruleset rs;
    char err[256];
    ck_assert_int_eq(cep_rules_parse(REBUILD_RULES, strlen(REBUILD_RULES), &rs, err,
                                     sizeof(err)), ASTRO_OK);
    struct cep_matcher_stats st;
    make_big(false);
    struct digest in_order = run_big(&rs, false, &st);
    ck_assert_uint_gt(in_order.n, 500);
    ck_assert_uint_eq(st.late + st.duplicates + st.evicted, 0);
    make_big(true);
    ck_assert_str_ne(big[100].id, "big-100"); /* really out of order */
    struct digest shuffled = run_big(&rs, false, &st);
    ck_assert_uint_eq(st.late + st.duplicates + st.evicted, 0);
    ck_assert_uint_eq(shuffled.n, in_order.n);
    ck_assert_uint_eq(shuffled.h, in_order.h);
    struct digest twice = run_big(&rs, true, &st);
    ck_assert_uint_eq(st.duplicates, NBIG);
    ck_assert_uint_eq(twice.n, in_order.n);
    ck_assert_uint_eq(twice.h, in_order.h);
    cep_ruleset_free(&rs);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("leaflet_matcher");
    TCase *tc = tcase_create("operators");
    tcase_add_loop_test(tc, operator_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, eviction_is_counted_and_bounded);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("rebuild");
    tcase_set_timeout(tr, 60);
    tcase_add_loop_test(tr, replay_from_checkpoint_is_exact, 0, 8);
    suite_add_tcase(s, tr);
    TCase *tb = tcase_create("scale");
    tcase_set_timeout(tb, 60);
    tcase_add_test(tb, storage_at_scale_keeps_the_semantics);
    suite_add_tcase(s, tb);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

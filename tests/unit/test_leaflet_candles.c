/* Candles (services/leaflet/candles.c, aggstate.c, rules_agg.c), no Redis: bucket edges,
 * out-of-order events within the lateness, empty buckets, volume rules, the rules-file
 * statements, the outlier screen, and restart equivalence: state restored from the snapshot
 * fields of any commit continues with exactly the candles of the uninterrupted run. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "candles.h"
#include "outliers.h"
#include "rules.h"

#define MIN_US INT64_C(60000000)
#define T0 (INT64_C(1700000000) * 1000000 / MIN_US * MIN_US) /* a minute edge */

struct got {
    struct astro_candle v[16384];
    char keys[16384][16];
    size_t n;
};

static void
on_candle(void *arg, const struct astro_candle *c)
{
    struct got *g = arg;
    ck_assert_uint_lt(g->n, 16384);
    g->v[g->n] = *c;
    snprintf(g->keys[g->n], sizeof(g->keys[g->n]), "%s", c->key);
    g->v[g->n].key = g->keys[g->n];
    g->n++;
}

static void
cfg_from(const char *text, struct cep_ruleset *rs)
{
    char err[256];
    ck_assert_msg(cep_rules_parse(text, strlen(text), rs, err, sizeof(err)) == ASTRO_OK, "%s",
                  err);
}

static struct cep_sid
sid_of(uint64_t i)
{
    return (struct cep_sid){i, 0};
}

static void
add(struct cep_candles *cs, const char *key, int64_t ts, uint64_t sid, double v, const char *meta)
{
    ck_assert_int_eq(cep_candles_add(cs, key, "trade", ts, sid_of(sid), v, meta), ASTRO_OK);
}

START_TEST(bucket_edges_and_close)
{
    struct cep_ruleset rs;
    struct got *g = calloc(1, sizeof(*g));
    cfg_from("candles trade timeframes 1m 5m\nindicators sma 2\n", &rs);
    struct cep_candles *cs = cep_candles_new(&rs.agg, 0, on_candle, g);
    add(cs, "K", T0, 1, 10, NULL);              /* exactly on the edge: bucket T0 */
    add(cs, "K", T0 + 30000000, 2, 12, NULL);
    add(cs, "K", T0 + MIN_US - 1, 3, 9, NULL);  /* last microsecond of the bucket */
    add(cs, "K", T0 + MIN_US, 4, 11, NULL);     /* on the next edge: next bucket */
    ck_assert_int_eq(cep_candles_advance(cs, T0 + MIN_US - 1), ASTRO_OK);
    ck_assert_uint_eq(g->n, 0); /* an event at T0+1m-1 could still come */
    ck_assert_int_eq(cep_candles_advance(cs, T0 + MIN_US), ASTRO_OK);
    ck_assert_uint_eq(g->n, 1);
    const struct astro_candle *c = &g->v[0];
    ck_assert_str_eq(c->tf, "1m");
    ck_assert_int_eq(c->bucket_us, T0);
    ck_assert_int_eq(c->tf_us, MIN_US);
    ck_assert_double_eq(c->open, 10);
    ck_assert_double_eq(c->high, 12);
    ck_assert_double_eq(c->low, 9);
    ck_assert_double_eq(c->close, 9);
    ck_assert_double_eq(c->volume, 3);
    ck_assert_int_eq(c->count, 3);
    ck_assert_double_eq_tol(c->vwap, 31.0 / 3, 1e-12);
    ck_assert_int_eq(cep_candles_advance(cs, T0 + MIN_US), ASTRO_OK);
    ck_assert_uint_eq(g->n, 1); /* emitted once */
    ck_assert_int_eq(cep_candles_advance(cs, T0 + 5 * MIN_US), ASTRO_OK);
    ck_assert_uint_eq(g->n, 3);
    ck_assert_str_eq(g->v[1].tf, "1m"); /* close order: end, then timeframe */
    ck_assert_int_eq(g->v[1].bucket_us, T0 + MIN_US);
    ck_assert_str_eq(g->v[2].tf, "5m");
    ck_assert_int_eq(g->v[2].count, 4);
    ck_assert_double_eq(g->v[2].close, 11);
    /* sma_2 of the 1m closes: ready at the second candle */
    ck_assert(!g->v[0].ind[0].has_value && !g->v[0].ind[0].ready);
    ck_assert_str_eq(g->v[1].ind[0].name, "sma_2");
    ck_assert(g->v[1].ind[0].ready);
    ck_assert_double_eq(g->v[1].ind[0].value, 10);
    cep_candles_free(cs);
    cep_ruleset_free(&rs);
    free(g);
}
END_TEST

/* The same events in two arrival orders (within the lateness) give identical candles. */
START_TEST(out_of_order_within_lateness)
{
    struct cep_ruleset rs;
    struct got *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    cfg_from("candles trade timeframes 1m\n", &rs);
    static const struct { int64_t dt; double v; } ev[] = {
        {1000000, 5}, {2000000, 7}, {58000000, 6}, {59000000, 8}, {61000000, 1}, {3000000, 2}};
    struct cep_candles *x = cep_candles_new(&rs.agg, 0, on_candle, a);
    struct cep_candles *y = cep_candles_new(&rs.agg, 0, on_candle, b);
    /* x in event-time order, y out of order; stream ids follow the arrival in both */
    static const int ord_x[] = {0, 1, 5, 2, 3, 4}, ord_y[] = {4, 2, 0, 5, 3, 1};
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(cep_candles_add(x, "K", "trade", T0 + ev[ord_x[i]].dt, sid_of(i + 1),
                                         ev[ord_x[i]].v, NULL), ASTRO_OK);
        ck_assert_int_eq(cep_candles_add(y, "K", "trade", T0 + ev[ord_y[i]].dt, sid_of(i + 1),
                                         ev[ord_y[i]].v, NULL), ASTRO_OK);
    }
    ck_assert_int_eq(cep_candles_advance(x, T0 + 2 * MIN_US), ASTRO_OK);
    ck_assert_int_eq(cep_candles_advance(y, T0 + 2 * MIN_US), ASTRO_OK);
    ck_assert_uint_eq(a->n, 2);
    ck_assert_uint_eq(b->n, 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_double_eq(a->v[i].open, b->v[i].open);
        ck_assert_double_eq(a->v[i].close, b->v[i].close);
        ck_assert_double_eq(a->v[i].high, b->v[i].high);
        ck_assert_double_eq(a->v[i].low, b->v[i].low);
        ck_assert_double_eq(a->v[i].volume, b->v[i].volume);
        ck_assert_double_eq(a->v[i].vwap, b->v[i].vwap);
        ck_assert_int_eq(a->v[i].count, b->v[i].count);
    }
    ck_assert_double_eq(a->v[0].open, 5);
    ck_assert_double_eq(a->v[0].close, 8);
    ck_assert_double_eq(a->v[0].high, 8);
    ck_assert_double_eq(a->v[0].low, 2);
    cep_candles_free(x);
    cep_candles_free(y);
    cep_ruleset_free(&rs);
    free(a);
    free(b);
}
END_TEST

START_TEST(empty_buckets_emit_nothing)
{
    struct cep_ruleset rs;
    struct got *g = calloc(1, sizeof(*g));
    cfg_from("candles trade timeframes 1m\nindicators sma 2\n", &rs);
    struct cep_candles *cs = cep_candles_new(&rs.agg, 0, on_candle, g);
    add(cs, "K", T0 + 1, 1, 10, NULL);
    add(cs, "K", T0 + 3 * MIN_US + 1, 2, 20, NULL);
    ck_assert_int_eq(cep_candles_advance(cs, T0 + 10 * MIN_US), ASTRO_OK);
    ck_assert_uint_eq(g->n, 2);
    ck_assert_int_eq(g->v[0].bucket_us, T0);
    ck_assert_int_eq(g->v[1].bucket_us, T0 + 3 * MIN_US);
    /* the indicator advanced on the two emitted candles only */
    ck_assert(g->v[1].ind[0].ready);
    ck_assert_double_eq(g->v[1].ind[0].value, 15);
    cep_candles_free(cs);
    cep_ruleset_free(&rs);
    free(g);
}
END_TEST

START_TEST(volume_rules)
{
    struct cep_ruleset rs;
    struct got *g = calloc(1, sizeof(*g));
    cfg_from("candles trade timeframes 1m volume qty\n", &rs);
    struct cep_candles *cs = cep_candles_new(&rs.agg, 0, on_candle, g);
    add(cs, "K", T0 + 1, 1, 10, "{\"qty\":3}");
    add(cs, "K", T0 + 2, 2, 20, "{\"qty\":1,\"volume\":100}");
    add(cs, "K", T0 + 3, 3, 30, NULL);                /* no metadata: 1 */
    add(cs, "K", T0 + 4, 4, 40, "{\"other\":7}");     /* no such field: 1 */
    add(cs, "K", T0 + 5, 5, 50, "{\"qty\":\"7\"}");   /* bad: price counts, volume 0 */
    add(cs, "K", T0 + 6, 6, 60, "{\"qty\":-1}");      /* bad */
    ck_assert_uint_eq(cs->st.bad_volume, 2);
    ck_assert_int_eq(cep_candles_advance(cs, T0 + MIN_US), ASTRO_OK);
    ck_assert_uint_eq(g->n, 1);
    ck_assert_double_eq(g->v[0].volume, 6);
    ck_assert_int_eq(g->v[0].count, 6);
    ck_assert_double_eq_tol(g->v[0].vwap, (30.0 + 20 + 30 + 40) / 6, 1e-12);
    /* all volumes zero: the VWAP is the mean price */
    add(cs, "Z", T0 + MIN_US + 1, 7, 10, "{\"qty\":0}");
    add(cs, "Z", T0 + MIN_US + 2, 8, 20, "{\"qty\":0}");
    ck_assert_int_eq(cep_candles_advance(cs, T0 + 2 * MIN_US), ASTRO_OK);
    ck_assert_uint_eq(g->n, 2);
    ck_assert_double_eq(g->v[1].vwap, 15);
    /* other types are ignored */
    ck_assert_int_eq(cep_candles_add(cs, "K", "quote", T0 + 3 * MIN_US, sid_of(9), 1, NULL),
                     ASTRO_OK);
    ck_assert_uint_eq(cs->ngroups, 2);
    cep_candles_free(cs);
    cep_ruleset_free(&rs);
    free(g);
}
END_TEST

START_TEST(rules_statements)
{
    static const struct {
        const char *text, *err; /* err NULL = valid */
    } cases[] = {
        {"candles trade timeframes 1m 5m 15m 1h 4h 1d volume volume\n", NULL},
        {"candles trade timeframes 1m\nindicators sma 20 rsi 14 macd 12 26 9 "
         "bollinger 20 2\nrule r\n  count 2 A\n  within 1s\n", NULL},
        {"indicators none\ncandles tick timeframes 10s\n", NULL},
        {"outliers * window 30 k 4 mode divert\n", NULL},
        {"candles trade timeframes\n", "1:25: expected at least one timeframe"},
        {"candles trade timeframes 7m\n", "1:26:"},
        {"candles trade timeframes 1m 1m\n", "1:29: timeframe 1m given twice"},
        {"candles trade\n", "1:14: expected 'timeframes'"},
        {"candles trade timeframes 1m\ncandles trade timeframes 5m\n", "2:9: candles for"},
        {"candles trade timeframes 1m\nindicators sma 0\n", "2:16: expected a whole number"},
        {"candles trade timeframes 1m\nindicators macd 26 12 9\n", "2:17: macd: the fast"},
        {"candles trade timeframes 1m\nindicators wma 3\n", "2:12: expected sma"},
        {"candles trade timeframes 1m publish volume qty\n", NULL},
        {"candles trade timeframes 1m volume q x\n", "1:38: expected 'volume FIELD' or 'publish'"},
        {"outliers * mode drop\n", "1:17: expected flag or divert"},
        {"outliers trade window 2\n", "1:23: expected a whole number between 3"},
        {"outliers trade\noutliers tick\n", "2:1: outliers given twice"},
        {"# nothing\n", "1:1: no rules"},
    };
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(cases); i++) {
        struct cep_ruleset rs;
        char err[256] = "";
        int rc = cep_rules_parse(cases[i].text, strlen(cases[i].text), &rs, err, sizeof(err));
        if (cases[i].err == NULL) {
            ck_assert_msg(rc == ASTRO_OK, "case %zu: %s", i, err);
            cep_ruleset_free(&rs);
        } else {
            ck_assert_msg(rc == ASTRO_ERR && strncmp(err, cases[i].err, strlen(cases[i].err)) == 0,
                          "case %zu: got \"%s\", want \"%s...\"", i, err, cases[i].err);
        }
    }
    struct cep_ruleset rs;
    cfg_from("candles trade timeframes 1m 5m 15m 1h 4h 1d volume qty publish\n", &rs);
    ck_assert_uint_eq(rs.agg.ncandles, 1);
    ck_assert_uint_eq(rs.agg.candles[0].ntf, 6);
    ck_assert_int_eq(rs.agg.candles[0].tf[5].span_us, INT64_C(86400000000));
    ck_assert_str_eq(rs.agg.candles[0].volume, "qty");
    ck_assert_uint_eq(rs.agg.ind.n, 5); /* the default set */
    ck_assert(rs.agg.publish);
    cep_ruleset_free(&rs);
}
END_TEST

/* A fake Redis hash: HSET semantics for the snapshot fields, HDEL when v is NULL. */
struct fhash {
    char *f[20000], *v[20000];
    size_t fl[20000], vl[20000], n;
};

static void
fh_del(struct fhash *h, size_t i)
{
    free(h->f[i]);
    free(h->v[i]);
    h->n--;
    h->f[i] = h->f[h->n];
    h->fl[i] = h->fl[h->n];
    h->v[i] = h->v[h->n];
    h->vl[i] = h->vl[h->n];
}

static int
fh_put(void *arg, const char *f, size_t flen, const char *v, size_t vlen)
{
    struct fhash *h = arg;
    size_t i = 0;
    while (i < h->n && !(h->fl[i] == flen && memcmp(h->f[i], f, flen) == 0))
        i++;
    if (v == NULL) {
        if (i < h->n)
            fh_del(h, i);
        return ASTRO_OK;
    }
    if (i == h->n) {
        ck_assert_uint_lt(h->n, 20000);
        h->f[i] = malloc(flen);
        memcpy(h->f[i], f, flen);
        h->fl[i] = flen;
        h->n++;
    } else {
        free(h->v[i]);
    }
    h->v[i] = malloc(vlen ? vlen : 1);
    memcpy(h->v[i], v, vlen);
    h->vl[i] = vlen;
    return ASTRO_OK;
}

static void
fh_free(struct fhash *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->f[i]);
        free(h->v[i]);
    }
    free(h);
}

/* One random log: keys, out-of-order times within the lateness, volumes, the watermark. */
struct logev {
    char key[8];
    int64_t ts;
    double v;
    char meta[32];
};

static void
make_log(struct logev *lg, size_t n, unsigned seed, unsigned nkeys)
{
    int64_t t = T0;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned x = seed >> 8;
        t += (int64_t)(x % 400) * 1000;
        snprintf(lg[i].key, sizeof(lg[i].key), "S%u", (x >> 4) % nkeys);
        lg[i].ts = t - (int64_t)((x >> 9) % 900) * 1000; /* within 1 s lateness */
        lg[i].v = 100 + (double)((x >> 3) % 1000) / 7.0;
        snprintf(lg[i].meta, sizeof(lg[i].meta), "{\"volume\":%u.25}", (x >> 13) % 9);
    }
}

static void
feed(struct cep_candles *cs, const struct logev *lg, size_t from, size_t to, int64_t *maxts)
{
    for (size_t i = from; i < to; i++) {
        ck_assert_int_eq(cep_candles_add(cs, lg[i].key, "trade", lg[i].ts, sid_of(i + 1),
                                         lg[i].v, lg[i].meta), ASTRO_OK);
        if (lg[i].ts > *maxts)
            *maxts = lg[i].ts;
        ck_assert_int_eq(cep_candles_advance(cs, *maxts - 1000000), ASTRO_OK);
    }
}

static void
assert_same_candles(const struct got *a, const struct got *b)
{
    ck_assert_uint_eq(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const struct astro_candle *x = &a->v[i], *y = &b->v[i];
        ck_assert_str_eq(x->key, y->key);
        ck_assert_str_eq(x->tf, y->tf);
        ck_assert_int_eq(x->bucket_us, y->bucket_us);
        ck_assert(memcmp(&x->open, &y->open, 6 * sizeof(double)) == 0);
        ck_assert_int_eq(x->count, y->count);
        ck_assert_uint_eq(x->n_ind, y->n_ind);
        for (size_t k = 0; k < x->n_ind; k++) {
            ck_assert_str_eq(x->ind[k].name, y->ind[k].name);
            ck_assert(x->ind[k].has_value == y->ind[k].has_value);
            ck_assert_msg(memcmp(&x->ind[k].value, &y->ind[k].value, sizeof(double)) == 0,
                          "candle %zu %s: %.17g vs %.17g", i, x->ind[k].name, x->ind[k].value,
                          y->ind[k].value);
        }
    }
}

/* Commits every `batch` events (snapshot into the hash); at cut the process "dies": a new state
 * restored from the hash continues from the entry after the last commit. Returns the series
 * the reference run expired. */
static uint64_t
check_restore(const char *cfg, int64_t ttl_us, unsigned nkeys, int run)
{
    enum { N = 6000 };
    static struct logev lg[N];
    struct cep_ruleset rs;
    struct got *ref = calloc(1, sizeof(*ref)), *got = calloc(1, sizeof(*got));
    struct fhash *h = calloc(1, sizeof(*h));
    cfg_from(cfg, &rs);
    make_log(lg, N, 77u + (unsigned)run, nkeys);
    int64_t maxts = INT64_MIN;
    struct cep_candles *cs = cep_candles_new(&rs.agg, ttl_us, on_candle, ref);
    feed(cs, lg, 0, N, &maxts);
    uint64_t expired = cs->st.expired;
    cep_candles_free(cs);
    ck_assert_uint_gt(ref->n, 500);

    size_t batch = 1 + (size_t)run * 13, cut = N / 3 + (size_t)run * 517, done = 0;
    maxts = INT64_MIN;
    cs = cep_candles_new(&rs.agg, ttl_us, on_candle, got);
    for (size_t i = 0; i < N; i += batch) {
        size_t end = i + batch < N ? i + batch : N;
        if (i >= cut && done == 0) { /* crash: the uncommitted batch is lost, state restored */
            cep_candles_free(cs);
            cs = cep_candles_new(&rs.agg, ttl_us, on_candle, got);
            size_t skipped = 0;
            for (size_t k = 0; k < h->n; k++)
                ck_assert_int_eq(cep_candles_restore(cs, h->f[k], h->fl[k], h->v[k], h->vl[k],
                                                     &skipped), ASTRO_OK);
            ck_assert_uint_eq(skipped, 0);
            done = i;
            /* the watermark before the replayed entries: the matcher restores it the same way */
            maxts = INT64_MIN;
            for (size_t k = 0; k < i; k++)
                maxts = lg[k].ts > maxts ? lg[k].ts : maxts;
            /* entries already in the snapshot are ignored if they come again */
            feed(cs, lg, i - batch, i, &maxts);
        }
        feed(cs, lg, i, end, &maxts);
        ck_assert_int_ge(cep_candles_snapshot(cs, fh_put, h), 0);
    }
    ck_assert_uint_gt(done, 0);
    assert_same_candles(ref, got);
    size_t nb = 0;
    for (size_t k = 0; k < h->n; k++)
        nb += h->f[k][0] == 'b';
    ck_assert_uint_eq(nb, cs->ngroups); /* no field of an expired series is left */
    cep_candles_free(cs);
    cep_ruleset_free(&rs);
    fh_free(h);
    free(ref);
    free(got);
    return expired;
}

START_TEST(restore_from_snapshot_is_exact)
{
    check_restore("candles trade timeframes 1s 10s 1m 5m\nindicators sma 5 ema 4 rsi 3 "
                  "macd 3 6 2 bollinger 5 2\n", 0, 7, _i);
}
END_TEST

/* The same with idle expiry: 40 keys, each seen every 8 s on average, expire after 3 s without
 * an event once their 10 s candle closed, and come back fresh; the restored state (the deleted
 * fields included) continues exactly. */
START_TEST(restore_with_expiry_is_exact)
{
    uint64_t expired = check_restore("candles trade timeframes 1s 10s\nindicators sma 5 ema 4 "
                                     "rsi 3 macd 3 6 2 bollinger 5 2\n", 3000000, 40, _i);
    ck_assert_uint_gt(expired, 100);
}
END_TEST

#define T5 (T0 / (5 * MIN_US) * (5 * MIN_US)) /* a 5-minute edge */

static bool
fh_has(const struct fhash *h, const char *kind, const char *tf, const char *key)
{
    char f[128];
    int n = tf ? snprintf(f, sizeof(f), "%s\x1ftrade\x1f%s\x1f%s", kind, tf, key)
               : snprintf(f, sizeof(f), "%s\x1ftrade\x1f%s", kind, key);
    for (size_t i = 0; i < h->n; i++)
        if (h->fl[i] == (size_t)n && memcmp(h->f[i], f, (size_t)n) == 0)
            return true;
    return false;
}

/* A series idle for more than the TTL (in watermark time) is dropped with its hash fields; one
 * within it is kept; a returning key starts its indicators afresh. */
START_TEST(idle_series_expire)
{
    struct cep_ruleset rs;
    struct got *g = calloc(1, sizeof(*g));
    struct fhash *h = calloc(1, sizeof(*h));
    const int64_t ttl = 10 * MIN_US, last_old = T5 + MIN_US + 1000000;
    cfg_from("candles trade timeframes 1m 5m\nindicators sma 2\n", &rs);
    struct cep_candles *cs = cep_candles_new(&rs.agg, ttl, on_candle, g);
    add(cs, "old", T5 + 1000000, 1, 10, NULL);
    add(cs, "old", last_old, 2, 12, NULL);
    add(cs, "new", T5 + 9 * MIN_US, 3, 30, NULL);
    ck_assert_int_eq(cep_candles_advance(cs, T5 + 10 * MIN_US), ASTRO_OK);
    ck_assert_uint_eq(g->n, 5); /* old: 1m x2, 5m; new: 1m, 5m */
    ck_assert_int_ge(cep_candles_snapshot(cs, fh_put, h), 0);
    ck_assert(fh_has(h, "b", NULL, "old") && fh_has(h, "i", "1m", "old"));
    ck_assert(fh_has(h, "b", NULL, "new") && fh_has(h, "i", "5m", "new"));
    /* exactly the TTL without an event: kept; a microsecond more: dropped */
    ck_assert_int_eq(cep_candles_advance(cs, last_old + ttl), ASTRO_OK);
    ck_assert_uint_eq(cs->st.expired, 0);
    ck_assert_int_eq(cep_candles_advance(cs, last_old + ttl + 1), ASTRO_OK);
    ck_assert_uint_eq(cs->st.expired, 1);
    ck_assert_uint_eq(cs->ngroups, 1);
    ck_assert_ptr_null(cep_candles_group(cs, "old", 0, false));
    ck_assert_ptr_nonnull(cep_candles_group(cs, "new", 0, false));
    ck_assert_int_ge(cep_candles_snapshot(cs, fh_put, h), 0);
    ck_assert(!fh_has(h, "b", NULL, "old") && !fh_has(h, "i", "1m", "old") &&
              !fh_has(h, "i", "5m", "old"));
    ck_assert(fh_has(h, "b", NULL, "new") && fh_has(h, "i", "1m", "new"));
    /* old comes back: sma_2 warms up again (with its history it would be ready at once) */
    add(cs, "old", T5 + 12 * MIN_US, 4, 20, NULL);
    add(cs, "old", T5 + 13 * MIN_US, 5, 22, NULL);
    ck_assert_int_eq(cep_candles_advance(cs, T5 + 14 * MIN_US), ASTRO_OK);
    ck_assert_uint_eq(g->n, 7);
    ck_assert_str_eq(g->v[5].key, "old");
    ck_assert(!g->v[5].ind[0].ready);
    ck_assert(g->v[6].ind[0].ready);
    ck_assert_double_eq(g->v[6].ind[0].value, 21);
    /* new expires and comes back before the next snapshot: its new state survives the deletes
     * of the old one, and a restore from the hash gives the fresh series */
    ck_assert_int_eq(cep_candles_advance(cs, T5 + 20 * MIN_US), ASTRO_OK);
    ck_assert_uint_eq(cs->st.expired, 2);
    add(cs, "new", T5 + 20 * MIN_US, 6, 40, NULL);
    ck_assert_int_ge(cep_candles_snapshot(cs, fh_put, h), 0);
    ck_assert(fh_has(h, "b", NULL, "new") && !fh_has(h, "i", "1m", "new"));
    ck_assert(fh_has(h, "b", NULL, "old") && fh_has(h, "i", "1m", "old"));
    struct cep_candles *back = cep_candles_new(&rs.agg, ttl, on_candle, g);
    size_t skipped = 0;
    for (size_t k = 0; k < h->n; k++)
        ck_assert_int_eq(cep_candles_restore(back, h->f[k], h->fl[k], h->v[k], h->vl[k],
                                             &skipped), ASTRO_OK);
    ck_assert_uint_eq(back->ngroups, 2);
    ck_assert_int_eq(cep_candles_group(back, "new", 0, false)->tf[0].nb, 1);
    cep_candles_free(back);
    cep_candles_free(cs);
    cep_ruleset_free(&rs);
    fh_free(h);
    free(g);
}
END_TEST

/* A bucket field of version 1 (before expiry: no latest event time) is still restored; the
 * series counts as seen at the first watermark after the restore and is rewritten with it. */
START_TEST(version1_bucket_field_is_read)
{
    struct cep_ruleset rs;
    struct got *g = calloc(1, sizeof(*g));
    struct fhash *h = calloc(1, sizeof(*h));
    cfg_from("candles trade timeframes 1m\n", &rs);
    struct cep_candles *cs = cep_candles_new(&rs.agg, MIN_US, on_candle, g);
    add(cs, "K", T0 + 1, 1, 10, NULL);
    ck_assert_int_ge(cep_candles_snapshot(cs, fh_put, h), 0);
    cep_candles_free(cs);
    size_t k = 0;
    while (h->f[k][0] != 'b')
        k++;
    ck_assert_int_eq(h->v[k][0], 2);
    h->v[k][0] = 1; /* version 1: the same without the 8 bytes of the latest event time */
    memmove(h->v[k] + 1, h->v[k] + 9, h->vl[k] - 9);
    h->vl[k] -= 8;
    cs = cep_candles_new(&rs.agg, MIN_US, on_candle, g);
    size_t skipped = 0;
    for (size_t i = 0; i < h->n; i++)
        ck_assert_int_eq(cep_candles_restore(cs, h->f[i], h->fl[i], h->v[i], h->vl[i],
                                             &skipped), ASTRO_OK);
    struct cep_cgroup *grp = cep_candles_group(cs, "K", 0, false);
    ck_assert_ptr_nonnull(grp);
    ck_assert_int_eq(grp->seen, CEP_SEEN_UNKNOWN);
    ck_assert_uint_eq(grp->tf[0].nb, 1);
    ck_assert_int_eq(cep_candles_advance(cs, T0 + 5 * MIN_US), ASTRO_OK);
    ck_assert_uint_eq(g->n, 1);
    ck_assert_int_eq(grp->seen, T0 + 5 * MIN_US);
    ck_assert(grp->dirty);
    ck_assert_int_eq(cep_candles_advance(cs, T0 + 6 * MIN_US + 1), ASTRO_OK);
    ck_assert_uint_eq(cs->ngroups, 0);
    cep_candles_free(cs);
    cep_ruleset_free(&rs);
    fh_free(h);
    free(g);
}
END_TEST

/* An open candle keeps its series alive past the TTL until it closes; 0 = never expire. */
START_TEST(open_candle_delays_expiry)
{
    struct cep_ruleset rs;
    struct got *g = calloc(1, sizeof(*g));
    cfg_from("candles trade timeframes 1m 5m\n", &rs);
    struct cep_candles *cs = cep_candles_new(&rs.agg, 2 * MIN_US, on_candle, g);
    struct cep_candles *never = cep_candles_new(&rs.agg, 0, on_candle, g);
    add(cs, "K", T5 + 1, 1, 10, NULL);
    add(never, "K", T5 + 1, 1, 10, NULL);
    ck_assert_int_eq(cep_candles_advance(cs, T5 + 3 * MIN_US), ASTRO_OK);
    ck_assert_uint_eq(cs->ngroups, 1); /* idle 3 min > 2 min, but its 5m candle is open */
    ck_assert_int_eq(cep_candles_advance(cs, T5 + 5 * MIN_US), ASTRO_OK);
    ck_assert_uint_eq(cs->ngroups, 0);
    ck_assert_int_eq(cep_candles_advance(never, T5 + 1000 * MIN_US), ASTRO_OK);
    ck_assert_uint_eq(never->ngroups, 1);
    ck_assert_uint_eq(g->n, 4);
    cep_candles_free(cs);
    cep_candles_free(never);
    cep_ruleset_free(&rs);
    free(g);
}
END_TEST

START_TEST(outlier_band)
{
    double v[9] = {9, 1, 8, 2, 7, 3, 6, 4, 5}, scratch[9];
    struct cep_outlier_band b;
    cep_outlier_band_of(v, 9, 3, scratch, &b);
    ck_assert_double_eq(b.median, 5);
    ck_assert_double_eq(b.mad, 2); /* deviations 0 1 1 2 2 3 3 4 4 */
    ck_assert_double_eq(b.lo, -1);
    ck_assert_double_eq(b.hi, 11);
    double w[4] = {1, 2, 3, 10}; /* even count: the mean of the middle two */
    cep_outlier_band_of(w, 4, 1, scratch, &b);
    ck_assert_double_eq(b.median, 2.5);
    ck_assert_double_eq(b.mad, 1); /* deviations 0.5 0.5 1.5 7.5 */
    /* MAD 0 (more than half equal): the mean absolute deviation instead */
    double z[5] = {5, 5, 5, 5, 6};
    cep_outlier_band_of(z, 5, 3, scratch, &b);
    ck_assert_double_eq(b.median, 5);
    ck_assert_double_eq_tol(b.mad, 0.2, 1e-15);
    /* all equal: the band is the median itself */
    double e[5] = {5, 5, 5, 5, 5};
    cep_outlier_band_of(e, 5, 3, scratch, &b);
    ck_assert_double_eq(b.lo, 5);
    ck_assert_double_eq(b.hi, 5);
}
END_TEST

static int
screen(struct cep_outliers *os, const char *key, double x, uint64_t sid)
{
    struct cep_outlier_band b;
    int v = cep_outliers_screen(os, key, "temp", x, sid_of(sid), &b);
    ck_assert_int_ge(v, 0);
    return v;
}

START_TEST(outlier_screen_and_divert)
{
    struct cep_ruleset rs;
    cfg_from("outliers temp window 5 k 3 mode divert\n", &rs);
    struct cep_outliers *os = cep_outliers_new(&rs.agg.outliers);
    ck_assert_ptr_nonnull(os);
    /* warm-up: no verdict before the window is full, however wild */
    static const double warm[] = {10, 11, 9, 10, 1000};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(screen(os, "dev1", warm[i], (uint64_t)i + 1), 0);
    /* window 10 11 9 10 1000: median 10, MAD 1: band [7, 13] */
    ck_assert_int_eq(screen(os, "dev1", 12.5, 6), 0);
    /* window 11 9 10 1000 12.5: median 11, MAD 1.5: band [6.5, 15.5] */
    ck_assert_int_eq(screen(os, "dev1", 16, 7), 1);
    ck_assert_int_eq(screen(os, "dev2", 14, 8), 0); /* another key: its own window */
    struct cep_outlier_band b;
    ck_assert_int_eq(cep_outliers_screen(os, "dev1", "other", 1e9, sid_of(9), &b), 0);
    ck_assert(cep_outliers_was_diverted(os, sid_of(7)));
    ck_assert(!cep_outliers_was_diverted(os, sid_of(6)));
    ck_assert_uint_eq(os->diverts, 1);
    cep_outliers_prune(os, sid_of(8));
    ck_assert(!cep_outliers_was_diverted(os, sid_of(7)));
    /* flag mode flags the same and remembers nothing */
    cep_outliers_free(os);
    cep_ruleset_free(&rs);
    cfg_from("outliers * window 5 k 3\n", &rs);
    os = cep_outliers_new(&rs.agg.outliers);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(screen(os, "dev1", warm[i], (uint64_t)i + 1), 0);
    ck_assert_int_eq(screen(os, "dev1", 14, 7), 1);
    ck_assert_uint_eq(os->flagged, 1);
    ck_assert_uint_eq(os->ndiverted, 0);
    cep_outliers_free(os);
    cep_ruleset_free(&rs);
}
END_TEST

/* Verdicts after a restore from the snapshot equal those of the uninterrupted run. */
START_TEST(outlier_restore_is_exact)
{
    struct cep_ruleset rs;
    cfg_from("outliers * window 20 k 2.5 mode divert\n", &rs);
    struct cep_outliers *a = cep_outliers_new(&rs.agg.outliers);
    struct cep_outliers *b = cep_outliers_new(&rs.agg.outliers);
    struct fhash *h = calloc(1, sizeof(*h));
    unsigned seed = 3;
    int verdicts = 0;
    for (uint64_t i = 1; i <= 5000; i++) {
        seed = seed * 1103515245u + 12345u;
        char key[8];
        snprintf(key, sizeof(key), "d%u", (seed >> 8) % 5);
        double x = 20 + (double)((seed >> 12) % 100) / 10.0 + ((seed >> 4) % 37 == 0 ? 30 : 0);
        int va = screen(a, key, x, i), vb = screen(b, key, x, i);
        ck_assert_int_eq(va, vb);
        verdicts += va;
        if (i % 97 == 0) { /* a commit, then b dies and is restored */
            ck_assert_int_ge(cep_outliers_snapshot(b, fh_put, h), 0);
            cep_outliers_free(b);
            b = cep_outliers_new(&rs.agg.outliers);
            for (size_t k = 0; k < h->n; k++) {
                bool handled = false;
                ck_assert_int_eq(cep_outliers_restore(b, h->f[k], h->fl[k], h->v[k], h->vl[k],
                                                      &handled), ASTRO_OK);
                ck_assert(handled);
            }
            ck_assert_uint_eq(b->ndiverted, a->ndiverted);
        }
    }
    ck_assert_int_gt(verdicts, 50);
    cep_outliers_free(a);
    cep_outliers_free(b);
    fh_free(h);
    cep_ruleset_free(&rs);
}
END_TEST

static void
on_open(void *arg, const struct astro_candle *c)
{
    on_candle(arg, c);
}

/* The live view: the newest open bucket per timeframe of each group changed since the last
 * snapshot, with its running values. */
START_TEST(open_candles_for_publish)
{
    struct cep_ruleset rs;
    struct got *g = calloc(1, sizeof(*g)), *open = calloc(1, sizeof(*open));
    cfg_from("candles trade timeframes 1m 5m publish\n", &rs);
    struct cep_candles *cs = cep_candles_new(&rs.agg, 0, on_candle, g);
    add(cs, "K", T5 + 1, 1, 10, NULL);
    add(cs, "K", T5 + MIN_US + 1, 2, 12, NULL); /* 1m: two open buckets; the newest counts */
    add(cs, "K", T5 + MIN_US + 2, 3, 11, NULL);
    cep_candles_each_open(cs, on_open, open);
    ck_assert_uint_eq(open->n, 2);
    ck_assert_str_eq(open->v[0].tf, "1m");
    ck_assert_int_eq(open->v[0].bucket_us, T5 + MIN_US);
    ck_assert_double_eq(open->v[0].close, 11);
    ck_assert_int_eq(open->v[0].count, 2);
    ck_assert_uint_eq(open->v[0].n_ind, 0);
    ck_assert_str_eq(open->v[1].tf, "5m");
    ck_assert_int_eq(open->v[1].count, 3);
    struct fhash *h = calloc(1, sizeof(*h));
    ck_assert_int_gt(cep_candles_snapshot(cs, fh_put, h), 0);
    open->n = 0;
    cep_candles_each_open(cs, on_open, open); /* nothing changed since */
    ck_assert_uint_eq(open->n, 0);
    ck_assert_uint_eq(g->n, 0);
    fh_free(h);
    cep_candles_free(cs);
    cep_ruleset_free(&rs);
    free(g);
    free(open);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("leaflet_candles");
    TCase *tc = tcase_create("candles");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, bucket_edges_and_close);
    tcase_add_test(tc, out_of_order_within_lateness);
    tcase_add_test(tc, empty_buckets_emit_nothing);
    tcase_add_test(tc, open_candles_for_publish);
    tcase_add_test(tc, volume_rules);
    tcase_add_test(tc, rules_statements);
    tcase_add_loop_test(tc, restore_from_snapshot_is_exact, 0, 4);
    tcase_add_loop_test(tc, restore_with_expiry_is_exact, 0, 4);
    tcase_add_test(tc, idle_series_expire);
    tcase_add_test(tc, open_candle_delays_expiry);
    tcase_add_test(tc, version1_bucket_field_is_read);
    tcase_add_test(tc, outlier_band);
    tcase_add_test(tc, outlier_screen_and_divert);
    tcase_add_test(tc, outlier_restore_is_exact);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

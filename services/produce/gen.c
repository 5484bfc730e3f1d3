/* Deterministic event generation: event i is a pure function of (pattern, seed, keys, i), so
 * a run can be repeated exactly and a test can predict every id (see produce.h). */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "astro/event.h"
#include "astro/time.h"
#include "produce.h"

static const char *const srcs[] = {"axon_1", "axon_2", "axon_3"};
/* The --pattern names, by enum prd_pattern: part of each event id, so two patterns never send
 * the same ids. */
static const char *const pattern_names[] = {"demo", "abc-pairs", "trades"};
static const char *const types[] = {"A", "B", "C"};

/* splitmix64: a well-mixed 64-bit value per (seed, i, lane) without any state between calls. */
static uint64_t
mix(uint64_t seed, uint64_t i, uint64_t lane)
{
    uint64_t z = seed * 0x9e3779b97f4a7c15u ^ (i + 1) * 0xbf58476d1ce4e5b9u ^ lane << 56;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double
unit(uint64_t seed, uint64_t i, uint64_t lane)
{
    return (double)(mix(seed, i, lane) >> 11) / 9007199254740992.0;
}

int
prd_gen_init(struct prd_gen *g, enum prd_pattern p, uint64_t seed, int64_t keys)
{
    *g = (struct prd_gen){.seed = seed, .pattern = p, .keys = keys};
    return astro_uuid_parse(ASTRO_UUID_NAMESPACE, ASTRO_UUID_STR_LEN, &g->ns);
}

static void
gen_abc(const struct prd_gen *g, uint64_t i, struct prd_event *ev)
{
    uint64_t per_round = 3 * (uint64_t)g->keys, within = i % per_round;
    snprintf(ev->key, sizeof(ev->key), "user_%llu", (unsigned long long)(within / 3));
    ev->src = srcs[within % 3];
    ev->type = types[within % 3];
    ev->value = round(1000.0 + 9000.0 * unit(g->seed, i, 1)) / 100.0;
}

static void
gen_demo(const struct prd_gen *g, uint64_t i, struct prd_event *ev)
{
    uint64_t k = mix(g->seed, i, 2) % (uint64_t)g->keys;
    snprintf(ev->key, sizeof(ev->key), "user_%llu", (unsigned long long)k);
    ev->kind = i % 10 == 9 ? PRD_KIND_FEATURES : i % 10 == 4 ? PRD_KIND_RAW : PRD_KIND_EVENT;
    ev->src = ev->kind == PRD_KIND_EVENT ? srcs[mix(g->seed, i, 3) % 3] : "edge";
    ev->type = ev->kind == PRD_KIND_EVENT ? types[mix(g->seed, i, 4) % 3]
               : ev->kind == PRD_KIND_FEATURES ? "features" : "raw";
    ev->value = round(10000.0 * unit(g->seed, i, 1)) / 100.0;
    if (ev->kind == PRD_KIND_FEATURES)
        ev->value = round(1000.0 * unit(g->seed, i, 1)) / 1000.0;
}

static void
gen_trades(const struct prd_gen *g, uint64_t i, struct prd_event *ev)
{
    uint64_t k = mix(g->seed, i, 2) % (uint64_t)g->keys;
    snprintf(ev->key, sizeof(ev->key), "SYM%llu", (unsigned long long)k);
    ev->src = "exchange";
    ev->type = "trade";
    /* A slow wave per symbol plus noise: candles get visible highs and lows. */
    double base = 100.0 + 10.0 * (double)(k % 7);
    double wave = sin((double)i / 500.0 + (double)k);
    ev->value = round(100.0 * base * (1.0 + 0.02 * wave + 0.002 * (unit(g->seed, i, 1) - 0.5)))
                / 100.0;
}

int
prd_gen_event(const struct prd_gen *g, uint64_t i, struct prd_event *ev)
{
    char name[64];
    struct astro_uuid u;
    memset(ev, 0, sizeof(*ev));
    int n = snprintf(name, sizeof(name), "produce:%s:%llu:%llu", pattern_names[g->pattern],
                     (unsigned long long)g->seed, (unsigned long long)i);
    if (astro_uuid_v5(&g->ns, name, (size_t)n, &u) != ASTRO_OK)
        return ASTRO_ERR;
    astro_uuid_format(&u, ev->id);
    if (g->pattern == PRD_ABC_PAIRS)
        gen_abc(g, i, ev);
    else if (g->pattern == PRD_DEMO)
        gen_demo(g, i, ev);
    else
        gen_trades(g, i, ev);
    return ASTRO_OK;
}

/* snprintf into buf at *len; false (and nothing counted) when it does not fit. */
static bool ASTRO_PRINTF(4, 5)
put(char *buf, size_t *len, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - *len)
        return false;
    *len += (size_t)n;
    return true;
}

/* The kind-specific payload: metadata for events, EEG-like fields for features and raw. */
static bool
put_payload(const struct prd_gen *g, uint64_t i, const struct prd_event *ev, char *buf,
            size_t *len, size_t cap)
{
    char d[5][ASTRO_EVENT_DOUBLE_BUF];
    for (int b = 0; b < 5; b++)
        astro_event_format_double(round(1000.0 * unit(g->seed, i, 10 + (uint64_t)b)) / 100.0,
                                  d[b]);
    if (ev->kind == PRD_KIND_FEATURES)
        return put(buf, len, cap, ",\"workload\":%.3f,\"confidence\":%.3f,\"band_powers\":"
                   "{\"delta\":%s,\"theta\":%s,\"alpha\":%s,\"beta\":%s,\"gamma\":%s},"
                   "\"metrics\":{\"engagement\":%.3f}", ev->value,
                   0.5 + unit(g->seed, i, 5) / 2, d[0], d[1], d[2], d[3], d[4],
                   unit(g->seed, i, 6));
    if (ev->kind == PRD_KIND_RAW) {
        if (!put(buf, len, cap, ",\"channels\":["))
            return false;
        for (int c = 0; c < 14; c++)
            if (!put(buf, len, cap, "%s%.2f", c > 0 ? "," : "",
                     100.0 * (unit(g->seed, i, 20 + (uint64_t)c) - 0.5)))
                return false;
        return put(buf, len, cap, "]");
    }
    char v[ASTRO_EVENT_DOUBLE_BUF];
    astro_event_format_double(ev->value, v);
    if (!put(buf, len, cap, ",\"event_type\":\"%s\",\"value\":%s,\"metadata\":"
             "{\"producer\":\"astro-produce\",\"n\":%llu", ev->type, v,
             (unsigned long long)i))
        return false;
    /* trades carry a volume (1..100 units) for the candles of astro-leaflet (docs/candles.md) */
    if (strcmp(ev->type, "trade") == 0 &&
        !put(buf, len, cap, ",\"volume\":%d", 1 + (int)(99.0 * unit(g->seed, i, 7))))
        return false;
    return put(buf, len, cap, "}");
}

size_t
prd_gen_json(const struct prd_gen *g, uint64_t i, const struct prd_event *ev, int64_t ts_us,
             char *buf, size_t len, size_t cap)
{
    char ts[ASTRO_TIME_RFC3339_LEN + 1];
    if (astro_time_format(ts_us, ts, sizeof(ts)) != ASTRO_OK)
        return 0;
    if (!put(buf, &len, cap, "\"event_id\":\"%s\",\"timestamp\":\"%s\",\"source_stream\":"
             "\"%s\",\"key\":\"%s\"", ev->id, ts, ev->src, ev->key) ||
        !put_payload(g, i, ev, buf, &len, cap))
        return 0;
    return len;
}

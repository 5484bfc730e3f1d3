/* Flags of astro-produce: strict parsing, every value checked, the flag named in the error. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "astro/config.h"
#include "produce.h"

void
prd_usage(FILE *f)
{
    fputs("usage: astro-produce [flags]\n"
          "\n"
          "Sends synthetic events to astro-ingest over its WebSocket /stream, like a real\n"
          "producer, and reports the achieved rate and the ack latency (p50/p99).\n"
          "\n"
          "  --url URL          ingest: ws://host:port/stream (default ws://127.0.0.1:8001/stream)\n"
          "                     or http://host:port/events (POST, one request at a time)\n"
          "  --api-key KEY      key with the ingest scope (default $ASTRO_API_KEY)\n"
          "  --user ID          user_id of the session (default produce)\n"
          "  --rate N           events per second, 0 = as fast as acks allow (default 100)\n"
          "  --keys N           distinct keys (default 10)\n"
          "  --duration D       run time, e.g. 30s, 5m; 0 = until --count (default 10s)\n"
          "  --count N          stop after N events; 0 = until --duration (default 0)\n"
          "  --seed N|time      reproducible runs: same seed, same ids and values (default 1);\n"
          "                     time = the current epoch seconds (printed), for demos that\n"
          "                     restart: the same ids again would be duplicates\n"
          "  --pattern P        demo | abc-pairs | trades (default demo)\n"
          "  --batch N          events per message, at most (default 100)\n"
          "  --window N         messages awaiting their ack, at most (default 32)\n"
          "  --ids-out FILE     write one line \"id source_stream key event_type\" per event\n"
          "  --quiet            only the summary line\n"
          "  --help             this text\n"
          "\n"
          "Event i of pattern P and seed S has the id uuid5(" ASTRO_UUID_NAMESPACE
          ", \"produce:P:S:i\").\n",
          f);
}

static int
parse_url(const char *url, struct prd_config *cfg, char *err, size_t errlen)
{
    cfg->http = strncmp(url, "http://", 7) == 0;
    if (strncmp(url, "ws://", 5) != 0 && !cfg->http)
        return astro_fail(err, errlen, "--url: must start with ws:// or http:// "
                          "(TLS is not supported)");
    const char *h = url + (cfg->http ? 7 : 5), *slash = strchr(h, '/'), *colon = strchr(h, ':');
    const char *hend = slash != NULL ? slash : h + strlen(h);
    int64_t port = 80;
    if (colon != NULL && colon < hend) {
        char buf[16];
        size_t n = (size_t)(hend - colon - 1);
        if (n == 0 || n >= sizeof(buf))
            return astro_fail(err, errlen, "--url: bad port");
        memcpy(buf, colon + 1, n);
        buf[n] = '\0';
        if (astro_cfg_parse_int(buf, &port, NULL, 0) != ASTRO_OK || port < 1 || port > 65535)
            return astro_fail(err, errlen, "--url: bad port \"%s\"", buf);
        hend = colon;
    }
    size_t hl = (size_t)(hend - h);
    if (hl == 0 || hl >= sizeof(cfg->host))
        return astro_fail(err, errlen, "--url: missing or too long host");
    memcpy(cfg->host, h, hl);
    cfg->host[hl] = '\0';
    cfg->port = (int)port;
    snprintf(cfg->path, sizeof(cfg->path), "%s",
             slash != NULL ? slash : cfg->http ? "/events" : "/stream");
    return ASTRO_OK;
}

static int
parse_int_flag(const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out, char *err,
               size_t errlen)
{
    if (astro_cfg_parse_int(v, out, NULL, 0) != ASTRO_OK || *out < lo || *out > hi)
        return astro_fail(err, errlen, "%s: \"%s\" is not an integer in %lld..%lld", flag, v,
                          (long long)lo, (long long)hi);
    return ASTRO_OK;
}

static int
parse_pattern(const char *v, enum prd_pattern *out, char *err, size_t errlen)
{
    if (strcmp(v, "demo") == 0)
        *out = PRD_DEMO;
    else if (strcmp(v, "abc-pairs") == 0)
        *out = PRD_ABC_PAIRS;
    else if (strcmp(v, "trades") == 0)
        *out = PRD_TRADES;
    else
        return astro_fail(err, errlen, "--pattern: \"%s\" is not demo, abc-pairs or trades", v);
    return ASTRO_OK;
}

static int
parse_rate(const char *v, double *out, char *err, size_t errlen)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end != '\0' || !(d >= 0 && d <= 10e6))
        return astro_fail(err, errlen, "--rate: \"%s\" is not a number in 0..10000000", v);
    *out = d;
    return ASTRO_OK;
}

/* Applies one "--flag value" pair. */
static int
apply(struct prd_config *cfg, const char *f, const char *v, char *err, size_t errlen)
{
    int64_t n;
    if (strcmp(f, "--url") == 0)
        return parse_url(v, cfg, err, errlen);
    if (strcmp(f, "--api-key") == 0)
        cfg->api_key = v;
    else if (strcmp(f, "--user") == 0)
        cfg->user_id = v;
    else if (strcmp(f, "--rate") == 0)
        return parse_rate(v, &cfg->rate, err, errlen);
    else if (strcmp(f, "--keys") == 0)
        return parse_int_flag(f, v, 1, 10000000, &cfg->keys, err, errlen);
    else if (strcmp(f, "--count") == 0)
        return parse_int_flag(f, v, 0, INT64_MAX / 2, &cfg->count, err, errlen);
    else if (strcmp(f, "--seed") == 0) {
        if (strcmp(v, "time") == 0) {
            cfg->seed = (uint64_t)time(NULL);
            cfg->seed_from_time = true;
            return ASTRO_OK;
        }
        if (parse_int_flag(f, v, 0, INT64_MAX, &n, err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
        cfg->seed = (uint64_t)n;
    } else if (strcmp(f, "--duration") == 0) {
        if (astro_cfg_parse_duration(v, &cfg->duration_ms, NULL, 0) != ASTRO_OK ||
            cfg->duration_ms < 0)
            return astro_fail(err, errlen, "--duration: \"%s\" is not a duration (10s, 5m)", v);
    } else if (strcmp(f, "--pattern") == 0)
        return parse_pattern(v, &cfg->pattern, err, errlen);
    else if (strcmp(f, "--batch") == 0) {
        if (parse_int_flag(f, v, 1, 10000, &n, err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
        cfg->batch = (int)n;
    } else if (strcmp(f, "--window") == 0) {
        if (parse_int_flag(f, v, 1, 4096, &n, err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
        cfg->window = (int)n;
    } else if (strcmp(f, "--ids-out") == 0)
        cfg->ids_out = v;
    else
        return astro_fail(err, errlen, "unknown flag %s (see --help)", f);
    return ASTRO_OK;
}

static bool
takes_no_value(const char *f)
{
    return strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0 || strcmp(f, "--quiet") == 0;
}

int
prd_args_parse(int argc, char **argv, struct prd_config *cfg, bool *help, char *err,
               size_t errlen)
{
    *cfg = (struct prd_config){.port = 8001, .rate = 100, .keys = 10, .duration_ms = 10000,
                               .seed = 1, .pattern = PRD_DEMO, .batch = 100, .window = 32,
                               .user_id = "produce", .api_key = getenv("ASTRO_API_KEY")};
    snprintf(cfg->host, sizeof(cfg->host), "127.0.0.1");
    snprintf(cfg->path, sizeof(cfg->path), "/stream");
    *help = false;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (takes_no_value(f)) {
            *help = *help || strcmp(f, "--quiet") != 0;
            cfg->quiet = cfg->quiet || strcmp(f, "--quiet") == 0;
            continue;
        }
        if (i + 1 >= argc)
            return astro_fail(err, errlen, "%s: missing value", f);
        if (apply(cfg, f, argv[++i], err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
    }
    if (*help)
        return ASTRO_OK;
    if (cfg->api_key == NULL || cfg->api_key[0] == '\0')
        return astro_fail(err, errlen, "--api-key (or ASTRO_API_KEY) is required");
    if (cfg->duration_ms == 0 && cfg->count == 0)
        return astro_fail(err, errlen, "--duration 0 needs --count N (else it never stops)");
    return ASTRO_OK;
}

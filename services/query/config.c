/* The configuration table of astro-query. */
#include "astro/partition.h"
#include "query.h"

#define V(name, type, def, min, max, field, flags, help)                                        \
    {name, type, def, min, max, NULL, flags, offsetof(struct qry_config, field), help}

const struct astro_cfg_var qry_cfg_vars[] = {
    ASTRO_SERVICE_CFG_VARS(struct qry_config, svc, "8090"),
    V("ASTRO_DATABASE_URL", ASTRO_CFG_STRING, NULL, 0, 0, database_url,
      ASTRO_CFG_REQUIRED | ASTRO_CFG_SECRET, "PostgreSQL to read (postgresql://...)"),
    V("ASTRO_PARTITIONS", ASTRO_CFG_INT, "16", ASTRO_PARTITIONS_MIN, ASTRO_PARTITIONS_MAX,
      partitions, 0, "Partition count P of the deployment (recent buffers, streams)"),
    V("ASTRO_QUERY_AUTH", ASTRO_CFG_BOOL, "true", 0, 0, auth, 0,
      "Require an API key with the read scope"),
    V("ASTRO_QUERY_OPEN_HEALTH", ASTRO_CFG_BOOL, "true", 0, 0, open_health, 0,
      "Serve /health* and /metrics without a key"),
    V("ASTRO_QUERY_RATE_LIMIT", ASTRO_CFG_INT, "100", 0, 1000000, rate_limit, 0,
      "Requests per window per API key (0 = no limit)"),
    V("ASTRO_QUERY_RATE_WINDOW", ASTRO_CFG_DURATION, "1s", 10, 3600000, rate_window_ms, 0,
      "Rate-limit window"),
    V("ASTRO_QUERY_THREADS", ASTRO_CFG_INT, "8", 1, 256, threads, 0,
      "civetweb worker threads (one PostgreSQL connection each)"),
    V("ASTRO_QUERY_REQUEST_TIMEOUT", ASTRO_CFG_DURATION, "5s", 100, 600000,
      request_timeout_ms, 0, "Request read timeout and statement_timeout"),
    V("ASTRO_QUERY_MAX_REQUEST", ASTRO_CFG_BYTES, "16KiB", 1024, 1048576, max_request_bytes, 0,
      "Largest request head accepted"),
    V("ASTRO_QUERY_BUFFER_MAX", ASTRO_CFG_INT, "1000", 1, 100000, buffer_max, 0,
      "Recent-buffer entries read for /buffer/{key}/stats"),
    V("ASTRO_QUERY_KEY_CACHE_TTL", ASTRO_CFG_DURATION, "5s", 0, 600000, key_cache_ms, 0,
      "How long a looked-up API key is cached per thread (revocation delay)"),
    V("ASTRO_QUERY_SLOW_LOG", ASTRO_CFG_DURATION, "1s", 0, 3600000, slow_log_ms, 0,
      "Log a request this slow with its time per stage (0 = off)"),
};
const size_t qry_cfg_nvars = sizeof(qry_cfg_vars) / sizeof(qry_cfg_vars[0]);

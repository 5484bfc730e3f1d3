/* astro-ingest's settings: one table (astro/config.h); docs/ingest.md lists them. */
#include <stddef.h>
#include <stdio.h>

#include "ingest.h"

#define V(name, type, def, min, max, flags, field, help)                                        \
    {name, type, def, min, max, NULL, flags, offsetof(struct ing_config, field), help}

const struct astro_cfg_var ing_config_vars[] = {
    ASTRO_SERVICE_CFG_VARS(struct ing_config, svc, "8001"),
    V("ASTRO_PARTITIONS", ASTRO_CFG_INT, "16", 1, 4096, 0, partitions,
      "Partition count P (recorded in Redis at first start; must match)"),
    V("ASTRO_DEDUP_WINDOW", ASTRO_CFG_DURATION, "10m", 1000, 604800000, 0, dedup_ms,
      "A repeated event_id within this window is acknowledged as a duplicate"),
    V("ASTRO_RECENT_MAX", ASTRO_CFG_INT, "1000", 0, 1000000, 0, recent_max,
      "Events kept per key in astro:recent:{p}:<key> (0 = no recent buffer)"),
    V("ASTRO_BOOTSTRAP_API_KEY", ASTRO_CFG_STRING, "", 0, 0, ASTRO_CFG_SECRET, bootstrap_key,
      "Key with scopes ingest,read,admin stored (hashed) at start if missing"),
    V("ASTRO_AUTH_TIMEOUT", ASTRO_CFG_DURATION, "5s", 100, 600000, 0, auth_timeout_ms,
      "Deadline for the auth message on /stream; over -> close 1008"),
    V("ASTRO_APIKEY_CACHE_TTL", ASTRO_CFG_DURATION, "5s", 0, 300000, 0, key_cache_ms,
      "How long a key lookup is cached per loop (revocation delay); 0 = no cache"),
    V("ASTRO_BACKPRESSURE_HIGH", ASTRO_CFG_INT, "1000000", 1, 1000000000000, 0, bp_high,
      "Unarchived hot-tier entries above which new events are refused"),
    V("ASTRO_BACKPRESSURE_LOW", ASTRO_CFG_INT, "800000", 0, 1000000000000, 0, bp_low,
      "Entries below which events are accepted again"),
    V("ASTRO_BACKPRESSURE_POLL", ASTRO_CFG_DURATION, "1s", 50, 60000, 0, bp_poll_ms,
      "How often astro:hot:unarchived is read"),
    V("ASTRO_RETRY_AFTER", ASTRO_CFG_DURATION, "1s", 1, 600000, 0, bp_retry_ms,
      "Retry hint sent with retryable refusals (Retry-After, retry_after_ms)"),
    V("ASTRO_MAX_BATCH_ITEMS", ASTRO_CFG_INT, "10000", 1, 1000000, 0, max_items,
      "Events per batch (WS events message, HTTP array/NDJSON); over -> too_many_items/413"),
    V("ASTRO_MAX_METADATA_BYTES", ASTRO_CFG_BYTES, "64KiB", 64, 16777216, 0, max_meta_bytes,
      "Serialized metadata per event"),
    V("ASTRO_MAX_FUTURE", ASTRO_CFG_DURATION, "5m", 0, 31536000000, 0, max_future_ms,
      "Timestamps further in the future are refused (0 = no limit)"),
    V("ASTRO_MAX_AGE", ASTRO_CFG_DURATION, "720h", 0, 3153600000000, 0, max_age_ms,
      "Timestamps older than this are refused (0 = no limit, for backfills)"),
};

const size_t ing_config_nvars = ASTRO_ARRAY_LEN(ing_config_vars);

int
ing_config_check(const struct ing_config *cfg, char *err, size_t errlen)
{
    if (cfg->bp_low >= cfg->bp_high)
        return astro_fail(err, errlen, "ASTRO_BACKPRESSURE_LOW (%lld) must be below "
                          "ASTRO_BACKPRESSURE_HIGH (%lld)", (long long)cfg->bp_low,
                          (long long)cfg->bp_high);
    return ASTRO_OK;
}

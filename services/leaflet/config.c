/* The ASTRO_* settings of astro-leaflet (docs/leaflet.md has the same table). */
#include <stddef.h>

#include "leaflet.h"

#define V(name, type, def, min, max, field, help)                                             \
    {name, type, def, min, max, NULL, 0, offsetof(struct cep_config, field), help}

const struct astro_cfg_var cep_config_vars[] = {
    ASTRO_SERVICE_CFG_VARS(struct cep_config, svc, "8083"),
    V("ASTRO_PARTITIONS", ASTRO_CFG_INT, "16", 1, 4096, partitions,
      "Partition count P of the deployment (checked against the one recorded in Redis)"),
    V("ASTRO_RULES_FILE", ASTRO_CFG_STRING, "/etc/astrocyte/default.rules", 0, 0, rules_file,
      "Rules file (docs/rules.md); reloaded on SIGHUP"),
    V("ASTRO_LEAFLET_LATENESS", ASTRO_CFG_DURATION, "1s", 0, 3600000, lateness_ms,
      "Allowed lateness: watermark = max event time - lateness"),
    V("ASTRO_LEAFLET_IDLE", ASTRO_CFG_DURATION, "2s", 10, 3600000, idle_ms,
      "After this long without events, an open partition's watermark advances by processing "
      "time (a marker entry is written to its stream)"),
    V("ASTRO_LEAFLET_BATCH", ASTRO_CFG_INT, "500", 1, 100000, batch,
      "Entries read per partition per XREADGROUP (one atomic commit each)"),
    V("ASTRO_LEAFLET_BLOCK", ASTRO_CFG_DURATION, "100ms", 1, 10000, block_ms,
      "XREADGROUP BLOCK time"),
    V("ASTRO_LEAFLET_LEASE", ASTRO_CFG_DURATION, "3s", 300, 600000, lease_ms,
      "Partition lease TTL; heartbeats every third of it, rebalancing within about this long"),
    V("ASTRO_LEAFLET_MAX_HELD", ASTRO_CFG_INT, "1000000", 16, 100000000, max_held,
      "Per partition: most events one rule keeps in open windows (and in the reorder buffer); "
      "beyond it the oldest is evicted and counted"),
    V("ASTRO_LEAFLET_SERIES_TTL", ASTRO_CFG_DURATION, "168h", 0, 31536000000, series_ttl_ms,
      "Candle series (event type, key) with no event for longer than this in event time (the "
      "watermark) and no open candle are dropped from memory and astro:aggstate; a returning "
      "key starts its indicators afresh. 0 = never"),
};

const size_t cep_config_nvars = ASTRO_ARRAY_LEN(cep_config_vars);

/* astro-broadcast's settings: one table (astro/config.h); docs/broadcast.md lists them. */
#include <stddef.h>

#include "broadcast.h"

#define V(name, type, def, min, max, flags, field, help)                                        \
    {name, type, def, min, max, NULL, flags, offsetof(struct bc_config, field), help}

const struct astro_cfg_var bc_config_vars[] = {
    ASTRO_SERVICE_CFG_VARS(struct bc_config, svc, "8004"),
    V("ASTRO_PARTITIONS", ASTRO_CFG_INT, "16", 1, BC_MAX_PARTITIONS, 0, partitions,
      "Partition count P (must match the deployment's recorded value)"),
    V("ASTRO_BROADCAST_BLOCK", ASTRO_CFG_DURATION, "500ms", 10, 10000, 0, block_ms,
      "XREAD BLOCK of the reader (also bounds how long SIGTERM waits for it)"),
    V("ASTRO_BROADCAST_READ_COUNT", ASTRO_CFG_INT, "512", 1, 100000, 0, read_count,
      "Entries per stream per XREAD"),
    V("ASTRO_AUTH_TIMEOUT", ASTRO_CFG_DURATION, "5s", 100, 600000, 0, auth_timeout_ms,
      "Deadline for the auth message when no api_key= was given; over -> close 1008"),
    V("ASTRO_APIKEY_CACHE_TTL", ASTRO_CFG_DURATION, "5s", 0, 300000, 0, key_cache_ms,
      "How long a key lookup is cached per loop (revocation delay); 0 = no cache"),
    V("ASTRO_BROADCAST_BACKFILL_PAGE", ASTRO_CFG_INT, "1000", 1, 100000, 0, backfill_max,
      "Entries per XRANGE page when a subscriber resumes with since="),
};

const size_t bc_config_nvars = ASTRO_ARRAY_LEN(bc_config_vars);

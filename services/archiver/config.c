/* The archiver's configuration table: every ASTRO_* variable it reads, with defaults and bounds. */
#include <stddef.h>

#include "archiver.h"
#include "astro/partition.h"

#define ARC_VAR(name, type, def, min, max, field, flags, help)                                  \
    {name, type, def, min, max, NULL, flags, offsetof(struct arc_config, field), help}

static const struct astro_cfg_var arc_vars[] = {
    ASTRO_SERVICE_CFG_VARS(struct arc_config, svc, "8084"),
    ARC_VAR("ASTRO_DATABASE_URL", ASTRO_CFG_STRING, NULL, 0, 0, database_url,
            ASTRO_CFG_REQUIRED, "PostgreSQL conninfo or postgresql:// URL"),
    ARC_VAR("ASTRO_PARTITIONS", ASTRO_CFG_INT, "16", ASTRO_PARTITIONS_MIN, ASTRO_PARTITIONS_MAX,
            partitions, 0, "Partition count P of the deployment (checked against Redis)"),
    ARC_VAR("ASTRO_BATCH_SIZE", ASTRO_CFG_INT, "5000", 1, 100000, batch_size, 0,
            "Rows per PostgreSQL transaction (at most)"),
    ARC_VAR("ASTRO_BATCH_AGE", ASTRO_CFG_DURATION, "200ms", 1, 60000, batch_age_ms, 0,
            "Longest wait for a batch to fill before it is written"),
    ARC_VAR("ASTRO_CLAIM_IDLE", ASTRO_CFG_DURATION, "30s", 100, 86400000, claim_idle_ms, 0,
            "Entries pending this long (dead or stuck consumer) are claimed and retried"),
    ARC_VAR("ASTRO_DEAD_AFTER", ASTRO_CFG_INT, "5", 1, 1000, dead_after, 0,
            "Deliveries of a refused entry before it goes to astro:dead"),
    ARC_VAR("ASTRO_HOT_RETENTION", ASTRO_CFG_DURATION, "1h", 0, 0, hot_retention_ms, 0,
            "Entries younger than this are never trimmed from the hot tier"),
    ARC_VAR("ASTRO_TRIM_INTERVAL", ASTRO_CFG_DURATION, "10s", 100, 3600000, trim_interval_ms,
            0, "How often the hot tier is trimmed"),
    ARC_VAR("ASTRO_COLD_RETENTION_DAYS", ASTRO_CFG_INT, "0", 0, 36500, cold_retention_days, 0,
            "Day partitions older than this are dropped (0 = keep forever)"),
    ARC_VAR("ASTRO_PARTITIONS_AHEAD", ASTRO_CFG_INT, "3", 1, 366, partitions_ahead, 0,
            "Day partitions created ahead of today"),
    ARC_VAR("ASTRO_TEST_CRASH_AFTER_COMMIT", ASTRO_CFG_INT, "0", 0, 1000000000,
            test_crash_after_commit, 0,
            "TEST ONLY: _exit(3) after the Nth COMMIT, before its XACK (0 = off)"),
    ARC_VAR("ASTRO_WRITERS", ASTRO_CFG_INT, "2", 1, 16, writers, 0,
            "Archive pipelines: PostgreSQL writer connections committing in parallel, each"
            " for a fixed share of the streams"),
};

const struct astro_cfg_var *
arc_config_vars(size_t *n)
{
    *n = ASTRO_ARRAY_LEN(arc_vars);
    return arc_vars;
}

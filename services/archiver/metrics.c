/* The archiver's metrics: one place, registered at start; updated lock-free by the threads. */
#include <stddef.h>

#include "archiver.h"
#include "astro/metrics.h"

static const double batch_bounds[] = {1, 10, 100, 500, 1000, 2000, 5000, 10000, 50000};

static int
counters(struct arc_metrics *m, struct astro_metrics *reg)
{
    static const char *const tables[ARC_TABLES] = {
        "table=\"mono_events\"", "table=\"multi_events\"", "table=\"sessions\"",
        "table=\"predictions\"", "table=\"late_events\"", "table=\"candles\"",
        "table=\"indicators\""};
    for (int k = 0; k < ARC_TABLES; k++) {
        m->rows[k] = astro_metrics_counter(reg, "astro_archiver_rows_total",
                                           "Rows inserted into PostgreSQL", tables[k]);
        m->duplicates[k] = astro_metrics_counter(
            reg, "astro_archiver_duplicates_total",
            "Redelivered rows already archived (skipped by ON CONFLICT)", tables[k]);
        if (m->rows[k] == NULL || m->duplicates[k] == NULL)
            return ASTRO_ERR;
    }
    const char *dh = "Entries sent to astro:dead";
    m->dead_decode = astro_metrics_counter(reg, "astro_archiver_dead_total", dh,
                                           "reason=\"undecodable\"");
    m->dead_refused = astro_metrics_counter(reg, "astro_archiver_dead_total", dh,
                                            "reason=\"refused\"");
    m->retries = astro_metrics_counter(reg, "astro_archiver_retries_total",
                                       "Batch writes retried (PostgreSQL unavailable)", NULL);
    m->redis_errors = astro_metrics_counter(reg, "astro_archiver_redis_errors_total",
                                            "Redis commands that failed", NULL);
    m->pg_errors = astro_metrics_counter(reg, "astro_archiver_pg_errors_total",
                                         "PostgreSQL transactions that failed", NULL);
    m->claimed = astro_metrics_counter(reg, "astro_archiver_claimed_total",
                                       "Idle pending entries claimed (XAUTOCLAIM)", NULL);
    m->markers = astro_metrics_counter(reg, "astro_archiver_markers_total",
                                       "Leaflet watermark markers acked without a row", NULL);
    m->splits = astro_metrics_counter(reg, "astro_archiver_splits_total",
                                      "Batches split to isolate a refused row", NULL);
    m->trimmed = astro_metrics_counter(reg, "astro_archiver_trimmed_total",
                                       "Hot-tier entries removed by XTRIM MINID", NULL);
    m->partitions_created = astro_metrics_counter(reg, "astro_archiver_partitions_created_total",
                                                  "Day partitions created", NULL);
    m->partitions_dropped = astro_metrics_counter(reg, "astro_archiver_partitions_dropped_total",
                                                  "Day partitions dropped by retention", NULL);
    return m->dead_decode && m->dead_refused && m->retries && m->redis_errors && m->pg_errors &&
                   m->claimed && m->markers && m->splits && m->trimmed && m->partitions_created &&
                   m->partitions_dropped
               ? ASTRO_OK
               : ASTRO_ERR;
}

int
arc_metrics_register(struct arc_metrics *m, struct astro_metrics *reg)
{
    size_t nb;
    const double *sec = astro_metrics_default_buckets_seconds(&nb);
    if (counters(m, reg) != ASTRO_OK)
        return ASTRO_ERR;
    m->batch_rows = astro_metrics_histogram(reg, "astro_archiver_batch_rows",
                                            "Rows per batch", NULL, batch_bounds,
                                            ASTRO_ARRAY_LEN(batch_bounds));
    m->batch_seconds = astro_metrics_histogram(reg, "astro_archiver_batch_seconds",
                                               "Time to write and commit a batch", NULL, sec, nb);
    m->hot_length = astro_metrics_gauge(reg, "astro_archiver_hot_entries",
                                        "Entries in the archived hot-tier streams", NULL);
    m->unarchived = astro_metrics_gauge(reg, "astro_archiver_unarchived_entries",
                                        "Hot-tier entries not yet acknowledged by the archiver",
                                        NULL);
    m->lag_seconds = astro_metrics_gauge(reg, "astro_archiver_lag_seconds",
                                         "Age of the oldest entry of the last committed batch",
                                         NULL);
    return m->batch_rows && m->batch_seconds && m->hot_length && m->unarchived && m->lag_seconds
               ? ASTRO_OK
               : ASTRO_ERR;
}

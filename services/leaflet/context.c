/* The service context: rules, metrics, the worker's Redis connection and the partition table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "astro/log.h"
#include "astro/partition.h"
#include "leaflet.h"

int64_t
cep_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define COUNTER(field, name, help)                                                              \
    ((ctx->met.field = astro_metrics_counter(reg, name, help, NULL)) != NULL)
#define GAUGE(field, name, help) ((ctx->met.field = astro_metrics_gauge(reg, name, help, NULL)) != NULL)

static int
register_metrics(struct cep_ctx *ctx)
{
    struct astro_metrics *reg = astro_service_metrics(ctx->svc);
    bool ok = COUNTER(events_in, "leaflet_events_in_total", "Input entries read") &&
              COUNTER(late, "leaflet_late_total", "Events later than the watermark (astro:late)") &&
              COUNTER(duplicates, "leaflet_duplicates_total", "Events whose id was already held") &&
              COUNTER(evicted, "leaflet_evicted_total", "Window items evicted by the state cap") &&
              COUNTER(dead, "leaflet_dead_total", "Undecodable entries sent to astro:dead") &&
              COUNTER(markers, "leaflet_idle_markers_total", "Idle watermark markers written") &&
              COUNTER(commits, "leaflet_commits_total", "Batches committed (atomic commit script)") &&
              COUNTER(aborts, "leaflet_commit_aborts_total", "Commits refused: lease lost") &&
              COUNTER(rebuilds, "leaflet_rebuilds_total", "Partitions taken over and rebuilt") &&
              COUNTER(replayed, "leaflet_replayed_total", "Entries replayed silently on rebuild") &&
              COUNTER(redis_errors, "leaflet_redis_errors_total", "Redis failures") &&
              COUNTER(reloads, "leaflet_rule_reloads_total", "Successful SIGHUP rule reloads") &&
              GAUGE(owned, "leaflet_owned_partitions", "Partitions leased by this worker") &&
              GAUGE(wm_lag, "leaflet_watermark_lag_seconds",
                    "Wall clock minus the oldest watermark of the owned partitions") &&
              GAUGE(held, "leaflet_held_events", "Events in open windows and reorder buffers") &&
              GAUGE(pending, "leaflet_pending_entries", "Entries read but not yet committed");
    return ok ? cep_metrics_rules(ctx) : ASTRO_ERR;
}

/* (Re)binds one matches counter per rule of the current rule set. */
int
cep_metrics_rules(struct cep_ctx *ctx)
{
    struct astro_metrics *reg = astro_service_metrics(ctx->svc);
    struct astro_counter **v = calloc(ctx->rules.n, sizeof(*v));
    if (v == NULL)
        return ASTRO_ERR;
    for (size_t i = 0; i < ctx->rules.n; i++) {
        char labels[128];
        if (astro_metrics_labels(labels, sizeof(labels), "rule", ctx->rules.rules[i].name,
                                 (char *)NULL) != ASTRO_OK ||
            (v[i] = astro_metrics_counter(reg, "leaflet_matches_total", "Matches per rule",
                                          labels)) == NULL) {
            free(v);
            return ASTRO_ERR;
        }
    }
    free(ctx->met.matches);
    ctx->met.matches = v;
    ctx->met.nmatches = ctx->rules.n;
    return ASTRO_OK;
}

static int
init_partitions(struct cep_ctx *ctx)
{
    ctx->nparts = (uint32_t)ctx->cfg->partitions;
    ctx->parts = calloc(ctx->nparts, sizeof(*ctx->parts));
    if (ctx->parts == NULL)
        return ASTRO_ERR;
    for (uint32_t p = 0; p < ctx->nparts; p++) {
        struct cep_partition *pp = &ctx->parts[p];
        pp->ctx = ctx;
        pp->p = p;
        cep_cmdbuf_init(&pp->out);
        cep_cmdbuf_init(&pp->commit);
        if (astro_stream_key(pp->mono, sizeof(pp->mono), "mono", p) != ASTRO_OK ||
            astro_stream_key(pp->multi, sizeof(pp->multi), "multi", p) != ASTRO_OK)
            return ASTRO_ERR;
        snprintf(pp->lease, sizeof(pp->lease), "astro:lease:{%u}", p);
        snprintf(pp->rebuild, sizeof(pp->rebuild), "astro:rebuild:{%u}", p);
        snprintf(pp->ckpt, sizeof(pp->ckpt), "astro:leaflet:ckpt:{%u}", p);
    }
    return ASTRO_OK;
}

struct cep_ctx *
cep_ctx_new(const struct cep_config *cfg, struct astro_service *svc, char *err, size_t errlen)
{
    struct cep_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        astro_fail(err, errlen, "out of memory");
        return NULL;
    }
    ctx->cfg = cfg;
    ctx->svc = svc;
    ctx->instance = astro_service_instance(svc);
    if (cep_rules_load(cfg->rules_file, &ctx->rules, err, errlen) != ASTRO_OK)
        goto fail;
    if (register_metrics(ctx) != ASTRO_OK || init_partitions(ctx) != ASTRO_OK) {
        astro_fail(err, errlen, "out of memory");
        goto fail;
    }
    /* Replies in one arena each: saves the ~17 malloc/free pairs per entry of an XREADGROUP
     * batch (issue #5); every reply of ctx->r is freed with astro_redis_reply_free(). */
    struct astro_redis_options ro = {.client_name = ctx->instance, .deadline_ms = 2000,
                                     .command_timeout_ms = (uint32_t)cfg->block_ms + 5000,
                                     .arena_replies = true};
    ctx->r = astro_redis_connect(cfg->svc.redis_url, &ro, err, errlen);
    if (ctx->r == NULL)
        goto fail;
    if (astro_partition_check_recorded(ctx->r->c, (uint32_t)cfg->partitions, err, errlen) !=
        ASTRO_OK)
        goto fail;
    atomic_store(&ctx->redis_ok, true);
    astro_log_info("loaded %zu rules from %s", ctx->rules.n, cfg->rules_file);
    return ctx;
fail:
    cep_ctx_free(ctx);
    return NULL;
}

void
cep_ctx_free(struct cep_ctx *ctx)
{
    if (ctx == NULL)
        return;
    for (uint32_t p = 0; ctx->parts && p < ctx->nparts; p++) {
        cep_part_drop(&ctx->parts[p]);
        cep_cmdbuf_cleanup(&ctx->parts[p].out);
        cep_cmdbuf_cleanup(&ctx->parts[p].commit);
    }
    free(ctx->parts);
    astro_redis_free(ctx->r);
    cep_ruleset_free(&ctx->rules);
    free(ctx->met.matches);
    free(ctx);
}

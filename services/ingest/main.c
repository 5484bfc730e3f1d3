/* astro-ingest: the front door for producers and edge devices (docs/ingest.md). */
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "astro/log.h"
#include "astro/service.h"
#include "ingest.h"

int
main(int argc, char **argv)
{
    struct ing_config cfg;
    struct ing_ctx ctx;
    char err[1024];
    int rc = 1;
    astro_service_config_load("astro-ingest", argc, argv, ing_config_vars, ing_config_nvars,
                              &cfg, &cfg.svc);
    if (ing_config_check(&cfg, err, sizeof(err)) != ASTRO_OK) {
        fprintf(stderr, "astro-ingest: invalid configuration:\n%s\n", err);
        astro_cfg_free(ing_config_vars, ing_config_nvars, &cfg);
        return 2;
    }
    struct astro_service_opts opts = {.name = "astro-ingest", .cfg = &cfg.svc,
                                      .health = ing_ctx_health, .health_arg = &ctx,
                                      .on_stop = ing_drain_start, .stop_arg = &ctx};
    struct astro_service *svc = astro_service_new(&opts, err, sizeof(err));
    if (svc == NULL)
        goto fail;
    if (ing_ctx_init(&ctx, &cfg, svc, err, sizeof(err)) != ASTRO_OK ||
        ing_ctx_prepare_redis(&ctx, err, sizeof(err)) != ASTRO_OK ||
        ing_ctx_attach_loops(&ctx, err, sizeof(err)) != ASTRO_OK ||
        ing_ctx_routes(&ctx, err, sizeof(err)) != ASTRO_OK)
        goto fail;
    ctx.bp = ing_bp_start(&ctx, astro_service_base(svc), err, sizeof(err));
    if (ctx.bp == NULL || astro_service_start(svc, err, sizeof(err)) != ASTRO_OK)
        goto fail;
    rc = astro_service_run(svc);
    goto out;
fail:
    astro_log_error("cannot start: %s", err);
out:
    if (svc != NULL) {
        ing_bp_free(ctx.bp);
        if (ctx.drain_timer != NULL)
            event_free(ctx.drain_timer);
        ing_ctx_cleanup(&ctx);
    }
    astro_service_free(svc);
    astro_cfg_free(ing_config_vars, ing_config_nvars, &cfg);
    return rc;
}

/* astro-broadcast: live WebSocket fan-out of the event streams (docs/broadcast.md). */
#include <stdio.h>

#include "astro/log.h"
#include "astro/service.h"
#include "broadcast.h"

int
main(int argc, char **argv)
{
    struct bc_config cfg;
    struct bc_ctx ctx = {0};
    char err[1024];
    int rc = 1;
    astro_service_config_load("astro-broadcast", argc, argv, bc_config_vars, bc_config_nvars,
                              &cfg, &cfg.svc);
    struct astro_service_opts opts = {.name = "astro-broadcast", .cfg = &cfg.svc,
                                      .health = bc_ctx_health, .health_arg = &ctx,
                                      .on_stop = bc_ctx_on_stop, .stop_arg = &ctx};
    struct astro_service *svc = astro_service_new(&opts, err, sizeof(err));
    if (svc == NULL)
        goto fail;
    if (bc_ctx_init(&ctx, &cfg, svc, err, sizeof(err)) != ASTRO_OK ||
        bc_ctx_attach_loops(&ctx, err, sizeof(err)) != ASTRO_OK ||
        bc_ctx_routes(&ctx, err, sizeof(err)) != ASTRO_OK ||
        astro_service_start(svc, err, sizeof(err)) != ASTRO_OK ||
        bc_reader_start(&ctx, err, sizeof(err)) != ASTRO_OK)
        goto fail;
    rc = astro_service_run(svc);
    goto out;
fail:
    astro_log_error("cannot start: %s", err);
out:
    /* The loops have stopped (or never started): their Redis connections can go. */
    bc_ctx_cleanup(&ctx);
    astro_service_free(svc);
    astro_cfg_free(bc_config_vars, bc_config_nvars, &cfg);
    return rc;
}

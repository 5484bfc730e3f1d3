/* Database connection shared by the astro-admin commands. */
#include "admin.h"
#include "astro/pg.h"

struct astro_pg *
adm_connect(const char *url, FILE *errout)
{
    char err[512];
    struct astro_pg_options opt = { .application_name = "astro-admin", .connect_timeout_s = 10 };
    struct astro_pg *pg = astro_pg_connect(url, &opt, err, sizeof(err));
    if (pg == NULL)
        fprintf(errout, "astro-admin: %s\n", err);
    return pg;
}

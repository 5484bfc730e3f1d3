/* Command-line parsing and dispatch for astro-admin. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

void
adm_usage(FILE *f)
{
    fputs("usage: astro-admin <command>\n"
          "\n"
          "commands:\n"
          "  migrate   apply pending schema migrations (idempotent; serialised by an advisory\n"
          "            lock, each migration in its own transaction)\n"
          "  status    applied and pending migrations (with ASTRO_DATABASE_URL), and the\n"
          "            platform (with ASTRO_REDIS_URL): partitions and owners, group lags,\n"
          "            hot-tier size, archive lag\n"
          "  replay-dead [--dry-run] [--stream KEY] [--limit N]\n"
          "            put astro:dead entries back on their stream (needs ASTRO_REDIS_URL)\n"
          "  keys      API keys: keys create --name N --scopes ingest,read,admin | keys list |\n"
          "            keys revoke <name|fingerprint>   (needs ASTRO_REDIS_URL)\n"
          "  help      show this text (also --help, -h)\n"
          "\n"
          "environment:\n"
          "  ASTRO_DATABASE_URL   PostgreSQL URL or conninfo, e.g.\n"
          "                       postgresql://astro@db:5432/astro (required)\n",
          f);
}

static const char *
database_url(FILE *errout)
{
    const char *url = getenv("ASTRO_DATABASE_URL");
    if (url == NULL || url[0] == '\0') {
        fputs("astro-admin: ASTRO_DATABASE_URL is not set "
              "(e.g. postgresql://astro@127.0.0.1:5432/astro)\n", errout);
        return NULL;
    }
    return url;
}

/* Migrations when ASTRO_DATABASE_URL is set, the platform when ASTRO_REDIS_URL is set. */
static int
status_all(FILE *out, FILE *errout)
{
    const char *db = getenv("ASTRO_DATABASE_URL"), *redis = getenv("ASTRO_REDIS_URL");
    bool has_db = db != NULL && db[0] != '\0', has_redis = redis != NULL && redis[0] != '\0';
    int rc = ADM_EXIT_OK;
    if (!has_db && !has_redis) {
        fputs("astro-admin status: set ASTRO_DATABASE_URL (migrations) and/or ASTRO_REDIS_URL "
              "(platform)\n", errout);
        return ADM_EXIT_USAGE;
    }
    if (has_db) {
        fputs("migrations:\n", out);
        rc = adm_status(db, adm_migrations, adm_migrations_count, out, errout);
    }
    if (has_redis && adm_platform_status(out, errout) != ADM_EXIT_OK)
        rc = ADM_EXIT_FAIL;
    return rc;
}

int
adm_main(int argc, char **argv, FILE *out, FILE *errout)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
                      strcmp(argv[1], "help") == 0)) {
        adm_usage(out);
        return ADM_EXIT_OK;
    }
    if (argc >= 2 && strcmp(argv[1], "keys") == 0)
        return adm_keys(argc, argv, out, errout);
    if (argc >= 2 && strcmp(argv[1], "replay-dead") == 0)
        return adm_replay_dead(argc, argv, out, errout);
    if (argc == 2 && strcmp(argv[1], "status") == 0)
        return status_all(out, errout);
    bool known = argc == 2 && strcmp(argv[1], "migrate") == 0;
    if (!known) {
        if (argc >= 2)
            fprintf(errout, "astro-admin: unknown command or arguments: %s%s\n", argv[1],
                    argc > 2 ? " ..." : "");
        adm_usage(errout);
        return ADM_EXIT_USAGE;
    }
    const char *url = database_url(errout);
    if (url == NULL)
        return ADM_EXIT_USAGE;
    return adm_migrate(url, adm_migrations, adm_migrations_count, out, errout);
}

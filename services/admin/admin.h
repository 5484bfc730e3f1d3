/* astro-admin: the operator CLI (migrations, status; API keys later). Each command prints
 * what it did on out and problems on errout, and returns a process exit code:
 * 0 success, 1 failure, 2 usage or configuration error. */
#ifndef ADM_ADMIN_H
#define ADM_ADMIN_H

#include <stdio.h>

struct astro_redis;

#include "migrations.h"

/* Advisory-lock key every `astro-admin migrate` holds while it works, so concurrent runs (two
 * containers starting at once) serialise: "astromig" in ASCII. Anything else that changes the
 * schema should take the same lock. */
#define ADM_MIGRATION_LOCK_KEY "7022084278845270375"

#define ADM_EXIT_OK 0
#define ADM_EXIT_FAIL 1
#define ADM_EXIT_USAGE 2

/* Parses argv and runs the command; env lookups use getenv. */
int adm_main(int argc, char **argv, FILE *out, FILE *errout);

/* Applies every pending migration of `list` (n entries, ordered) to the database at url. */
int adm_migrate(const char *url, const struct adm_migration *list, size_t n, FILE *out,
                FILE *errout);

/* Prints applied and pending migrations. */
int adm_status(const char *url, const struct adm_migration *list, size_t n, FILE *out,
               FILE *errout);

/* Connects to url for a command (application_name astro-admin); reports failures on errout.
 * Returns a connection (free with astro_pg_free()) or NULL. */
struct astro_pg *adm_connect(const char *url, FILE *errout);

/* `keys create|list|revoke` against ASTRO_REDIS_URL (keys.c). */
int adm_keys(int argc, char **argv, FILE *out, FILE *errout);

/* Connects to ASTRO_REDIS_URL for command cmd; reports failures on errout. Returns a
 * connection (free with astro_redis_free()) or NULL. */
struct astro_redis *adm_redis_connect(const char *cmd, FILE *errout);

/* `status`, platform half (platform.c): partitions and owners, group lags, hot-tier size,
 * archive lag, side streams, from ASTRO_REDIS_URL. */
int adm_platform_status(FILE *out, FILE *errout);

/* `replay-dead [--dry-run] [--stream KEY] [--limit N]` (replay.c): astro:dead entries with
 * their original fields go back to their stream. */
int adm_replay_dead(int argc, char **argv, FILE *out, FILE *errout);

/* Prints the usage text. */
void adm_usage(FILE *f);

#endif

/* Configuration: one declarative table of ASTRO_* environment variables per service.
 *
 * A service describes its settings once, as an array of struct astro_cfg_var pointing (offsetof)
 * into its own config struct, and gets strict parsing, defaults, bounds, a report of every bad
 * value at once, a masked log of the effective configuration and --help text from that table.
 *
 *     struct ing_config { char *redis_url; int64_t batch; int64_t flush_ms; bool auth; };
 *     static const struct astro_cfg_var ing_vars[] = {
 *         {"ASTRO_REDIS_URL", ASTRO_CFG_STRING, "redis://127.0.0.1:6379", 0, 0, NULL,
 *          ASTRO_CFG_REQUIRED, offsetof(struct ing_config, redis_url), "Redis to write to"},
 *         {"ASTRO_BATCH_SIZE", ASTRO_CFG_INT, "500", 1, 10000, NULL, 0,
 *          offsetof(struct ing_config, batch), "Events per XADD pipeline"},
 *         ...
 *     };
 *     struct ing_config cfg;
 *     astro_cfg_main_load("astro-ingest", ing_vars, ASTRO_ARRAY_LEN(ing_vars), &cfg);
 */
#ifndef ASTRO_CONFIG_H
#define ASTRO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "astro/common.h"

/* What each type accepts and the C type of the field at offset. */
enum astro_cfg_type {
    ASTRO_CFG_STRING,   /* char * (strdup'ed; NULL when unset with no default) */
    ASTRO_CFG_INT,      /* int64_t: decimal integer, optional leading '-' */
    ASTRO_CFG_BOOL,     /* bool: true/false, 1/0, yes/no, on/off (any case) */
    ASTRO_CFG_DURATION, /* int64_t milliseconds: "250ms", "5s", "2m", "1h"; plain integer = ms */
    ASTRO_CFG_BYTES,    /* int64_t bytes: "512", "512B", "64KiB", "16MiB", "1GiB", "1TiB";
                         * K/M/G/T (and KB/MB/GB/TB) also mean powers of 1024; any case */
    ASTRO_CFG_ENUM,     /* char *: one of choices ("mono|multi|all"), any case, stored as
                         * spelled in choices */
    ASTRO_CFG_LOGLEVEL, /* enum astro_log_level: error, warn, info, debug */
};

/* flags */
#define ASTRO_CFG_SECRET 0x1u   /* never logged nor echoed in an error: shown as "****" */
#define ASTRO_CFG_REQUIRED 0x2u /* must be set (to a non-empty value) in the environment */

/* min/max bound INT, DURATION (ms) and BYTES values when min < max; min == max == 0 means
 * unbounded (DURATION and BYTES are never negative). def is parsed like an environment value
 * and may be NULL (field left NULL / 0 / false). */
struct astro_cfg_var {
    const char *name;
    enum astro_cfg_type type;
    const char *def;
    int64_t min, max;
    const char *choices;
    unsigned flags;
    size_t offset;
    const char *help;
};

/* Reads every variable of vars from the environment (or its default), parses it strictly,
 * checks bounds and stores it in cfg. Returns ASTRO_OK, or ASTRO_ERR with EVERY bad variable
 * reported in err, one per line ("ASTRO_BATCH_SIZE: \"12x\" is not an integer"); on ASTRO_ERR
 * cfg holds no allocated strings. On success free the strings with astro_cfg_free(). */
int astro_cfg_load(const struct astro_cfg_var *vars, size_t n, void *cfg, char *err,
                   size_t errlen) ASTRO_MUST_CHECK;

/* Frees the strings astro_cfg_load() stored in cfg and sets them to NULL. */
void astro_cfg_free(const struct astro_cfg_var *vars, size_t n, void *cfg);

/* For a service main: loads, or prints "<prog>: invalid configuration:" and the errors to
 * stderr and exits with status 2. Also warns about unknown ASTRO_* variables (see below). */
void astro_cfg_main_load(const char *prog, const struct astro_cfg_var *vars, size_t n,
                         void *cfg);

/* Logs the effective configuration at info level, one "config: NAME=value" line per variable.
 * SECRET values show as "****"; the password of a URL ("redis://user:pw@host") and a
 * "password=..." conninfo item are masked in every string value. */
void astro_cfg_log(const struct astro_cfg_var *vars, size_t n, const void *cfg);

/* Logs a warning for each ASTRO_* variable in the environment that vars does not know, naming
 * the closest known name when one is near (a likely typo). Returns the number of warnings. */
size_t astro_cfg_warn_unknown(const struct astro_cfg_var *vars, size_t n);

/* Prints one entry per variable for --help: name, type, default, bounds or choices, flags and
 * the help text. */
void astro_cfg_help(FILE *out, const struct astro_cfg_var *vars, size_t n);

/* Writes value into out (size bytes) with secrets masked as astro_cfg_log() shows them. */
void astro_cfg_mask(char *out, size_t size, const char *value, bool secret);

/* Strict value parsers, also for other modules (query parameters, CLI flags). Each returns
 * ASTRO_OK, or ASTRO_ERR with a reason that does not name the variable ("is not an integer"). */
int astro_cfg_parse_int(const char *s, int64_t *out, char *err, size_t errlen) ASTRO_MUST_CHECK;
int astro_cfg_parse_bool(const char *s, bool *out, char *err, size_t errlen) ASTRO_MUST_CHECK;
int astro_cfg_parse_duration(const char *s, int64_t *ms, char *err,
                             size_t errlen) ASTRO_MUST_CHECK;
int astro_cfg_parse_bytes(const char *s, int64_t *bytes, char *err,
                          size_t errlen) ASTRO_MUST_CHECK;

/* Format a duration in ms / a byte count with the largest unit that represents it exactly
 * ("90s", "1500ms", "16MiB", "1000B"); the output parses back to the same value. */
void astro_cfg_format_duration(char *buf, size_t size, int64_t ms);
void astro_cfg_format_bytes(char *buf, size_t size, int64_t bytes);

#endif

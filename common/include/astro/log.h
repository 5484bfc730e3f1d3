/* Logging: one line per event to stderr, "<time> <level> <service>[<instance>] <message>".
 * The macros test the level before any argument is evaluated or formatted, so a disabled
 * debug line costs one comparison. Thread-safe: each line is written with one write(2). */
#ifndef ASTRO_LOG_H
#define ASTRO_LOG_H

#include "astro/common.h"

enum astro_log_level {
    ASTRO_LOG_ERROR = 0,
    ASTRO_LOG_WARN = 1,
    ASTRO_LOG_INFO = 2,
    ASTRO_LOG_DEBUG = 3,
};

extern enum astro_log_level astro_log_level_current;

/* Sets the service and instance names shown on every line (both copied) and the level. */
void astro_log_init(const char *service, const char *instance, enum astro_log_level level);

/* Parses "error", "warn", "info" or "debug" (case-insensitive). */
int astro_log_parse_level(const char *s, enum astro_log_level *out) ASTRO_MUST_CHECK;

const char *astro_log_level_name(enum astro_log_level level);

void astro_log_write(enum astro_log_level level, const char *fmt, ...) ASTRO_PRINTF(2, 3);

#define astro_log(level, ...)                                                                   \
    do {                                                                                        \
        if ((level) <= astro_log_level_current)                                                 \
            astro_log_write((level), __VA_ARGS__);                                              \
    } while (0)
#define astro_log_error(...) astro_log(ASTRO_LOG_ERROR, __VA_ARGS__)
#define astro_log_warn(...) astro_log(ASTRO_LOG_WARN, __VA_ARGS__)
#define astro_log_info(...) astro_log(ASTRO_LOG_INFO, __VA_ARGS__)
#define astro_log_debug(...) astro_log(ASTRO_LOG_DEBUG, __VA_ARGS__)

#endif

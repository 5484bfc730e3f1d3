/* Logging to stderr: one line per call, written with a single write(2) so that lines from
 * different threads never interleave (POSIX keeps one write to a pipe of up to PIPE_BUF bytes
 * atomic; longer lines are truncated to fit the stack buffer, so most lines qualify). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "astro/log.h"

#define LOG_LINE_MAX 4096
#define LOG_NAME_MAX 64

enum astro_log_level astro_log_level_current = ASTRO_LOG_INFO;

static char log_service[LOG_NAME_MAX] = "astro";
static char log_instance[LOG_NAME_MAX] = "-";

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void
astro_log_init(const char *service, const char *instance, enum astro_log_level level)
{
    if (service != NULL)
        snprintf(log_service, sizeof(log_service), "%s", service);
    if (instance != NULL)
        snprintf(log_instance, sizeof(log_instance), "%s", instance);
    astro_log_level_current = level;
}

int
astro_log_parse_level(const char *s, enum astro_log_level *out)
{
    if (s == NULL)
        return ASTRO_ERR;
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(level_names); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum astro_log_level)i;
            return ASTRO_OK;
        }
    }
    return ASTRO_ERR;
}

const char *
astro_log_level_name(enum astro_log_level level)
{
    if ((unsigned)level >= ASTRO_ARRAY_LEN(level_names))
        return "?";
    return level_names[level];
}

/* Writes "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" (27 bytes) into buf and returns its length. */
static size_t
format_time(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    int m = snprintf(buf + n, size - n, ".%06ldZ", ts.tv_nsec / 1000);
    return n + (m > 0 ? (size_t)m : 0);
}

/* Writes all of buf, retrying on EINTR; a short write to stderr has nowhere to be reported. */
static void
write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        buf += w;
        len -= (size_t)w;
    }
}

/* A message is one line: embedded CR/LF (e.g. from a client-supplied string) become spaces so
 * nobody can forge a log line. Stops at the NUL vsnprintf wrote. */
static void
flatten(char *p, const char *end)
{
    for (; p < end && *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    }
}

void
astro_log_write(enum astro_log_level level, const char *fmt, ...)
{
    static const char ellipsis[] = "...\n";
    char line[LOG_LINE_MAX];
    size_t cap = sizeof(line) - 1; /* room for the newline */
    size_t n = format_time(line, cap);
    int m = snprintf(line + n, cap - n, " %s %s[%s] ", astro_log_level_name(level), log_service,
                     log_instance);
    n += (m > 0) ? (size_t)m : 0;

    va_list ap;
    va_start(ap, fmt);
    m = vsnprintf(line + n, cap - n, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    flatten(line + n, line + cap);
    if ((size_t)m >= cap - n) {
        /* Truncated: end the line visibly so a reader knows text was lost. */
        memcpy(line + sizeof(line) - sizeof(ellipsis), ellipsis, sizeof(ellipsis) - 1);
        write_all(line, sizeof(line) - 1);
        return;
    }
    n += (size_t)m;
    line[n++] = '\n';
    write_all(line, n);
}

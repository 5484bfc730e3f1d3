/* Strict parsing and exact formatting of configuration values: integers, booleans, durations
 * and byte sizes. No atoi: every character must belong to the value, overflow is an error. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "astro/config.h"

struct unit {
    const char *suffix;
    int64_t factor;
};

static const struct unit duration_units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"", 1},
};

static const struct unit byte_units[] = {
    {"B", 1},
    {"KiB", INT64_C(1) << 10}, {"KB", INT64_C(1) << 10}, {"K", INT64_C(1) << 10},
    {"MiB", INT64_C(1) << 20}, {"MB", INT64_C(1) << 20}, {"M", INT64_C(1) << 20},
    {"GiB", INT64_C(1) << 30}, {"GB", INT64_C(1) << 30}, {"G", INT64_C(1) << 30},
    {"TiB", INT64_C(1) << 40}, {"TB", INT64_C(1) << 40}, {"T", INT64_C(1) << 40},
    {"", 1},
};

/* Parses the leading decimal digits of s (optionally signed) into *out and points *end after
 * them. Distinguishes "no digits", "fraction" and "overflow" so the message can say which. */
static int
parse_digits(const char *s, int64_t *out, const char **end, char *err, size_t errlen)
{
    const char *p = (*s == '-' || *s == '+') ? s + 1 : s;
    if (!isdigit((unsigned char)*p))
        return astro_fail(err, errlen, "is not an integer");
    char *e = NULL;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (errno == ERANGE)
        return astro_fail(err, errlen, "is out of range");
    if (*e == '.' || *e == 'e' || *e == 'E')
        return astro_fail(err, errlen, "is not an integer");
    *out = v;
    *end = e;
    return ASTRO_OK;
}

int
astro_cfg_parse_int(const char *s, int64_t *out, char *err, size_t errlen)
{
    const char *end = NULL;
    int64_t v = 0;
    if (s == NULL || *s == '\0')
        return astro_fail(err, errlen, "is empty");
    if (parse_digits(s, &v, &end, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if (*end != '\0')
        return astro_fail(err, errlen, "is not an integer");
    *out = v;
    return ASTRO_OK;
}

int
astro_cfg_parse_bool(const char *s, bool *out, char *err, size_t errlen)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    if (s == NULL || *s == '\0')
        return astro_fail(err, errlen, "is empty");
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            *out = strcasecmp(s, yes[i]) == 0;
            return ASTRO_OK;
        }
    }
    return astro_fail(err, errlen, "is not a boolean (true/false, 1/0, yes/no, on/off)");
}

/* Number followed by one of units; the unit match is exact, or case-insensitive when icase. */
static int
parse_scaled(const char *s, const struct unit *units, size_t nunits, bool icase, int64_t *out,
             const char *what, char *err, size_t errlen)
{
    const char *end = NULL;
    int64_t v = 0;
    if (s == NULL || *s == '\0')
        return astro_fail(err, errlen, "is empty");
    if (*s == '-')
        return astro_fail(err, errlen, "is negative");
    if (*s == '+' || parse_digits(s, &v, &end, err, errlen) != ASTRO_OK)
        return astro_fail(err, errlen, "is not a %s", what);
    for (size_t i = 0; i < nunits; i++) {
        if ((icase ? strcasecmp(end, units[i].suffix) : strcmp(end, units[i].suffix)) != 0)
            continue;
        if (v > INT64_MAX / units[i].factor)
            return astro_fail(err, errlen, "is out of range");
        *out = v * units[i].factor;
        return ASTRO_OK;
    }
    return astro_fail(err, errlen, "is not a %s", what);
}

int
astro_cfg_parse_duration(const char *s, int64_t *ms, char *err, size_t errlen)
{
    return parse_scaled(s, duration_units, ASTRO_ARRAY_LEN(duration_units), false, ms,
                        "duration (e.g. 250ms, 5s, 2m, 1h)", err, errlen);
}

int
astro_cfg_parse_bytes(const char *s, int64_t *bytes, char *err, size_t errlen)
{
    return parse_scaled(s, byte_units, ASTRO_ARRAY_LEN(byte_units), true, bytes,
                        "size (e.g. 512, 64KiB, 16MiB, 1GiB)", err, errlen);
}

/* Largest unit of the (descending) list that divides v exactly. */
static void
format_scaled(char *buf, size_t size, int64_t v, const struct unit *desc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (v != 0 && v % desc[i].factor == 0) {
            snprintf(buf, size, "%" PRId64 "%s", v / desc[i].factor, desc[i].suffix);
            return;
        }
    }
    snprintf(buf, size, "%" PRId64 "%s", v, desc[n - 1].suffix);
}

void
astro_cfg_format_duration(char *buf, size_t size, int64_t ms)
{
    static const struct unit desc[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    format_scaled(buf, size, ms, desc, ASTRO_ARRAY_LEN(desc));
}

void
astro_cfg_format_bytes(char *buf, size_t size, int64_t bytes)
{
    static const struct unit desc[] = {{"TiB", INT64_C(1) << 40},
                                       {"GiB", INT64_C(1) << 30},
                                       {"MiB", INT64_C(1) << 20},
                                       {"KiB", INT64_C(1) << 10},
                                       {"B", 1}};
    format_scaled(buf, size, bytes, desc, ASTRO_ARRAY_LEN(desc));
}

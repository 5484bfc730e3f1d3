/* RFC 3339 and epoch-ms conversion for event timestamps; see astro/time.h for the decisions. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "astro/time.h"

#define SECS_PER_DAY INT64_C(86400)

struct civil {
    int year, month, day, hour, min, sec;
    int32_t frac_us;
    int offset_min;
};

static bool
is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date, by counting 400-year eras from March so
 * the leap day is the last day of the year. */
static int64_t
days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* Reads exactly n digits at s[*pos]; false if any is not a digit or the input ends. */
static bool
digits(const char *s, size_t len, size_t *pos, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (*pos >= len || s[*pos] < '0' || s[*pos] > '9')
            return false;
        v = v * 10 + (s[(*pos)++] - '0');
    }
    *out = v;
    return true;
}

static bool
expect(const char *s, size_t len, size_t *pos, char a, char b)
{
    if (*pos >= len || (s[*pos] != a && s[*pos] != b))
        return false;
    (*pos)++;
    return true;
}

static int
parse_fraction(const char *s, size_t len, size_t *pos, struct civil *c, char *err, size_t errlen)
{
    c->frac_us = 0;
    if (*pos >= len || s[*pos] != '.')
        return ASTRO_OK;
    (*pos)++;
    int n = 0;
    while (*pos < len && s[*pos] >= '0' && s[*pos] <= '9') {
        if (++n > 9)
            return astro_fail(err, errlen, "timestamp: more than 9 fraction digits");
        if (n <= 6)
            c->frac_us = c->frac_us * 10 + (s[*pos] - '0');
        (*pos)++;
    }
    if (n == 0)
        return astro_fail(err, errlen, "timestamp: missing digits after '.'");
    for (; n < 6; n++)
        c->frac_us *= 10;
    return ASTRO_OK;
}

static int
parse_zone(const char *s, size_t len, size_t *pos, struct civil *c, char *err, size_t errlen)
{
    if (*pos >= len)
        return astro_fail(err, errlen, "timestamp: missing time zone (Z or +hh:mm)");
    char z = s[(*pos)++];
    if (z == 'Z' || z == 'z') {
        c->offset_min = 0;
        return ASTRO_OK;
    }
    int hh, mm;
    if ((z != '+' && z != '-') || !digits(s, len, pos, 2, &hh) || !expect(s, len, pos, ':', ':') ||
        !digits(s, len, pos, 2, &mm))
        return astro_fail(err, errlen, "timestamp: bad time zone (want Z or +hh:mm)");
    if (hh > 23 || mm > 59)
        return astro_fail(err, errlen, "timestamp: time zone offset out of range");
    c->offset_min = (z == '-' ? -1 : 1) * (hh * 60 + mm);
    return ASTRO_OK;
}

static int
check_ranges(const struct civil *c, char *err, size_t errlen)
{
    if (c->month < 1 || c->month > 12)
        return astro_fail(err, errlen, "timestamp: month %d out of range", c->month);
    if (c->day < 1 || c->day > days_in_month(c->year, c->month))
        return astro_fail(err, errlen, "timestamp: day %d out of range for %04d-%02d", c->day,
                          c->year, c->month);
    if (c->hour > 23)
        return astro_fail(err, errlen, "timestamp: hour %d out of range", c->hour);
    if (c->min > 59)
        return astro_fail(err, errlen, "timestamp: minute %d out of range", c->min);
    if (c->sec > 60)
        return astro_fail(err, errlen, "timestamp: second %d out of range", c->sec);
    return ASTRO_OK;
}

static int
parse_civil(const char *s, size_t len, struct civil *c, char *err, size_t errlen)
{
    size_t pos = 0;
    if (!digits(s, len, &pos, 4, &c->year) || !expect(s, len, &pos, '-', '-') ||
        !digits(s, len, &pos, 2, &c->month) || !expect(s, len, &pos, '-', '-') ||
        !digits(s, len, &pos, 2, &c->day) || !expect(s, len, &pos, 'T', 't') ||
        !digits(s, len, &pos, 2, &c->hour) || !expect(s, len, &pos, ':', ':') ||
        !digits(s, len, &pos, 2, &c->min) || !expect(s, len, &pos, ':', ':') ||
        !digits(s, len, &pos, 2, &c->sec))
        return astro_fail(err, errlen, "timestamp: not RFC 3339 (YYYY-MM-DDTHH:MM:SS[.f]Z)");
    if (parse_fraction(s, len, &pos, c, err, errlen) != ASTRO_OK ||
        parse_zone(s, len, &pos, c, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if (pos != len)
        return astro_fail(err, errlen, "timestamp: unexpected characters after the time zone");
    return check_ranges(c, err, errlen);
}

int
astro_time_parse_rfc3339(const char *s, size_t len, int64_t *out_us, char *err, size_t errlen)
{
    struct civil c = {0};
    if (parse_civil(s, len, &c, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if (c.sec == 60) {
        c.sec = 59;
        c.frac_us = 999999;
    }
    int64_t secs = days_from_civil(c.year, c.month, c.day) * SECS_PER_DAY + c.hour * 3600 +
                   c.min * 60 + c.sec - (int64_t)c.offset_min * 60;
    int64_t us = secs * ASTRO_US_PER_SEC + c.frac_us;
    if (us < ASTRO_TIME_MIN_US || us > ASTRO_TIME_MAX_US)
        return astro_fail(err, errlen, "timestamp: outside years 0001..9999 UTC");
    *out_us = us;
    return ASTRO_OK;
}

int
astro_time_from_epoch_ms(double ms, int64_t *out_us, char *err, size_t errlen)
{
    if (!isfinite(ms))
        return astro_fail(err, errlen, "timestamp: epoch ms must be a finite number");
    /* Compare in ms first so the µs multiplication below cannot overflow. */
    if (ms < (double)(ASTRO_TIME_MIN_US / 1000) || ms > (double)(ASTRO_TIME_MAX_US / 1000))
        return astro_fail(err, errlen, "timestamp: epoch ms out of range (years 0001..9999)");
    double whole = floor(ms);
    int64_t us = (int64_t)whole * 1000 + (int64_t)llround((ms - whole) * 1000.0);
    if (us < ASTRO_TIME_MIN_US || us > ASTRO_TIME_MAX_US)
        return astro_fail(err, errlen, "timestamp: epoch ms out of range (years 0001..9999)");
    *out_us = us;
    return ASTRO_OK;
}

int
astro_time_format(int64_t us, char *out, size_t outlen)
{
    if (us < ASTRO_TIME_MIN_US || us > ASTRO_TIME_MAX_US || outlen < ASTRO_TIME_RFC3339_LEN + 1)
        return ASTRO_ERR;
    int64_t secs = us / ASTRO_US_PER_SEC;
    int64_t frac = us % ASTRO_US_PER_SEC;
    if (frac < 0) {
        frac += ASTRO_US_PER_SEC;
        secs--;
    }
    int64_t days = secs / SECS_PER_DAY;
    int64_t sod = secs % SECS_PER_DAY;
    if (sod < 0) {
        sod += SECS_PER_DAY;
        days--;
    }
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", y, m, d, (int)(sod / 3600),
             (int)(sod / 60 % 60), (int)(sod % 60), (int)frac);
    return ASTRO_OK;
}

int64_t
astro_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * ASTRO_US_PER_SEC + ts.tv_nsec / 1000;
}

/* The event struct: limits, validators, cleanup and decoding from a JSON object. The decisions
 * (unknown fields, absent id/timestamp, hard caps) are listed at the top of astro/event.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "astro/event.h"
#include "astro/time.h"
#include "astro/utf8.h"
#include "astro/uuid.h"

#define US_PER_MIN (60 * ASTRO_US_PER_SEC)
#define US_PER_DAY (86400 * ASTRO_US_PER_SEC)

static const char *const mono_fields[] = {
    "event_id", "timestamp", "source_stream", "key", "event_type", "value", "metadata",
};
static const char *const multi_fields[] = {
    "correlation_rule", "integrated_value", "confidence", "source_events", "lineage",
};

struct astro_event_limits
astro_event_limits_default(void)
{
    return (struct astro_event_limits){
        .max_meta_bytes = 64 * 1024,
        .max_name_bytes = ASTRO_EVENT_NAME_MAX,
        .max_key_bytes = 256,
        .max_id_bytes = ASTRO_EVENT_ID_MAX,
        .max_future_us = 5 * US_PER_MIN,
        .max_age_us = 30 * US_PER_DAY,
        .max_depth = 32,
        .max_sources = 1024,
    };
}

void
astro_event_cleanup(struct astro_event *ev)
{
    free(ev->src);
    free(ev->key);
    free(ev->type);
    free(ev->meta_json);
    free(ev->rule);
    free(ev->lineage);
    memset(ev, 0, sizeof(*ev));
}

int
astro_event_assign_defaults(struct astro_event *ev, int64_t now_us)
{
    if (ev->assign & ASTRO_EVENT_ASSIGN_ID) {
        struct astro_uuid u;
        if (astro_uuid_v4(&u) != ASTRO_OK)
            return ASTRO_ERR;
        astro_uuid_format(&u, ev->id);
    }
    if (ev->assign & ASTRO_EVENT_ASSIGN_TS)
        ev->ts_us = now_us;
    ev->assign = 0;
    return ASTRO_OK;
}

static bool
is_name_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == ':' || c == '-';
}

static size_t
cap(size_t max)
{
    return max == 0 || max > ASTRO_EVENT_NAME_MAX ? ASTRO_EVENT_NAME_MAX : max;
}

int
astro_event_check_name(const char *field, const char *s, size_t len, size_t max, char *err,
                       size_t errlen)
{
    max = cap(max);
    if (len == 0)
        return astro_fail(err, errlen, "%s: must not be empty", field);
    if (len > max)
        return astro_fail(err, errlen, "%s: longer than %zu bytes", field, max);
    for (size_t i = 0; i < len; i++)
        if (!is_name_char((unsigned char)s[i]))
            return astro_fail(err, errlen,
                              "%s: invalid character at byte %zu (allowed: A-Z a-z 0-9 _ . : -)",
                              field, i);
    return ASTRO_OK;
}

int
astro_event_check_key(const char *s, size_t len, size_t max, char *err, size_t errlen)
{
    if (len > max)
        return astro_fail(err, errlen, "key: longer than %zu bytes", max);
    if (!astro_utf8_valid(s, len))
        return astro_fail(err, errlen, "key: invalid UTF-8");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        /* C0, DEL, and C1 (U+0080..U+009F, encoded C2 80..C2 9F). */
        if (c < 0x20 || c == 0x7f || (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] < 0xa0))
            return astro_fail(err, errlen, "key: control characters are not allowed");
    }
    return ASTRO_OK;
}

int
astro_event_check_id(const char *field, const char *s, size_t len, size_t max,
                     char out[ASTRO_EVENT_ID_MAX + 1], char *err, size_t errlen)
{
    struct astro_uuid u;
    if (astro_uuid_parse(s, len, &u) == ASTRO_OK) {
        astro_uuid_format(&u, out);
        return ASTRO_OK;
    }
    max = cap(max);
    if (astro_event_check_name(field, s, len, max, NULL, 0) != ASTRO_OK)
        return astro_fail(err, errlen, "%s: must be a UUID or 1..%zu characters of "
                          "[A-Za-z0-9_.:-]", field, max);
    memcpy(out, s, len);
    out[len] = '\0';
    return ASTRO_OK;
}

/* Writes the decimal digits of an integer of magnitude below 10^15. */
static void
format_small_integer(long long v, char buf[ASTRO_EVENT_DOUBLE_BUF])
{
    char tmp[24];
    size_t n = 0, o = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0)
        buf[o++] = '-';
    while (n > 0)
        buf[o++] = tmp[--n];
    buf[o] = '\0';
}

void
astro_event_format_double(double d, char buf[ASTRO_EVENT_DOUBLE_BUF])
{
    /* Integers below 10^15 (most values, and every lineage value of integer input) print as
     * their digits under %.15g and read back exactly: skip snprintf and strtod, which cost
     * the leaflet a few percent of its CPU per multi event. -0 keeps the slow path ("-0"). */
    if (d > -1e15 && d < 1e15 && d == (double)(long long)d && !(d == 0 && signbit(d))) {
        format_small_integer((long long)d, buf);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, ASTRO_EVENT_DOUBLE_BUF, "%.*g", prec, d);
        double back = strtod(buf, NULL);
        if (memcmp(&back, &d, sizeof(d)) == 0)
            return;
    }
}

/* ---- JSON object decoding ---- */

static bool
in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return true;
    return false;
}

static int
check_known_fields(const cJSON *obj, const struct astro_event_limits *lim, char *err,
                   size_t errlen)
{
    for (const cJSON *it = obj->child; it != NULL; it = it->next) {
        if (in_list(it->string, mono_fields, ASTRO_ARRAY_LEN(mono_fields)) ||
            (lim->allow_multi && in_list(it->string, multi_fields, ASTRO_ARRAY_LEN(multi_fields))) ||
            in_list(it->string, lim->extra_fields, lim->n_extra_fields))
            continue;
        return astro_fail(err, errlen, "unknown field \"%.64s\"", it->string);
    }
    return ASTRO_OK;
}

/* Looks up a string field: ASTRO_OK with *out NULL if absent and optional. */
static int
get_string(const cJSON *obj, const char *field, bool required, const char **out, char *err,
           size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, field);
    *out = NULL;
    if (it == NULL)
        return required ? astro_fail(err, errlen, "%s: missing", field) : ASTRO_OK;
    if (!cJSON_IsString(it))
        return astro_fail(err, errlen, "%s: must be a string", field);
    *out = it->valuestring;
    return ASTRO_OK;
}

static int
get_number(const cJSON *obj, const char *field, double *out, char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (it == NULL)
        return astro_fail(err, errlen, "%s: missing", field);
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return astro_fail(err, errlen, "%s: must be a finite number", field);
    *out = it->valuedouble;
    return ASTRO_OK;
}

static int
dup_name(const cJSON *obj, const char *field, size_t max, char **out, char *err, size_t errlen)
{
    const char *s;
    if (get_string(obj, field, true, &s, err, errlen) != ASTRO_OK ||
        astro_event_check_name(field, s, strlen(s), max, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if ((*out = strdup(s)) == NULL)
        return astro_fail(err, errlen, "%s: out of memory", field);
    return ASTRO_OK;
}

static int
decode_id(const cJSON *obj, const struct astro_event_limits *lim, struct astro_event *ev,
          char *err, size_t errlen)
{
    const char *s;
    if (get_string(obj, "event_id", false, &s, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if (s == NULL) {
        ev->assign |= ASTRO_EVENT_ASSIGN_ID;
        return ASTRO_OK;
    }
    return astro_event_check_id("event_id", s, strlen(s), lim->max_id_bytes, ev->id, err, errlen);
}

static int
check_window(int64_t ts, const struct astro_event_limits *lim, int64_t now_us, char *err,
             size_t errlen)
{
    if (lim->max_future_us > 0 && ts - now_us > lim->max_future_us)
        return astro_fail(err, errlen, "timestamp: more than %lld s in the future",
                          (long long)(lim->max_future_us / ASTRO_US_PER_SEC));
    if (lim->max_age_us > 0 && now_us - ts > lim->max_age_us)
        return astro_fail(err, errlen, "timestamp: older than %lld s",
                          (long long)(lim->max_age_us / ASTRO_US_PER_SEC));
    return ASTRO_OK;
}

static int
decode_time(const cJSON *obj, const struct astro_event_limits *lim, int64_t now_us,
            struct astro_event *ev, char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, "timestamp");
    int rc;
    if (it == NULL) {
        ev->assign |= ASTRO_EVENT_ASSIGN_TS;
        return ASTRO_OK;
    }
    if (cJSON_IsString(it))
        rc = astro_time_parse_rfc3339(it->valuestring, strlen(it->valuestring), &ev->ts_us, err,
                                      errlen);
    else if (cJSON_IsNumber(it))
        rc = astro_time_from_epoch_ms(it->valuedouble, &ev->ts_us, err, errlen);
    else
        return astro_fail(err, errlen, "timestamp: not RFC 3339 or epoch ms");
    if (rc != ASTRO_OK)
        return ASTRO_ERR;
    return check_window(ev->ts_us, lim, now_us, err, errlen);
}

static int
decode_key(const cJSON *obj, const struct astro_event_limits *lim, struct astro_event *ev,
           char *err, size_t errlen)
{
    const char *s;
    if (get_string(obj, "key", false, &s, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if (s == NULL)
        s = "";
    if (astro_event_check_key(s, strlen(s), lim->max_key_bytes, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if ((ev->key = strdup(s)) == NULL)
        return astro_fail(err, errlen, "key: out of memory");
    return ASTRO_OK;
}

/* True if every number inside item is finite: cJSON turns 1e400 into inf, which it would later
 * print as null, silently changing the producer's data. */
static bool
all_finite(const cJSON *item)
{
    if (cJSON_IsNumber(item))
        return isfinite(item->valuedouble);
    for (const cJSON *c = item->child; c != NULL; c = c->next)
        if (!all_finite(c))
            return false;
    return true;
}

static int
decode_meta(const cJSON *obj, const struct astro_event_limits *lim, struct astro_event *ev,
            char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    if (it == NULL || cJSON_IsNull(it))
        return ASTRO_OK;
    if (!cJSON_IsObject(it))
        return astro_fail(err, errlen, "metadata: must be an object");
    if (!all_finite(it))
        return astro_fail(err, errlen, "metadata: numbers must be finite");
    if ((ev->meta_json = cJSON_PrintUnformatted(it)) == NULL)
        return astro_fail(err, errlen, "metadata: out of memory");
    if (strlen(ev->meta_json) > lim->max_meta_bytes)
        return astro_fail(err, errlen, "metadata: larger than %zu bytes", lim->max_meta_bytes);
    return ASTRO_OK;
}

static int
decode_mono(const cJSON *obj, const struct astro_event_limits *lim, int64_t now_us,
            struct astro_event *ev, char *err, size_t errlen)
{
    if (decode_id(obj, lim, ev, err, errlen) != ASTRO_OK ||
        decode_time(obj, lim, now_us, ev, err, errlen) != ASTRO_OK ||
        dup_name(obj, "source_stream", lim->max_name_bytes, &ev->src, err, errlen) != ASTRO_OK ||
        decode_key(obj, lim, ev, err, errlen) != ASTRO_OK ||
        dup_name(obj, "event_type", lim->max_name_bytes, &ev->type, err, errlen) != ASTRO_OK ||
        get_number(obj, "value", &ev->value, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    return decode_meta(obj, lim, ev, err, errlen);
}

/* ---- multi-originated fields ---- */

static int
copy_name(const cJSON *obj, const char *field, const char *where, char out[ASTRO_EVENT_NAME_MAX + 1],
          char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, field);
    char label[96];
    snprintf(label, sizeof(label), "%s.%s", where, field);
    if (it == NULL)
        return astro_fail(err, errlen, "%s: missing", label);
    if (!cJSON_IsString(it))
        return astro_fail(err, errlen, "%s: must be a string", label);
    size_t len = strlen(it->valuestring);
    if (strcmp(field, "event_id") == 0)
        return astro_event_check_id(label, it->valuestring, len, ASTRO_EVENT_ID_MAX, out, err,
                                    errlen);
    if (astro_event_check_name(label, it->valuestring, len, ASTRO_EVENT_NAME_MAX, err, errlen) !=
        ASTRO_OK)
        return ASTRO_ERR;
    memcpy(out, it->valuestring, len + 1);
    return ASTRO_OK;
}

static int
decode_lineage_item(const cJSON *obj, size_t i, struct astro_lineage_item *li, char *err,
                    size_t errlen)
{
    char where[48];
    snprintf(where, sizeof(where), "lineage[%zu]", i);
    if (!cJSON_IsObject(obj))
        return astro_fail(err, errlen, "%s: must be an object", where);
    if (copy_name(obj, "event_id", where, li->id, err, errlen) != ASTRO_OK ||
        copy_name(obj, "source_stream", where, li->stream, err, errlen) != ASTRO_OK ||
        copy_name(obj, "event_type", where, li->type, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(obj, "timestamp");
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(obj, "value");
    if (!cJSON_IsString(ts) ||
        astro_time_parse_rfc3339(ts->valuestring, strlen(ts->valuestring), &li->ts_us, NULL, 0) !=
            ASTRO_OK)
        return astro_fail(err, errlen, "%s.timestamp: must be an RFC 3339 string", where);
    if (!cJSON_IsNumber(val) || !isfinite(val->valuedouble))
        return astro_fail(err, errlen, "%s.value: must be a finite number", where);
    li->value = val->valuedouble;
    return ASTRO_OK;
}

static int
decode_lineage(const cJSON *obj, const struct astro_event_limits *lim, struct astro_event *ev,
               char *err, size_t errlen)
{
    const cJSON *lin = cJSON_GetObjectItemCaseSensitive(obj, "lineage");
    const cJSON *srcs = cJSON_GetObjectItemCaseSensitive(obj, "source_events");
    if (!cJSON_IsArray(lin))
        return astro_fail(err, errlen, "lineage: %s", lin ? "must be an array" : "missing");
    if (!cJSON_IsArray(srcs))
        return astro_fail(err, errlen, "source_events: %s", srcs ? "must be an array" : "missing");
    size_t n = (size_t)cJSON_GetArraySize(lin);
    if (n == 0 || n > lim->max_sources)
        return astro_fail(err, errlen, "lineage: must have 1..%zu items", lim->max_sources);
    if ((size_t)cJSON_GetArraySize(srcs) != n)
        return astro_fail(err, errlen, "source_events: must list the %zu lineage ids", n);
    if ((ev->lineage = calloc(n, sizeof(*ev->lineage))) == NULL)
        return astro_fail(err, errlen, "lineage: out of memory");
    ev->n_sources = n;
    const cJSON *s = srcs->child;
    size_t i = 0;
    for (const cJSON *it = lin->child; it != NULL; it = it->next, s = s->next, i++) {
        if (decode_lineage_item(it, i, &ev->lineage[i], err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
        char id[ASTRO_EVENT_ID_MAX + 1];
        if (!cJSON_IsString(s) ||
            astro_event_check_id("source_events", s->valuestring, strlen(s->valuestring),
                                 ASTRO_EVENT_ID_MAX, id, NULL, 0) != ASTRO_OK ||
            strcmp(id, ev->lineage[i].id) != 0)
            return astro_fail(err, errlen, "source_events[%zu]: must equal lineage[%zu].event_id",
                              i, i);
    }
    return ASTRO_OK;
}

static int
decode_multi(const cJSON *obj, const struct astro_event_limits *lim, struct astro_event *ev,
             char *err, size_t errlen)
{
    bool any = false;
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(multi_fields); i++)
        any = any || cJSON_GetObjectItemCaseSensitive(obj, multi_fields[i]) != NULL;
    if (!any)
        return ASTRO_OK;
    ev->is_multi = true;
    if (dup_name(obj, "correlation_rule", lim->max_name_bytes, &ev->rule, err, errlen) != ASTRO_OK ||
        get_number(obj, "integrated_value", &ev->integrated_value, err, errlen) != ASTRO_OK ||
        get_number(obj, "confidence", &ev->confidence, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if (ev->confidence < 0.0 || ev->confidence > 1.0)
        return astro_fail(err, errlen, "confidence: must be between 0 and 1");
    return decode_lineage(obj, lim, ev, err, errlen);
}

int
astro_event_decode_json(const cJSON *obj, const struct astro_event_limits *lim, int64_t now_us,
                        struct astro_event *ev, char *err, size_t errlen)
{
    memset(ev, 0, sizeof(*ev));
    if (!cJSON_IsObject(obj))
        return astro_fail(err, errlen, "event: expected a JSON object");
    if (check_known_fields(obj, lim, err, errlen) != ASTRO_OK ||
        decode_mono(obj, lim, now_us, ev, err, errlen) != ASTRO_OK)
        goto fail;
    if (lim->allow_multi && decode_multi(obj, lim, ev, err, errlen) != ASTRO_OK)
        goto fail;
    return ASTRO_OK;
fail:
    astro_event_cleanup(ev);
    return ASTRO_ERR;
}

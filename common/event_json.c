/* Strict JSON intake (UTF-8, depth, \u0000, trailing bytes, duplicate keys) and the event's wire
 * JSON encoding. cJSON alone accepts invalid UTF-8, silently keeps the first of two duplicate
 * keys, recurses up to 1000 levels and truncates strings at \u0000; every one of those would
 * let a producer store something other than what it sent, so they are refused here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "astro/event.h"
#include "astro/time.h"
#include "astro/utf8.h"

#define SMALL_OBJECT 8

static bool
is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Length of the JSON number at p[0..n) (RFC 8259: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?),
 * or 0. cJSON hands any run of [0-9+-.eE] to strtod, so "01", "+1", ".5", "1." and "1e" would
 * otherwise be read as numbers. */
static size_t
json_number_len(const char *p, size_t n)
{
    size_t i = 0;
    if (i < n && p[i] == '-')
        i++;
    if (i >= n || !is_digit(p[i]))
        return 0;
    if (p[i++] != '0')
        while (i < n && is_digit(p[i]))
            i++;
    if (i < n && p[i] == '.') {
        if (++i >= n || !is_digit(p[i]))
            return 0;
        while (i < n && is_digit(p[i]))
            i++;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        if (++i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= n || !is_digit(p[i]))
            return 0;
        while (i < n && is_digit(p[i]))
            i++;
    }
    return i;
}

/* A number token outside strings: its whole run of number characters must be one JSON number. */
static int
check_number(const char *buf, size_t len, size_t *i, char *err, size_t errlen)
{
    size_t run = 0;
    while (*i + run < len && strchr("0123456789+-.eE", buf[*i + run]) != NULL &&
           buf[*i + run] != '\0')
        run++;
    if (json_number_len(buf + *i, run) != run)
        return astro_fail(err, errlen, "JSON: invalid number at byte %zu", *i);
    *i += run - 1;
    return ASTRO_OK;
}

/* One pass over the raw text, outside cJSON: nesting depth, \u0000 escapes and the number
 * grammar. Bracket characters inside strings do not count; escapes are skipped so "\"" does
 * not end a string. */
static int
prescan(const char *buf, size_t len, int max_depth, char *err, size_t errlen)
{
    bool in_str = false;
    int depth = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (c == '"')
                in_str = false;
            else if (c == '\\' && i + 1 < len) {
                if (buf[i + 1] == 'u' && len - i >= 6 && memcmp(buf + i + 2, "0000", 4) == 0)
                    return astro_fail(err, errlen, "JSON: \\u0000 is not allowed in strings");
                i++;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return astro_fail(err, errlen, "JSON: nesting deeper than %d levels", max_depth);
        } else if (c == ']' || c == '}') {
            depth--;
        } else if ((is_digit(c) || c == '-' || c == '+' || c == '.') &&
                   check_number(buf, len, &i, err, errlen) != ASTRO_OK) {
            return ASTRO_ERR;
        }
    }
    return ASTRO_OK;
}

cJSON *
astro_json_parse_strict(const char *buf, size_t len, int max_depth, char *err, size_t errlen)
{
    size_t start = 0;
    while (start < len && is_ws(buf[start]))
        start++;
    if (start == len) {
        astro_fail(err, errlen, "JSON: empty input");
        return NULL;
    }
    if (!astro_utf8_valid(buf, len)) {
        astro_fail(err, errlen, "JSON: invalid UTF-8");
        return NULL;
    }
    if (prescan(buf, len, max_depth, err, errlen) != ASTRO_OK)
        return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (root == NULL) {
        astro_fail(err, errlen, "JSON: syntax error at byte %zu", end ? (size_t)(end - buf) : 0);
        return NULL;
    }
    size_t pos = (size_t)(end - buf);
    while (pos < len && is_ws(buf[pos]))
        pos++;
    if (pos < len) {
        astro_fail(err, errlen, "JSON: unexpected data after the value at byte %zu", pos);
        goto fail;
    }
    if (astro_json_check_duplicates(root, err, errlen) != ASTRO_OK)
        goto fail;
    return root;
fail:
    cJSON_Delete(root);
    return NULL;
}

static int
cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Small objects compare pairwise; large ones sort their names so a hostile object with 100k
 * keys costs n log n, not n^2. */
static int
check_object_keys(const cJSON *obj, char *err, size_t errlen)
{
    size_t n = 0;
    for (const cJSON *c = obj->child; c != NULL; c = c->next)
        n++;
    if (n <= SMALL_OBJECT) {
        for (const cJSON *a = obj->child; a != NULL; a = a->next)
            for (const cJSON *b = a->next; b != NULL; b = b->next)
                if (strcmp(a->string, b->string) == 0)
                    return astro_fail(err, errlen, "duplicate key \"%.64s\"", a->string);
        return ASTRO_OK;
    }
    const char **names = malloc(n * sizeof(*names));
    if (names == NULL)
        return astro_fail(err, errlen, "JSON: out of memory");
    size_t i = 0;
    for (const cJSON *c = obj->child; c != NULL; c = c->next)
        names[i++] = c->string;
    qsort(names, n, sizeof(*names), cmp_name);
    int rc = ASTRO_OK;
    for (i = 1; i < n && rc == ASTRO_OK; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            rc = astro_fail(err, errlen, "duplicate key \"%.64s\"", names[i]);
    free(names);
    return rc;
}

int
astro_json_check_duplicates(const cJSON *item, char *err, size_t errlen)
{
    if (item == NULL)
        return ASTRO_OK;
    if (cJSON_IsObject(item) && check_object_keys(item, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    for (const cJSON *c = item->child; c != NULL; c = c->next)
        if (astro_json_check_duplicates(c, err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
    return ASTRO_OK;
}

int
astro_event_parse_json(const char *buf, size_t len, const struct astro_event_limits *lim,
                       int64_t now_us, struct astro_event *ev, char *err, size_t errlen)
{
    memset(ev, 0, sizeof(*ev));
    cJSON *root = astro_json_parse_strict(buf, len, lim->max_depth, err, errlen);
    if (root == NULL)
        return ASTRO_ERR;
    int rc = astro_event_decode_json(root, lim, now_us, ev, err, errlen);
    cJSON_Delete(root);
    return rc;
}

/* ---- encoding ---- */

/* cJSON prints numbers with a tolerance (0.1 + 0.2 comes out as 0.3) and drops the sign of -0,
 * so doubles are added as raw text that reads back bit-identical. */
bool
astro_json_add_double(cJSON *o, const char *name, double d)
{
    char buf[ASTRO_EVENT_DOUBLE_BUF];
    if (!isfinite(d))
        return false; /* there is no JSON for it; refuse rather than emit "inf" */
    astro_event_format_double(d, buf);
    return cJSON_AddRawToObject(o, name, buf) != NULL;
}

bool
astro_json_add_time(cJSON *o, const char *name, int64_t us)
{
    char ts[ASTRO_TIME_RFC3339_LEN + 1];
    return astro_time_format(us, ts, sizeof(ts)) == ASTRO_OK &&
           cJSON_AddStringToObject(o, name, ts) != NULL;
}

static cJSON *
lineage_item_json(const struct astro_lineage_item *li)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddStringToObject(o, "event_id", li->id) ||
        !cJSON_AddStringToObject(o, "source_stream", li->stream) ||
        !cJSON_AddStringToObject(o, "event_type", li->type) ||
        !astro_json_add_time(o, "timestamp", li->ts_us) ||
        !astro_json_add_double(o, "value", li->value)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static bool
add_multi(cJSON *o, const struct astro_event *ev)
{
    if (!cJSON_AddStringToObject(o, "correlation_rule", ev->rule ? ev->rule : "") ||
        !astro_json_add_double(o, "integrated_value", ev->integrated_value) ||
        !astro_json_add_double(o, "confidence", ev->confidence))
        return false;
    cJSON *ids = cJSON_AddArrayToObject(o, "source_events");
    cJSON *lin = cJSON_AddArrayToObject(o, "lineage");
    if (ids == NULL || lin == NULL)
        return false;
    for (size_t i = 0; i < ev->n_sources; i++) {
        cJSON *id = cJSON_CreateString(ev->lineage[i].id);
        cJSON *li = lineage_item_json(&ev->lineage[i]);
        /* Attach before checking so nothing leaks when one of the two failed. */
        if (id != NULL)
            cJSON_AddItemToArray(ids, id);
        if (li != NULL)
            cJSON_AddItemToArray(lin, li);
        if (id == NULL || li == NULL)
            return false;
    }
    return true;
}

cJSON *
astro_event_to_json(const struct astro_event *ev)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddStringToObject(o, "event_id", ev->id) ||
        !astro_json_add_time(o, "timestamp", ev->ts_us) ||
        !cJSON_AddStringToObject(o, "source_stream", ev->src ? ev->src : "") ||
        !cJSON_AddStringToObject(o, "key", ev->key ? ev->key : "") ||
        !cJSON_AddStringToObject(o, "event_type", ev->type ? ev->type : "") ||
        !astro_json_add_double(o, "value", ev->value))
        goto fail;
    if (ev->meta_json != NULL && !cJSON_AddRawToObject(o, "metadata", ev->meta_json))
        goto fail;
    if (ev->is_multi && !add_multi(o, ev))
        goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

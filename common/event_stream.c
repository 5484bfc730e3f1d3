/* The event's flat Redis stream form: field/value pairs, so the hot path (ingest XADD, leaflet
 * and archiver reads of mono events) never builds or parses JSON. Only a multi event's lineage
 * (`lin`) is JSON text. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "astro/event.h"
#include "astro/stream_entry.h"
#include "astro/time.h"
#include "astro/utf8.h"

enum field {
    F_ID, F_TS, F_SRC, F_KEY, F_TYPE, F_VAL, F_META, F_RULE, F_IVAL, F_CONF, F_SRCS, F_LIN, F_COUNT
};

static const char *const field_names[F_COUNT] = {
    "id", "ts", "src", "key", "type", "val", "meta", "rule", "ival", "conf", "srcs", "lin",
};

void
astro_stream_fields_init(struct astro_stream_fields *f)
{
    memset(f, 0, sizeof(*f));
}

void
astro_stream_fields_cleanup(struct astro_stream_fields *f)
{
    free(f->heap[0]);
    free(f->heap[1]);
    memset(f, 0, sizeof(*f));
}

int
astro_stream_fields_push(struct astro_stream_fields *f, const char *s, size_t len)
{
    if (f->argc >= ASTRO_STREAM_MAX_ARGS)
        return ASTRO_ERR;
    f->argv[f->argc] = s;
    f->argvlen[f->argc] = len;
    f->argc++;
    return ASTRO_OK;
}

static int
push_pair(struct astro_stream_fields *f, enum field k, const char *v, size_t len)
{
    if (astro_stream_fields_push(f, field_names[k], strlen(field_names[k])) != ASTRO_OK)
        return ASTRO_ERR;
    return astro_stream_fields_push(f, v, len);
}

static int
push_str(struct astro_stream_fields *f, enum field k, const char *v)
{
    return push_pair(f, k, v ? v : "", v ? strlen(v) : 0);
}

static int
push_double(struct astro_stream_fields *f, enum field k, int slot, double d)
{
    if (!isfinite(d))
        return ASTRO_ERR;
    astro_event_format_double(d, f->numbuf[slot]);
    return push_str(f, k, f->numbuf[slot]);
}

/* srcs: the lineage ids joined by ','. */
static char *
join_ids(const struct astro_event *ev)
{
    char *out = malloc(ev->n_sources * (ASTRO_EVENT_ID_MAX + 1) + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < ev->n_sources; i++) {
        size_t n = strlen(ev->lineage[i].id);
        if (i > 0)
            out[o++] = ',';
        memcpy(out + o, ev->lineage[i].id, n);
        o += n;
    }
    out[o] = '\0';
    return out;
}

static char *
put_text(char *o, const char *s)
{
    size_t n = strlen(s);
    memcpy(o, s, n);
    return o + n;
}

/* Writes s as a JSON string escaped exactly as cJSON prints one (\" \\ \b \f \n \r \t, other
 * control characters as \u00xx, all else as is), so the text is what cJSON wrote before. */
static char *
put_json_string(char *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    static const char special[] = "\"\\\b\f\n\r\t", letter[] = "\"\\bfnrt";
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        const char *esc = *p >= 0x20 && *p != '"' && *p != '\\' ? NULL : strchr(special, *p);
        if (*p >= 0x20 && esc == NULL) {
            *o++ = (char)*p;
        } else if (esc != NULL) {
            *o++ = '\\';
            *o++ = letter[esc - special];
        } else {
            o = put_text(o, "\\u00");
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 0x0f];
        }
    }
    *o++ = '"';
    return o;
}

/* lin: [{"id","src","type","ts" (string),"val" (number)}, ...] without a cJSON tree: one
 * allocation per multi event instead of a dozen (the leaflet writes one per match). */
static char *
lineage_text(const struct astro_event *ev)
{
    /* per item: three escaped names (6 bytes per byte at worst), ts, val, punctuation */
    size_t per = 3 * 6 * ASTRO_EVENT_NAME_MAX + 2 * ASTRO_EVENT_DOUBLE_BUF + 64;
    char *out = malloc(2 + ev->n_sources * per + 1), *o = out;
    if (out == NULL)
        return NULL;
    *o++ = '[';
    for (size_t i = 0; i < ev->n_sources; i++) {
        const struct astro_lineage_item *li = &ev->lineage[i];
        char num[ASTRO_EVENT_DOUBLE_BUF];
        if (!isfinite(li->value)) {
            free(out);
            return NULL;
        }
        o = put_text(o, i > 0 ? ",{\"id\":" : "{\"id\":");
        o = put_json_string(o, li->id);
        o = put_json_string(put_text(o, ",\"src\":"), li->stream);
        o = put_json_string(put_text(o, ",\"type\":"), li->type);
        snprintf(num, sizeof(num), "%lld", (long long)li->ts_us);
        o = put_json_string(put_text(o, ",\"ts\":"), num);
        astro_event_format_double(li->value, num);
        o = put_text(put_text(o, ",\"val\":"), num);
        *o++ = '}';
    }
    *o++ = ']';
    *o = '\0';
    return out;
}

static int
encode_multi(const struct astro_event *ev, struct astro_stream_fields *f)
{
    if (push_str(f, F_RULE, ev->rule) != ASTRO_OK ||
        push_double(f, F_IVAL, 2, ev->integrated_value) != ASTRO_OK ||
        push_double(f, F_CONF, 3, ev->confidence) != ASTRO_OK)
        return ASTRO_ERR;
    free(f->heap[0]);
    free(f->heap[1]);
    f->heap[0] = join_ids(ev);
    f->heap[1] = lineage_text(ev);
    if (f->heap[0] == NULL || f->heap[1] == NULL)
        return ASTRO_ERR;
    if (push_str(f, F_SRCS, f->heap[0]) != ASTRO_OK)
        return ASTRO_ERR;
    return push_str(f, F_LIN, f->heap[1]);
}

int
astro_event_stream_encode(const struct astro_event *ev, struct astro_stream_fields *f)
{
    if (ev->ts_us < ASTRO_TIME_MIN_US || ev->ts_us > ASTRO_TIME_MAX_US)
        return ASTRO_ERR;
    snprintf(f->numbuf[0], sizeof(f->numbuf[0]), "%lld", (long long)ev->ts_us);
    if (push_str(f, F_ID, ev->id) != ASTRO_OK || push_str(f, F_TS, f->numbuf[0]) != ASTRO_OK ||
        push_str(f, F_SRC, ev->src) != ASTRO_OK || push_str(f, F_KEY, ev->key) != ASTRO_OK ||
        push_str(f, F_TYPE, ev->type) != ASTRO_OK || push_double(f, F_VAL, 1, ev->value) != ASTRO_OK)
        return ASTRO_ERR;
    if (ev->meta_json != NULL && push_str(f, F_META, ev->meta_json) != ASTRO_OK)
        return ASTRO_ERR;
    return ev->is_multi ? encode_multi(ev, f) : ASTRO_OK;
}

/* ---- decoding ---- */

static int
dup_span(const struct astro_stream_span *s, char **out, char *err, size_t errlen, const char *name)
{
    if (memchr(s->p, '\0', s->n) != NULL)
        return astro_fail(err, errlen, "stream field %s: contains NUL", name);
    if ((*out = strndup(s->p, s->n)) == NULL)
        return astro_fail(err, errlen, "stream field %s: out of memory", name);
    return ASTRO_OK;
}

static int
decode_name(const struct astro_stream_span *s, const char *name, char **out, char *err, size_t errlen)
{
    char label[32];
    snprintf(label, sizeof(label), "stream field %s", name);
    if (astro_event_check_name(label, s->p, s->n, ASTRO_EVENT_NAME_MAX, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    return dup_span(s, out, err, errlen, name);
}

static int
decode_meta(const struct astro_stream_span *s, struct astro_event *ev, char *err, size_t errlen)
{
    if (!s->set)
        return ASTRO_OK;
    if (s->n < 2 || s->p[0] != '{' || s->p[s->n - 1] != '}' || !astro_utf8_valid(s->p, s->n))
        return astro_fail(err, errlen, "stream field meta: not a JSON object");
    return dup_span(s, &ev->meta_json, err, errlen, "meta");
}

static int
decode_mono(const struct astro_stream_span *f, struct astro_event *ev, char *err, size_t errlen)
{
    static const enum field required[] = {F_ID, F_TS, F_SRC, F_KEY, F_TYPE, F_VAL};
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(required); i++)
        if (!f[required[i]].set)
            return astro_fail(err, errlen, "stream entry: missing field \"%s\"",
                              field_names[required[i]]);
    if (astro_event_check_id("stream field id", f[F_ID].p, f[F_ID].n, ASTRO_EVENT_ID_MAX, ev->id,
                             err, errlen) != ASTRO_OK ||
        astro_stream_span_int64(&f[F_TS], "stream field ts", &ev->ts_us, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if (ev->ts_us < ASTRO_TIME_MIN_US || ev->ts_us > ASTRO_TIME_MAX_US)
        return astro_fail(err, errlen, "stream field ts: out of range");
    if (decode_name(&f[F_SRC], "src", &ev->src, err, errlen) != ASTRO_OK ||
        decode_name(&f[F_TYPE], "type", &ev->type, err, errlen) != ASTRO_OK ||
        astro_stream_span_double(&f[F_VAL], "stream field val", &ev->value, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    /* The key was validated at ingest against the configured limit; here only its form. */
    char why[96];
    if (astro_event_check_key(f[F_KEY].p, f[F_KEY].n, SIZE_MAX, why, sizeof(why)) != ASTRO_OK)
        return astro_fail(err, errlen, "stream field %s", why);
    if (dup_span(&f[F_KEY], &ev->key, err, errlen, "key") != ASTRO_OK)
        return ASTRO_ERR;
    return decode_meta(&f[F_META], ev, err, errlen);
}

static int
lin_name(const cJSON *o, const char *name, size_t i, char out[ASTRO_EVENT_NAME_MAX + 1],
         char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    char label[48];
    snprintf(label, sizeof(label), "stream field lin[%zu].%s", i, name);
    if (!cJSON_IsString(it))
        return astro_fail(err, errlen, "%s: missing or not a string", label);
    size_t n = strlen(it->valuestring);
    if (strcmp(name, "id") == 0)
        return astro_event_check_id(label, it->valuestring, n, ASTRO_EVENT_ID_MAX, out, err,
                                    errlen);
    if (astro_event_check_name(label, it->valuestring, n, ASTRO_EVENT_NAME_MAX, err, errlen) !=
        ASTRO_OK)
        return ASTRO_ERR;
    memcpy(out, it->valuestring, n + 1);
    return ASTRO_OK;
}

static int
lin_decode_item(const cJSON *o, size_t i, struct astro_lineage_item *li, char *err, size_t errlen)
{
    if (!cJSON_IsObject(o))
        return astro_fail(err, errlen, "stream field lin[%zu]: not an object", i);
    if (lin_name(o, "id", i, li->id, err, errlen) != ASTRO_OK ||
        lin_name(o, "src", i, li->stream, err, errlen) != ASTRO_OK ||
        lin_name(o, "type", i, li->type, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "ts");
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(o, "val");
    struct astro_stream_span s = {cJSON_IsString(ts) ? ts->valuestring : "", 0, true};
    s.n = strlen(s.p);
    if (astro_stream_span_int64(&s, "stream field lin.ts", &li->ts_us, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if (!cJSON_IsNumber(val) || !isfinite(val->valuedouble))
        return astro_fail(err, errlen, "stream field lin[%zu].val: not a finite number", i);
    li->value = val->valuedouble;
    return ASTRO_OK;
}

static int
decode_lineage(const struct astro_stream_span *lin, const struct astro_stream_span *srcs, struct astro_event *ev, char *err,
               size_t errlen)
{
    int rc = ASTRO_ERR;
    char *joined = NULL;
    cJSON *arr = cJSON_ParseWithLength(lin->p, lin->n);
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0) {
        astro_fail(err, errlen, "stream field lin: not a non-empty JSON array");
        goto done;
    }
    ev->n_sources = (size_t)cJSON_GetArraySize(arr);
    if ((ev->lineage = calloc(ev->n_sources, sizeof(*ev->lineage))) == NULL) {
        astro_fail(err, errlen, "stream field lin: out of memory");
        goto done;
    }
    size_t i = 0;
    for (const cJSON *it = arr->child; it != NULL; it = it->next, i++)
        if (lin_decode_item(it, i, &ev->lineage[i], err, errlen) != ASTRO_OK)
            goto done;
    joined = join_ids(ev);
    if (joined == NULL || strlen(joined) != srcs->n || memcmp(joined, srcs->p, srcs->n) != 0) {
        astro_fail(err, errlen, "stream field srcs: does not match the lineage ids");
        goto done;
    }
    rc = ASTRO_OK;
done:
    free(joined);
    cJSON_Delete(arr);
    return rc;
}

static int
decode_multi(const struct astro_stream_span *f, struct astro_event *ev, char *err, size_t errlen)
{
    static const enum field required[] = {F_RULE, F_IVAL, F_CONF, F_SRCS, F_LIN};
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(required); i++)
        if (!f[required[i]].set)
            return astro_fail(err, errlen, "stream entry: missing field \"%s\"",
                              field_names[required[i]]);
    ev->is_multi = true;
    if (decode_name(&f[F_RULE], "rule", &ev->rule, err, errlen) != ASTRO_OK ||
        astro_stream_span_double(&f[F_IVAL], "stream field ival", &ev->integrated_value, err,
                                 errlen) != ASTRO_OK ||
        astro_stream_span_double(&f[F_CONF], "stream field conf", &ev->confidence, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    return decode_lineage(&f[F_LIN], &f[F_SRCS], ev, err, errlen);
}

static int
decode_spans(const struct astro_stream_span *f, struct astro_event *ev, char *err, size_t errlen)
{
    bool multi = f[F_RULE].set || f[F_IVAL].set || f[F_CONF].set || f[F_SRCS].set || f[F_LIN].set;
    if (decode_mono(f, ev, err, errlen) != ASTRO_OK ||
        (multi && decode_multi(f, ev, err, errlen) != ASTRO_OK)) {
        astro_event_cleanup(ev);
        return ASTRO_ERR;
    }
    return ASTRO_OK;
}

int
astro_event_stream_decode(struct redisReply *const *elements, size_t n, struct astro_event *ev,
                          char *err, size_t errlen)
{
    struct astro_stream_span f[F_COUNT];
    memset(ev, 0, sizeof(*ev));
    if (astro_stream_entry_spans(elements, n, field_names, F_COUNT, f, "stream entry", err,
                                 errlen) != ASTRO_OK)
        return ASTRO_ERR;
    return decode_spans(f, ev, err, errlen);
}

int
astro_event_stream_decode_argv(const char *const *argv, const size_t *argvlen, size_t n,
                               struct astro_event *ev, char *err, size_t errlen)
{
    struct astro_stream_span f[F_COUNT];
    memset(ev, 0, sizeof(*ev));
    if (astro_stream_entry_spans_argv(argv, argvlen, n, field_names, F_COUNT, f, "stream entry",
                                      err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    return decode_spans(f, ev, err, errlen);
}

bool
astro_event_stream_is_marker(struct redisReply *const *elements, size_t n)
{
    return n == 2 && elements[0]->type == REDIS_REPLY_STRING &&
           elements[0]->len == sizeof(ASTRO_STREAM_MARK_FIELD) - 1 &&
           memcmp(elements[0]->str, ASTRO_STREAM_MARK_FIELD, elements[0]->len) == 0;
}

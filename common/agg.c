/* Candles in their stream form and their JSON form (astro/agg.h). The stream form is flat
 * field/value pairs like the event codec's; only the indicator list is JSON text, because its
 * length varies with the configuration. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "astro/agg.h"
#include "astro/stream_entry.h"
#include "astro/time.h"

#define US_PER_DAY (INT64_C(86400) * ASTRO_US_PER_SEC)

enum afield {
    A_KIND, A_KEY, A_TYPE, A_TF, A_B, A_O, A_H, A_L, A_C, A_V, A_N, A_VWAP, A_IND, A_COUNT
};

static const char *const afield_names[A_COUNT] = {
    "kind", "key", "type", "tf", "b", "o", "h", "l", "c", "v", "n", "vwap", "ind",
};

/* ---- timeframes ---- */

static int64_t
unit_us(char u)
{
    switch (u) {
    case 's': return ASTRO_US_PER_SEC;
    case 'm': return 60 * ASTRO_US_PER_SEC;
    case 'h': return 3600 * ASTRO_US_PER_SEC;
    case 'd': return US_PER_DAY;
    default: return 0;
    }
}

int
astro_tf_parse(const char *s, size_t len, int64_t *span_us, char *err, size_t errlen)
{
    if (len < 2 || len > ASTRO_AGG_TF_MAX || s[0] < '1' || s[0] > '9')
        return astro_fail(err, errlen, "timeframe \"%.*s\": expected <n><s|m|h|d>, e.g. 1m or 4h",
                          (int)(len > 16 ? 16 : len), s);
    int64_t n = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] < '0' || s[i] > '9' || n > US_PER_DAY)
            return astro_fail(err, errlen, "timeframe \"%.*s\": expected <n><s|m|h|d>", (int)len,
                              s);
        n = n * 10 + (s[i] - '0');
    }
    int64_t u = unit_us(s[len - 1]);
    if (u == 0)
        return astro_fail(err, errlen, "timeframe \"%.*s\": unit must be s, m, h or d", (int)len,
                          s);
    if (n > US_PER_DAY / u || US_PER_DAY % (n * u) != 0)
        return astro_fail(err, errlen, "timeframe \"%.*s\": must divide one day or be 1d",
                          (int)len, s);
    *span_us = n * u;
    return ASTRO_OK;
}

int64_t
astro_tf_bucket(int64_t ts_us, int64_t span_us)
{
    int64_t r = ts_us % span_us;
    return r < 0 ? ts_us - r - span_us : ts_us - r;
}

void
astro_candle_cleanup(struct astro_candle *c)
{
    free(c->key);
    memset(c, 0, sizeof(*c));
}

/* ---- encoding ---- */

static int
push_afield(struct astro_stream_fields *f, enum afield k, const char *v)
{
    if (astro_stream_fields_push(f, afield_names[k], strlen(afield_names[k])) != ASTRO_OK)
        return ASTRO_ERR;
    return astro_stream_fields_push(f, v, strlen(v));
}

static int
push_anum(struct astro_stream_fields *f, enum afield k, int slot, double d)
{
    if (!isfinite(d))
        return ASTRO_ERR;
    astro_event_format_double(d, f->numbuf[slot]);
    return push_afield(f, k, f->numbuf[slot]);
}

static cJSON *
ind_item(const struct astro_indicator_value *iv)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddStringToObject(o, "name", iv->name))
        goto fail;
    if (iv->has_value ? !astro_json_add_double(o, "value", iv->value)
                      : cJSON_AddNullToObject(o, "value") == NULL)
        goto fail;
    if (!cJSON_AddBoolToObject(o, "ready", iv->ready))
        goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

char *
astro_candle_indicators_json(const struct astro_candle *c)
{
    cJSON *arr = cJSON_CreateArray();
    char *out = NULL;
    if (arr == NULL || c->n_ind > ASTRO_AGG_IND_MAX)
        goto done;
    for (size_t i = 0; i < c->n_ind; i++) {
        cJSON *it = ind_item(&c->ind[i]);
        if (it == NULL)
            goto done;
        cJSON_AddItemToArray(arr, it);
    }
    out = cJSON_PrintUnformatted(arr);
done:
    cJSON_Delete(arr);
    return out;
}

int
astro_candle_stream_encode(const struct astro_candle *c, struct astro_stream_fields *f)
{
    int64_t span;
    if (c->key == NULL ||
        astro_tf_parse(c->tf, strlen(c->tf), &span, NULL, 0) != ASTRO_OK || span != c->tf_us ||
        c->bucket_us < ASTRO_TIME_MIN_US || c->bucket_us > ASTRO_TIME_MAX_US)
        return ASTRO_ERR;
    snprintf(f->numbuf[0], sizeof(f->numbuf[0]), "%lld", (long long)c->bucket_us);
    snprintf(f->numbuf[1], sizeof(f->numbuf[1]), "%lld", (long long)c->count);
    free(f->heap[0]);
    if ((f->heap[0] = astro_candle_indicators_json(c)) == NULL)
        return ASTRO_ERR;
    if (push_afield(f, A_KIND, "candle") != ASTRO_OK || push_afield(f, A_KEY, c->key) != ASTRO_OK ||
        push_afield(f, A_TYPE, c->type) != ASTRO_OK || push_afield(f, A_TF, c->tf) != ASTRO_OK ||
        push_afield(f, A_B, f->numbuf[0]) != ASTRO_OK ||
        push_anum(f, A_O, 2, c->open) != ASTRO_OK || push_anum(f, A_H, 3, c->high) != ASTRO_OK ||
        push_anum(f, A_L, 4, c->low) != ASTRO_OK || push_anum(f, A_C, 5, c->close) != ASTRO_OK ||
        push_anum(f, A_V, 6, c->volume) != ASTRO_OK ||
        push_afield(f, A_N, f->numbuf[1]) != ASTRO_OK ||
        push_anum(f, A_VWAP, 7, c->vwap) != ASTRO_OK)
        return ASTRO_ERR;
    return push_afield(f, A_IND, f->heap[0]);
}

/* ---- decoding ---- */

static bool
ind_name_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= ASTRO_AGG_IND_NAME_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_.") == n;
}

static int
ind_decode_item(const cJSON *o, size_t i, struct astro_indicator_value *iv, char *err,
                size_t errlen)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(o, "value");
    const cJSON *ready = cJSON_GetObjectItemCaseSensitive(o, "ready");
    if (!cJSON_IsObject(o) || !cJSON_IsString(name) || !ind_name_ok(name->valuestring))
        return astro_fail(err, errlen, "agg field ind[%zu]: name must be 1..32 of [a-z0-9_.]", i);
    if (!cJSON_IsBool(ready))
        return astro_fail(err, errlen, "agg field ind[%zu].ready: not a boolean", i);
    if (cJSON_IsNumber(value) && isfinite(value->valuedouble)) {
        iv->value = value->valuedouble;
        iv->has_value = true;
    } else if (!cJSON_IsNull(value)) {
        return astro_fail(err, errlen, "agg field ind[%zu].value: not a finite number or null",
                          i);
    }
    memcpy(iv->name, name->valuestring, strlen(name->valuestring) + 1);
    iv->ready = cJSON_IsTrue(ready);
    return ASTRO_OK;
}

static int
decode_ind(const struct astro_stream_span *s, struct astro_candle *c, char *err, size_t errlen)
{
    int rc = ASTRO_ERR;
    cJSON *arr = cJSON_ParseWithLength(s->p, s->n);
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > ASTRO_AGG_IND_MAX) {
        astro_fail(err, errlen, "agg field ind: not a JSON array of at most %d indicators",
                   ASTRO_AGG_IND_MAX);
        goto done;
    }
    for (const cJSON *it = arr->child; it != NULL; it = it->next, c->n_ind++) {
        if (ind_decode_item(it, c->n_ind, &c->ind[c->n_ind], err, errlen) != ASTRO_OK)
            goto done;
        for (size_t k = 0; k < c->n_ind; k++)
            if (strcmp(c->ind[k].name, c->ind[c->n_ind].name) == 0) {
                astro_fail(err, errlen, "agg field ind[%zu]: \"%s\" given twice", c->n_ind,
                           c->ind[k].name);
                goto done;
            }
    }
    rc = ASTRO_OK;
done:
    cJSON_Delete(arr);
    return rc;
}

static int
decode_names(const struct astro_stream_span *f, struct astro_candle *c, char *err, size_t errlen)
{
    if (f[A_KIND].n != 6 || memcmp(f[A_KIND].p, "candle", 6) != 0)
        return astro_fail(err, errlen, "agg field kind: expected \"candle\"");
    char why[96];
    if (f[A_KEY].n > ASTRO_AGG_KEY_MAX ||
        astro_event_check_key(f[A_KEY].p, f[A_KEY].n, SIZE_MAX, why, sizeof(why)) != ASTRO_OK)
        return astro_fail(err, errlen, "agg field key: not a valid event key");
    if ((c->key = strndup(f[A_KEY].p, f[A_KEY].n)) == NULL)
        return astro_fail(err, errlen, "agg field key: out of memory");
    if (astro_event_check_name("agg field type", f[A_TYPE].p, f[A_TYPE].n, ASTRO_EVENT_NAME_MAX,
                               err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    memcpy(c->type, f[A_TYPE].p, f[A_TYPE].n);
    if (astro_tf_parse(f[A_TF].p, f[A_TF].n, &c->tf_us, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    memcpy(c->tf, f[A_TF].p, f[A_TF].n);
    return ASTRO_OK;
}

/* The shape a candle must have for the candles table (CHECK low <= high) and for a chart. */
static int
check_candle(const struct astro_candle *c, char *err, size_t errlen)
{
    if (c->bucket_us < ASTRO_TIME_MIN_US || c->bucket_us > ASTRO_TIME_MAX_US ||
        astro_tf_bucket(c->bucket_us, c->tf_us) != c->bucket_us)
        return astro_fail(err, errlen, "agg field b: not a bucket start of %s", c->tf);
    if (!(c->low <= c->open && c->low <= c->close && c->high >= c->open && c->high >= c->close))
        return astro_fail(err, errlen, "agg entry: open/close outside low..high");
    if (c->volume < 0 || c->count < 1)
        return astro_fail(err, errlen, "agg entry: negative volume or count below 1");
    return ASTRO_OK;
}

static int
decode_aspans(const struct astro_stream_span *f, struct astro_candle *c, char *err, size_t errlen)
{
    for (int k = 0; k < A_COUNT; k++)
        if (!f[k].set)
            return astro_fail(err, errlen, "agg entry: missing field \"%s\"", afield_names[k]);
    if (decode_names(f, c, err, errlen) != ASTRO_OK ||
        astro_stream_span_int64(&f[A_B], "agg field b", &c->bucket_us, err, errlen) != ASTRO_OK ||
        astro_stream_span_double(&f[A_O], "agg field o", &c->open, err, errlen) != ASTRO_OK ||
        astro_stream_span_double(&f[A_H], "agg field h", &c->high, err, errlen) != ASTRO_OK ||
        astro_stream_span_double(&f[A_L], "agg field l", &c->low, err, errlen) != ASTRO_OK ||
        astro_stream_span_double(&f[A_C], "agg field c", &c->close, err, errlen) != ASTRO_OK ||
        astro_stream_span_double(&f[A_V], "agg field v", &c->volume, err, errlen) != ASTRO_OK ||
        astro_stream_span_int64(&f[A_N], "agg field n", &c->count, err, errlen) != ASTRO_OK ||
        astro_stream_span_double(&f[A_VWAP], "agg field vwap", &c->vwap, err, errlen) != ASTRO_OK ||
        decode_ind(&f[A_IND], c, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    return check_candle(c, err, errlen);
}

int
astro_candle_stream_decode(struct redisReply *const *elements, size_t n, struct astro_candle *c,
                           char *err, size_t errlen)
{
    struct astro_stream_span f[A_COUNT];
    memset(c, 0, sizeof(*c));
    if (astro_stream_entry_spans(elements, n, afield_names, A_COUNT, f, "agg entry", err,
                                 errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if (decode_aspans(f, c, err, errlen) != ASTRO_OK) {
        astro_candle_cleanup(c);
        return ASTRO_ERR;
    }
    return ASTRO_OK;
}

/* ---- JSON ---- */

static cJSON *
ind_object(const struct astro_candle *c)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o != NULL && i < c->n_ind; i++) {
        const struct astro_indicator_value *iv = &c->ind[i];
        cJSON *one = cJSON_AddObjectToObject(o, iv->name);
        bool ok = one != NULL &&
                  (iv->has_value ? astro_json_add_double(one, "value", iv->value)
                                 : cJSON_AddNullToObject(one, "value") != NULL) &&
                  cJSON_AddBoolToObject(one, "ready", iv->ready) != NULL;
        if (!ok) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

cJSON *
astro_candle_to_json(const struct astro_candle *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *ind = NULL;
    if (o == NULL || !cJSON_AddStringToObject(o, "key", c->key ? c->key : "") ||
        !cJSON_AddStringToObject(o, "event_type", c->type) ||
        !cJSON_AddStringToObject(o, "timeframe", c->tf) ||
        !astro_json_add_time(o, "bucket_start", c->bucket_us) ||
        !astro_json_add_time(o, "bucket_end", c->bucket_us + c->tf_us) ||
        !astro_json_add_double(o, "open", c->open) || !astro_json_add_double(o, "high", c->high) ||
        !astro_json_add_double(o, "low", c->low) || !astro_json_add_double(o, "close", c->close) ||
        !astro_json_add_double(o, "volume", c->volume) ||
        !cJSON_AddNumberToObject(o, "count", (double)c->count) ||
        !astro_json_add_double(o, "vwap", c->vwap) ||
        (ind = ind_object(c)) == NULL)
        goto fail;
    cJSON_AddItemToObject(o, "indicators", ind);
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* Producer messages: the WebSocket envelope (auth, event, events, features, raw) and the
 * POST /events body (object, array or NDJSON), turned into validated mono events. A batch is
 * all or nothing: every item is checked and every bad one reported before anything is written. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ingest.h"

#define MAX_SEQ 9007199254740992.0 /* 2^53: larger integers do not survive a double */
#define DEFAULT_SOURCE "edge"

static const char *const reason_codes[ING_R_COUNT] = {
    [ING_R_INVALID_JSON] = "invalid_json",
    [ING_R_INVALID_EVENT] = "invalid_event",
    [ING_R_UNKNOWN_TYPE] = "unknown_type",
    [ING_R_NOT_AUTHENTICATED] = "not_authenticated",
    [ING_R_ALREADY_AUTHENTICATED] = "already_authenticated",
    [ING_R_BACKPRESSURE] = "backpressure",
    [ING_R_UNAVAILABLE] = "unavailable",
    [ING_R_TOO_MANY_ITEMS] = "too_many_items",
    [ING_R_BAD_KEY] = "bad_api_key",
    [ING_R_SCOPE] = "missing_scope",
    [ING_R_AUTH_TIMEOUT] = "auth_timeout",
};

const char *
ing_reason_code(enum ing_reason r)
{
    return r < ING_R_COUNT ? reason_codes[r] : "unknown";
}

static int
fail(struct ing_parsed *p, enum ing_reason r, const char *msg)
{
    p->reason = r;
    snprintf(p->message, sizeof(p->message), "%s", msg);
    return ASTRO_ERR;
}

/* Splits a decoder message "field: reason" so a client can find the field by name. */
static void
split_err(const char *err, char *field, size_t flen, const char **reason)
{
    const char *colon = strstr(err, ": ");
    size_t n = colon != NULL ? (size_t)(colon - err) : 0;
    bool ident = n > 0 && n < flen;
    for (size_t i = 0; ident && i < n; i++)
        ident = strchr("abcdefghijklmnopqrstuvwxyz0123456789_.[]", err[i]) != NULL;
    if (!ident) {
        field[0] = '\0';
        *reason = err;
        return;
    }
    memcpy(field, err, n);
    field[n] = '\0';
    *reason = colon + 2;
}

static int
add_item_error(struct ing_parsed *p, size_t index, const char *err)
{
    char field[64];
    const char *reason;
    if (p->items == NULL && (p->items = cJSON_CreateArray()) == NULL)
        return ASTRO_ERR;
    cJSON *it = cJSON_CreateObject();
    if (it == NULL)
        return ASTRO_ERR;
    cJSON_AddItemToArray(p->items, it);
    split_err(err, field, sizeof(field), &reason);
    if (cJSON_AddNumberToObject(it, "index", (double)index) == NULL ||
        cJSON_AddStringToObject(it, "field", field) == NULL ||
        cJSON_AddStringToObject(it, "reason", reason) == NULL)
        return ASTRO_ERR;
    return ASTRO_OK;
}

/* Decodes one event; an absent key becomes the default key (the WS user). Absent ids and
 * timestamps are filled by assign_all() once the whole message is valid. */
static int
decode_item(const cJSON *obj, const struct ing_parse_opts *o,
            const struct astro_event_limits *lim, struct astro_event *ev, char *err,
            size_t errlen)
{
    bool keyless = cJSON_IsObject(obj) && cJSON_GetObjectItemCaseSensitive(obj, "key") == NULL;
    if (astro_event_decode_json(obj, lim, o->now_us, ev, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if (keyless && o->default_key != NULL && o->default_key[0] != '\0') {
        char *k = strdup(o->default_key);
        if (k == NULL)
            goto oom;
        free(ev->key);
        ev->key = k;
    }
    return ASTRO_OK;
oom:
    astro_event_cleanup(ev);
    return astro_fail(err, errlen, "out of memory");
}

/* Assigns absent ids (one CSPRNG call for the batch) and timestamps, at ingest, once. */
static int
assign_all(struct ing_parsed *p, const struct ing_parse_opts *o)
{
    if (ing_assign_ids(p->ev, p->n) != ASTRO_OK)
        return fail(p, ING_R_UNAVAILABLE, "no randomness for event ids");
    for (size_t i = 0; i < p->n; i++)
        if (astro_event_assign_defaults(&p->ev[i], o->now_us) != ASTRO_OK)
            return fail(p, ING_R_UNAVAILABLE, "no randomness for event ids");
    return ASTRO_OK;
}

/* Decodes n items (array elements or NDJSON objects); all or nothing. */
static int
decode_items(const cJSON *const *objs, size_t n, const struct ing_parse_opts *o,
             const struct astro_event_limits *lim, struct ing_parsed *p)
{
    char err[256];
    size_t bad = 0;
    p->ev = calloc(n > 0 ? n : 1, sizeof(*p->ev));
    if (p->ev == NULL)
        return fail(p, ING_R_UNAVAILABLE, "out of memory");
    p->n = n; /* zeroed events clean up as no-ops */
    for (size_t i = 0; i < n; i++) {
        if (decode_item(objs[i], o, lim, &p->ev[i], err, sizeof(err)) == ASTRO_OK)
            continue;
        bad++;
        if (add_item_error(p, i, err) != ASTRO_OK)
            return fail(p, ING_R_UNAVAILABLE, "out of memory");
    }
    if (bad == 0)
        return assign_all(p, o);
    snprintf(err, sizeof(err), "%zu of %zu items invalid; nothing was written", bad, n);
    return fail(p, ING_R_INVALID_EVENT, err);
}

static int
decode_array(const cJSON *arr, const struct ing_parse_opts *o,
             const struct astro_event_limits *lim, struct ing_parsed *p)
{
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n == 0)
        return fail(p, ING_R_INVALID_EVENT, "items: empty batch");
    if (n > o->max_items) {
        char msg[96];
        snprintf(msg, sizeof(msg), "items: %zu items, at most %zu per batch", n, o->max_items);
        return fail(p, ING_R_TOO_MANY_ITEMS, msg);
    }
    const cJSON **objs = malloc(n * sizeof(*objs));
    if (objs == NULL)
        return fail(p, ING_R_UNAVAILABLE, "out of memory");
    size_t i = 0;
    for (const cJSON *it = arr->child; it != NULL; it = it->next)
        objs[i++] = it;
    int rc = decode_items(objs, n, o, lim, p);
    free(objs);
    return rc;
}

static int
decode_one(const cJSON *obj, const struct ing_parse_opts *o,
           const struct astro_event_limits *lim, struct ing_parsed *p)
{
    char err[256];
    p->ev = calloc(1, sizeof(*p->ev));
    if (p->ev == NULL)
        return fail(p, ING_R_UNAVAILABLE, "out of memory");
    if (decode_item(obj, o, lim, p->ev, err, sizeof(err)) != ASTRO_OK)
        return fail(p, ING_R_INVALID_EVENT, err);
    p->n = 1;
    return assign_all(p, o);
}

/* ---- WebSocket envelope ---- */

static bool
only_fields(const cJSON *obj, const char *const *names, size_t n, char *err, size_t errlen)
{
    for (const cJSON *it = obj->child; it != NULL; it = it->next) {
        size_t i = 0;
        while (i < n && strcmp(names[i], it->string) != 0)
            i++;
        if (i == n) {
            astro_fail(err, errlen, "unknown field \"%.64s\"", it->string);
            return false;
        }
    }
    return true;
}

static int
copy_field(cJSON *dst, const cJSON *src, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(src, name);
    if (v == NULL)
        return ASTRO_OK;
    cJSON *d = cJSON_Duplicate(v, 1);
    if (d == NULL)
        return ASTRO_ERR;
    cJSON_AddItemToObject(dst, name, d);
    return ASTRO_OK;
}

/* The fields a features/raw message shares with an event, copied into the event object. */
static int
copy_common(cJSON *ev, const cJSON *msg)
{
    static const char *const common[] = {"event_id", "timestamp", "key"};
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(common); i++)
        if (copy_field(ev, msg, common[i]) != ASTRO_OK)
            return ASTRO_ERR;
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(msg, "source_stream");
    if (src != NULL)
        return copy_field(ev, msg, "source_stream");
    return cJSON_AddStringToObject(ev, "source_stream", DEFAULT_SOURCE) != NULL ? ASTRO_OK
                                                                               : ASTRO_ERR;
}

static int
check_features(const cJSON *msg, char *err, size_t errlen)
{
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(msg, "workload");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(msg, "confidence");
    if (w != NULL && (!cJSON_IsNumber(w) || !isfinite(w->valuedouble)))
        return astro_fail(err, errlen, "workload: must be a finite number");
    if (c != NULL && (!cJSON_IsNumber(c) || !(c->valuedouble >= 0 && c->valuedouble <= 1)))
        return astro_fail(err, errlen, "confidence: must be a number in 0..1");
    static const char *const objs[] = {"band_powers", "metrics"};
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(objs); i++) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(msg, objs[i]);
        if (o != NULL && !cJSON_IsObject(o))
            return astro_fail(err, errlen, "%s: must be an object", objs[i]);
    }
    return ASTRO_OK;
}

/* {"type":"features",...} -> event_type "features", value = workload, the payload in
 * metadata. */
static cJSON *
features_event(const cJSON *msg, char *err, size_t errlen)
{
    static const char *const allowed[] = {"type", "seq", "event_id", "timestamp", "key",
                                          "source_stream", "workload", "confidence",
                                          "band_powers", "metrics"};
    static const char *const payload[] = {"workload", "confidence", "band_powers", "metrics"};
    if (!only_fields(msg, allowed, ASTRO_ARRAY_LEN(allowed), err, errlen) ||
        check_features(msg, err, errlen) != ASTRO_OK)
        return NULL;
    cJSON *ev = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(ev, "metadata");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(msg, "workload");
    if (meta == NULL || copy_common(ev, msg) != ASTRO_OK ||
        cJSON_AddStringToObject(ev, "event_type", "features") == NULL ||
        cJSON_AddNumberToObject(ev, "value", w != NULL ? w->valuedouble : 0) == NULL)
        goto oom;
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(payload); i++)
        if (copy_field(meta, msg, payload[i]) != ASTRO_OK)
            goto oom;
    return ev;
oom:
    cJSON_Delete(ev);
    astro_fail(err, errlen, "out of memory");
    return NULL;
}

/* {"type":"raw","channels":[...]} -> event_type "raw", value = channel count, channels in
 * metadata. */
static cJSON *
raw_event(const cJSON *msg, char *err, size_t errlen)
{
    static const char *const allowed[] = {"type", "seq", "event_id", "timestamp", "key",
                                          "source_stream", "channels"};
    if (!only_fields(msg, allowed, ASTRO_ARRAY_LEN(allowed), err, errlen))
        return NULL;
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(msg, "channels");
    if (!cJSON_IsArray(ch) || cJSON_GetArraySize(ch) == 0) {
        astro_fail(err, errlen, "channels: must be a non-empty array of numbers");
        return NULL;
    }
    for (const cJSON *v = ch->child; v != NULL; v = v->next)
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
            astro_fail(err, errlen, "channels: must be a non-empty array of finite numbers");
            return NULL;
        }
    cJSON *ev = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(ev, "metadata");
    if (meta == NULL || copy_common(ev, msg) != ASTRO_OK ||
        cJSON_AddStringToObject(ev, "event_type", "raw") == NULL ||
        cJSON_AddNumberToObject(ev, "value", cJSON_GetArraySize(ch)) == NULL ||
        copy_field(meta, msg, "channels") != ASTRO_OK) {
        cJSON_Delete(ev);
        astro_fail(err, errlen, "out of memory");
        return NULL;
    }
    return ev;
}

static int
parse_synthetic(const cJSON *root, bool raw, const struct ing_parse_opts *o,
                struct ing_parsed *p)
{
    char err[256];
    cJSON *ev = raw ? raw_event(root, err, sizeof(err)) : features_event(root, err, sizeof(err));
    if (ev == NULL)
        return fail(p, ING_R_INVALID_EVENT, err);
    int rc = decode_one(ev, o, o->lim, p);
    cJSON_Delete(ev);
    return rc;
}

static int
parse_seq(const cJSON *root, struct ing_parsed *p)
{
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(root, "seq");
    if (seq == NULL)
        return ASTRO_OK;
    double d = seq->valuedouble;
    if (!cJSON_IsNumber(seq) || !(d >= 0 && d <= MAX_SEQ) || d != floor(d))
        return fail(p, ING_R_INVALID_EVENT, "seq: must be an integer in 0..2^53");
    p->has_seq = true;
    p->seq = d;
    return ASTRO_OK;
}

static int
parse_batch(const cJSON *root, const struct ing_parse_opts *o, struct ing_parsed *p)
{
    static const char *const allowed[] = {"type", "seq", "items"};
    char err[128];
    if (!only_fields(root, allowed, ASTRO_ARRAY_LEN(allowed), err, sizeof(err)))
        return fail(p, ING_R_INVALID_EVENT, err);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(root, "items");
    if (!cJSON_IsArray(items))
        return fail(p, ING_R_INVALID_EVENT, "items: must be an array of events");
    return decode_array(items, o, o->lim, p);
}

int
ing_msg_parse_ws(const char *buf, size_t len, const struct ing_parse_opts *o,
                 struct ing_parsed *out)
{
    char err[256];
    memset(out, 0, sizeof(*out));
    out->root = astro_json_parse_strict(buf, len, o->lim->max_depth, err, sizeof(err));
    if (out->root == NULL)
        return fail(out, ING_R_INVALID_JSON, err);
    if (!cJSON_IsObject(out->root))
        return fail(out, ING_R_INVALID_JSON, "message: expected a JSON object");
    if (parse_seq(out->root, out) != ASTRO_OK)
        return ASTRO_ERR;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(out->root, "type");
    if (!cJSON_IsString(type))
        return fail(out, ING_R_UNKNOWN_TYPE, "type: missing or not a string");
    const char *t = type->valuestring;
    if (strcmp(t, "auth") == 0) {
        out->kind = ING_MSG_AUTH;
        return ASTRO_OK;
    }
    if (strcmp(t, "event") == 0) {
        out->kind = ING_MSG_EVENT;
        return decode_one(out->root, o, o->lim, out);
    }
    if (strcmp(t, "events") == 0) {
        out->kind = ING_MSG_EVENTS;
        return parse_batch(out->root, o, out);
    }
    if (strcmp(t, "features") == 0 || strcmp(t, "raw") == 0) {
        out->kind = t[0] == 'r' ? ING_MSG_RAW : ING_MSG_FEATURES;
        return parse_synthetic(out->root, out->kind == ING_MSG_RAW, o, out);
    }
    snprintf(err, sizeof(err), "type: unknown message type \"%.40s\" (auth, event, events, "
             "features, raw)", t);
    return fail(out, ING_R_UNKNOWN_TYPE, err);
}

/* ---- HTTP body ---- */

static size_t
count_lines(const char *buf, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t end = nl != NULL ? (size_t)(nl - buf) : len;
        for (size_t j = i; j < end; j++)
            if (buf[j] != ' ' && buf[j] != '\t' && buf[j] != '\r') {
                n++;
                break;
            }
        i = end + 1;
    }
    return n;
}

/* NDJSON: one event object per non-blank line; a line that is not JSON is an item error. */
static int
parse_ndjson(const char *buf, size_t len, const struct ing_parse_opts *o, struct ing_parsed *p)
{
    size_t n = count_lines(buf, len), k = 0, bad = 0;
    char err[256];
    if (n > o->max_items) {
        snprintf(err, sizeof(err), "body: %zu lines, at most %zu per batch", n, o->max_items);
        return fail(p, ING_R_TOO_MANY_ITEMS, err);
    }
    cJSON **objs = calloc(n, sizeof(*objs));
    if (objs == NULL)
        return fail(p, ING_R_UNAVAILABLE, "out of memory");
    for (size_t i = 0; i < len && k < n;) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t end = nl != NULL ? (size_t)(nl - buf) : len;
        if (count_lines(buf + i, end - i) == 1) {
            objs[k] = astro_json_parse_strict(buf + i, end - i, o->lim->max_depth, err,
                                              sizeof(err));
            if (objs[k] == NULL && (bad++, add_item_error(p, k, err) != ASTRO_OK))
                break;
            k++;
        }
        i = end + 1;
    }
    int rc;
    if (bad > 0) {
        snprintf(err, sizeof(err), "%zu of %zu lines are not JSON; nothing was written", bad, n);
        rc = fail(p, ING_R_INVALID_JSON, err);
    } else {
        rc = decode_items((const cJSON *const *)objs, n, o, o->lim, p);
    }
    for (size_t i = 0; i < n; i++)
        cJSON_Delete(objs[i]);
    free(objs);
    return rc;
}

int
ing_msg_parse_http(const char *buf, size_t len, const struct ing_parse_opts *o,
                   struct ing_parsed *out)
{
    char err[256];
    memset(out, 0, sizeof(*out));
    out->kind = ING_MSG_EVENTS;
    size_t lines = count_lines(buf, len);
    if (lines == 0)
        return fail(out, ING_R_INVALID_JSON, "body: empty");
    out->root = astro_json_parse_strict(buf, len, o->lim->max_depth, err, sizeof(err));
    if (out->root == NULL && lines > 1) {
        /* Not one JSON document: NDJSON, if every line is one. */
        return parse_ndjson(buf, len, o, out);
    }
    if (out->root == NULL)
        return fail(out, ING_R_INVALID_JSON, err);
    if (cJSON_IsArray(out->root))
        return decode_array(out->root, o, o->lim, out);
    if (cJSON_IsObject(out->root))
        return decode_one(out->root, o, o->lim, out);
    return fail(out, ING_R_INVALID_JSON, "body: expected an event object, an array of events "
                "or NDJSON");
}

/* ---- auth ---- */

static int
check_device(const cJSON *d, size_t max_bytes, char **dev_json, char *err, size_t errlen)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, "device_type");
    const cJSON *sr = cJSON_GetObjectItemCaseSensitive(d, "sampling_rate");
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(d, "channel_names");
    const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(d, "channel_count");
    if (!cJSON_IsObject(d))
        return astro_fail(err, errlen, "device_info: must be an object");
    if (t != NULL && (!cJSON_IsString(t) || strlen(t->valuestring) > 128))
        return astro_fail(err, errlen, "device_info.device_type: must be a string (<= 128)");
    if (sr != NULL && (!cJSON_IsNumber(sr) || !(sr->valuedouble > 0 && sr->valuedouble < 1e9)))
        return astro_fail(err, errlen, "device_info.sampling_rate: must be a positive number");
    if (cnt != NULL && (!cJSON_IsNumber(cnt) || cnt->valuedouble != floor(cnt->valuedouble) ||
                        cnt->valuedouble < 0 || cnt->valuedouble > 65536))
        return astro_fail(err, errlen, "device_info.channel_count: must be an integer 0..65536");
    if (names != NULL && !cJSON_IsArray(names))
        return astro_fail(err, errlen, "device_info.channel_names: must be an array of strings");
    for (const cJSON *n = names != NULL ? names->child : NULL; n != NULL; n = n->next)
        if (!cJSON_IsString(n))
            return astro_fail(err, errlen, "device_info.channel_names: must be strings");
    if (names != NULL && cnt != NULL && cJSON_GetArraySize(names) != (int)cnt->valuedouble)
        return astro_fail(err, errlen, "device_info.channel_count: does not match "
                          "channel_names");
    *dev_json = cJSON_PrintUnformatted(d);
    if (*dev_json == NULL)
        return astro_fail(err, errlen, "out of memory");
    if (strlen(*dev_json) > max_bytes) {
        free(*dev_json);
        *dev_json = NULL;
        return astro_fail(err, errlen, "device_info: larger than %zu bytes", max_bytes);
    }
    return ASTRO_OK;
}

int
ing_msg_auth(const struct ing_parsed *p, const char **api_key, char *user_id, size_t user_len,
             char **dev_json, char *err, size_t errlen)
{
    static const char *const allowed[] = {"type", "seq", "api_key", "user_id", "device_info"};
    const cJSON *root = p->root;
    *api_key = NULL;
    *dev_json = NULL;
    if (!only_fields(root, allowed, ASTRO_ARRAY_LEN(allowed), err, errlen))
        return ASTRO_ERR;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(root, "api_key");
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "user_id");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "device_info");
    if (k != NULL && !cJSON_IsString(k))
        return astro_fail(err, errlen, "api_key: must be a string");
    if (!cJSON_IsString(u) || u->valuestring[0] == '\0')
        return astro_fail(err, errlen, "user_id: required, a non-empty string");
    size_t ulen = strlen(u->valuestring);
    if (ulen >= user_len)
        return astro_fail(err, errlen, "user_id: longer than %zu bytes", user_len - 1);
    if (astro_event_check_key(u->valuestring, ulen, user_len - 1, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if (d != NULL && !cJSON_IsNull(d) &&
        check_device(d, 64 * 1024, dev_json, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    memcpy(user_id, u->valuestring, ulen + 1);
    *api_key = k != NULL ? k->valuestring : NULL;
    return ASTRO_OK;
}

void
ing_parsed_cleanup(struct ing_parsed *p)
{
    for (size_t i = 0; p->ev != NULL && i < p->n; i++)
        astro_event_cleanup(&p->ev[i]);
    free(p->ev);
    cJSON_Delete(p->items);
    cJSON_Delete(p->root);
    memset(p, 0, sizeof(*p));
}

char *
ing_msg_error_json(enum ing_reason r, const char *message, const struct ing_parsed *p,
                   int64_t retry_after_ms)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "type", "error");
    cJSON_AddStringToObject(o, "code", ing_reason_code(r));
    cJSON_AddStringToObject(o, "message", message);
    if (p != NULL && p->has_seq)
        cJSON_AddNumberToObject(o, "seq", p->seq);
    if (retry_after_ms > 0)
        cJSON_AddNumberToObject(o, "retry_after_ms", (double)retry_after_ms);
    if (p != NULL && p->items != NULL)
        cJSON_AddItemReferenceToObject(o, "items", p->items);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

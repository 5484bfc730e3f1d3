/* Per-event work of the write path without cJSON: the recent buffer's JSON text, the ack's id
 * arrays and v4 ids for a whole batch. All showed in profiles (cJSON tree + print ~20%, one
 * CSPRNG call per id ~13% of the loop threads at 50k events/s; a cJSON node per acked id). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "astro/time.h"
#include "astro/uuid.h"
#include "ingest.h"

bool
ing_text_grow(struct ing_text *t, size_t n)
{
    if (t->oom)
        return false;
    size_t cap = (t->len + n + 1) * 2;
    char *nb = realloc(t->buf, cap);
    if (nb == NULL) {
        t->oom = true;
        return false;
    }
    t->buf = nb;
    t->cap = cap;
    return true;
}

static void
put(struct ing_text *t, const char *s, size_t n)
{
    ing_text_put(t, s, n);
}

void
ing_text_put_json_string(struct ing_text *t, const char *s)
{
    put(t, "\"", 1);
    for (const char *run = s;; s++) {
        unsigned char c = (unsigned char)*s;
        if (c != '\0' && c != '"' && c != '\\' && c >= 0x20)
            continue;
        put(t, run, (size_t)(s - run));
        if (c == '\0')
            break;
        char esc[8];
        const char *named = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b"
                            : c == '\f' ? "\\f" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                            : c == '\t' ? "\\t" : NULL;
        if (named == NULL)
            snprintf(esc, sizeof(esc), "\\u%04x", c);
        put(t, named != NULL ? named : esc, strlen(named != NULL ? named : esc));
        run = s + 1;
    }
    put(t, "\"", 1);
}

static void
put_field(struct ing_text *t, const char *name, const char *value, bool first)
{
    put(t, first ? "{\"" : ",\"", 2);
    put(t, name, strlen(name));
    put(t, "\":", 2);
    ing_text_put_json_string(t, value);
}

/* RFC 3339 text of us. The events of a batch mostly share their second, and formatting the
 * date was a tenth of the loop threads' work: the "YYYY-MM-DDTHH:MM:SS." prefix of the last
 * second seen on this thread is kept and only the microseconds are written per event. */
static int
format_ts(int64_t us, char out[ASTRO_TIME_RFC3339_LEN + 1])
{
    static _Thread_local int64_t last_sec = INT64_MIN;
    static _Thread_local char prefix[ASTRO_TIME_RFC3339_LEN + 1];
    int64_t frac = us % 1000000, sec = us / 1000000;
    if (frac < 0) {
        frac += 1000000;
        sec--;
    }
    if (sec != last_sec) {
        if (astro_time_format(us, prefix, sizeof(prefix)) != ASTRO_OK)
            return ASTRO_ERR;
        last_sec = sec;
    }
    size_t p = ASTRO_TIME_RFC3339_LEN - 8; /* ".ffffffZ" follows the seconds */
    memcpy(out, prefix, p);
    out[p++] = '.';
    for (int d = 5; d >= 0; d--, frac /= 10)
        out[p + (size_t)d] = (char)('0' + frac % 10);
    memcpy(out + p + 6, "Z", 2);
    return ASTRO_OK;
}

int
ing_event_json_put(struct ing_text *t, const struct astro_event *ev, const char *value_text)
{
    char ts[ASTRO_TIME_RFC3339_LEN + 1], num[ASTRO_EVENT_DOUBLE_BUF];
    if (ev->is_multi || format_ts(ev->ts_us, ts) != ASTRO_OK)
        return ASTRO_ERR;
    if (value_text == NULL) {
        astro_event_format_double(ev->value, num);
        value_text = num;
    }
    put_field(t, "event_id", ev->id, true);
    put_field(t, "timestamp", ts, false);
    put_field(t, "source_stream", ev->src != NULL ? ev->src : "", false);
    put_field(t, "key", ev->key != NULL ? ev->key : "", false);
    put_field(t, "event_type", ev->type != NULL ? ev->type : "", false);
    put(t, ",\"value\":", 9);
    put(t, value_text, strlen(value_text));
    if (ev->meta_json != NULL) {
        put(t, ",\"metadata\":", 12);
        put(t, ev->meta_json, strlen(ev->meta_json));
    }
    put(t, "}", 1);
    return t->oom ? ASTRO_ERR : ASTRO_OK;
}

char *
ing_event_json(const struct astro_event *ev, const char *value_text)
{
    struct ing_text t = {0};
    if (ing_event_json_put(&t, ev, value_text) != ASTRO_OK) {
        free(t.buf);
        return NULL;
    }
    return t.buf;
}

int
ing_assign_ids(struct astro_event *ev, size_t n)
{
    size_t need = 0, k = 0;
    for (size_t i = 0; i < n; i++)
        need += (ev[i].assign & ASTRO_EVENT_ASSIGN_ID) != 0;
    if (need == 0)
        return ASTRO_OK;
    struct astro_uuid *u = malloc(need * sizeof(*u));
    if (u == NULL || RAND_bytes((unsigned char *)u, (int)(need * sizeof(*u))) != 1) {
        free(u);
        return ASTRO_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(ev[i].assign & ASTRO_EVENT_ASSIGN_ID))
            continue;
        u[k].b[6] = (uint8_t)((u[k].b[6] & 0x0f) | 0x40); /* version 4 */
        u[k].b[8] = (uint8_t)((u[k].b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
        astro_uuid_format(&u[k++], ev[i].id);
        ev[i].assign &= ~(unsigned)ASTRO_EVENT_ASSIGN_ID;
    }
    free(u);
    return ASTRO_OK;
}

/* Per-event work of the write path without cJSON: the recent buffer's JSON text and v4 ids for a
 * whole batch. Both showed in profiles (cJSON tree + print ~20%, one CSPRNG call per id ~13% of
 * the loop threads at 50k events/s). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "astro/time.h"
#include "astro/uuid.h"
#include "ingest.h"

struct text {
    char *buf;
    size_t len, cap;
    bool oom;
};

static void
put(struct text *t, const char *s, size_t n)
{
    if (t->oom)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = (t->len + n + 1) * 2;
        char *nb = realloc(t->buf, cap);
        if (nb == NULL) {
            t->oom = true;
            return;
        }
        t->buf = nb;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

/* A JSON string with the escapes cJSON uses (UTF-8 passes through). */
static void
put_string(struct text *t, const char *s)
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
put_field(struct text *t, const char *name, const char *value, bool first)
{
    put(t, first ? "{\"" : ",\"", 2);
    put(t, name, strlen(name));
    put(t, "\":", 2);
    put_string(t, value);
}

char *
ing_event_json(const struct astro_event *ev, const char *value_text)
{
    char ts[ASTRO_TIME_RFC3339_LEN + 1], num[ASTRO_EVENT_DOUBLE_BUF];
    struct text t = {0};
    if (ev->is_multi || astro_time_format(ev->ts_us, ts, sizeof(ts)) != ASTRO_OK)
        return NULL;
    if (value_text == NULL)
        astro_event_format_double(ev->value, num);
    else
        snprintf(num, sizeof(num), "%s", value_text);
    put_field(&t, "event_id", ev->id, true);
    put_field(&t, "timestamp", ts, false);
    put_field(&t, "source_stream", ev->src != NULL ? ev->src : "", false);
    put_field(&t, "key", ev->key != NULL ? ev->key : "", false);
    put_field(&t, "event_type", ev->type != NULL ? ev->type : "", false);
    put(&t, ",\"value\":", 9);
    put(&t, num, strlen(num));
    if (ev->meta_json != NULL) {
        put(&t, ",\"metadata\":", 12);
        put(&t, ev->meta_json, strlen(ev->meta_json));
    }
    put(&t, "}", 1);
    if (t.oom) {
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

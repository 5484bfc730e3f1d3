/* The producer loop: auth, paced sending with a bounded window of unacknowledged messages,
 * resending what ingest refused as retryable (backpressure, unavailable), reconnecting when the
 * connection is lost (then every unacknowledged message is resent: ingest's dedup by event id
 * acknowledges what had already landed as duplicates), and the summary. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "astro/backoff.h"
#include "astro/time.h"
#include "produce.h"
#include "ws_client.h"

#define MSG_CAP (4u << 20)
/* A batch stops growing past this, so it stays under ingest's default 1 MiB message limit. */
#define MSG_SOFT (768u << 10)

struct slot {
    int64_t seq;      /* 0 = free */
    int64_t sent_us;
    int64_t retry_at; /* 0 = waiting for the ack */
    size_t n_events;
    char *text;
    size_t len;
};

struct run {
    const struct prd_config *cfg;
    struct prd_gen gen;
    struct prd_ws ws;
    struct slot *slots;
    int inflight;
    int64_t next_seq;
    uint64_t next_i;
    struct prd_stats st;
    FILE *ids;
    char *buf;
    char err[512];
    bool fatal; /* the error is not a lost connection: do not reconnect */
};

static int
authenticate(struct run *r)
{
    char msg[1024];
    const char *dev = r->cfg->pattern == PRD_DEMO
                          ? ",\"device_info\":{\"device_type\":\"astro-produce EEG\","
                            "\"sampling_rate\":128,\"channel_count\":2,"
                            "\"channel_names\":[\"AF3\",\"AF4\"]}" : "";
    cJSON *key = cJSON_CreateString(r->cfg->api_key), *user = cJSON_CreateString(r->cfg->user_id);
    char *k = cJSON_PrintUnformatted(key), *u = cJSON_PrintUnformatted(user);
    int n = snprintf(msg, sizeof(msg), "{\"type\":\"auth\",\"api_key\":%s,\"user_id\":%s%s}",
                     k != NULL ? k : "\"\"", u != NULL ? u : "\"\"", dev);
    cJSON_free(k);
    cJSON_free(u);
    cJSON_Delete(key);
    cJSON_Delete(user);
    if (n < 0 || (size_t)n >= sizeof(msg))
        return astro_fail(r->err, sizeof(r->err), "api key or user id too long");
    if (prd_ws_send_text(&r->ws, msg, (size_t)n, r->err, sizeof(r->err)) != ASTRO_OK)
        return ASTRO_ERR;
    const char *ans;
    size_t len;
    int rc = prd_ws_recv(&r->ws, 5000, &ans, &len, r->err, sizeof(r->err));
    if (rc == 0)
        return astro_fail(r->err, sizeof(r->err), "no auth answer within 5 s");
    if (rc < 0) {
        r->fatal = r->ws.close_code == 1008; /* closed for policy: the key was refused */
        return ASTRO_ERR;
    }
    if (strstr(ans, "\"auth_ok\"") == NULL) {
        r->fatal = true;
        return astro_fail(r->err, sizeof(r->err), "auth refused: %.200s", ans);
    }
    return ASTRO_OK;
}

static struct slot *
free_slot(struct run *r)
{
    for (int s = 0; s < r->cfg->window; s++)
        if (r->slots[s].seq == 0)
            return &r->slots[s];
    return NULL;
}

static struct slot *
find_slot(struct run *r, int64_t seq)
{
    for (int s = 0; s < r->cfg->window; s++)
        if (r->slots[s].seq == seq && seq != 0)
            return &r->slots[s];
    return NULL;
}

static void
release(struct run *r, struct slot *s)
{
    free(s->text);
    *s = (struct slot){0};
    r->inflight--;
}

static void
note_id(struct run *r, const struct prd_event *ev)
{
    if (r->ids != NULL)
        fprintf(r->ids, "%s %s %s %s\n", ev->id, ev->src, ev->key, ev->type);
}

/* Builds the next message from events next_i..limit-1 into r->buf: one features/raw message,
 * or an `events` batch of plain events. Returns its length and sets *n (0: nothing to send). */
static size_t
build(struct run *r, uint64_t limit, int64_t seq, size_t *n)
{
    struct prd_event ev;
    size_t len = 0;
    int64_t now = astro_now_us();
    *n = 0;
    while (r->next_i < limit && (int)*n < r->cfg->batch && len < MSG_SOFT) {
        if (prd_gen_event(&r->gen, r->next_i, &ev) != ASTRO_OK)
            return 0;
        bool single = ev.kind != PRD_KIND_EVENT;
        if (single && *n > 0)
            break;
        len = single ? (size_t)snprintf(r->buf, MSG_CAP, "{\"type\":\"%s\",\"seq\":%lld,",
                                        ev.type, (long long)seq)
              : *n == 0 ? (size_t)snprintf(r->buf, MSG_CAP,
                                           "{\"type\":\"events\",\"seq\":%lld,\"items\":[{",
                                           (long long)seq)
              : len + (size_t)snprintf(r->buf + len, MSG_CAP - len, ",{");
        len = prd_gen_json(&r->gen, r->next_i, &ev, now, r->buf, len, MSG_CAP - 8);
        if (len == 0)
            return 0;
        len += (size_t)snprintf(r->buf + len, MSG_CAP - len, "}");
        note_id(r, &ev);
        r->next_i++;
        (*n)++;
        if (single)
            return len;
    }
    if (*n > 0)
        len += (size_t)snprintf(r->buf + len, MSG_CAP - len, "]}");
    return len;
}

static int
send_slot(struct run *r, struct slot *s)
{
    s->sent_us = astro_now_us();
    s->retry_at = 0;
    r->st.messages++;
    return prd_ws_send_text(&r->ws, s->text, s->len, r->err, sizeof(r->err));
}

/* Sends new messages while the window has room and events are due. */
static int
send_due(struct run *r, uint64_t limit)
{
    struct slot *s;
    while (r->next_i < limit && (s = free_slot(r)) != NULL) {
        size_t n, len = build(r, limit, r->next_seq, &n);
        if (n == 0 || len == 0) {
            r->fatal = n != 0;
            return n == 0 ? ASTRO_OK : astro_fail(r->err, sizeof(r->err), "message too big");
        }
        *s = (struct slot){.seq = r->next_seq++, .n_events = n, .len = len,
                           .text = malloc(len)};
        if (s->text == NULL) {
            r->fatal = true;
            return astro_fail(r->err, sizeof(r->err), "out of memory");
        }
        memcpy(s->text, r->buf, len);
        r->inflight++;
        if (send_slot(r, s) != ASTRO_OK)
            return ASTRO_ERR;
    }
    return ASTRO_OK;
}

static int
resend_due(struct run *r, int64_t now)
{
    for (int i = 0; i < r->cfg->window; i++) {
        struct slot *s = &r->slots[i];
        if (s->seq != 0 && s->retry_at != 0 && s->retry_at <= now) {
            r->st.retried++;
            if (send_slot(r, s) != ASTRO_OK)
                return ASTRO_ERR;
        }
    }
    return ASTRO_OK;
}

static void
on_ack(struct run *r, cJSON *m, struct slot *s)
{
    int64_t now = astro_now_us();
    r->st.acked += (uint64_t)cJSON_GetArraySize(cJSON_GetObjectItem(m, "event_ids"));
    uint64_t d = (uint64_t)cJSON_GetArraySize(cJSON_GetObjectItem(m, "duplicates"));
    r->st.dups += d;
    r->st.acked += d;
    if (prd_lat_add(&r->st.lat, now - s->sent_us) != ASTRO_OK)
        fprintf(stderr, "astro-produce: out of memory for latency samples\n");
    release(r, s);
}

static void
on_error(struct run *r, cJSON *m, struct slot *s, const char *text)
{
    const char *code = cJSON_GetStringValue(cJSON_GetObjectItem(m, "code"));
    if (code != NULL && (strcmp(code, "backpressure") == 0 || strcmp(code, "unavailable") == 0)) {
        double after = cJSON_GetNumberValue(cJSON_GetObjectItem(m, "retry_after_ms"));
        s->retry_at = astro_now_us() + (after > 0 && after < 60000 ? (int64_t)after : 500) * 1000;
        return;
    }
    r->st.rejected += s->n_events;
    fprintf(stderr, "astro-produce: message %lld refused: %.300s\n", (long long)s->seq, text);
    release(r, s);
}

/* Handles one server message: an ack or error for one of our seqs (others are logged). */
static void
on_message(struct run *r, const char *text)
{
    cJSON *m = cJSON_Parse(text);
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(m, "type"));
    cJSON *seq = cJSON_GetObjectItem(m, "seq");
    struct slot *s = cJSON_IsNumber(seq) ? find_slot(r, (int64_t)seq->valuedouble) : NULL;
    if (type != NULL && s != NULL && strcmp(type, "ack") == 0)
        on_ack(r, m, s);
    else if (type != NULL && s != NULL && strcmp(type, "error") == 0)
        on_error(r, m, s, text);
    else if (!r->cfg->quiet)
        fprintf(stderr, "astro-produce: server says: %.300s\n", text);
    cJSON_Delete(m);
}

/* Events that should have been sent by now at the configured rate (and within --count). */
static uint64_t
due_limit(const struct run *r, int64_t now, bool stopping)
{
    const struct prd_config *c = r->cfg;
    if (stopping)
        return r->next_i;
    uint64_t lim = c->count > 0 ? (uint64_t)c->count : UINT64_MAX;
    if (c->rate > 0) {
        double due = (double)(now - r->st.start_us) / 1e6 * c->rate + 1;
        if (due < (double)lim)
            lim = (uint64_t)due;
    }
    return lim;
}

static bool
time_up(const struct run *r, int64_t now)
{
    const struct prd_config *c = r->cfg;
    return prd_stop_requested() || (c->duration_ms > 0 && now - r->st.start_us >= c->duration_ms * 1000) ||
           (c->count > 0 && r->next_i >= (uint64_t)c->count);
}

/* How long to wait for server messages: until the next event is due (at most 50 ms, so
 * resends and the progress line stay timely). */
static int
wait_ms(const struct run *r, int64_t now, bool stopping)
{
    if (stopping || r->cfg->rate <= 0)
        return r->inflight > 0 ? 50 : 1;
    if (r->inflight >= r->cfg->window)
        return 50;
    double due_us = (double)r->st.start_us + (double)r->next_i / r->cfg->rate * 1e6;
    double ms = (due_us - (double)now) / 1000.0;
    return ms <= 0 ? 0 : ms >= 50 ? 50 : (int)ms + 1;
}

static int
connect_and_auth(struct run *r)
{
    prd_ws_close(&r->ws);
    if (prd_ws_connect(&r->ws, r->cfg->host, r->cfg->port, r->cfg->path, 5000, r->err,
                       sizeof(r->err)) != ASTRO_OK)
        return ASTRO_ERR;
    return authenticate(r);
}

/* The connection is gone: connect again with backoff until it works, time is up with nothing
 * in flight, a stop is requested, or until (stopping) the drain deadline; then resend every
 * unacknowledged message. A refused key ends it. */
static int
reconnect(struct run *r, int64_t drain_deadline)
{
    struct astro_backoff b;
    astro_backoff_init(&b, 100, 5000, 0.2);
    fprintf(stderr, "astro-produce: connection lost (%s); reconnecting\n", r->err);
    for (;;) {
        int64_t now = astro_now_us();
        if (prd_stop_requested() || (drain_deadline != 0 && now > drain_deadline))
            return astro_fail(r->err, sizeof(r->err), "connection lost with %d messages "
                              "unacknowledged", r->inflight);
        if (connect_and_auth(r) == ASTRO_OK)
            break;
        if (r->fatal)
            return ASTRO_ERR;
        astro_backoff_sleep_ms(astro_backoff_next(&b));
    }
    r->st.reconnects++;
    fprintf(stderr, "astro-produce: reconnected; resending %d messages\n", r->inflight);
    for (int i = 0; i < r->cfg->window; i++)
        if (r->slots[i].seq != 0)
            r->slots[i].retry_at = astro_now_us();
    return ASTRO_OK;
}

/* One round: send what is due and resend what is due, then wait for one server message. */
static int
step(struct run *r, int64_t now, bool stopping)
{
    if (send_due(r, due_limit(r, now, stopping)) != ASTRO_OK || resend_due(r, now) != ASTRO_OK)
        return ASTRO_ERR;
    const char *msg;
    size_t len;
    int rc = prd_ws_recv(&r->ws, wait_ms(r, now, stopping), &msg, &len, r->err, sizeof(r->err));
    if (rc == 1)
        on_message(r, msg);
    return rc < 0 ? ASTRO_ERR : ASTRO_OK;
}

/* Sends until time is up, then waits (at most 10 s) for the acks of what was sent. */
static int
loop(struct run *r)
{
    int64_t drain_deadline = 0, last_progress = r->st.start_us;
    for (;;) {
        int64_t now = astro_now_us();
        bool stopping = time_up(r, now);
        if (stopping && r->inflight == 0)
            return ASTRO_OK;
        if (stopping && drain_deadline == 0)
            drain_deadline = now + 10 * 1000000;
        if (stopping && now > drain_deadline)
            return astro_fail(r->err, sizeof(r->err), "%d messages still unacknowledged",
                              r->inflight);
        if (step(r, now, stopping) != ASTRO_OK &&
            (r->fatal || reconnect(r, drain_deadline) != ASTRO_OK))
            return ASTRO_ERR;
        if (!r->cfg->quiet && now - last_progress >= 5 * 1000000) {
            prd_report(&r->st, r->next_i, stderr, now);
            last_progress = now;
        }
    }
}

int
prd_run(const struct prd_config *cfg, FILE *out)
{
    struct run r = {.cfg = cfg, .next_seq = 1};
    int rc = 1;
    if (cfg->http)
        return prd_run_http(cfg, out);
    prd_signals_install();
    r.ws.fd = -1;
    r.slots = calloc((size_t)cfg->window, sizeof(*r.slots));
    r.buf = malloc(MSG_CAP);
    if (r.slots == NULL || r.buf == NULL ||
        prd_gen_init(&r.gen, cfg->pattern, cfg->seed, cfg->keys) != ASTRO_OK) {
        snprintf(r.err, sizeof(r.err), "out of memory");
        goto fail;
    }
    if (cfg->ids_out != NULL && (r.ids = fopen(cfg->ids_out, "w")) == NULL) {
        snprintf(r.err, sizeof(r.err), "--ids-out %s: cannot open", cfg->ids_out);
        goto fail;
    }
    if (connect_and_auth(&r) != ASTRO_OK) /* the first connection must work: bad URL, key */
        goto fail;
    if (cfg->seed_from_time)
        fprintf(stderr, "astro-produce: seed %llu\n", (unsigned long long)cfg->seed);
    r.st.start_us = astro_now_us();
    if (loop(&r) != ASTRO_OK)
        goto fail;
    rc = r.st.rejected == 0 ? 0 : 1;
    goto out;
fail:
    fprintf(stderr, "astro-produce: %s\n", r.err);
out:
    if (r.st.start_us != 0)
        prd_report(&r.st, r.next_i, out, astro_now_us());
    for (int s = 0; r.slots != NULL && s < cfg->window; s++)
        free(r.slots[s].text);
    if (r.ids != NULL)
        fclose(r.ids);
    prd_ws_close(&r.ws);
    prd_lat_cleanup(&r.st.lat);
    free(r.slots);
    free(r.buf);
    return rc;
}

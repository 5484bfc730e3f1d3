/* HTTP mode of astro-produce: POST /events with a JSON array per batch, one request at a time
 * on a kept-alive connection (a simple client's behaviour, not a load generator's). 503
 * answers are resent after Retry-After with the same ids; other refusals are counted. The
 * features/raw messages of the demo pattern have no HTTP form: they go as plain events with
 * event_type features/raw. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "astro/time.h"
#include "http_client.h"
#include "produce.h"

#define HTTP_BODY_CAP (768u << 10)

struct hrun {
    const struct prd_config *cfg;
    struct prd_gen gen;
    struct prd_http http;
    struct prd_stats st;
    uint64_t next_i;
    FILE *ids;
    char *body;
    char err[512];
};

/* Builds a JSON array of events next_i..limit-1 (at most --batch); returns its length. */
static size_t
build_array(struct hrun *h, uint64_t limit, size_t *n)
{
    struct prd_event ev;
    size_t len = 1;
    int64_t now = astro_now_us();
    h->body[0] = '[';
    *n = 0;
    while (h->next_i < limit && (int)*n < h->cfg->batch && len < HTTP_BODY_CAP - 4096) {
        if (prd_gen_event(&h->gen, h->next_i, &ev) != ASTRO_OK)
            return 0;
        ev.kind = PRD_KIND_EVENT;
        len += (size_t)snprintf(h->body + len, HTTP_BODY_CAP - len, "%s{", *n > 0 ? "," : "");
        len = prd_gen_json(&h->gen, h->next_i, &ev, now, h->body, len, HTTP_BODY_CAP - 4);
        if (len == 0)
            return 0;
        h->body[len++] = '}';
        if (h->ids != NULL)
            fprintf(h->ids, "%s %s %s %s\n", ev.id, ev.src, ev.key, ev.type);
        h->next_i++;
        (*n)++;
    }
    h->body[len++] = ']';
    h->body[len] = '\0';
    return len;
}

static void
sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Sends one batch until it is accepted, refused, or the run must end. */
static int
post_batch(struct hrun *h, size_t len, size_t n)
{
    struct prd_http_answer ans;
    for (;;) {
        int64_t t0 = astro_now_us();
        h->st.messages++;
        if (prd_http_post(&h->http, h->cfg->path, h->cfg->api_key, h->body, len, 10000, &ans,
                          h->err, sizeof(h->err)) != ASTRO_OK)
            return ASTRO_ERR;
        if (ans.status == 202) {
            cJSON *m = cJSON_Parse(ans.body);
            uint64_t d = (uint64_t)cJSON_GetArraySize(cJSON_GetObjectItem(m, "duplicates"));
            h->st.acked += (uint64_t)cJSON_GetArraySize(cJSON_GetObjectItem(m, "event_ids")) + d;
            h->st.dups += d;
            cJSON_Delete(m);
            return prd_lat_add(&h->st.lat, astro_now_us() - t0);
        }
        if (ans.status != 503 || prd_stop_requested()) {
            h->st.rejected += n;
            fprintf(stderr, "astro-produce: HTTP %d: %.300s\n", ans.status, ans.body);
            return ASTRO_OK;
        }
        h->st.retried++;
        sleep_ms(ans.retry_after_s > 0 && ans.retry_after_s < 60 ? ans.retry_after_s * 1000 : 500);
    }
}

static int
loop(struct hrun *h)
{
    const struct prd_config *c = h->cfg;
    for (;;) {
        int64_t now = astro_now_us();
        if (prd_stop_requested() || (c->count > 0 && h->next_i >= (uint64_t)c->count) ||
            (c->duration_ms > 0 && now - h->st.start_us >= c->duration_ms * 1000))
            return ASTRO_OK;
        uint64_t limit = c->count > 0 ? (uint64_t)c->count : UINT64_MAX;
        if (c->rate > 0) {
            double due = (double)(now - h->st.start_us) / 1e6 * c->rate + 1;
            if (due < (double)limit)
                limit = (uint64_t)due;
        }
        if (limit <= h->next_i) {
            sleep_ms(1);
            continue;
        }
        size_t n, len = build_array(h, limit, &n);
        if (len == 0)
            return astro_fail(h->err, sizeof(h->err), "event too big");
        if (post_batch(h, len, n) != ASTRO_OK)
            return ASTRO_ERR;
    }
}

int
prd_run_http(const struct prd_config *cfg, FILE *out)
{
    struct hrun h = {.cfg = cfg};
    int rc = 1;
    prd_signals_install();
    prd_http_init(&h.http, cfg->host, cfg->port);
    h.body = malloc(HTTP_BODY_CAP);
    if (h.body == NULL || prd_gen_init(&h.gen, cfg->pattern, cfg->seed, cfg->keys) != ASTRO_OK) {
        snprintf(h.err, sizeof(h.err), "out of memory");
        goto fail;
    }
    if (cfg->ids_out != NULL && (h.ids = fopen(cfg->ids_out, "w")) == NULL) {
        snprintf(h.err, sizeof(h.err), "--ids-out %s: cannot open", cfg->ids_out);
        goto fail;
    }
    if (cfg->seed_from_time)
        fprintf(stderr, "astro-produce: seed %llu\n", (unsigned long long)cfg->seed);
    h.st.start_us = astro_now_us();
    if (loop(&h) != ASTRO_OK)
        goto fail;
    rc = h.st.rejected == 0 ? 0 : 1;
    goto out;
fail:
    fprintf(stderr, "astro-produce: %s\n", h.err);
out:
    if (h.st.start_us != 0)
        prd_report(&h.st, h.next_i, out, astro_now_us());
    if (h.ids != NULL)
        fclose(h.ids);
    prd_http_cleanup(&h.http);
    prd_lat_cleanup(&h.st.lat);
    free(h.body);
    return rc;
}

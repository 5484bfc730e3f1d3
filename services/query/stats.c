/* /events/stats: counts by source, type and rule, the time range, rates and the integration
 * ratio over a window, answered from event_rollups (one row per minute and group), so its cost
 * depends on the window, never on the size of the event tables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <civetweb.h>

#include "astro/log.h"
#include "astro/time.h"
#include "query.h"
#include "sql.h"

#define DEFAULT_WINDOW_US (INT64_C(24) * 3600 * ASTRO_US_PER_SEC)

static void
bump(cJSON *obj, const char *name, double n)
{
    cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (it == NULL)
        cJSON_AddNumberToObject(obj, name, n);
    else
        cJSON_SetNumberValue(it, it->valuedouble + n);
}

static cJSON *
stats_json(const PGresult *r, int64_t start_us, int64_t end_us)
{
    cJSON *o = cJSON_CreateObject(), *src = cJSON_CreateObject(), *type = cJSON_CreateObject();
    cJSON *rule = cJSON_CreateObject();
    double mono = 0, multi = 0;
    int64_t first = INT64_MAX, last = INT64_MIN;
    for (int i = 0; i < PQntuples(r); i++) {
        double n = (double)strtoll(PQgetvalue(r, i, 4), NULL, 10);
        int64_t lo = strtoll(PQgetvalue(r, i, 5), NULL, 10);
        int64_t hi = strtoll(PQgetvalue(r, i, 6), NULL, 10);
        first = lo < first ? lo : first;
        last = hi > last ? hi : last;
        if (strcmp(PQgetvalue(r, i, 0), "mono") == 0) {
            mono += n;
            bump(src, PQgetvalue(r, i, 1), n);
            bump(type, PQgetvalue(r, i, 2), n);
        } else {
            multi += n;
            bump(rule, PQgetvalue(r, i, 3), n);
        }
    }
    double secs = (double)(end_us - start_us) / 1e6;
    char ts[ASTRO_TIME_RFC3339_LEN + 1];
    if (astro_time_format(start_us, ts, sizeof(ts)) == ASTRO_OK)
        cJSON_AddStringToObject(o, "start_time", ts);
    if (astro_time_format(end_us, ts, sizeof(ts)) == ASTRO_OK)
        cJSON_AddStringToObject(o, "end_time", ts);
    /* the minutes that hold data: [first_minute, last_minute + 1 min) */
    if (first <= last && astro_time_format(first, ts, sizeof(ts)) == ASTRO_OK)
        cJSON_AddStringToObject(o, "first_minute", ts);
    else
        cJSON_AddNullToObject(o, "first_minute");
    if (first <= last && astro_time_format(last, ts, sizeof(ts)) == ASTRO_OK)
        cJSON_AddStringToObject(o, "last_minute", ts);
    else
        cJSON_AddNullToObject(o, "last_minute");
    cJSON_AddNumberToObject(o, "mono_total", mono);
    cJSON_AddNumberToObject(o, "multi_total", multi);
    cJSON_AddItemToObject(o, "by_source", src);
    cJSON_AddItemToObject(o, "by_type", type);
    cJSON_AddItemToObject(o, "by_rule", rule);
    cJSON_AddNumberToObject(o, "mono_per_second", mono / secs);
    cJSON_AddNumberToObject(o, "multi_per_second", multi / secs);
    if (mono > 0)
        cJSON_AddNumberToObject(o, "integration_ratio", multi / mono);
    else
        cJSON_AddNullToObject(o, "integration_ratio");
    return o;
}

void
qry_events_stats(struct qry_ctx *ctx, struct mg_connection *c, const char *qs)
{
    struct qry_filter f;
    struct qry_error e;
    char a[ASTRO_TIME_RFC3339_LEN + 1], b[ASTRO_TIME_RFC3339_LEN + 1], err[512];
    if (qry_params_parse(QRY_EP_STATS, qs, &f, &e) != ASTRO_OK) {
        qry_reply_bad(ctx, c, &e);
        return;
    }
    /* Rollups are per minute: the window is widened to whole minutes. */
    int64_t end = (f.present & QRY_F_END) ? f.end_us : astro_now_us();
    int64_t start = (f.present & QRY_F_START) ? f.start_us : end - DEFAULT_WINDOW_US;
    if (start >= end) {
        snprintf(e.param, sizeof(e.param), "start_time");
        snprintf(e.msg, sizeof(e.msg), "must be before end_time (default: now)");
        qry_reply_bad(ctx, c, &e);
        return;
    }
    if (astro_time_format(start, a, sizeof(a)) != ASTRO_OK ||
        astro_time_format(end, b, sizeof(b)) != ASTRO_OK) {
        qry_reply_error(ctx, c, 500, "internal", NULL, "cannot format the window");
        return;
    }
    const char *params[] = {a, b};
    PGresult *r = qry_sql_exec(qry_worker_of(c), QRY_SLOT_STATS, qry_sql_stats, 2, params, err,
                               sizeof(err));
    if (r == NULL) {
        astro_log_warn("stats: database: %s", err);
        qry_reply_error(ctx, c, 503, "database_unavailable", NULL,
                        "the database did not answer");
        return;
    }
    qry_reply_json(c, 200, stats_json(r, start, end));
    PQclear(r);
}

/* SQL text and execution for the event endpoints (sql.c); private to astro-query. */
#ifndef QRY_SQL_H
#define QRY_SQL_H

#include <libpq-fe.h>

#include "astro/time.h"
#include "query.h"

/* Prepared-statement slots: list queries use their filter mask (mono 0..255, multi 256..511
 * minus the fixed ones), the fixed statements the slots below. */
#define QRY_SLOT_MONO_ID 64
#define QRY_SLOT_MULTI_ID 65
#define QRY_SLOT_LINEAGE 66
#define QRY_SLOT_STATS 67
#define QRY_SLOT_CANDLES 96     /* + QRY_A_* mask: 96..103 */
#define QRY_SLOT_INDICATORS 112 /* + QRY_A_* mask: 112..127 */
#define QRY_SLOT_MULTI_BASE 256

extern const char qry_sql_mono_by_id[];
extern const char qry_sql_multi_by_id[];
extern const char qry_sql_lineage[];
extern const char qry_sql_stats[];

struct qry_sql_params {
    char start[ASTRO_TIME_RFC3339_LEN + 1], end[ASTRO_TIME_RFC3339_LEN + 1];
    char cur[ASTRO_TIME_RFC3339_LEN + 1];
    char conf[32], limit[24], offset[24];
    const char *v[12];
};

/* Writes the list query for the filters in present into out; returns its parameter count or
 * -1 if out is too small. */
int qry_sql_list(enum qry_kind kind, unsigned present, char *out, size_t size);
/* Fills p->v with f's values in qry_sql_list() order; returns the count or -1. */
int qry_sql_list_params(const struct qry_filter *f, struct qry_sql_params *p);
/* Prepares (once per connection) and runs statement slot; the result (PQclear it) or NULL
 * with the reason in err. */
PGresult *qry_sql_exec(struct qry_worker *w, unsigned slot, const char *sql, int n,
                       const char *const *params, char *err, size_t errlen);

#endif

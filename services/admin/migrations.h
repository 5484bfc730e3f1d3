/* The SQL migrations compiled into astro-admin (generated from sql/NNNN_name.sql by sql/embed.py). */
#ifndef ADM_MIGRATIONS_H
#define ADM_MIGRATIONS_H

#include <stddef.h>

struct adm_migration {
    int version;          /* 1..N, contiguous */
    const char *name;     /* file name without .sql, e.g. "0001_event_tables" */
    const char *checksum; /* hex SHA-256 of the file's bytes */
    const char *sql;      /* the file's text */
};

/* Ordered by version; static storage. */
extern const struct adm_migration adm_migrations[];
extern const size_t adm_migrations_count;

#endif

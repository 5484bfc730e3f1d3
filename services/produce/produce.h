/* astro-produce: the demo and load producer (docs/operations.md "astro-produce").
 *
 * A client like any other: it speaks ingest's WebSocket protocol (/stream, first-message auth,
 * `events`, `features` and `raw` messages with a `seq`, acks) over a small blocking WebSocket
 * client of its own (ws_client.c, run.c), or POST /events over a small HTTP client
 * (http_client.c, run_http.c). Runs are reproducible: event i of pattern P and seed S has the
 * id uuid5(ASTRO_UUID_NAMESPACE, "produce:<P>:<S>:<i>") and its value, key and type depend only
 * on (P, S, i), so the same flags send the same events (timestamps are the send time). */
#ifndef PRODUCE_H
#define PRODUCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "astro/common.h"
#include "astro/uuid.h"

enum prd_pattern {
    PRD_DEMO,      /* axon_1/2/3 x A/B/C, plus features/raw messages from edge users */
    PRD_ABC_PAIRS, /* per key and round: A (axon_1), B (axon_2), C (axon_3), back to back */
    PRD_TRADES,    /* "exchange" trades: key = symbol, value = price random walk */
};

struct prd_config {
    char host[256];
    int port;
    char path[512];
    bool http;            /* http:// url: POST /events, one request at a time */
    const char *api_key;  /* borrowed from argv or the environment */
    const char *user_id;
    double rate;          /* events per second (0 = as fast as acks allow) */
    int64_t keys;
    int64_t duration_ms;  /* 0 = until count */
    int64_t count;        /* 0 = until duration */
    uint64_t seed;
    bool seed_from_time;  /* --seed time: printed at start so the run can be repeated */
    enum prd_pattern pattern;
    int batch;            /* events per `events` message, at most */
    int window;           /* messages in flight, at most */
    const char *ids_out;  /* file: one line "id src key type" per event sent, or NULL */
    bool quiet;
};

/* Parses the flags of astro-produce (strict: an unknown flag or a bad value is an error that
 * names it). Returns ASTRO_OK, or ASTRO_ERR with the reason in err; *help is set for --help. */
int prd_args_parse(int argc, char **argv, struct prd_config *cfg, bool *help, char *err,
                   size_t errlen) ASTRO_MUST_CHECK;
void prd_usage(FILE *f);

/* One generated event; strings point into the struct or static storage. */
struct prd_event {
    char id[ASTRO_UUID_STR_LEN + 1];
    char key[64];
    const char *src;
    const char *type;
    double value;
    int kind; /* PRD_KIND_* */
};

enum { PRD_KIND_EVENT, PRD_KIND_FEATURES, PRD_KIND_RAW };

struct prd_gen {
    struct astro_uuid ns;
    uint64_t seed;
    bool seed_from_time;  /* --seed time: printed at start so the run can be repeated */
    enum prd_pattern pattern;
    int64_t keys;
};

/* Prepares a generator; ASTRO_ERR only if the namespace cannot be parsed (never). */
int prd_gen_init(struct prd_gen *g, enum prd_pattern p, uint64_t seed,
                 int64_t keys) ASTRO_MUST_CHECK;
/* Fills ev with event number i (a pure function of the generator's settings and i). */
int prd_gen_event(const struct prd_gen *g, uint64_t i, struct prd_event *ev) ASTRO_MUST_CHECK;
/* Appends the fields of ev as JSON members without braces ("event_id":...,...), the body of an
 * `events` item or of a features/raw message, to buf[len..cap); returns the new length, or 0
 * if it did not fit. */
size_t prd_gen_json(const struct prd_gen *g, uint64_t i, const struct prd_event *ev,
                    int64_t ts_us, char *buf, size_t len, size_t cap);

/* Ack latency samples (µs): append, then percentile over what was recorded. */
struct prd_lat {
    int64_t *v;
    size_t n, cap;
};
int prd_lat_add(struct prd_lat *l, int64_t us) ASTRO_MUST_CHECK;
/* q in [0,1]; sorts the samples in place; 0 when there are none. */
int64_t prd_lat_quantile(struct prd_lat *l, double q);
void prd_lat_cleanup(struct prd_lat *l);

/* What a run did, for the summary line. */
struct prd_stats {
    int64_t start_us;
    uint64_t messages, acked, dups, rejected, retried, reconnects;
    struct prd_lat lat; /* ack latency per message, send (or last resend) to ack */
};

/* Prints "sent N events in M messages in T s (R events/s); acked ...; ack latency p50 p99". */
void prd_report(struct prd_stats *st, uint64_t sent, FILE *out, int64_t now_us);

/* SIGINT/SIGTERM set a flag (stop sending, wait for the acks of what was sent); SIGPIPE is
 * ignored. */
void prd_signals_install(void);
bool prd_stop_requested(void);

/* Runs the producer; prints the summary line to out. Returns a process exit code.
 * prd_run_http is the HTTP mode (--url http://...), called by prd_run. */
int prd_run(const struct prd_config *cfg, FILE *out);
int prd_run_http(const struct prd_config *cfg, FILE *out);

#endif

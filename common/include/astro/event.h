/* The event model: one struct for mono- and multi-originated events, its JSON form (wire: ingest,
 * query, broadcast) and its flat Redis stream form (hot path, no JSON parse for mono events).
 *
 * Decisions (see also docs/architecture.md "The event"):
 * - Unknown JSON fields are rejected (`unknown field "foo"`), except names the caller adds to
 *   limits->extra_fields (the WebSocket layer adds "type" and "seq" for its envelope).
 * - Multi-originated fields (correlation_rule, integrated_value, confidence, source_events,
 *   lineage) are unknown fields unless limits->allow_multi is set: producers cannot forge them.
 * - event_id and timestamp may be absent: decode sets ASTRO_EVENT_ASSIGN_ID / _TS in ev->assign
 *   and astro_event_assign_defaults() fills them. A UUID event_id is stored in lowercase
 *   canonical form so "ABC.." and "abc.." are one idempotency key; other ids are kept verbatim.
 * - key may be absent (same as ""). metadata may be absent or null (ev->meta_json NULL).
 * - Ids, source_stream, event_type and correlation_rule are hard-capped at 64 bytes (they are
 *   stored in fixed buffers and typed columns); limits may lower the cap, never raise it.
 * - Metadata numbers must be finite; integers beyond 2^53 lose precision (cJSON keeps doubles).
 * - JSON lineage items: {"event_id","source_stream","event_type","timestamp","value"}; in the
 *   stream's `lin` field: {"id","src","type","ts" (epoch µs as a decimal string),"val"}.
 * - Doubles are written as the shortest decimal that reads back bit-identical (-0 included). */
#ifndef ASTRO_EVENT_H
#define ASTRO_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "astro/common.h"

struct redisReply;

#define ASTRO_EVENT_ID_MAX 64
#define ASTRO_EVENT_NAME_MAX 64
#define ASTRO_EVENT_DOUBLE_BUF 32

enum {
    ASTRO_EVENT_ASSIGN_ID = 1u << 0, /* event_id was absent */
    ASTRO_EVENT_ASSIGN_TS = 1u << 1, /* timestamp was absent */
};

struct astro_lineage_item {
    char id[ASTRO_EVENT_ID_MAX + 1];
    char stream[ASTRO_EVENT_NAME_MAX + 1];
    char type[ASTRO_EVENT_NAME_MAX + 1];
    int64_t ts_us;
    double value;
};

/* Strings are owned by the event (heap, NUL-terminated); release with astro_event_cleanup(). */
struct astro_event {
    char id[ASTRO_EVENT_ID_MAX + 1];
    int64_t ts_us;
    char *src;
    char *key;       /* never NULL after a successful decode; may be "" */
    char *type;
    double value;
    char *meta_json; /* NULL, or compact JSON text of the metadata object */
    unsigned assign; /* ASTRO_EVENT_ASSIGN_* */
    bool is_multi;
    char *rule;
    double integrated_value;
    double confidence;
    size_t n_sources;
    struct astro_lineage_item *lineage; /* n_sources items; source_events are their ids */
};

struct astro_event_limits {
    size_t max_meta_bytes; /* serialized metadata */
    size_t max_name_bytes; /* source_stream, event_type, correlation_rule (<= 64) */
    size_t max_key_bytes;
    size_t max_id_bytes;   /* non-UUID event ids (<= 64) */
    int64_t max_future_us; /* 0 = no limit */
    int64_t max_age_us;    /* 0 = no limit */
    int max_depth;         /* JSON nesting, for astro_event_parse_json */
    size_t max_sources;    /* lineage items of a multi event */
    bool allow_multi;
    const char *const *extra_fields; /* borrowed; top-level names to accept and ignore */
    size_t n_extra_fields;
};

/* 64 KiB metadata, 64-byte names/ids, 256-byte keys, 5 min future, 30 days past, depth 32,
 * 1024 sources, no multi fields, no extra fields. */
struct astro_event_limits astro_event_limits_default(void);

/* Frees the event's owned strings and zeroes it; a zeroed event is a no-op. */
void astro_event_cleanup(struct astro_event *ev);

/* Fills a v4 id and/or now_us for the fields flagged in ev->assign, then clears the flags. */
int astro_event_assign_defaults(struct astro_event *ev, int64_t now_us) ASTRO_MUST_CHECK;

/* Field validators shared by the JSON and stream decoders (and usable for query parameters).
 * field names the field in the message: "source_stream: must be 1..64 characters of ...". */
int astro_event_check_name(const char *field, const char *s, size_t len, size_t max, char *err,
                           size_t errlen) ASTRO_MUST_CHECK;
int astro_event_check_key(const char *s, size_t len, size_t max, char *err,
                          size_t errlen) ASTRO_MUST_CHECK;
/* Validates an event id and writes its stored form (lowercased if a UUID) into out[65]. */
int astro_event_check_id(const char *field, const char *s, size_t len, size_t max,
                         char out[ASTRO_EVENT_ID_MAX + 1], char *err,
                         size_t errlen) ASTRO_MUST_CHECK;

/* Shortest decimal text that strtod reads back bit-identical; d must be finite. */
void astro_event_format_double(double d, char buf[ASTRO_EVENT_DOUBLE_BUF]);

/* Decodes one event from a JSON object (which should come from astro_json_parse_strict, so
 * duplicate keys are already refused). now_us anchors the timestamp window. On success *ev owns
 * its strings; on failure *ev is cleaned up and err says which field is wrong and why. */
int astro_event_decode_json(const cJSON *obj, const struct astro_event_limits *lim,
                            int64_t now_us, struct astro_event *ev, char *err,
                            size_t errlen) ASTRO_MUST_CHECK;

/* Strict JSON parse of buf[0..len) (no terminator needed): valid UTF-8 first, nesting at most
 * max_depth, no \u0000 in strings, whole buffer consumed (trailing whitespace ok), no duplicate
 * object keys at any depth. Returns a new tree (free with cJSON_Delete) or NULL with err. */
cJSON *astro_json_parse_strict(const char *buf, size_t len, int max_depth, char *err,
                               size_t errlen) ASTRO_MUST_CHECK;

/* ASTRO_ERR with `duplicate key "name"` if any object at any depth repeats a key. */
int astro_json_check_duplicates(const cJSON *item, char *err, size_t errlen) ASTRO_MUST_CHECK;

/* astro_json_parse_strict + astro_event_decode_json. */
int astro_event_parse_json(const char *buf, size_t len, const struct astro_event_limits *lim,
                           int64_t now_us, struct astro_event *ev, char *err,
                           size_t errlen) ASTRO_MUST_CHECK;

/* Adds name: d to o as the shortest text that reads back bit-identical (cJSON prints with a
 * tolerance and drops -0); false if d is not finite or on allocation failure. */
bool astro_json_add_double(cJSON *o, const char *name, double d);
/* Adds name: "YYYY-MM-DDTHH:MM:SS.ffffffZ"; false if us is out of range or on allocation
 * failure. */
bool astro_json_add_time(cJSON *o, const char *name, int64_t us);

/* Returns a new JSON object (free with cJSON_Delete) with the wire field names, or NULL on
 * allocation failure. ev is borrowed; its meta_json must be a JSON object text. */
cJSON *astro_event_to_json(const struct astro_event *ev) ASTRO_MUST_CHECK;

/* ---- Redis stream codec ---- */

#define ASTRO_STREAM_MAX_ARGS 40

/* An argv for redisCommandArgv / redisAsyncCommandArgv. The caller pushes its prefix ("XADD",
 * key, "MAXLEN", "~", n, "*") then encodes the event after it. Pointers are borrowed from the
 * caller and the event (both must outlive the command call) or point into numbuf; a mono event
 * needs no heap allocation. Release with astro_stream_fields_cleanup(). */
struct astro_stream_fields {
    const char *argv[ASTRO_STREAM_MAX_ARGS];
    size_t argvlen[ASTRO_STREAM_MAX_ARGS];
    int argc;
    char numbuf[8][ASTRO_EVENT_DOUBLE_BUF]; /* an event uses 4, a candle (astro/agg.h) 8 */
    char *heap[2]; /* srcs and lin of a multi event; a candle's indicator list */
};

void astro_stream_fields_init(struct astro_stream_fields *f);
void astro_stream_fields_cleanup(struct astro_stream_fields *f);

/* Appends one borrowed argument; ASTRO_ERR if the argv is full. */
int astro_stream_fields_push(struct astro_stream_fields *f, const char *s,
                             size_t len) ASTRO_MUST_CHECK;

/* Appends the event's field/value pairs: id ts src key type val [meta] and, for a multi event,
 * rule ival conf srcs lin. ASTRO_ERR on a full argv, bad timestamp or allocation failure. */
int astro_event_stream_encode(const struct astro_event *ev,
                              struct astro_stream_fields *f) ASTRO_MUST_CHECK;

/* Decodes a stream entry's field/value array (elements of an XREAD/XREADGROUP entry; borrowed,
 * only read during the call). Unknown fields are ignored (forward compatibility); missing,
 * repeated or malformed fields fail with a reason suitable for astro:dead. */
int astro_event_stream_decode(struct redisReply *const *elements, size_t n,
                              struct astro_event *ev, char *err, size_t errlen) ASTRO_MUST_CHECK;

/* A watermark marker is a stream entry whose only field is ASTRO_STREAM_MARK_FIELD (value: epoch
 * µs). astro-leaflet writes one into an idle astro:mono:{p} so that replays see the same
 * watermark advance; it is not an event, and every other reader skips (and acks) it. */
#define ASTRO_STREAM_MARK_FIELD "wm"

/* True when the field/value array (borrowed) is a watermark marker. */
bool astro_event_stream_is_marker(struct redisReply *const *elements, size_t n);

/* Same, from a plain argv of n field/value strings (e.g. astro_stream_fields after its prefix). */
int astro_event_stream_decode_argv(const char *const *argv, const size_t *argvlen, size_t n,
                                   struct astro_event *ev, char *err,
                                   size_t errlen) ASTRO_MUST_CHECK;

#endif

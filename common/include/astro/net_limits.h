/* Resource limits of the HTTP + WebSocket layer (astro/http.h, astro/ws.h).
 *
 * Every resource a remote peer can make the server hold has a bound here, a default in
 * astro_net_limits_defaults(), an ASTRO_* setting (docs/net.md has the table) and a counter in
 * /metrics that moves when the bound is hit. A value of 0 means "no limit" only where the field
 * comment says so. */
#ifndef ASTRO_NET_LIMITS_H
#define ASTRO_NET_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "astro/common.h"

struct astro_net_limits {
    size_t header_bytes;         /* request line + headers; over -> 431 (ASTRO_HTTP_MAX_HEADER_BYTES) */
    size_t body_bytes;           /* request body; over -> 413 (ASTRO_HTTP_MAX_BODY_BYTES) */
    uint64_t ws_message_bytes;   /* one message, all fragments; over -> close 1009, decided from
                                  * the declared frame length (ASTRO_WS_MAX_MESSAGE_BYTES) */
    unsigned max_connections;    /* per server, all loops; over -> 503 / close 1013 */
    unsigned max_conns_per_peer; /* per remote IP address; 0 = no limit */
    unsigned max_conns_per_key;  /* per API key given with astro_ws_conn_set_key(); 0 = no limit */
    unsigned handshake_ms;       /* accept -> end of request headers (each request); over -> 408 */
    unsigned stall_ms;           /* a started body or frame with no new byte for this long is cut off */
    unsigned idle_ms;            /* keep-alive HTTP connection with no request; 0 = no limit */
    size_t out_queue_bytes;      /* bytes queued to one connection; over -> close 1008 "slow consumer"
                                  * or drop the oldest messages (astro_ws_conn_set_drop_oldest) */
    unsigned ping_interval_ms;   /* server ping to a quiet WebSocket; 0 = never */
    unsigned pong_deadline_ms;   /* no frame within this after a ping -> close 1008 */
    unsigned shutdown_ms;        /* graceful shutdown deadline */
};

/* Fills *l with the documented defaults: 8 KiB headers, 16 MiB body, 1 MiB message,
 * 10000 connections, 0 (off) per peer and per key, 5 s handshake, 10 s stall, 60 s idle,
 * 4 MiB out queue, 30 s ping, 10 s pong, 10 s shutdown. */
void astro_net_limits_defaults(struct astro_net_limits *l);

/* Checks the relations between fields (non-zero sizes, pong deadline below the ping interval,
 * ...). Returns ASTRO_OK, or ASTRO_ERR with the offending ASTRO_* name and reason in err. */
int astro_net_limits_check(const struct astro_net_limits *l, char *err, size_t errlen)
    ASTRO_MUST_CHECK;

/* ---- ASTRO_* settings ----
 * A service embeds struct astro_net_config in its config struct and splices
 * ASTRO_NET_CFG_VARS(struct svc_config, net) into its astro_cfg_var table (astro/config.h), then
 * converts with astro_net_limits_from_config(). The defaults below are the same as
 * astro_net_limits_defaults() (a unit test holds them together). */
struct astro_net_config {
    int64_t header_bytes, body_bytes, ws_message_bytes;
    int64_t max_connections, max_conns_per_peer, max_conns_per_key;
    int64_t handshake_ms, stall_ms, idle_ms, out_queue_bytes;
    int64_t ping_interval_ms, pong_deadline_ms, shutdown_ms;
};

#define ASTRO_NET_CFG_VAR_(name, type, def, min, max, T, m, field, help)                         \
    {name, type, def, min, max, NULL, 0, offsetof(T, m.field), help}
#define ASTRO_NET_CFG_VARS(T, m)                                                                \
    ASTRO_NET_CFG_VAR_("ASTRO_HTTP_MAX_HEADER_BYTES", ASTRO_CFG_BYTES, "8KiB", 1024, 1048576, T,  \
                       m, header_bytes, "Request line + headers; over -> 431"),                  \
    ASTRO_NET_CFG_VAR_("ASTRO_HTTP_MAX_BODY_BYTES", ASTRO_CFG_BYTES, "16MiB", 1024,             \
                       1073741824, T, m, body_bytes, "Request body; over -> 413"),              \
    ASTRO_NET_CFG_VAR_("ASTRO_WS_MAX_MESSAGE_BYTES", ASTRO_CFG_BYTES, "1MiB", 125,              \
                       1073741824, T, m, ws_message_bytes, "WebSocket message; over -> 1009"),  \
    ASTRO_NET_CFG_VAR_("ASTRO_NET_MAX_CONNECTIONS", ASTRO_CFG_INT, "10000", 1, 1000000, T, m,   \
                       max_connections, "Connections per process; over -> 503 / 1013"),        \
    ASTRO_NET_CFG_VAR_("ASTRO_NET_MAX_CONNS_PER_PEER", ASTRO_CFG_INT, "0", 0, 1000000, T, m,    \
                       max_conns_per_peer, "Connections per client IP (0 = no limit)"),          \
    ASTRO_NET_CFG_VAR_("ASTRO_NET_MAX_CONNS_PER_KEY", ASTRO_CFG_INT, "0", 0, 1000000, T, m,     \
                       max_conns_per_key, "WebSockets per API key (0 = no limit)"),             \
    ASTRO_NET_CFG_VAR_("ASTRO_NET_HANDSHAKE_TIMEOUT", ASTRO_CFG_DURATION, "5s", 100, 600000,   \
                       T, m, handshake_ms, "Deadline for request headers; over -> 408"),         \
    ASTRO_NET_CFG_VAR_("ASTRO_NET_STALL_TIMEOUT", ASTRO_CFG_DURATION, "10s", 100, 600000, T,  \
                       m, stall_ms, "A body or frame with no new byte for this long is cut off"), \
    ASTRO_NET_CFG_VAR_("ASTRO_HTTP_IDLE_TIMEOUT", ASTRO_CFG_DURATION, "60s", 0, 86400000, T,  \
                       m, idle_ms, "Idle keep-alive connection (0 = no limit)"),                \
    ASTRO_NET_CFG_VAR_("ASTRO_WS_MAX_QUEUE_BYTES", ASTRO_CFG_BYTES, "4MiB", 4096, 1073741824,  \
                       T, m, out_queue_bytes, "Unsent bytes per connection; over -> 1008"),      \
    ASTRO_NET_CFG_VAR_("ASTRO_WS_PING_INTERVAL", ASTRO_CFG_DURATION, "30s", 0, 3600000, T, m,  \
                       ping_interval_ms, "Ping a quiet WebSocket this often (0 = never)"),       \
    ASTRO_NET_CFG_VAR_("ASTRO_WS_PONG_TIMEOUT", ASTRO_CFG_DURATION, "10s", 100, 3600000, T,   \
                       m, pong_deadline_ms, "No answer to a ping within this -> close 1008"),    \
    ASTRO_NET_CFG_VAR_("ASTRO_NET_SHUTDOWN_TIMEOUT", ASTRO_CFG_DURATION, "10s", 0, 600000, T,  \
                       m, shutdown_ms, "Graceful shutdown deadline")

/* Copies the loaded settings into *l (values are already bounded by the table). */
void astro_net_limits_from_config(const struct astro_net_config *cfg, struct astro_net_limits *l);

#endif

/* Defaults and checks for the network layer's limits (astro/net_limits.h). */
#include "astro/net_limits.h"

void
astro_net_limits_defaults(struct astro_net_limits *l)
{
    *l = (struct astro_net_limits){
        .header_bytes = 8 * 1024,
        .body_bytes = 16 * 1024 * 1024,
        .ws_message_bytes = 1024 * 1024,
        .max_connections = 10000,
        .max_conns_per_peer = 0,
        .max_conns_per_key = 0,
        .handshake_ms = 5000,
        .stall_ms = 10000,
        .idle_ms = 60000,
        .out_queue_bytes = 4 * 1024 * 1024,
        .ping_interval_ms = 30000,
        .pong_deadline_ms = 10000,
        .shutdown_ms = 10000,
    };
}

int
astro_net_limits_check(const struct astro_net_limits *l, char *err, size_t errlen)
{
    if (l->header_bytes < 256)
        return astro_fail(err, errlen, "ASTRO_HTTP_MAX_HEADER_BYTES: must be at least 256");
    if (l->body_bytes == 0)
        return astro_fail(err, errlen, "ASTRO_HTTP_MAX_BODY_BYTES: must be positive");
    if (l->ws_message_bytes < 125)
        return astro_fail(err, errlen, "ASTRO_WS_MAX_MESSAGE_BYTES: must be at least 125");
    if (l->max_connections == 0)
        return astro_fail(err, errlen, "ASTRO_NET_MAX_CONNECTIONS: must be positive");
    if (l->handshake_ms == 0 || l->stall_ms == 0)
        return astro_fail(err, errlen,
                          "ASTRO_NET_HANDSHAKE_TIMEOUT/ASTRO_NET_STALL_TIMEOUT: must be positive");
    if (l->out_queue_bytes < 4096)
        return astro_fail(err, errlen, "ASTRO_WS_MAX_QUEUE_BYTES: must be at least 4KiB");
    if (l->ping_interval_ms != 0 && l->pong_deadline_ms == 0)
        return astro_fail(err, errlen, "ASTRO_WS_PONG_TIMEOUT: must be positive when pinging");
    return ASTRO_OK;
}

void
astro_net_limits_from_config(const struct astro_net_config *cfg, struct astro_net_limits *l)
{
    l->header_bytes = (size_t)cfg->header_bytes;
    l->body_bytes = (size_t)cfg->body_bytes;
    l->ws_message_bytes = (uint64_t)cfg->ws_message_bytes;
    l->max_connections = (unsigned)cfg->max_connections;
    l->max_conns_per_peer = (unsigned)cfg->max_conns_per_peer;
    l->max_conns_per_key = (unsigned)cfg->max_conns_per_key;
    l->handshake_ms = (unsigned)cfg->handshake_ms;
    l->stall_ms = (unsigned)cfg->stall_ms;
    l->idle_ms = (unsigned)cfg->idle_ms;
    l->out_queue_bytes = (size_t)cfg->out_queue_bytes;
    l->ping_interval_ms = (unsigned)cfg->ping_interval_ms;
    l->pong_deadline_ms = (unsigned)cfg->pong_deadline_ms;
    l->shutdown_ms = (unsigned)cfg->shutdown_ms;
}

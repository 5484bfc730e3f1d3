/* Metrics of the HTTP + WebSocket layer: one series per limit so an operator sees which bound
 * is being hit, plus the connection gauge and handshake/frame counters. */
#include <stdio.h>

#include "net_internal.h"

static const char *const limit_names[NET_LIM_COUNT] = {
    [NET_LIM_HEADER_BYTES] = "header_bytes",
    [NET_LIM_BODY_BYTES] = "body_bytes",
    [NET_LIM_MESSAGE_BYTES] = "ws_message_bytes",
    [NET_LIM_CONNECTIONS] = "max_connections",
    [NET_LIM_PER_PEER] = "max_conns_per_peer",
    [NET_LIM_PER_KEY] = "max_conns_per_key",
    [NET_LIM_HANDSHAKE] = "handshake_deadline",
    [NET_LIM_STALL] = "stall_deadline",
    [NET_LIM_IDLE] = "idle_deadline",
    [NET_LIM_OUT_QUEUE] = "out_queue_bytes",
    [NET_LIM_PONG] = "pong_deadline",
};

const char *
net_limit_name(enum net_limit which)
{
    return limit_names[which];
}

static struct astro_counter *
counter(struct astro_metrics *m, const char *prefix, const char *name, const char *help,
        const char *labels)
{
    char full[128];
    snprintf(full, sizeof(full), "%s_%s", prefix, name);
    return astro_metrics_counter(m, full, help, labels);
}

void
net_stats_init(struct net_stats *st, struct astro_metrics *m, const char *prefix)
{
    *st = (struct net_stats){0};
    if (m == NULL)
        return;
    char name[128];
    snprintf(name, sizeof(name), "%s_connections", prefix);
    st->connections = astro_metrics_gauge(m, name, "Open HTTP and WebSocket connections", NULL);
    st->accepted = counter(m, prefix, "accepted_total", "Accepted TCP connections", NULL);
    st->requests = counter(m, prefix, "http_requests_total", "HTTP requests parsed", NULL);
    st->handshakes = counter(m, prefix, "ws_handshakes_total", "WebSocket upgrades done", NULL);
    st->frames_in = counter(m, prefix, "ws_frames_in_total", "WebSocket frames received", NULL);
    st->frames_out = counter(m, prefix, "ws_messages_out_total", "WebSocket messages queued",
                             NULL);
    st->dropped = counter(m, prefix, "ws_dropped_total",
                          "Messages dropped (drop-oldest connections)", NULL);
    st->protocol_errors = counter(m, prefix, "protocol_errors_total",
                                  "Requests or frames refused as malformed", NULL);
    for (int i = 0; i < NET_LIM_COUNT; i++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "limit=\"%s\"", limit_names[i]);
        st->limit_hits[i] = counter(m, prefix, "limit_hits_total",
                                    "Times a resource limit was hit", labels);
    }
}

void
net_count(struct astro_counter *c, uint64_t n)
{
    if (c != NULL)
        astro_counter_add(c, n);
}

void
net_limit_hit(struct net_stats *st, enum net_limit which)
{
    net_count(st->limit_hits[which], 1);
}

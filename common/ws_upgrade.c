/* The WebSocket opening handshake (RFC 6455 4.2): checks the upgrade request, asks the route's
 * on_upgrade, writes the 101 and hands the connection to ws_conn.c. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "astro/log.h"
#include "net_internal.h"

static void
ignore_message(struct astro_ws_conn *c, enum astro_ws_opcode op, const uint8_t *data, size_t len,
               void *user)
{
    (void)c, (void)op, (void)data, (void)len, (void)user;
}

/* An over-limit connection completes the handshake only to be closed 1013; the service never
 * hears of it. */
static const struct astro_ws_handlers overload_handlers = {.on_message = ignore_message};

/* True if the comma-separated header value contains token (case-insensitive). */
static bool
has_token(const char *value, const char *token)
{
    size_t tl = strlen(token);
    const char *p = value;
    while (p != NULL && *p != '\0') {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t end = n;
        while (end > 0 && (p[end - 1] == ' ' || p[end - 1] == '\t'))
            end--;
        if (end == tl && strncasecmp(p, token, tl) == 0)
            return true;
        p += n;
    }
    return false;
}

/* Refuses the upgrade with status; the connection closes after the answer. */
static void
refuse(struct astro_http_req *req, int status, const char *reason)
{
    req->dispatched = true;
    req->keep_alive = false;
    astro_http_req_respond_error(req, status, reason);
}

static const char *
check_request(const struct astro_http_req *req, const struct net_conn *c, int *status)
{
    const char *upgrade = astro_http_req_header(req, "Upgrade");
    const char *version = astro_http_req_header(req, "Sec-WebSocket-Version");
    *status = 400;
    if (strcmp(req->method, "GET") != 0)
        return "WebSocket upgrade needs GET";
    if (c->parser.http_major != 1 || c->parser.http_minor < 1)
        return "WebSocket upgrade needs HTTP/1.1";
    if (upgrade == NULL || !has_token(upgrade, "websocket"))
        return "Upgrade: websocket required";
    if (version == NULL || strcmp(version, "13") != 0) {
        *status = 426;
        return "Sec-WebSocket-Version 13 required";
    }
    if (!net_ws_validate_key(astro_http_req_header(req, "Sec-WebSocket-Key")))
        return "Sec-WebSocket-Key must be the base64 of 16 bytes";
    return NULL;
}

static int
write_101(struct net_conn *c, const struct astro_http_req *req)
{
    char accept[29];
    if (astro_ws_accept_key(astro_http_req_header(req, "Sec-WebSocket-Key"), accept) != ASTRO_OK)
        return ASTRO_ERR;
    return evbuffer_add_printf(bufferevent_get_output(c->bev),
                               "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                               accept) < 0
               ? ASTRO_ERR
               : ASTRO_OK;
}

/* Runs the route's on_upgrade; false if it refused (and then answered req itself). */
static bool
ask_route(struct net_conn *c, struct astro_http_req *req, const struct net_route *route,
          void **user)
{
    if (route->ws->on_upgrade == NULL)
        return true;
    req->dispatched = true;
    if (route->ws->on_upgrade(req, route->arg, user) == ASTRO_OK)
        return true;
    /* The handler answered (req is gone from the queue) or forgot to: then say so. */
    if (c->head == req && req->resp == NULL)
        refuse(req, 400, "upgrade refused");
    return false;
}

void
net_ws_upgrade(struct net_conn *c, struct astro_http_req *req)
{
    struct astro_http_server *s = c->nl->srv;
    int status;
    char allow[128];
    const struct net_route *route = net_route_match(s->routes, s->nroutes, req, &status, allow,
                                                    sizeof(allow));
    if (route == NULL || route->ws == NULL) {
        refuse(req, route == NULL ? status : 400,
               route == NULL ? "no such WebSocket endpoint" : "not a WebSocket endpoint");
        return;
    }
    const char *why = check_request(req, c, &status);
    if (why != NULL) {
        net_count(s->stats.protocol_errors, 1);
        if (status == 426 && astro_http_req_add_header(req, "Sec-WebSocket-Version", "13") !=
                                 ASTRO_OK)
            astro_log_warn("net: %s: cannot add Sec-WebSocket-Version", c->peer);
        refuse(req, status, why);
        return;
    }
    void *user = NULL;
    if (!c->over_limit && !ask_route(c, req, route, &user))
        return;
    c->head = req->next;
    if (c->head == NULL)
        c->tail = NULL;
    c->npending--;
    const struct astro_ws_handlers *h = c->over_limit ? &overload_handlers : route->ws;
    if (write_101(c, req) != ASTRO_OK || net_ws_attach(c, h, user) != ASTRO_OK) {
        if (user != NULL && h->on_close != NULL)
            h->on_close(NULL, ASTRO_WS_CLOSE_ABNORMAL, user); /* never opened: release user */
        net_req_free(req);
        net_conn_close(c);
        return;
    }
    net_req_free(req);
    net_ws_opened(c);
}

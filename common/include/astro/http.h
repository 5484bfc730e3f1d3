/* HTTP/1.1 server on libevent bufferevents and http-parser, with the WebSocket upgrade.
 *
 * Threading: the server runs N loops (astro/loop.h), each with its own SO_REUSEPORT listener on
 * the same port and its own connections; a connection and every request on it live on one loop
 * for their whole life, and every callback for it runs on that loop's thread.
 *
 * Requests: keep-alive, pipelining (answers go out in request order: a later request waits until
 * the earlier one is answered), chunked bodies, HEAD, limits from astro/net_limits.h. Conflicting
 * or duplicate Content-Length and Content-Length with chunked are answered 400; a body on a method
 * that needs a length without one is answered 411. Routes match the method and a pattern whose
 * segments are literal or "{name}" (one whole segment). No route -> 404; route with another method
 * -> 405 with Allow. */
#ifndef ASTRO_HTTP_H
#define ASTRO_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "astro/common.h"
#include "astro/net_limits.h"

struct astro_http_server;
struct astro_http_req;
struct astro_loop;
struct astro_metrics;
struct astro_ws_handlers;

struct astro_http_server_opts {
    const char *bind_addr;          /* numeric IPv4/IPv6 address; NULL -> "0.0.0.0" (copied) */
    uint16_t port;                  /* 0 = ephemeral; see astro_http_server_port() */
    unsigned threads;               /* loops; 0 = number of online cores */
    struct astro_net_limits limits; /* start from astro_net_limits_defaults() */
    struct astro_metrics *metrics;  /* borrowed, may be NULL; must outlive the server */
    const char *metrics_prefix;     /* metric name prefix; NULL -> "astro_net" (copied) */
};

/* Called on the request's loop thread with the complete request (body included). The handler
 * answers with astro_http_req_respond*() exactly once, now or later (asynchronously, e.g. after a
 * Redis reply, still on the same loop thread; from another thread use astro_loop_post() to
 * astro_http_req_loop(req)). req stays valid until answered, even if the client went away (then
 * the answer is discarded). arg is the route's arg. */
typedef void (*astro_http_handler_fn)(struct astro_http_req *req, void *arg);

/* Returns a new server, not listening yet (free with astro_http_server_free()), or NULL with the
 * reason in err. opts is copied. */
struct astro_http_server *astro_http_server_new(const struct astro_http_server_opts *opts,
                                                char *err, size_t errlen) ASTRO_MUST_CHECK;

/* Adds a route before astro_http_server_start(). method is "GET", "POST", ... ("GET" also
 * serves HEAD); pattern like "/subscribe/{user_id}" (both copied). arg is borrowed. Returns
 * ASTRO_ERR with a reason for a malformed pattern or a duplicate route. */
int astro_http_server_route(struct astro_http_server *s, const char *method, const char *pattern,
                            astro_http_handler_fn fn, void *arg, char *err, size_t errlen)
    ASTRO_MUST_CHECK;

/* Adds a WebSocket route (GET + Upgrade) before start; h and arg are borrowed and must outlive
 * the server. A plain GET on it is answered 426. */
int astro_http_server_route_ws(struct astro_http_server *s, const char *pattern,
                               const struct astro_ws_handlers *h, void *arg, char *err,
                               size_t errlen) ASTRO_MUST_CHECK;

/* Binds, listens and starts the loop threads. Returns ASTRO_OK or ASTRO_ERR with the reason. */
int astro_http_server_start(struct astro_http_server *s, char *err, size_t errlen)
    ASTRO_MUST_CHECK;

/* The bound port (after start). */
uint16_t astro_http_server_port(const struct astro_http_server *s);

unsigned astro_http_server_loop_count(const struct astro_http_server *s);

/* Loop i (0 <= i < count), owned by the server: attach a hiredis async context to its base, or
 * post work to it. */
struct astro_loop *astro_http_server_loop(struct astro_http_server *s, unsigned i);

/* Number of open connections over all loops (HTTP and WebSocket); any thread. */
unsigned astro_http_server_connections(const struct astro_http_server *s);

/* Graceful shutdown, from any thread but a loop thread; blocks. Stops accepting, closes every
 * WebSocket with 1001, lets in-flight requests be answered (Connection: close), then stops the
 * loops when no connection is left or after limits.shutdown_ms (the rest are dropped). Idempotent. */
void astro_http_server_shutdown(struct astro_http_server *s);

/* Shuts down if needed, then frees. NULL is a no-op. */
void astro_http_server_free(struct astro_http_server *s);

/* ---- requests: every accessor returns memory owned by req, valid until it is answered ---- */

const char *astro_http_req_method(const struct astro_http_req *req);
/* The decoded path, without the query string. */
const char *astro_http_req_path(const struct astro_http_req *req);
/* A "{name}" path parameter, percent-decoded, or NULL. */
const char *astro_http_req_param(const struct astro_http_req *req, const char *name);
/* The first query parameter with that name, percent-decoded ('+' is a space), or NULL. */
const char *astro_http_req_query(const struct astro_http_req *req, const char *name);
/* Query parameters in order, for handlers that refuse unknown ones; i < count. */
size_t astro_http_req_query_count(const struct astro_http_req *req);
void astro_http_req_query_at(const struct astro_http_req *req, size_t i, const char **name,
                             const char **value);
/* The first header with that name (case-insensitive), or NULL. */
const char *astro_http_req_header(const struct astro_http_req *req, const char *name);
/* The body (NUL-terminated for convenience; len excludes the NUL), never NULL. */
const char *astro_http_req_body(const struct astro_http_req *req, size_t *len);
/* The peer's numeric address. */
const char *astro_http_req_peer(const struct astro_http_req *req);
struct astro_loop *astro_http_req_loop(const struct astro_http_req *req);
/* True once the client is gone: an answer will be discarded. */
bool astro_http_req_abandoned(const struct astro_http_req *req);

/* Adds a response header (both copied) before the answer; Content-Length and Connection are
 * set by the layer. Returns ASTRO_ERR for CR/LF (or ':' in the name) or allocation failure. */
int astro_http_req_add_header(struct astro_http_req *req, const char *name, const char *value)
    ASTRO_MUST_CHECK;

/* Answers req with status and body (copied; NULL/0 for none); content_type may be NULL.
 * Frees req: do not touch it afterwards. For HEAD the body is counted but not sent. */
void astro_http_req_respond(struct astro_http_req *req, int status, const char *content_type,
                            const void *body, size_t len);

/* Answers with Content-Type: application/json; json is NUL-terminated (copied). */
void astro_http_req_respond_json(struct astro_http_req *req, int status, const char *json);

/* Answers {"error":"<reason>"} with status (reason JSON-escaped). */
void astro_http_req_respond_error(struct astro_http_req *req, int status, const char *reason);

/* The standard reason phrase ("Not Found"), or "Unknown". */
const char *astro_http_status_text(int status);

#endif

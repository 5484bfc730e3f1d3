/* Private structures shared by the files of the HTTP + WebSocket layer (http_*.c, ws_*.c,
 * net_*.c). Not installed; services use astro/http.h, astro/ws.h and astro/loop.h. */
#ifndef ASTRO_NET_INTERNAL_H
#define ASTRO_NET_INTERNAL_H

#include <pthread.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <http_parser.h>
#include <wslay/wslay.h>

#include "astro/http.h"
#include "astro/loop.h"
#include "astro/metrics.h"
#include "astro/net_limits.h"
#include "astro/ws.h"

struct bufferevent;
struct event;
struct evbuffer;
struct evconnlistener;

/* Limit names for the astro_net_limit_hits_total{limit=...} counter. */
enum net_limit {
    NET_LIM_HEADER_BYTES,
    NET_LIM_BODY_BYTES,
    NET_LIM_MESSAGE_BYTES,
    NET_LIM_CONNECTIONS,
    NET_LIM_PER_PEER,
    NET_LIM_PER_KEY,
    NET_LIM_HANDSHAKE,
    NET_LIM_STALL,
    NET_LIM_IDLE,
    NET_LIM_OUT_QUEUE,
    NET_LIM_PONG,
    NET_LIM_COUNT
};

/* Every pointer may be NULL (no registry): use the net_count() helper. */
struct net_stats {
    struct astro_gauge *connections;
    struct astro_counter *accepted;
    struct astro_counter *requests;
    struct astro_counter *handshakes;
    struct astro_counter *frames_in;
    struct astro_counter *frames_out;
    struct astro_counter *dropped;
    struct astro_counter *protocol_errors;
    struct astro_counter *limit_hits[NET_LIM_COUNT];
};

void net_stats_init(struct net_stats *st, struct astro_metrics *m, const char *prefix);
void net_count(struct astro_counter *c, uint64_t n);
void net_limit_hit(struct net_stats *st, enum net_limit which);
const char *net_limit_name(enum net_limit which);

/* A string -> count table shared by all loops (peers and API keys); locked, used only when a
 * connection opens, authenticates or closes, never per message. */
struct net_quota;
struct net_quota *net_quota_new(void);
void net_quota_free(struct net_quota *q);
/* Adds one for key unless it is already at max (0 = no limit). Returns ASTRO_OK if counted. */
int net_quota_take(struct net_quota *q, const char *key, unsigned max) ASTRO_MUST_CHECK;
void net_quota_release(struct net_quota *q, const char *key);

/* ---- routes ---- */
struct net_route {
    char *method;
    char **segs;
    size_t nseg;
    astro_http_handler_fn fn;
    const struct astro_ws_handlers *ws;
    void *arg;
};

struct net_kv {
    char *name;
    char *value;
};

/* Splits a pattern into segments. Returns ASTRO_ERR with a reason for a malformed pattern. */
int net_route_init(struct net_route *r, const char *method, const char *pattern, char *err,
                   size_t errlen) ASTRO_MUST_CHECK;
void net_route_cleanup(struct net_route *r);
/* Finds the route for req's path; fills req->params. Returns the route, or NULL with *status
 * 404 (no pattern matches) or 405 (another method matches; *allow lists them, static). */
const struct net_route *net_route_match(const struct net_route *routes, size_t n,
                                        struct astro_http_req *req, int *status,
                                        char *allow, size_t allowlen);

/* Percent-decodes s[0..len) into a new string ('+' -> ' ' when plus). NULL if malformed. */
char *net_pct_decode(const char *s, size_t len, bool plus);

/* ---- server, loops, connections ---- */
struct net_conn;

struct net_loop {
    struct astro_http_server *srv;
    struct astro_loop *loop;
    struct evconnlistener *listener;
    struct event *resume; /* re-enables the listener after an accept error (EMFILE) */
    struct net_conn *conns; /* doubly linked, this loop's connections */
    bool draining;
};

struct astro_http_server {
    struct astro_http_server_opts opts;
    char *bind_addr;
    char *prefix;
    struct net_route *routes;
    size_t nroutes;
    struct net_loop *loops;
    unsigned nloops;
    uint16_t port;
    atomic_uint nconns;
    atomic_bool shutting_down;
    bool started;
    bool stopped;
    struct net_quota *peers;
    struct net_quota *keys;
    struct net_stats stats;
    pthread_mutex_t lock; /* with cond: shutdown waits for the connection count to drop */
    pthread_cond_t cond;
};

struct net_strbuf {
    char *p;
    size_t len;
    size_t cap;
};

int net_strbuf_add(struct net_strbuf *b, const char *s, size_t n) ASTRO_MUST_CHECK;
void net_strbuf_free(struct net_strbuf *b);

struct astro_http_req {
    struct net_conn *conn; /* NULL once the client is gone */
    struct astro_http_req *next;
    const char *method;
    struct net_strbuf url;
    char *path;
    struct net_kv *headers;
    size_t nheaders;
    struct net_kv *query;
    size_t nquery;
    struct net_kv *params;
    size_t nparams;
    struct net_strbuf body;
    struct net_kv *resp_headers;
    size_t nresp_headers;
    struct evbuffer *resp; /* the answer, once given */
    const struct net_route *route;
    bool keep_alive;
    bool head;
    bool upgrade;
    bool dispatched;
    bool header_value; /* last header callback was a value */
};

void net_req_free(struct astro_http_req *req);
/* Parses the URL into path and query; ASTRO_ERR with a reason for bad encoding. */
int net_req_parse_url(struct astro_http_req *req, char *err, size_t errlen) ASTRO_MUST_CHECK;
/* Builds the status line, headers and body into req->resp; ASTRO_ERR on allocation failure. */
int net_req_build_response(struct astro_http_req *req, int status, const char *content_type,
                           const void *body, size_t len, bool close) ASTRO_MUST_CHECK;

enum net_conn_phase {
    PH_WAIT,    /* keep-alive: no request in progress */
    PH_HEADERS, /* request line and headers arriving (handshake deadline) */
    PH_BODY,    /* body arriving (stall deadline) */
    PH_WS,      /* upgraded */
};

struct net_conn {
    struct net_loop *nl;
    struct net_conn *prev, *next;
    struct bufferevent *bev;
    struct event *timer;
    uint64_t timer_at;
    char peer[48];
    bool peer_counted;
    bool over_limit;    /* answer 503 / close 1013 */
    bool close_after;   /* stop reading; close once the answers are written */
    bool dead;          /* closed; freed when busy drops to 0 */
    bool lingering;     /* answers written, our side shut down: reading until the peer's EOF */
    bool no_linger;     /* the peer said it is done (WebSocket close received): close at once */
    unsigned busy;      /* nesting depth of our callbacks on the stack */
    enum net_conn_phase phase;
    uint64_t phase_at;  /* ms: start of headers / last body byte / start of wait */
    http_parser parser;
    size_t header_bytes;
    struct astro_http_req *cur;              /* being parsed */
    struct astro_http_req *head, *tail;      /* parsed, awaiting their turn to be written */
    unsigned npending;
    struct astro_ws_conn *ws;
};

uint64_t net_now_ms(void);
void net_conn_accept(struct net_loop *nl, int fd, const struct sockaddr *sa, int salen);
void net_conn_enter(struct net_conn *c);
/* Frees c if it was closed while busy. Returns true if c is gone. */
bool net_conn_leave(struct net_conn *c);
/* Closes now (TCP dropped, WebSocket on_close called). Safe inside callbacks. */
void net_conn_close(struct net_conn *c);
/* Closes once everything queued is written. */
void net_conn_close_after_flush(struct net_conn *c);
/* Re-arms the connection timer for its next deadline. */
void net_conn_schedule(struct net_conn *c);
/* Writes the answers at the head of the queue that are ready, in order. */
void net_conn_flush_answers(struct net_conn *c);
/* Answers with an error and closes (layer-level refusals: 400, 408, 413, 431, 503...). */
void net_conn_fail_http(struct net_conn *c, int status, const char *reason);
void net_conn_drain(struct net_conn *c);
/* Parses what the input holds (http_parse.c). */
void net_http_read(struct net_conn *c);
/* Sends the 503 / 1013 answer of an over-limit connection for req. */
void net_http_dispatch(struct net_conn *c, struct astro_http_req *req);
void net_server_conn_gone(struct astro_http_server *s);

/* ---- WebSocket side (ws_conn.c) ---- */
/* Performs the upgrade for req (the head of c's queue). Frees req. */
void net_ws_upgrade(struct net_conn *c, struct astro_http_req *req);
void net_ws_on_read(struct net_conn *c);
int net_ws_attach(struct net_conn *c, const struct astro_ws_handlers *h, void *user) ASTRO_MUST_CHECK;
void net_ws_opened(struct net_conn *c);
void net_ws_on_write(struct net_conn *c);
/* Deadline check; returns the next deadline in ms (0 = none) after acting on expired ones. */
uint64_t net_ws_timer(struct net_conn *c, uint64_t now);
void net_ws_free(struct net_conn *c, uint16_t code);
bool net_ws_validate_key(const char *key);
const uint8_t *net_ws_msg_frame(const struct astro_ws_msg *m, size_t *len);

#endif

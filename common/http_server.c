/* The server: routes, loop threads with one SO_REUSEPORT listener each, connection caps and
 * graceful shutdown. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "astro/log.h"
#include "net_internal.h"

/* Past max_connections a connection is still accepted to be told 503 / 1013; past this many
 * more it is closed at once, so a flood cannot exhaust file descriptors. */
#define OVER_LIMIT_SLACK 1024

struct astro_http_server *
astro_http_server_new(const struct astro_http_server_opts *opts, char *err, size_t errlen)
{
    if (astro_net_limits_check(&opts->limits, err, errlen) != ASTRO_OK)
        return NULL;
    struct astro_http_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto oom;
    s->opts = *opts;
    s->bind_addr = strdup(opts->bind_addr != NULL ? opts->bind_addr : "0.0.0.0");
    s->prefix = strdup(opts->metrics_prefix != NULL ? opts->metrics_prefix : "astro_net");
    s->peers = net_quota_new();
    s->keys = net_quota_new();
    if (s->bind_addr == NULL || s->prefix == NULL || s->peers == NULL || s->keys == NULL)
        goto oom;
    s->opts.bind_addr = s->bind_addr;
    s->opts.metrics_prefix = s->prefix;
    s->nloops = opts->threads;
    if (s->nloops == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        s->nloops = n > 0 ? (unsigned)n : 1;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    net_stats_init(&s->stats, opts->metrics, s->prefix);
    s->loops = calloc(s->nloops, sizeof(*s->loops));
    if (s->loops == NULL)
        goto oom_locked;
    for (unsigned i = 0; i < s->nloops; i++) {
        s->loops[i].srv = s;
        s->loops[i].loop = astro_loop_new(i);
        if (s->loops[i].loop == NULL)
            goto oom_locked;
    }
    return s;
oom_locked:
    astro_http_server_free(s);
    astro_fail(err, errlen, "http server: out of memory");
    return NULL;
oom:
    if (s != NULL) {
        free(s->bind_addr);
        free(s->prefix);
        net_quota_free(s->peers);
        net_quota_free(s->keys);
        free(s);
    }
    astro_fail(err, errlen, "http server: out of memory");
    return NULL;
}

static int
add_route(struct astro_http_server *s, const char *method, const char *pattern,
          astro_http_handler_fn fn, const struct astro_ws_handlers *ws, void *arg, char *err,
          size_t errlen)
{
    if (s->started)
        return astro_fail(err, errlen, "route %s: server already started", pattern);
    struct net_route r;
    if (net_route_init(&r, method, pattern, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct net_route *o = &s->routes[i];
        bool same = o->nseg == r.nseg && strcmp(o->method, r.method) == 0;
        for (size_t k = 0; same && k < r.nseg; k++)
            same = strcmp(o->segs[k], r.segs[k]) == 0;
        if (same) {
            net_route_cleanup(&r);
            return astro_fail(err, errlen, "route %s %s: already defined", method, pattern);
        }
    }
    struct net_route *routes = realloc(s->routes, (s->nroutes + 1) * sizeof(*routes));
    if (routes == NULL) {
        net_route_cleanup(&r);
        return astro_fail(err, errlen, "route %s: out of memory", pattern);
    }
    r.fn = fn;
    r.ws = ws;
    r.arg = arg;
    routes[s->nroutes++] = r;
    s->routes = routes;
    return ASTRO_OK;
}

int
astro_http_server_route(struct astro_http_server *s, const char *method, const char *pattern,
                        astro_http_handler_fn fn, void *arg, char *err, size_t errlen)
{
    return add_route(s, method, pattern, fn, NULL, arg, err, errlen);
}

int
astro_http_server_route_ws(struct astro_http_server *s, const char *pattern,
                           const struct astro_ws_handlers *h, void *arg, char *err,
                           size_t errlen)
{
    if (h == NULL || h->on_message == NULL)
        return astro_fail(err, errlen, "route %s: on_message is required", pattern);
    return add_route(s, "GET", pattern, NULL, h, arg, err, errlen);
}

static void
on_accept(struct evconnlistener *lst, evutil_socket_t fd, struct sockaddr *sa, int salen,
          void *arg)
{
    struct net_loop *nl = arg;
    struct astro_http_server *s = nl->srv;
    (void)lst;
    if (atomic_load(&s->shutting_down) ||
        atomic_load(&s->nconns) >= s->opts.limits.max_connections + OVER_LIMIT_SLACK) {
        net_limit_hit(&s->stats, NET_LIM_CONNECTIONS);
        evutil_closesocket(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    net_conn_accept(nl, fd, sa, salen);
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct net_loop *nl = arg;
    (void)fd;
    (void)what;
    if (nl->listener != NULL)
        evconnlistener_enable(nl->listener);
}

/* EMFILE and friends: the pending connection stays in the backlog and the listener would fire
 * again at once, so it pauses for 100 ms instead of spinning. */
static void
on_accept_error(struct evconnlistener *lst, void *arg)
{
    struct net_loop *nl = arg;
    struct timeval tv = {0, 100000};
    astro_log_warn("net: loop %u: accept failed: %s; pausing accepts for 100 ms",
                   astro_loop_index(nl->loop), strerror(errno));
    if (nl->resume == NULL)
        nl->resume = evtimer_new(astro_loop_base(nl->loop), on_resume, nl);
    if (nl->resume != NULL) {
        evconnlistener_disable(lst);
        evtimer_add(nl->resume, &tv);
    }
}

static int
resolve(const struct astro_http_server *s, uint16_t port, struct sockaddr_storage *ss,
        socklen_t *len, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    int rc = getaddrinfo(s->bind_addr, portstr, &hints, &ai);
    if (rc != 0 || ai == NULL)
        return astro_fail(err, errlen, "bind address %s: %s", s->bind_addr, gai_strerror(rc));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return ASTRO_OK;
}

static int
listen_all(struct astro_http_server *s, char *err, size_t errlen)
{
    uint16_t port = s->opts.port;
    for (unsigned i = 0; i < s->nloops; i++) {
        struct sockaddr_storage ss;
        socklen_t len;
        if (resolve(s, port, &ss, &len, err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
        /* Every loop listens on the same port; the kernel spreads connections among them. */
        s->loops[i].listener = evconnlistener_new_bind(
            astro_loop_base(s->loops[i].loop), on_accept, &s->loops[i],
            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE |
                LEV_OPT_REUSEABLE_PORT,
            4096, (struct sockaddr *)&ss, (int)len);
        if (s->loops[i].listener == NULL)
            return astro_fail(err, errlen, "listen on %s:%u: %s", s->bind_addr,
                              (unsigned)port, strerror(errno));
        evconnlistener_set_error_cb(s->loops[i].listener, on_accept_error);
        if (port == 0) {
            evutil_socket_t fd = evconnlistener_get_fd(s->loops[i].listener);
            if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
                return astro_fail(err, errlen, "getsockname: %s", strerror(errno));
            port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                  : ((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    s->port = port;
    return ASTRO_OK;
}

int
astro_http_server_start(struct astro_http_server *s, char *err, size_t errlen)
{
    if (s->started)
        return astro_fail(err, errlen, "http server: already started");
    if (listen_all(s, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    s->started = true;
    for (unsigned i = 0; i < s->nloops; i++)
        if (astro_loop_start(s->loops[i].loop) != ASTRO_OK)
            return astro_fail(err, errlen, "http server: cannot start loop thread %u", i);
    astro_log_info("net: listening on %s:%u with %u loop(s)", s->bind_addr, (unsigned)s->port,
                   s->nloops);
    return ASTRO_OK;
}

uint16_t
astro_http_server_port(const struct astro_http_server *s)
{
    return s->port;
}

unsigned
astro_http_server_loop_count(const struct astro_http_server *s)
{
    return s->nloops;
}

struct astro_loop *
astro_http_server_loop(struct astro_http_server *s, unsigned i)
{
    return i < s->nloops ? s->loops[i].loop : NULL;
}

unsigned
astro_http_server_connections(const struct astro_http_server *s)
{
    return atomic_load(&s->nconns);
}

void
net_server_conn_gone(struct astro_http_server *s)
{
    atomic_fetch_sub(&s->nconns, 1);
    if (atomic_load(&s->shutting_down)) {
        pthread_mutex_lock(&s->lock);
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
    }
}

static void
stop_listening(struct net_loop *nl)
{
    if (nl->listener != NULL) {
        evconnlistener_free(nl->listener);
        nl->listener = NULL;
    }
    if (nl->resume != NULL) {
        event_free(nl->resume);
        nl->resume = NULL;
    }
}

/* Runs on the loop: no new connections; every open one starts to finish. */
static void
drain_loop(void *arg)
{
    struct net_loop *nl = arg;
    stop_listening(nl);
    nl->draining = true;
    for (struct net_conn *c = nl->conns, *next; c != NULL; c = next) {
        next = c->next;
        net_conn_drain(c);
    }
}

/* Runs on the loop after the deadline: whatever is left is dropped. */
static void
close_loop(void *arg)
{
    struct net_loop *nl = arg;
    stop_listening(nl);
    while (nl->conns != NULL)
        net_conn_close(nl->conns);
}

static void
post_all(struct astro_http_server *s, astro_loop_fn fn)
{
    for (unsigned i = 0; i < s->nloops; i++)
        if (astro_loop_post(s->loops[i].loop, fn, &s->loops[i]) != ASTRO_OK)
            astro_log_error("net: loop %u: cannot post shutdown step", i);
}

void
astro_http_server_shutdown(struct astro_http_server *s)
{
    if (s == NULL || !s->started || s->stopped)
        return;
    atomic_store(&s->shutting_down, true);
    post_all(s, drain_loop);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += s->opts.limits.shutdown_ms / 1000;
    until.tv_nsec += (long)(s->opts.limits.shutdown_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    while (atomic_load(&s->nconns) > 0 &&
           pthread_cond_timedwait(&s->cond, &s->lock, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&s->lock);
    unsigned left = atomic_load(&s->nconns);
    if (left > 0)
        astro_log_warn("net: shutdown deadline passed with %u connection(s) open", left);
    post_all(s, close_loop);
    for (unsigned i = 0; i < s->nloops; i++)
        astro_loop_stop(s->loops[i].loop);
    s->stopped = true;
}

void
astro_http_server_free(struct astro_http_server *s)
{
    if (s == NULL)
        return;
    astro_http_server_shutdown(s);
    for (unsigned i = 0; s->loops != NULL && i < s->nloops; i++) {
        if (s->loops[i].loop == NULL)
            continue;
        close_loop(&s->loops[i]); /* never-started loops: listeners only */
        astro_loop_free(s->loops[i].loop);
    }
    free(s->loops);
    for (size_t i = 0; i < s->nroutes; i++)
        net_route_cleanup(&s->routes[i]);
    free(s->routes);
    net_quota_free(s->peers);
    net_quota_free(s->keys);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s->bind_addr);
    free(s->prefix);
    free(s);
}

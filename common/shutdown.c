/* Graceful shutdown: signals as libevent events, a drain callback and a deadline. */
#include <signal.h>
#include <stdlib.h>

#include <event2/event.h>

#include "astro/log.h"
#include "astro/shutdown.h"

struct astro_shutdown {
    struct event_base *base;
    struct event *sigterm;
    struct event *sigint;
    struct event *deadline;
    int64_t deadline_ms;
    void (*on_stop)(void *arg);
    void *arg;
    enum astro_shutdown_state state;
};

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct astro_shutdown *s = arg;
    s->state = ASTRO_SHUTDOWN_TIMED_OUT;
    astro_log_warn("shutdown: drain deadline of %lld ms passed; stopping now",
                   (long long)s->deadline_ms);
    event_base_loopbreak(s->base);
}

static void
begin_drain(struct astro_shutdown *s, const char *why)
{
    s->state = ASTRO_SHUTDOWN_DRAINING;
    astro_log_info("shutdown: %s; draining (deadline %lld ms, send again to stop now)", why,
                   (long long)s->deadline_ms);
    if (s->deadline_ms > 0) {
        struct timeval tv = {.tv_sec = (time_t)(s->deadline_ms / 1000),
                             .tv_usec = (suseconds_t)(s->deadline_ms % 1000) * 1000};
        if (evtimer_add(s->deadline, &tv) != 0)
            astro_log_error("shutdown: cannot arm the deadline timer");
    }
    if (s->on_stop != NULL)
        s->on_stop(s->arg);
}

void
astro_shutdown_request(struct astro_shutdown *s, const char *why)
{
    if (s->state == ASTRO_SHUTDOWN_RUNNING) {
        begin_drain(s, why);
        return;
    }
    if (s->state != ASTRO_SHUTDOWN_DRAINING)
        return;
    s->state = ASTRO_SHUTDOWN_FORCED;
    astro_log_warn("shutdown: %s again while draining; stopping now", why);
    event_base_loopbreak(s->base);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    astro_shutdown_request(arg, sig == SIGINT ? "SIGINT received" : "SIGTERM received");
}

struct astro_shutdown *
astro_shutdown_new(struct event_base *base, int64_t deadline_ms, void (*on_stop)(void *arg),
                   void *arg)
{
    struct astro_shutdown *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->base = base;
    s->deadline_ms = deadline_ms > 0 ? deadline_ms : 0;
    s->on_stop = on_stop;
    s->arg = arg;
    s->sigterm = evsignal_new(base, SIGTERM, on_signal, s);
    s->sigint = evsignal_new(base, SIGINT, on_signal, s);
    s->deadline = evtimer_new(base, on_deadline, s);
    if (s->sigterm == NULL || s->sigint == NULL || s->deadline == NULL)
        goto fail;
    if (evsignal_add(s->sigterm, NULL) != 0 || evsignal_add(s->sigint, NULL) != 0)
        goto fail;
    signal(SIGPIPE, SIG_IGN);
    return s;
fail:
    astro_shutdown_free(s);
    return NULL;
}

void
astro_shutdown_free(struct astro_shutdown *s)
{
    if (s == NULL)
        return;
    if (s->deadline != NULL)
        event_free(s->deadline);
    if (s->sigint != NULL)
        event_free(s->sigint);
    if (s->sigterm != NULL)
        event_free(s->sigterm);
    free(s);
}

bool
astro_shutdown_requested(const struct astro_shutdown *s)
{
    return s != NULL && s->state != ASTRO_SHUTDOWN_RUNNING;
}

enum astro_shutdown_state
astro_shutdown_state(const struct astro_shutdown *s)
{
    return s != NULL ? s->state : ASTRO_SHUTDOWN_RUNNING;
}

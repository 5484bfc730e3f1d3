/* Graceful shutdown through libevent: SIGTERM/SIGINT are delivered as loop events (evsignal), so
 * the handlers run in the loop thread and may touch any loop state.
 *
 * First signal: log it, call on_stop(arg) once (the service stops intake and starts draining)
 * and arm a deadline timer. Second signal, or the deadline: event_base_loopbreak() (logged with
 * the reason). A service whose drain finishes early simply lets the loop run out of events or
 * calls event_base_loopbreak() itself. SIGPIPE is ignored process-wide, since a peer closing a
 * socket must fail that write, not kill the daemon. libevent delivers signals to one event_base
 * per process at a time: create one astro_shutdown, on the main loop's base. */
#ifndef ASTRO_SHUTDOWN_H
#define ASTRO_SHUTDOWN_H

#include <stdbool.h>
#include <stdint.h>

#include "astro/common.h"

struct event_base;
struct astro_shutdown;

enum astro_shutdown_state {
    ASTRO_SHUTDOWN_RUNNING = 0,  /* no signal yet */
    ASTRO_SHUTDOWN_DRAINING = 1, /* on_stop called, waiting for the drain or the deadline */
    ASTRO_SHUTDOWN_FORCED = 2,   /* second signal: loop broken */
    ASTRO_SHUTDOWN_TIMED_OUT = 3 /* deadline passed: loop broken */
};

/* Returns a new shutdown handler on base (borrowed; must outlive it; free with
 * astro_shutdown_free() before the base), or NULL when the events cannot be created.
 * deadline_ms > 0 is the time allowed between the first signal and the forced loopbreak;
 * 0 means no deadline (only a second signal forces). on_stop may be NULL; arg is passed to it. */
struct astro_shutdown *astro_shutdown_new(struct event_base *base, int64_t deadline_ms,
                                          void (*on_stop)(void *arg), void *arg);

/* Releases the signal and timer events. NULL is a no-op. */
void astro_shutdown_free(struct astro_shutdown *s);

/* True once a first signal arrived (or astro_shutdown_request() was called). */
bool astro_shutdown_requested(const struct astro_shutdown *s);

enum astro_shutdown_state astro_shutdown_state(const struct astro_shutdown *s);

/* Starts the shutdown as a first signal would (for admin commands and tests); a second call
 * forces the loopbreak, as a second signal would. Must run in the loop thread. */
void astro_shutdown_request(struct astro_shutdown *s, const char *why);

#endif

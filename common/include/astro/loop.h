/* Event-loop threads: one libevent event_base per thread, owned by that thread.
 *
 * Everything attached to a loop's base (bufferevents, timers, a hiredis async context through
 * its libevent adapter) is touched only from that loop's thread. Other threads hand work over
 * with astro_loop_post(): a locked FIFO plus an eventfd wakeup; the function then runs on the
 * loop thread, in posting order. */
#ifndef ASTRO_LOOP_H
#define ASTRO_LOOP_H

#include <stdbool.h>

#include "astro/common.h"

struct event_base;
struct astro_loop;

typedef void (*astro_loop_fn)(void *arg);

/* Returns a new loop with its own event_base, not yet running (free with astro_loop_free()),
 * or NULL. index is a label for logs and metrics. */
struct astro_loop *astro_loop_new(unsigned index) ASTRO_MUST_CHECK;

/* Starts the loop's thread. Returns ASTRO_OK or ASTRO_ERR (thread creation failed). */
int astro_loop_start(struct astro_loop *l) ASTRO_MUST_CHECK;

/* Asks the loop to return from event_base_loop (thread-safe) and joins its thread. Posted
 * functions still queued are run before the thread exits. No-op if not started. Must not be
 * called from the loop's own thread. */
void astro_loop_stop(struct astro_loop *l);

/* Stops the loop if needed and frees it; whatever the caller attached to the base must be freed
 * first. NULL is a no-op. */
void astro_loop_free(struct astro_loop *l);

/* The loop's base (owned by the loop). Use it only from the loop's thread once started. */
struct event_base *astro_loop_base(struct astro_loop *l);

unsigned astro_loop_index(const struct astro_loop *l);

/* True when called from this loop's thread. */
bool astro_loop_is_current(const struct astro_loop *l);

/* Runs fn(arg) on the loop's thread soon (thread-safe, FIFO). arg is owned by fn. Returns
 * ASTRO_ERR only on allocation failure, in which case fn is not called. */
int astro_loop_post(struct astro_loop *l, astro_loop_fn fn, void *arg) ASTRO_MUST_CHECK;

#endif

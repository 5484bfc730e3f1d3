/* Event-loop threads with a cross-thread work queue (see astro/loop.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "astro/log.h"
#include "astro/loop.h"

struct loop_job {
    astro_loop_fn fn;
    void *arg;
    struct loop_job *next;
};

struct astro_loop {
    struct event_base *base;
    struct event *wake_ev;
    int wake_fd;
    unsigned index;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    pthread_mutex_t lock; /* guards the job list only */
    struct loop_job *jobs_head, *jobs_tail;
};

static _Thread_local const struct astro_loop *current_loop;

/* Takes the whole queue under the lock and runs it outside, so a job may post again. */
static void
run_jobs(struct astro_loop *l)
{
    pthread_mutex_lock(&l->lock);
    struct loop_job *j = l->jobs_head;
    l->jobs_head = l->jobs_tail = NULL;
    pthread_mutex_unlock(&l->lock);
    while (j != NULL) {
        struct loop_job *next = j->next;
        j->fn(j->arg);
        free(j);
        j = next;
    }
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct astro_loop *l = arg;
    uint64_t n;
    (void)what;
    while (read(fd, &n, sizeof(n)) > 0)
        ;
    run_jobs(l);
    if (atomic_load(&l->stop))
        event_base_loopbreak(l->base);
}

struct astro_loop *
astro_loop_new(unsigned index)
{
    struct astro_loop *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->index = index;
    l->wake_fd = -1;
    pthread_mutex_init(&l->lock, NULL);
    l->base = event_base_new();
    if (l->base == NULL)
        goto fail;
    l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->wake_fd < 0)
        goto fail;
    l->wake_ev = event_new(l->base, l->wake_fd, EV_READ | EV_PERSIST, on_wake, l);
    if (l->wake_ev == NULL || event_add(l->wake_ev, NULL) != 0)
        goto fail;
    return l;
fail:
    astro_loop_free(l);
    return NULL;
}

static void *
loop_main(void *arg)
{
    struct astro_loop *l = arg;
    current_loop = l;
    while (!atomic_load(&l->stop))
        event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
    run_jobs(l);
    current_loop = NULL;
    return NULL;
}

int
astro_loop_start(struct astro_loop *l)
{
    if (l->running)
        return ASTRO_OK;
    atomic_store(&l->stop, false);
    int rc = pthread_create(&l->thread, NULL, loop_main, l);
    if (rc != 0) {
        astro_log_error("loop %u: cannot start thread: %d", l->index, rc);
        return ASTRO_ERR;
    }
    l->running = true;
    return ASTRO_OK;
}

static void
wake(struct astro_loop *l)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: the loop is already going to wake up. */
    if (write(l->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        astro_log_error("loop %u: wakeup failed: errno %d", l->index, errno);
}

void
astro_loop_stop(struct astro_loop *l)
{
    if (l == NULL || !l->running)
        return;
    atomic_store(&l->stop, true);
    wake(l);
    pthread_join(l->thread, NULL);
    l->running = false;
}

void
astro_loop_free(struct astro_loop *l)
{
    if (l == NULL)
        return;
    astro_loop_stop(l);
    run_jobs(l);
    if (l->wake_ev != NULL)
        event_free(l->wake_ev);
    if (l->wake_fd >= 0)
        close(l->wake_fd);
    if (l->base != NULL)
        event_base_free(l->base);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

struct event_base *
astro_loop_base(struct astro_loop *l)
{
    return l->base;
}

unsigned
astro_loop_index(const struct astro_loop *l)
{
    return l->index;
}

bool
astro_loop_is_current(const struct astro_loop *l)
{
    return current_loop == l;
}

int
astro_loop_post(struct astro_loop *l, astro_loop_fn fn, void *arg)
{
    struct loop_job *j = malloc(sizeof(*j));
    if (j == NULL)
        return ASTRO_ERR;
    j->fn = fn;
    j->arg = arg;
    j->next = NULL;
    pthread_mutex_lock(&l->lock);
    bool was_empty = l->jobs_head == NULL;
    if (l->jobs_tail != NULL)
        l->jobs_tail->next = j;
    else
        l->jobs_head = j;
    l->jobs_tail = j;
    pthread_mutex_unlock(&l->lock);
    /* One wakeup per batch: a non-empty queue has a wakeup pending already. */
    if (was_empty)
        wake(l);
    return ASTRO_OK;
}

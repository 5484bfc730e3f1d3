/* Test harness: start a child program from a (possibly multi-threaded) test process.
 *
 * After fork() in a threaded process (civetweb client threads, sanitizer runtimes) the child
 * may only make async-signal-safe calls until it execs: setenv(), snprintf() or malloc() there
 * can deadlock on a lock another thread held at fork time. harness_spawn() therefore builds the
 * whole environment and opens the log before fork(); the child only dup2()s, sets
 * PR_SET_PDEATHSIG (SIGKILL, like the harness's servers, so it dies with the test process) and
 * execve()s. */
#ifndef HARNESS_SPAWN_H
#define HARNESS_SPAWN_H

#include <sys/types.h>

/* Starts path with argv (NULL-terminated, argv[0] included) and the environment of this
 * process minus the names in unset, with the "NAME=value" entries of set added or replacing
 * (a later entry for a name wins). set and unset are NULL-terminated and may be NULL; all
 * strings are borrowed. log_path non-NULL: the child's stdout and stderr are appended to it
 * (created 0644); NULL: they are inherited. stdin is inherited. Returns the child's pid (reap
 * it with waitpid) or -1 after printing why to stderr. A failed exec exits the child with 127. */
pid_t harness_spawn(const char *path, const char *const argv[], const char *const set[],
                    const char *const unset[], const char *log_path);

/* As harness_spawn(), but out_fd (>= 0) becomes the child's stdout and stderr (-1: inherited).
 * out_fd stays open in the caller; open other descriptors with O_CLOEXEC so that the child
 * does not inherit them. */
pid_t harness_spawn_fd(const char *path, const char *const argv[], const char *const set[],
                       const char *const unset[], int out_fd);

#endif

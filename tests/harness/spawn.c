/* Child programs started without unsafe calls between fork() and exec (see spawn.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "spawn.h"

extern char **environ;

static size_t
count(const char *const v[])
{
    size_t n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    return n;
}

/* Whether two "NAME=value" entries (or bare NAMEs) have the same NAME. */
static bool
same_name(const char *entry, const char *name)
{
    size_t a = strcspn(entry, "="), b = strcspn(name, "=");
    return a == b && memcmp(entry, name, a) == 0;
}

static bool
listed(const char *entry, const char *const v[], size_t from)
{
    for (size_t i = from; v != NULL && v[i] != NULL; i++)
        if (same_name(entry, v[i]))
            return true;
    return false;
}

/* Returns a new NULL-terminated envp (free the array only; the strings are borrowed from
 * environ and set) or NULL. */
static char **
build_envp(const char *const set[], const char *const unset[])
{
    size_t n = 0;
    char **envp = calloc(count((const char *const *)environ) + count(set) + 1, sizeof(*envp));
    if (envp == NULL)
        return NULL;
    for (size_t i = 0; environ != NULL && environ[i] != NULL; i++)
        if (!listed(environ[i], unset, 0) && !listed(environ[i], set, 0))
            envp[n++] = environ[i];
    for (size_t i = 0; set != NULL && set[i] != NULL; i++)
        if (!listed(set[i], set, i + 1))
            envp[n++] = (char *)set[i];
    envp[n] = NULL;
    return envp;
}

/* Makes fd the descriptor target in the child (clearing close-on-exec). Async-signal-safe. */
static int
become(int fd, int target)
{
    if (fd == target)
        return fcntl(fd, F_SETFD, 0);
    return dup2(fd, target) < 0 ? -1 : 0;
}

/* Child side: async-signal-safe calls only. Never returns. */
static void
exec_child(pid_t parent, const char *path, char *const argv[], char *const envp[], int out_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* the test process died before prctl */
        _exit(126);
    if (out_fd >= 0 && (become(out_fd, 1) != 0 || become(out_fd, 2) != 0))
        _exit(126);
    execve(path, argv, envp);
    _exit(127);
}

pid_t
harness_spawn_fd(const char *path, const char *const argv[], const char *const set[],
                 const char *const unset[], int out_fd)
{
    char **envp = build_envp(set, unset);
    if (envp == NULL) {
        fprintf(stderr, "harness: spawn %s: out of memory\n", path);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        exec_child(parent, path, (char *const *)argv, envp, out_fd);
    if (pid < 0)
        fprintf(stderr, "harness: fork for %s: %s\n", path, strerror(errno));
    free(envp);
    return pid;
}

pid_t
harness_spawn(const char *path, const char *const argv[], const char *const set[],
              const char *const unset[], const char *log_path)
{
    int fd = -1;
    if (log_path != NULL) {
        fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            fprintf(stderr, "harness: open %s: %s\n", log_path, strerror(errno));
            return -1;
        }
    }
    pid_t pid = harness_spawn_fd(path, argv, set, unset, fd);
    if (fd >= 0)
        close(fd);
    return pid;
}

/* A batch of Redis commands built while a partition's batch is matched and sent later inside
 * one MULTI/EXEC. Arguments are copied into the buffer, so callbacks may hand in borrowed
 * strings (a match's multi event lives only during on_match). */
#ifndef CEP_CMDBUF_H
#define CEP_CMDBUF_H

#include <stddef.h>

#include "astro/common.h"

struct cep_cmdbuf {
    char *arena;
    size_t used, cap;
    size_t *off, *len; /* per argument: offset into arena, length */
    size_t nargs, capargs;
    size_t *cmd_start, *cmd_argc;
    size_t ncmds, capcmds;
    const char **argv; /* scratch for cep_cmdbuf_argv() */
    size_t capargv;
    char *resp; /* scratch for cep_cmdbuf_resp() */
    size_t capresp;
};

void cep_cmdbuf_init(struct cep_cmdbuf *b);
void cep_cmdbuf_cleanup(struct cep_cmdbuf *b);
/* Forgets every command, keeping the memory. */
void cep_cmdbuf_reset(struct cep_cmdbuf *b);

/* Starts a command; then add its arguments with cep_cmdbuf_arg(). */
int cep_cmdbuf_begin(struct cep_cmdbuf *b) ASTRO_MUST_CHECK;
/* Appends a copy of s[0..len) to the current command. */
int cep_cmdbuf_arg(struct cep_cmdbuf *b, const char *s, size_t len) ASTRO_MUST_CHECK;
int cep_cmdbuf_args(struct cep_cmdbuf *b, int argc, const char *const *argv,
                    const size_t *argvlen) ASTRO_MUST_CHECK;

/* The i-th command's argv (valid until the next change of b) and lengths. */
int cep_cmdbuf_argv(struct cep_cmdbuf *b, size_t i, const char ***argv, size_t **argvlen)
    ASTRO_MUST_CHECK;

/* The i-th command in the Redis protocol, ready for redisAppendFormattedCommand() (*out valid
 * until the next change of b): formatting it here costs a memcpy per argument, where hiredis'
 * own formatting runs a printf-like format per argument. */
int cep_cmdbuf_resp(struct cep_cmdbuf *b, size_t i, const char **out, size_t *len)
    ASTRO_MUST_CHECK;

#endif

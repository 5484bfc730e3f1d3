/* Command batches: one arena of bytes and index arrays, reused batch after batch so the hot
 * path does no per-argument allocation once warmed up. */
#include <stdlib.h>
#include <string.h>

#include "cmdbuf.h"

void
cep_cmdbuf_init(struct cep_cmdbuf *b)
{
    memset(b, 0, sizeof(*b));
}

void
cep_cmdbuf_cleanup(struct cep_cmdbuf *b)
{
    free(b->arena);
    free(b->off);
    free(b->len);
    free(b->cmd_start);
    free(b->cmd_argc);
    free(b->argv);
    free(b->resp);
    memset(b, 0, sizeof(*b));
}

void
cep_cmdbuf_reset(struct cep_cmdbuf *b)
{
    b->used = b->nargs = b->ncmds = 0;
}

static int
grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return ASTRO_OK;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (q == NULL)
        return ASTRO_ERR;
    *p = q;
    *cap = n;
    return ASTRO_OK;
}

int
cep_cmdbuf_begin(struct cep_cmdbuf *b)
{
    size_t cap = b->capcmds;
    if (grow((void **)&b->cmd_start, &cap, b->ncmds + 1, sizeof(size_t)) != ASTRO_OK)
        return ASTRO_ERR;
    cap = b->capcmds;
    if (grow((void **)&b->cmd_argc, &cap, b->ncmds + 1, sizeof(size_t)) != ASTRO_OK)
        return ASTRO_ERR;
    b->capcmds = cap;
    b->cmd_start[b->ncmds] = b->nargs;
    b->cmd_argc[b->ncmds] = 0;
    b->ncmds++;
    return ASTRO_OK;
}

int
cep_cmdbuf_arg(struct cep_cmdbuf *b, const char *s, size_t len)
{
    size_t cap = b->capargs;
    if (grow((void **)&b->off, &cap, b->nargs + 1, sizeof(size_t)) != ASTRO_OK)
        return ASTRO_ERR;
    cap = b->capargs;
    if (grow((void **)&b->len, &cap, b->nargs + 1, sizeof(size_t)) != ASTRO_OK)
        return ASTRO_ERR;
    b->capargs = cap;
    if (grow((void **)&b->arena, &b->cap, b->used + len + 1, 1) != ASTRO_OK)
        return ASTRO_ERR;
    memcpy(b->arena + b->used, s, len);
    b->arena[b->used + len] = '\0';
    b->off[b->nargs] = b->used;
    b->len[b->nargs] = len;
    b->used += len + 1;
    b->nargs++;
    b->cmd_argc[b->ncmds - 1]++;
    return ASTRO_OK;
}

int
cep_cmdbuf_args(struct cep_cmdbuf *b, int argc, const char *const *argv, const size_t *argvlen)
{
    for (int i = 0; i < argc; i++)
        if (cep_cmdbuf_arg(b, argv[i], argvlen ? argvlen[i] : strlen(argv[i])) != ASTRO_OK)
            return ASTRO_ERR;
    return ASTRO_OK;
}

int
cep_cmdbuf_argv(struct cep_cmdbuf *b, size_t i, const char ***argv, size_t **argvlen)
{
    size_t n = b->cmd_argc[i], first = b->cmd_start[i];
    if (grow((void **)&b->argv, &b->capargv, n, sizeof(*b->argv)) != ASTRO_OK)
        return ASTRO_ERR;
    for (size_t k = 0; k < n; k++)
        b->argv[k] = b->arena + b->off[first + k];
    *argv = b->argv;
    *argvlen = b->len + first;
    return ASTRO_OK;
}

/* Writes prefix, the decimal n and CRLF at o; returns the end. */
static char *
put_count(char *o, char prefix, size_t n)
{
    char tmp[24];
    size_t k = 0;
    do {
        tmp[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    *o++ = prefix;
    while (k > 0)
        *o++ = tmp[--k];
    *o++ = '\r';
    *o++ = '\n';
    return o;
}

int
cep_cmdbuf_resp(struct cep_cmdbuf *b, size_t i, const char **out, size_t *len)
{
    size_t n = b->cmd_argc[i], first = b->cmd_start[i];
    size_t need = 24; /* "*<argc>\r\n" */
    for (size_t k = 0; k < n; k++)
        need += 24 + b->len[first + k] + 2; /* "$<len>\r\n" <bytes> "\r\n" */
    if (grow((void **)&b->resp, &b->capresp, need, 1) != ASTRO_OK)
        return ASTRO_ERR;
    char *o = put_count(b->resp, '*', n);
    for (size_t k = 0; k < n; k++) {
        size_t l = b->len[first + k];
        o = put_count(o, '$', l);
        memcpy(o, b->arena + b->off[first + k], l);
        o += l;
        *o++ = '\r';
        *o++ = '\n';
    }
    *out = b->resp;
    *len = (size_t)(o - b->resp);
    return ASTRO_OK;
}

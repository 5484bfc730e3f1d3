/* The rules file's line lexer (rules_lex.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_lex.h"

int
cep_lex_fail(struct cep_lex *lx, int col, const char *fmt, ...)
{
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return astro_fail(lx->err, lx->errlen, "%d:%d: %s", lx->lineno, col, msg);
}

static bool
is_word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == ':' || c == '-' ||
           c == '*';
}

struct cep_tok
cep_lex_next(struct cep_lex *lx)
{
    while (lx->pos < lx->len && (lx->line[lx->pos] == ' ' || lx->line[lx->pos] == '\t'))
        lx->pos++;
    struct cep_tok t = {lx->line + lx->pos, 0, (int)lx->pos + 1};
    if (lx->pos >= lx->len || lx->line[lx->pos] == '#')
        return t;
    char c = lx->line[lx->pos];
    if (is_word_char(c)) {
        while (lx->pos + t.len < lx->len && is_word_char(lx->line[lx->pos + t.len]))
            t.len++;
    } else if ((c == '<' || c == '>' || c == '=' || c == '!') && lx->pos + 1 < lx->len &&
               lx->line[lx->pos + 1] == '=') {
        t.len = 2;
    } else {
        t.len = 1;
    }
    lx->pos += t.len;
    return t;
}

struct cep_tok
cep_lex_peek(struct cep_lex *lx)
{
    size_t save = lx->pos;
    struct cep_tok t = cep_lex_next(lx);
    lx->pos = save;
    return t;
}

bool
cep_tok_is(struct cep_tok t, const char *s)
{
    return t.len == strlen(s) && memcmp(t.s, s, t.len) == 0;
}

int
cep_lex_name(struct cep_lex *lx, struct cep_tok t, const char *what,
             char out[ASTRO_EVENT_NAME_MAX + 1])
{
    char cerr[128];
    if (t.len == 0)
        return cep_lex_fail(lx, t.col, "expected %s", what);
    if (astro_event_check_name(what, t.s, t.len, ASTRO_EVENT_NAME_MAX, cerr, sizeof(cerr)) !=
        ASTRO_OK)
        return cep_lex_fail(lx, t.col, "%s", cerr);
    memcpy(out, t.s, t.len);
    out[t.len] = '\0';
    return ASTRO_OK;
}

int
cep_lex_number(struct cep_lex *lx, struct cep_tok t, double *out)
{
    char buf[64];
    char *end;
    if (t.len == 0 || t.len >= sizeof(buf))
        return cep_lex_fail(lx, t.col, "expected a number");
    memcpy(buf, t.s, t.len);
    buf[t.len] = '\0';
    errno = 0;
    *out = strtod(buf, &end);
    if (*end != '\0' || errno != 0 || !isfinite(*out))
        return cep_lex_fail(lx, t.col, "expected a number, got \"%s\"", buf);
    return ASTRO_OK;
}

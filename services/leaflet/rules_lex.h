/* The line lexer of the rules file, shared by its two parsers (rules.c: rules; rules_agg.c:
 * candles, indicators, outliers): tokens with 1-based columns, and errors "LINE:COL: reason" so
 * an operator can fix a file without guessing. */
#ifndef CEP_RULES_LEX_H
#define CEP_RULES_LEX_H

#include <stdbool.h>
#include <stddef.h>

#include "astro/common.h"
#include "astro/event.h"

struct cep_tok {
    const char *s;
    size_t len;
    int col; /* 1-based; for the end of the line, one past the last character */
};

/* One line being parsed (not NUL-terminated; borrowed) and where errors go. */
struct cep_lex {
    const char *line;
    size_t len;
    size_t pos;
    int lineno;
    char *err;
    size_t errlen;
};

/* Writes "LINE:COL: <message>" into lx->err; returns ASTRO_ERR. */
int cep_lex_fail(struct cep_lex *lx, int col, const char *fmt, ...) ASTRO_PRINTF(3, 4);

/* The next token: a word of [A-Za-z0-9_.:*-], one of , < > <= >= == !=, any other single
 * character, or an empty token at the end of the line ('#' starts a comment to the end). */
struct cep_tok cep_lex_next(struct cep_lex *lx);
/* The next token without consuming it. */
struct cep_tok cep_lex_peek(struct cep_lex *lx);
bool cep_tok_is(struct cep_tok t, const char *s);

/* Copies a name token (event type, source, rule, field) into out after checking its characters
 * (astro_event_check_name); what names it in the error ("expected <what>"). */
int cep_lex_name(struct cep_lex *lx, struct cep_tok t, const char *what,
                 char out[ASTRO_EVENT_NAME_MAX + 1]) ASTRO_MUST_CHECK;
/* A finite number; "expected a number, got \"...\"" otherwise. */
int cep_lex_number(struct cep_lex *lx, struct cep_tok t, double *out) ASTRO_MUST_CHECK;

#endif

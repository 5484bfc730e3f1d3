/* The rule language of astro-leaflet (docs/rules.md): a line-oriented file of rules, parsed into
 * plain structs the matcher reads. Parsing is all-or-nothing: a file with one bad line yields no
 * rules and an error "line:column: reason", so a SIGHUP reload keeps the old rules running. */
#ifndef CEP_RULES_H
#define CEP_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "astro/common.h"
#include "astro/event.h"
#include "aggcfg.h"

#define CEP_MAX_PARTS 8
#define CEP_MAX_PREDS 4
#define CEP_MAX_EXPR 32
#define CEP_MAX_RULES 256

enum cep_op {
    CEP_OP_ALL,     /* every part present within the window, any order */
    CEP_OP_SEQ,     /* parts in event-time order within the window */
    CEP_OP_COUNT,   /* at least count events matching parts[0] within the window */
    CEP_OP_ABSENCE, /* parts[0] and no parts[1] within the window after it */
};

enum cep_agg { CEP_AGG_AVG, CEP_AGG_SUM, CEP_AGG_MIN, CEP_AGG_MAX, CEP_AGG_FIRST, CEP_AGG_LAST };

enum cep_cmp { CEP_LT, CEP_LE, CEP_GT, CEP_GE, CEP_EQ, CEP_NE };

struct cep_pred {
    enum cep_cmp cmp;
    double rhs; /* value <cmp> rhs */
};

/* One pattern element: type ("" = any), source ("" = any) and predicates on the value. */
struct cep_part {
    char type[ASTRO_EVENT_NAME_MAX + 1];
    char src[ASTRO_EVENT_NAME_MAX + 1];
    struct cep_pred preds[CEP_MAX_PREDS];
    size_t npreds;
};

/* The confidence formula, compiled to postfix. Operands: constants, matched, required. */
enum cep_expr_kind { CEP_X_NUM, CEP_X_MATCHED, CEP_X_REQUIRED, CEP_X_ADD, CEP_X_SUB,
                     CEP_X_MUL, CEP_X_DIV };
struct cep_expr {
    struct { enum cep_expr_kind kind; double num; } code[CEP_MAX_EXPR];
    size_t n;
};

struct cep_rule {
    char name[ASTRO_EVENT_NAME_MAX + 1]; /* correlation_rule of the outputs */
    char emit[ASTRO_EVENT_NAME_MAX + 1]; /* event_type of the outputs (default: name) */
    enum cep_op op;
    struct cep_part parts[CEP_MAX_PARTS];
    size_t nparts;
    size_t count;      /* CEP_OP_COUNT: events needed */
    size_t min_parts;  /* CEP_OP_ALL: a partial match of >= min_parts fires at window end */
    int64_t within_us; /* window length; a match spans at most this (inclusive) */
    bool global;       /* one state for all keys of the partition instead of per key */
    bool reuse;        /* events may take part in several matches of this rule */
    enum cep_agg agg;
    struct cep_expr conf;
    int line;
};

struct cep_ruleset {
    struct cep_rule *rules; /* owned */
    size_t n;
    int64_t max_within_us;
    struct cep_agg_cfg agg; /* candles and indicators (rules_agg.c) */
};

/* Parses rules text text[0..len). On success fills *out (free with cep_ruleset_free()); on
 * failure *out is empty and err holds "LINE:COL: reason" for the first error. */
int cep_rules_parse(const char *text, size_t len, struct cep_ruleset *out, char *err,
                    size_t errlen) ASTRO_MUST_CHECK;

/* Reads and parses the file at path; err names the file ("path:LINE:COL: reason"). */
int cep_rules_load(const char *path, struct cep_ruleset *out, char *err,
                   size_t errlen) ASTRO_MUST_CHECK;

void cep_ruleset_free(struct cep_ruleset *rs);

/* True when ev satisfies the part's type, source and value predicates. */
bool cep_part_match(const struct cep_part *part, const char *type, const char *src, double val);

/* Evaluates the confidence formula and clamps it to [0, 1] (NaN and division by zero give 0). */
double cep_expr_eval(const struct cep_expr *x, double matched, double required);

/* Parses a confidence formula from s (NUL-terminated): numbers, matched, required, + - * / and
 * parentheses. On error err holds "column: reason" relative to s (1-based). */
int cep_expr_parse(const char *s, struct cep_expr *out, char *err, size_t errlen) ASTRO_MUST_CHECK;

#endif

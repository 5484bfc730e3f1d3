/* The confidence formula: a tiny arithmetic language (numbers, matched, required, + - * /,
 * parentheses) compiled by recursive descent into postfix so evaluation per match is a loop
 * over at most CEP_MAX_EXPR steps with no allocation. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

struct xparser {
    const char *s;
    const char *p;
    struct cep_expr *out;
    char *err;
    size_t errlen;
};

static int parse_sum(struct xparser *xp);

static int
xfail(struct xparser *xp, const char *what)
{
    return astro_fail(xp->err, xp->errlen, "%d: %s", (int)(xp->p - xp->s) + 1, what);
}

static void
skip_ws(struct xparser *xp)
{
    while (*xp->p == ' ' || *xp->p == '\t')
        xp->p++;
}

static int
emit(struct xparser *xp, enum cep_expr_kind kind, double num)
{
    if (xp->out->n == CEP_MAX_EXPR)
        return xfail(xp, "confidence formula too long");
    xp->out->code[xp->out->n].kind = kind;
    xp->out->code[xp->out->n].num = num;
    xp->out->n++;
    return ASTRO_OK;
}

static int
parse_word(struct xparser *xp)
{
    const char *start = xp->p;
    while (isalpha((unsigned char)*xp->p) || *xp->p == '_')
        xp->p++;
    size_t len = (size_t)(xp->p - start);
    if (len == 7 && memcmp(start, "matched", 7) == 0)
        return emit(xp, CEP_X_MATCHED, 0);
    if (len == 8 && memcmp(start, "required", 8) == 0)
        return emit(xp, CEP_X_REQUIRED, 0);
    xp->p = start;
    return xfail(xp, "expected a number, matched, required or '('");
}

static int
parse_atom(struct xparser *xp)
{
    skip_ws(xp);
    if (*xp->p == '(') {
        xp->p++;
        if (parse_sum(xp) != ASTRO_OK)
            return ASTRO_ERR;
        skip_ws(xp);
        if (*xp->p != ')')
            return xfail(xp, "expected ')'");
        xp->p++;
        return ASTRO_OK;
    }
    if (isdigit((unsigned char)*xp->p) || *xp->p == '.') {
        char *end;
        double d = strtod(xp->p, &end);
        if (end == xp->p || !isfinite(d))
            return xfail(xp, "bad number");
        xp->p = end;
        return emit(xp, CEP_X_NUM, d);
    }
    return parse_word(xp);
}

static int
parse_product(struct xparser *xp)
{
    if (parse_atom(xp) != ASTRO_OK)
        return ASTRO_ERR;
    for (;;) {
        skip_ws(xp);
        char c = *xp->p;
        if (c != '*' && c != '/')
            return ASTRO_OK;
        xp->p++;
        if (parse_atom(xp) != ASTRO_OK)
            return ASTRO_ERR;
        if (emit(xp, c == '*' ? CEP_X_MUL : CEP_X_DIV, 0) != ASTRO_OK)
            return ASTRO_ERR;
    }
}

static int
parse_sum(struct xparser *xp)
{
    if (parse_product(xp) != ASTRO_OK)
        return ASTRO_ERR;
    for (;;) {
        skip_ws(xp);
        char c = *xp->p;
        if (c != '+' && c != '-')
            return ASTRO_OK;
        xp->p++;
        if (parse_product(xp) != ASTRO_OK)
            return ASTRO_ERR;
        if (emit(xp, c == '+' ? CEP_X_ADD : CEP_X_SUB, 0) != ASTRO_OK)
            return ASTRO_ERR;
    }
}

int
cep_expr_parse(const char *s, struct cep_expr *out, char *err, size_t errlen)
{
    struct xparser xp = {s, s, out, err, errlen};
    out->n = 0;
    if (parse_sum(&xp) != ASTRO_OK)
        return ASTRO_ERR;
    skip_ws(&xp);
    if (*xp.p != '\0' && *xp.p != '#')
        return xfail(&xp, "unexpected character in confidence formula");
    return ASTRO_OK;
}

double
cep_expr_eval(const struct cep_expr *x, double matched, double required)
{
    double st[CEP_MAX_EXPR];
    size_t sp = 0;
    for (size_t i = 0; i < x->n; i++) {
        switch (x->code[i].kind) {
        case CEP_X_NUM: st[sp++] = x->code[i].num; continue;
        case CEP_X_MATCHED: st[sp++] = matched; continue;
        case CEP_X_REQUIRED: st[sp++] = required; continue;
        default: break;
        }
        double b = st[--sp], a = st[sp - 1];
        switch (x->code[i].kind) {
        case CEP_X_ADD: a += b; break;
        case CEP_X_SUB: a -= b; break;
        case CEP_X_MUL: a *= b; break;
        default: a = b == 0 ? 0 : a / b; break;
        }
        st[sp - 1] = a;
    }
    double v = sp == 1 ? st[0] : 0;
    if (!(v > 0))
        return 0;
    return v > 1 ? 1 : v;
}

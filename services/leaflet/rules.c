/* Parser of the rule language (docs/rules.md). One directive per line; a rule starts with
 * `rule NAME` and ends at the next `rule` or the end of the file. Errors carry the line and the
 * column of the offending token so an operator can fix a file without guessing. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "astro/config.h"
#include "rules.h"
#include "rules_lex.h"

struct rparser {
    struct cep_lex lx;    /* the current line */
    struct cep_ruleset *rs;
    struct cep_rule *cur; /* rule being filled, NULL before the first `rule` */
    bool has_op, has_within;
};

static int
take_count(struct rparser *p, struct cep_tok t, size_t lo, size_t hi, size_t *out)
{
    double d = 0;
    if (cep_lex_number(&p->lx, t, &d) != ASTRO_OK)
        return ASTRO_ERR;
    if (d != floor(d) || d < (double)lo || d > (double)hi)
        return cep_lex_fail(&p->lx, t.col, "expected a whole number in range");
    *out = (size_t)d;
    return ASTRO_OK;
}

static int
parse_cmp(struct rparser *p, struct cep_tok t, enum cep_cmp *out)
{
    static const char *const names[] = {"<", "<=", ">", ">=", "==", "!="};
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(names); i++) {
        if (cep_tok_is(t, names[i])) {
            *out = (enum cep_cmp)i;
            return ASTRO_OK;
        }
    }
    return cep_lex_fail(&p->lx, t.col, "expected a comparison (< <= > >= == !=)");
}

/* where value OP NUM [and value OP NUM ...] */
static int
parse_preds(struct rparser *p, struct cep_part *part)
{
    do {
        struct cep_tok t = cep_lex_next(&p->lx);
        if (!cep_tok_is(t, "value"))
            return cep_lex_fail(&p->lx, t.col, "expected 'value' in a condition");
        if (part->npreds == CEP_MAX_PREDS)
            return cep_lex_fail(&p->lx, t.col, "too many conditions (at most 4)");
        struct cep_pred *pr = &part->preds[part->npreds++];
        if (parse_cmp(p, cep_lex_next(&p->lx), &pr->cmp) != ASTRO_OK)
            return ASTRO_ERR;
        if (cep_lex_number(&p->lx, cep_lex_next(&p->lx), &pr->rhs) != ASTRO_OK)
            return ASTRO_ERR;
    } while (cep_tok_is(cep_lex_peek(&p->lx), "and") && cep_lex_next(&p->lx).len);
    return ASTRO_OK;
}

/* TYPE|* [from SOURCE] [where CONDITIONS] */
static int
parse_part(struct rparser *p, struct cep_part *part)
{
    memset(part, 0, sizeof(*part));
    struct cep_tok t = cep_lex_next(&p->lx);
    if (t.len == 0)
        return cep_lex_fail(&p->lx, t.col, "expected an event type or '*'");
    if (!cep_tok_is(t, "*") && cep_lex_name(&p->lx, t, "event type", part->type) != ASTRO_OK)
        return ASTRO_ERR;
    if (cep_tok_is(cep_lex_peek(&p->lx), "from")) {
        cep_lex_next(&p->lx);
        if (cep_lex_name(&p->lx, cep_lex_next(&p->lx), "source", part->src) != ASTRO_OK)
            return ASTRO_ERR;
    }
    if (cep_tok_is(cep_lex_peek(&p->lx), "where")) {
        cep_lex_next(&p->lx);
        return parse_preds(p, part);
    }
    return ASTRO_OK;
}

static int
pfail_tok(struct rparser *p, struct cep_tok t, const char *what)
{
    return astro_fail(p->lx.err, p->lx.errlen, "%d:%d: %s \"%.*s\"", p->lx.lineno, t.col, what,
                      (int)(t.len > 40 ? 40 : t.len), t.s);
}

static int
expect_end(struct rparser *p)
{
    struct cep_tok t = cep_lex_next(&p->lx);
    if (t.len != 0)
        return pfail_tok(p, t, "unexpected");
    return ASTRO_OK;
}

static int
parse_part_list(struct rparser *p, struct cep_rule *r)
{
    for (;;) {
        struct cep_tok at = cep_lex_peek(&p->lx);
        if (r->nparts == CEP_MAX_PARTS)
            return cep_lex_fail(&p->lx, at.col, "too many parts (at most 8)");
        if (parse_part(p, &r->parts[r->nparts++]) != ASTRO_OK)
            return ASTRO_ERR;
        if (!cep_tok_is(cep_lex_peek(&p->lx), ","))
            break;
        cep_lex_next(&p->lx);
    }
    return expect_end(p);
}

static int
set_op(struct rparser *p, struct cep_tok t, enum cep_op op)
{
    if (p->has_op)
        return cep_lex_fail(&p->lx, t.col, "rule already has a pattern (all, seq, count or absence)%s",
                        "");
    p->has_op = true;
    p->cur->op = op;
    return ASTRO_OK;
}

static int
parse_pattern(struct rparser *p, struct cep_tok d)
{
    struct cep_rule *r = p->cur;
    if (cep_tok_is(d, "all") || cep_tok_is(d, "seq")) {
        if (set_op(p, d, cep_tok_is(d, "all") ? CEP_OP_ALL : CEP_OP_SEQ) != ASTRO_OK)
            return ASTRO_ERR;
        return parse_part_list(p, r);
    }
    if (cep_tok_is(d, "count")) {
        if (set_op(p, d, CEP_OP_COUNT) != ASTRO_OK ||
            take_count(p, cep_lex_next(&p->lx), 1, 1000, &r->count) != ASTRO_OK)
            return ASTRO_ERR;
        r->nparts = 1;
        if (parse_part(p, &r->parts[0]) != ASTRO_OK)
            return ASTRO_ERR;
        return expect_end(p);
    }
    if (set_op(p, d, CEP_OP_ABSENCE) != ASTRO_OK || parse_part(p, &r->parts[0]) != ASTRO_OK)
        return ASTRO_ERR;
    struct cep_tok t = cep_lex_next(&p->lx);
    if (!cep_tok_is(t, "without"))
        return cep_lex_fail(&p->lx, t.col, "expected 'without' (absence A without B)");
    r->nparts = 2;
    if (parse_part(p, &r->parts[1]) != ASTRO_OK)
        return ASTRO_ERR;
    return expect_end(p);
}

static int
parse_within(struct rparser *p)
{
    struct cep_tok t = cep_lex_next(&p->lx);
    char buf[32];
    char derr[128];
    int64_t ms;
    if (t.len == 0 || t.len >= sizeof(buf))
        return cep_lex_fail(&p->lx, t.col, "expected a duration (e.g. 2s, 500ms)");
    memcpy(buf, t.s, t.len);
    buf[t.len] = '\0';
    if (astro_cfg_parse_duration(buf, &ms, derr, sizeof(derr)) != ASTRO_OK || ms <= 0 ||
        ms > INT64_C(86400000))
        return cep_lex_fail(&p->lx, t.col, "expected a duration between 1ms and 24h (e.g. 2s)");
    p->cur->within_us = ms * 1000;
    p->has_within = true;
    return expect_end(p);
}

static int
parse_agg(struct rparser *p)
{
    static const char *const names[] = {"avg", "sum", "min", "max", "first", "last"};
    struct cep_tok t = cep_lex_next(&p->lx);
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(names); i++) {
        if (cep_tok_is(t, names[i])) {
            p->cur->agg = (enum cep_agg)i;
            return expect_end(p);
        }
    }
    return cep_lex_fail(&p->lx, t.col, "expected avg, sum, min, max, first or last");
}

static int
parse_confidence(struct rparser *p)
{
    char buf[256];
    char xerr[128];
    while (p->lx.pos < p->lx.len && (p->lx.line[p->lx.pos] == ' ' || p->lx.line[p->lx.pos] == '\t'))
        p->lx.pos++;
    size_t n = p->lx.len - p->lx.pos;
    if (n >= sizeof(buf))
        return cep_lex_fail(&p->lx, (int)p->lx.pos + 1, "confidence formula too long");
    memcpy(buf, p->lx.line + p->lx.pos, n);
    buf[n] = '\0';
    if (cep_expr_parse(buf, &p->cur->conf, xerr, sizeof(xerr)) == ASTRO_OK)
        return ASTRO_OK;
    char *colon = strchr(xerr, ':');
    int col = atoi(xerr) + (int)p->lx.pos;
    return cep_lex_fail(&p->lx, col, "%s", colon ? colon + 2 : xerr);
}

static int
parse_scope(struct rparser *p, struct cep_tok d)
{
    if (cep_tok_is(d, "global")) {
        p->cur->global = true;
        return expect_end(p);
    }
    struct cep_tok t = cep_lex_next(&p->lx);
    if (!cep_tok_is(t, "key"))
        return cep_lex_fail(&p->lx, t.col, "expected 'per key'");
    p->cur->global = false;
    return expect_end(p);
}

static int
parse_directive(struct rparser *p, struct cep_tok d)
{
    struct cep_rule *r = p->cur;
    if (cep_tok_is(d, "all") || cep_tok_is(d, "seq") || cep_tok_is(d, "count") || cep_tok_is(d, "absence"))
        return parse_pattern(p, d);
    if (cep_tok_is(d, "within"))
        return parse_within(p);
    if (cep_tok_is(d, "per") || cep_tok_is(d, "global"))
        return parse_scope(p, d);
    if (cep_tok_is(d, "reuse") || cep_tok_is(d, "consume")) {
        r->reuse = cep_tok_is(d, "reuse");
        return expect_end(p);
    }
    if (cep_tok_is(d, "min"))
        return take_count(p, cep_lex_next(&p->lx), 1, CEP_MAX_PARTS, &r->min_parts) != ASTRO_OK
                   ? ASTRO_ERR
                   : expect_end(p);
    if (cep_tok_is(d, "value"))
        return parse_agg(p);
    if (cep_tok_is(d, "confidence"))
        return parse_confidence(p);
    if (cep_tok_is(d, "emit"))
        return cep_lex_name(&p->lx, cep_lex_next(&p->lx), "emit", r->emit) != ASTRO_OK ? ASTRO_ERR
                                                                      : expect_end(p);
    return pfail_tok(p, d, "unknown directive (rule, all, seq, count, absence, within, per, "
                           "global, reuse, consume, min, value, confidence, emit):");
}

/* Checks what a rule needs once all its lines are read; col 1 of its `rule` line. */
static int
finish_rule(struct rparser *p)
{
    struct cep_rule *r = p->cur;
    if (r == NULL)
        return ASTRO_OK;
    int save = p->lx.lineno;
    p->lx.lineno = r->line;
    int rc = ASTRO_ERR;
    if (!p->has_op)
        cep_lex_fail(&p->lx, 1, "rule \"%s\" has no pattern (all, seq, count or absence)", r->name);
    else if (!p->has_within)
        cep_lex_fail(&p->lx, 1, "rule \"%s\" has no window (within DURATION)", r->name);
    else if (r->min_parts > 0 && (r->op != CEP_OP_ALL || r->min_parts > r->nparts))
        cep_lex_fail(&p->lx, 1, "rule \"%s\": min needs an all pattern with at least that many parts",
                 r->name);
    else
        rc = ASTRO_OK;
    p->lx.lineno = save;
    if (r->within_us > p->rs->max_within_us)
        p->rs->max_within_us = r->within_us;
    return rc;
}

static int
start_rule(struct rparser *p, struct cep_tok d)
{
    if (finish_rule(p) != ASTRO_OK)
        return ASTRO_ERR;
    if (p->rs->n == CEP_MAX_RULES)
        return cep_lex_fail(&p->lx, d.col, "too many rules (at most 256)");
    struct cep_rule *r = &p->rs->rules[p->rs->n];
    memset(r, 0, sizeof(*r));
    struct cep_tok t = cep_lex_next(&p->lx);
    if (cep_lex_name(&p->lx, t, "rule name", r->name) != ASTRO_OK)
        return ASTRO_ERR;
    for (size_t i = 0; i < p->rs->n; i++)
        if (strcmp(p->rs->rules[i].name, r->name) == 0)
            return cep_lex_fail(&p->lx, t.col, "duplicate rule name \"%s\"", r->name);
    p->rs->n++;
    memcpy(r->emit, r->name, sizeof(r->emit));
    r->line = p->lx.lineno;
    r->agg = CEP_AGG_AVG;
    r->conf.n = 3; /* matched/required */
    r->conf.code[0].kind = CEP_X_MATCHED;
    r->conf.code[1].kind = CEP_X_REQUIRED;
    r->conf.code[2].kind = CEP_X_DIV;
    p->cur = r;
    p->has_op = p->has_within = false;
    return expect_end(p);
}

static int
parse_line(struct rparser *p)
{
    p->lx.pos = 0;
    struct cep_tok d = cep_lex_next(&p->lx);
    if (d.len == 0)
        return ASTRO_OK;
    if (cep_tok_is(d, "rule"))
        return start_rule(p, d);
    if (cep_agg_is_statement(d.s, d.len))
        return cep_agg_parse_line(&p->rs->agg, &p->lx);
    if (p->cur == NULL)
        return cep_lex_fail(&p->lx, d.col, "expected 'rule NAME' before directives");
    return parse_directive(p, d);
}

int
cep_rules_parse(const char *text, size_t len, struct cep_ruleset *out, char *err, size_t errlen)
{
    struct rparser p = {.lx = {.err = err, .errlen = errlen}, .rs = out};
    memset(out, 0, sizeof(*out));
    cep_agg_cfg_init(&out->agg);
    out->rules = calloc(CEP_MAX_RULES, sizeof(*out->rules));
    if (out->rules == NULL)
        return astro_fail(err, errlen, "out of memory");
    size_t off = 0;
    while (off < len) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t end = nl ? (size_t)(nl - text) : len;
        p.lx.line = text + off;
        p.lx.len = end - off;
        if (p.lx.len > 0 && p.lx.line[p.lx.len - 1] == '\r')
            p.lx.len--;
        p.lx.lineno++;
        if (memchr(p.lx.line, '\0', p.lx.len) != NULL ||
            parse_line(&p) != ASTRO_OK)
            goto fail;
        off = end + 1;
    }
    if (finish_rule(&p) != ASTRO_OK)
        goto fail;
    if (out->n == 0 && !cep_agg_cfg_active(&out->agg)) {
        astro_fail(err, errlen, "%d:1: no rules", p.lx.lineno > 0 ? p.lx.lineno : 1);
        goto fail;
    }
    return ASTRO_OK;
fail:
    if (p.lx.line != NULL && memchr(p.lx.line, '\0', p.lx.len) != NULL)
        astro_fail(err, errlen, "%d:1: NUL byte in rules file", p.lx.lineno);
    cep_ruleset_free(out);
    return ASTRO_ERR;
}

int
cep_rules_load(const char *path, struct cep_ruleset *out, char *err, size_t errlen)
{
    char perr[256];
    FILE *f = fopen(path, "rb");
    memset(out, 0, sizeof(*out));
    if (f == NULL)
        return astro_fail(err, errlen, "%s: %s", path, strerror(errno));
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
    bool too_big = buf && n == (1 << 20);
    fclose(f);
    if (buf == NULL || too_big) {
        free(buf);
        return astro_fail(err, errlen, "%s: %s", path, buf ? "larger than 1 MiB" : "no memory");
    }
    int rc = cep_rules_parse(buf, n, out, perr, sizeof(perr));
    free(buf);
    if (rc != ASTRO_OK)
        return astro_fail(err, errlen, "%s:%s", path, perr);
    return ASTRO_OK;
}

void
cep_ruleset_free(struct cep_ruleset *rs)
{
    free(rs->rules);
    memset(rs, 0, sizeof(*rs));
}

bool
cep_part_match(const struct cep_part *part, const char *type, const char *src, double val)
{
    if (part->type[0] != '\0' && strcmp(part->type, type) != 0)
        return false;
    if (part->src[0] != '\0' && strcmp(part->src, src) != 0)
        return false;
    for (size_t i = 0; i < part->npreds; i++) {
        double r = part->preds[i].rhs;
        bool ok;
        switch (part->preds[i].cmp) {
        case CEP_LT: ok = val < r; break;
        case CEP_LE: ok = val <= r; break;
        case CEP_GT: ok = val > r; break;
        case CEP_GE: ok = val >= r; break;
        case CEP_EQ: ok = val == r; break;
        default: ok = val != r; break;
        }
        if (!ok)
            return false;
    }
    return true;
}

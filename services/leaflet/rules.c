/* Parser of the rule language (docs/rules.md). One directive per line; a rule starts with
 * `rule NAME` and ends at the next `rule` or the end of the file. Errors carry the line and the
 * column of the offending token so an operator can fix a file without guessing. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "astro/config.h"
#include "rules.h"

struct tok {
    const char *s;
    size_t len;
    int col; /* 1-based; for the end of the line, one past the last character */
};

struct rparser {
    const char *line;   /* current line (not NUL-terminated) */
    size_t linelen;
    size_t pos;
    int lineno;
    struct cep_ruleset *rs;
    struct cep_rule *cur; /* rule being filled, NULL before the first `rule` */
    bool has_op, has_within;
    char *err;
    size_t errlen;
};

static int pfail_at(struct rparser *p, int col, const char *fmt, ...) ASTRO_PRINTF(3, 4);

static int
pfail_at(struct rparser *p, int col, const char *fmt, ...)
{
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return astro_fail(p->err, p->errlen, "%d:%d: %s", p->lineno, col, msg);
}

static bool
is_word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == ':' || c == '-' ||
           c == '*';
}

/* The next token: a word, one of , < > <= >= == !=, or an empty token at the end of the line
 * (a '#' starts a comment that runs to the end of the line). */
static struct tok
next_tok(struct rparser *p)
{
    while (p->pos < p->linelen && (p->line[p->pos] == ' ' || p->line[p->pos] == '\t'))
        p->pos++;
    struct tok t = {p->line + p->pos, 0, (int)p->pos + 1};
    if (p->pos >= p->linelen || p->line[p->pos] == '#')
        return t;
    char c = p->line[p->pos];
    if (is_word_char(c)) {
        while (p->pos + t.len < p->linelen && is_word_char(p->line[p->pos + t.len]))
            t.len++;
    } else if ((c == '<' || c == '>' || c == '=' || c == '!') && p->pos + 1 < p->linelen &&
               p->line[p->pos + 1] == '=') {
        t.len = 2;
    } else {
        t.len = 1;
    }
    p->pos += t.len;
    return t;
}

static struct tok
peek_tok(struct rparser *p)
{
    size_t save = p->pos;
    struct tok t = next_tok(p);
    p->pos = save;
    return t;
}

static bool
tok_is(struct tok t, const char *s)
{
    return t.len == strlen(s) && memcmp(t.s, s, t.len) == 0;
}

/* Copies a name token (type, source, rule) into out after checking its characters. */
static int
take_name(struct rparser *p, struct tok t, const char *what, char out[ASTRO_EVENT_NAME_MAX + 1])
{
    char cerr[128];
    if (t.len == 0)
        return pfail_at(p, t.col, "expected %s", what);
    if (astro_event_check_name(what, t.s, t.len, ASTRO_EVENT_NAME_MAX, cerr, sizeof(cerr)) !=
        ASTRO_OK)
        return pfail_at(p, t.col, "%s", cerr);
    memcpy(out, t.s, t.len);
    out[t.len] = '\0';
    return ASTRO_OK;
}

static int
take_number(struct rparser *p, struct tok t, double *out)
{
    char buf[64];
    char *end;
    if (t.len == 0 || t.len >= sizeof(buf))
        return pfail_at(p, t.col, "expected a number");
    memcpy(buf, t.s, t.len);
    buf[t.len] = '\0';
    errno = 0;
    *out = strtod(buf, &end);
    if (*end != '\0' || errno != 0 || !isfinite(*out))
        return pfail_at(p, t.col, "expected a number, got \"%s\"", buf);
    return ASTRO_OK;
}

static int
take_count(struct rparser *p, struct tok t, size_t lo, size_t hi, size_t *out)
{
    double d = 0;
    if (take_number(p, t, &d) != ASTRO_OK)
        return ASTRO_ERR;
    if (d != floor(d) || d < (double)lo || d > (double)hi)
        return pfail_at(p, t.col, "expected a whole number in range");
    *out = (size_t)d;
    return ASTRO_OK;
}

static int
parse_cmp(struct rparser *p, struct tok t, enum cep_cmp *out)
{
    static const char *const names[] = {"<", "<=", ">", ">=", "==", "!="};
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(names); i++) {
        if (tok_is(t, names[i])) {
            *out = (enum cep_cmp)i;
            return ASTRO_OK;
        }
    }
    return pfail_at(p, t.col, "expected a comparison (< <= > >= == !=)");
}

/* where value OP NUM [and value OP NUM ...] */
static int
parse_preds(struct rparser *p, struct cep_part *part)
{
    do {
        struct tok t = next_tok(p);
        if (!tok_is(t, "value"))
            return pfail_at(p, t.col, "expected 'value' in a condition");
        if (part->npreds == CEP_MAX_PREDS)
            return pfail_at(p, t.col, "too many conditions (at most 4)");
        struct cep_pred *pr = &part->preds[part->npreds++];
        if (parse_cmp(p, next_tok(p), &pr->cmp) != ASTRO_OK)
            return ASTRO_ERR;
        if (take_number(p, next_tok(p), &pr->rhs) != ASTRO_OK)
            return ASTRO_ERR;
    } while (tok_is(peek_tok(p), "and") && next_tok(p).len);
    return ASTRO_OK;
}

/* TYPE|* [from SOURCE] [where CONDITIONS] */
static int
parse_part(struct rparser *p, struct cep_part *part)
{
    memset(part, 0, sizeof(*part));
    struct tok t = next_tok(p);
    if (t.len == 0)
        return pfail_at(p, t.col, "expected an event type or '*'");
    if (!tok_is(t, "*") && take_name(p, t, "event type", part->type) != ASTRO_OK)
        return ASTRO_ERR;
    if (tok_is(peek_tok(p), "from")) {
        next_tok(p);
        if (take_name(p, next_tok(p), "source", part->src) != ASTRO_OK)
            return ASTRO_ERR;
    }
    if (tok_is(peek_tok(p), "where")) {
        next_tok(p);
        return parse_preds(p, part);
    }
    return ASTRO_OK;
}

static int
pfail_tok(struct rparser *p, struct tok t, const char *what)
{
    return astro_fail(p->err, p->errlen, "%d:%d: %s \"%.*s\"", p->lineno, t.col, what,
                      (int)(t.len > 40 ? 40 : t.len), t.s);
}

static int
expect_end(struct rparser *p)
{
    struct tok t = next_tok(p);
    if (t.len != 0)
        return pfail_tok(p, t, "unexpected");
    return ASTRO_OK;
}

static int
parse_part_list(struct rparser *p, struct cep_rule *r)
{
    for (;;) {
        struct tok at = peek_tok(p);
        if (r->nparts == CEP_MAX_PARTS)
            return pfail_at(p, at.col, "too many parts (at most 8)");
        if (parse_part(p, &r->parts[r->nparts++]) != ASTRO_OK)
            return ASTRO_ERR;
        if (!tok_is(peek_tok(p), ","))
            break;
        next_tok(p);
    }
    return expect_end(p);
}

static int
set_op(struct rparser *p, struct tok t, enum cep_op op)
{
    if (p->has_op)
        return pfail_at(p, t.col, "rule already has a pattern (all, seq, count or absence)%s",
                        "");
    p->has_op = true;
    p->cur->op = op;
    return ASTRO_OK;
}

static int
parse_pattern(struct rparser *p, struct tok d)
{
    struct cep_rule *r = p->cur;
    if (tok_is(d, "all") || tok_is(d, "seq")) {
        if (set_op(p, d, tok_is(d, "all") ? CEP_OP_ALL : CEP_OP_SEQ) != ASTRO_OK)
            return ASTRO_ERR;
        return parse_part_list(p, r);
    }
    if (tok_is(d, "count")) {
        if (set_op(p, d, CEP_OP_COUNT) != ASTRO_OK ||
            take_count(p, next_tok(p), 1, 1000, &r->count) != ASTRO_OK)
            return ASTRO_ERR;
        r->nparts = 1;
        if (parse_part(p, &r->parts[0]) != ASTRO_OK)
            return ASTRO_ERR;
        return expect_end(p);
    }
    if (set_op(p, d, CEP_OP_ABSENCE) != ASTRO_OK || parse_part(p, &r->parts[0]) != ASTRO_OK)
        return ASTRO_ERR;
    struct tok t = next_tok(p);
    if (!tok_is(t, "without"))
        return pfail_at(p, t.col, "expected 'without' (absence A without B)");
    r->nparts = 2;
    if (parse_part(p, &r->parts[1]) != ASTRO_OK)
        return ASTRO_ERR;
    return expect_end(p);
}

static int
parse_within(struct rparser *p)
{
    struct tok t = next_tok(p);
    char buf[32];
    char derr[128];
    int64_t ms;
    if (t.len == 0 || t.len >= sizeof(buf))
        return pfail_at(p, t.col, "expected a duration (e.g. 2s, 500ms)");
    memcpy(buf, t.s, t.len);
    buf[t.len] = '\0';
    if (astro_cfg_parse_duration(buf, &ms, derr, sizeof(derr)) != ASTRO_OK || ms <= 0 ||
        ms > INT64_C(86400000))
        return pfail_at(p, t.col, "expected a duration between 1ms and 24h (e.g. 2s)");
    p->cur->within_us = ms * 1000;
    p->has_within = true;
    return expect_end(p);
}

static int
parse_agg(struct rparser *p)
{
    static const char *const names[] = {"avg", "sum", "min", "max", "first", "last"};
    struct tok t = next_tok(p);
    for (size_t i = 0; i < ASTRO_ARRAY_LEN(names); i++) {
        if (tok_is(t, names[i])) {
            p->cur->agg = (enum cep_agg)i;
            return expect_end(p);
        }
    }
    return pfail_at(p, t.col, "expected avg, sum, min, max, first or last");
}

static int
parse_confidence(struct rparser *p)
{
    char buf[256];
    char xerr[128];
    while (p->pos < p->linelen && (p->line[p->pos] == ' ' || p->line[p->pos] == '\t'))
        p->pos++;
    size_t n = p->linelen - p->pos;
    if (n >= sizeof(buf))
        return pfail_at(p, (int)p->pos + 1, "confidence formula too long");
    memcpy(buf, p->line + p->pos, n);
    buf[n] = '\0';
    if (cep_expr_parse(buf, &p->cur->conf, xerr, sizeof(xerr)) == ASTRO_OK)
        return ASTRO_OK;
    char *colon = strchr(xerr, ':');
    int col = atoi(xerr) + (int)p->pos;
    return pfail_at(p, col, "%s", colon ? colon + 2 : xerr);
}

static int
parse_scope(struct rparser *p, struct tok d)
{
    if (tok_is(d, "global")) {
        p->cur->global = true;
        return expect_end(p);
    }
    struct tok t = next_tok(p);
    if (!tok_is(t, "key"))
        return pfail_at(p, t.col, "expected 'per key'");
    p->cur->global = false;
    return expect_end(p);
}

static int
parse_directive(struct rparser *p, struct tok d)
{
    struct cep_rule *r = p->cur;
    if (tok_is(d, "all") || tok_is(d, "seq") || tok_is(d, "count") || tok_is(d, "absence"))
        return parse_pattern(p, d);
    if (tok_is(d, "within"))
        return parse_within(p);
    if (tok_is(d, "per") || tok_is(d, "global"))
        return parse_scope(p, d);
    if (tok_is(d, "reuse") || tok_is(d, "consume")) {
        r->reuse = tok_is(d, "reuse");
        return expect_end(p);
    }
    if (tok_is(d, "min"))
        return take_count(p, next_tok(p), 1, CEP_MAX_PARTS, &r->min_parts) != ASTRO_OK
                   ? ASTRO_ERR
                   : expect_end(p);
    if (tok_is(d, "value"))
        return parse_agg(p);
    if (tok_is(d, "confidence"))
        return parse_confidence(p);
    if (tok_is(d, "emit"))
        return take_name(p, next_tok(p), "emit", r->emit) != ASTRO_OK ? ASTRO_ERR
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
    int save = p->lineno;
    p->lineno = r->line;
    int rc = ASTRO_ERR;
    if (!p->has_op)
        pfail_at(p, 1, "rule \"%s\" has no pattern (all, seq, count or absence)", r->name);
    else if (!p->has_within)
        pfail_at(p, 1, "rule \"%s\" has no window (within DURATION)", r->name);
    else if (r->min_parts > 0 && (r->op != CEP_OP_ALL || r->min_parts > r->nparts))
        pfail_at(p, 1, "rule \"%s\": min needs an all pattern with at least that many parts",
                 r->name);
    else
        rc = ASTRO_OK;
    p->lineno = save;
    if (r->within_us > p->rs->max_within_us)
        p->rs->max_within_us = r->within_us;
    return rc;
}

static int
start_rule(struct rparser *p, struct tok d)
{
    if (finish_rule(p) != ASTRO_OK)
        return ASTRO_ERR;
    if (p->rs->n == CEP_MAX_RULES)
        return pfail_at(p, d.col, "too many rules (at most 256)");
    struct cep_rule *r = &p->rs->rules[p->rs->n];
    memset(r, 0, sizeof(*r));
    struct tok t = next_tok(p);
    if (take_name(p, t, "rule name", r->name) != ASTRO_OK)
        return ASTRO_ERR;
    for (size_t i = 0; i < p->rs->n; i++)
        if (strcmp(p->rs->rules[i].name, r->name) == 0)
            return pfail_at(p, t.col, "duplicate rule name \"%s\"", r->name);
    p->rs->n++;
    memcpy(r->emit, r->name, sizeof(r->emit));
    r->line = p->lineno;
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
    p->pos = 0;
    struct tok d = next_tok(p);
    if (d.len == 0)
        return ASTRO_OK;
    if (tok_is(d, "rule"))
        return start_rule(p, d);
    if (cep_agg_is_statement(d.s, d.len))
        return cep_agg_parse_line(&p->rs->agg, p->line, p->linelen, p->lineno, p->err,
                                  p->errlen);
    if (p->cur == NULL)
        return pfail_at(p, d.col, "expected 'rule NAME' before directives");
    return parse_directive(p, d);
}

int
cep_rules_parse(const char *text, size_t len, struct cep_ruleset *out, char *err, size_t errlen)
{
    struct rparser p = {.rs = out, .err = err, .errlen = errlen};
    memset(out, 0, sizeof(*out));
    cep_agg_cfg_init(&out->agg);
    out->rules = calloc(CEP_MAX_RULES, sizeof(*out->rules));
    if (out->rules == NULL)
        return astro_fail(err, errlen, "out of memory");
    size_t off = 0;
    while (off < len) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t end = nl ? (size_t)(nl - text) : len;
        p.line = text + off;
        p.linelen = end - off;
        if (p.linelen > 0 && p.line[p.linelen - 1] == '\r')
            p.linelen--;
        p.lineno++;
        if (memchr(p.line, '\0', p.linelen) != NULL ||
            parse_line(&p) != ASTRO_OK)
            goto fail;
        off = end + 1;
    }
    if (finish_rule(&p) != ASTRO_OK)
        goto fail;
    if (out->n == 0 && !cep_agg_cfg_active(&out->agg)) {
        astro_fail(err, errlen, "%d:1: no rules", p.lineno > 0 ? p.lineno : 1);
        goto fail;
    }
    return ASTRO_OK;
fail:
    if (p.line != NULL && memchr(p.line, '\0', p.linelen) != NULL)
        astro_fail(err, errlen, "%d:1: NUL byte in rules file", p.lineno);
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

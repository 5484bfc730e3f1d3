/* Subscriber filters from the upgrade's query string. Every parameter is checked before the
 * 101 so a bad one is a 400 naming it; names a route does not take, and repeats, are refused
 * (a typo must not silently widen a subscription). */
#include <stdlib.h>
#include <string.h>

#include "astro/agg.h"
#include "astro/event.h"
#include "broadcast.h"

enum { P_STREAM, P_SRC, P_KEY, P_TYPE, P_RULE, P_SINCE, P_APIKEY, P_SLOW, P_TF, P_COUNT };

static const char *const names[P_COUNT] = {"stream",     "source_stream",    "key",
                                           "event_type", "correlation_rule", "since",
                                           "api_key",    "slow",             "timeframe"};

/* Which parameters each route takes (bit per P_*). */
static unsigned
allowed(enum bc_route r)
{
    switch (r) {
    case BC_ROUTE_STREAM:
        return (1u << P_COUNT) - 1;
    case BC_ROUTE_USER:
        return 1u << P_SINCE | 1u << P_APIKEY | 1u << P_SLOW;
    case BC_ROUTE_STATS:
    default:
        return 1u << P_APIKEY;
    }
}

static int
param_index(const char *name)
{
    if (strcmp(name, "source") == 0) /* the prototype's alias */
        return P_SRC;
    for (int i = 0; i < P_COUNT; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

static int
set_name(char **dst, const char *field, const char *v, char *err, size_t errlen)
{
    if (astro_event_check_name(field, v, strlen(v), ASTRO_EVENT_NAME_MAX, err, errlen) !=
        ASTRO_OK)
        return ASTRO_ERR;
    return (*dst = strdup(v)) != NULL ? ASTRO_OK : astro_fail(err, errlen, "out of memory");
}

static int
apply(struct bc_filter *f, int i, const char *v, uint32_t parts, char *err, size_t errlen)
{
    switch (i) {
    case P_STREAM:
        f->mono = strcmp(v, "mono") == 0 || strcmp(v, "all") == 0;
        f->multi = strcmp(v, "multi") == 0 || strcmp(v, "all") == 0;
        f->candles = strcmp(v, "candles") == 0;
        return f->mono || f->multi || f->candles
                   ? ASTRO_OK
                   : astro_fail(err, errlen, "stream: must be mono, multi, all or candles");
    case P_TF: {
        int64_t span;
        if (astro_tf_parse(v, strlen(v), &span, err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
        return (f->tf = strdup(v)) != NULL ? ASTRO_OK : astro_fail(err, errlen, "out of memory");
    }
    case P_SRC:
        return set_name(&f->src, "source_stream", v, err, errlen);
    case P_TYPE:
        return set_name(&f->type, "event_type", v, err, errlen);
    case P_RULE:
        return set_name(&f->rule, "correlation_rule", v, err, errlen);
    case P_KEY:
        if (astro_event_check_key(v, strlen(v), 256, err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
        return (f->key = strdup(v)) != NULL ? ASTRO_OK : astro_fail(err, errlen, "out of memory");
    case P_SINCE:
        f->has_since = true;
        return bc_token_decode(v, parts, &f->since, err, errlen);
    case P_APIKEY:
        return (f->api_key = strdup(v)) != NULL ? ASTRO_OK
                                                : astro_fail(err, errlen, "out of memory");
    case P_SLOW:
    default:
        f->drop_oldest = strcmp(v, "drop_oldest") == 0;
        return f->drop_oldest || strcmp(v, "close") == 0
                   ? ASTRO_OK
                   : astro_fail(err, errlen, "slow: must be close or drop_oldest");
    }
}

int
bc_filter_parse(enum bc_route route, const char *user, const struct bc_param *params, size_t n,
                uint32_t parts, struct bc_filter *f, char *err, size_t errlen)
{
    unsigned seen = 0;
    memset(f, 0, sizeof(*f));
    f->mono = f->multi = true;
    for (size_t k = 0; k < n; k++) {
        int i = param_index(params[k].name);
        if (i < 0 || !(allowed(route) & (1u << i))) {
            astro_fail(err, errlen, "unknown parameter \"%.64s\"", params[k].name);
            goto fail;
        }
        if (seen & (1u << i)) {
            astro_fail(err, errlen, "%s: given more than once", names[i]);
            goto fail;
        }
        seen |= 1u << i;
        if (apply(f, i, params[k].value, parts, err, errlen) != ASTRO_OK)
            goto fail;
    }
    if (f->rule != NULL && !f->multi) {
        astro_fail(err, errlen, "correlation_rule: only multi events have one");
        goto fail;
    }
    if (f->tf != NULL && !f->candles) {
        astro_fail(err, errlen, "timeframe: only candles have one (add stream=candles)");
        goto fail;
    }
    if (f->src != NULL && f->candles) {
        astro_fail(err, errlen, "source_stream: candles have none");
        goto fail;
    }
    if (user != NULL) {
        if (astro_event_check_key(user, strlen(user), 256, err, errlen) != ASTRO_OK)
            goto fail;
        if ((f->key = strdup(user)) == NULL) {
            astro_fail(err, errlen, "out of memory");
            goto fail;
        }
    }
    return ASTRO_OK;
fail:
    bc_filter_cleanup(f);
    return ASTRO_ERR;
}

void
bc_filter_cleanup(struct bc_filter *f)
{
    free(f->src);
    free(f->key);
    free(f->type);
    free(f->rule);
    free(f->api_key);
    free(f->tf);
    f->src = f->key = f->type = f->rule = f->api_key = f->tf = NULL;
}

static bool
eq(const char *want, const char *have)
{
    return want == NULL || (have != NULL && strcmp(want, have) == 0);
}

bool
bc_filter_wants_kind(const struct bc_filter *f, int kind)
{
    switch (kind) {
    case BC_KIND_MONO: return f->mono;
    case BC_KIND_MULTI: return f->multi;
    default: return f->candles;
    }
}

bool
bc_filter_match(const struct bc_filter *f, const struct bc_item *it)
{
    if (!bc_filter_wants_kind(f, it->kind))
        return false;
    return eq(f->key, it->key) && eq(f->src, it->src) && eq(f->type, it->type) &&
           eq(f->rule, it->rule) && eq(f->tf, it->tf);
}

/* Route patterns ("/subscribe/{user_id}") and their matching against a request path. Segments
 * are compared before percent-decoding, so an encoded '/' inside a parameter never splits it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_internal.h"

static bool
is_param(const char *seg)
{
    size_t n = strlen(seg);
    return n >= 3 && seg[0] == '{' && seg[n - 1] == '}';
}

/* Splits "/a/b/c" into {"a","b","c"}; "/" gives no segment. Returns count or -1. */
static long
split_path(const char *path, size_t len, char ***out)
{
    size_t cap = 1;
    for (size_t i = 0; i < len; i++)
        cap += path[i] == '/';
    char **segs = calloc(cap, sizeof(*segs));
    if (segs == NULL)
        return -1;
    size_t n = 0, i = 1;
    while (i <= len && len > 1) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        segs[n] = strndup(path + i, j - i);
        if (segs[n++] == NULL)
            goto fail;
        i = j + 1;
    }
    *out = segs;
    return (long)n;
fail:
    for (size_t k = 0; k < n; k++)
        free(segs[k]);
    free(segs);
    return -1;
}

int
net_route_init(struct net_route *r, const char *method, const char *pattern, char *err,
               size_t errlen)
{
    *r = (struct net_route){0};
    if (pattern[0] != '/' || strchr(pattern, '?') != NULL)
        return astro_fail(err, errlen, "route %s: must start with '/' and have no query",
                          pattern);
    long n = split_path(pattern, strlen(pattern), &r->segs);
    if (n < 0)
        return astro_fail(err, errlen, "route %s: out of memory", pattern);
    r->nseg = (size_t)n;
    for (size_t i = 0; i < r->nseg; i++) {
        const char *s = r->segs[i];
        if ((strchr(s, '{') != NULL || strchr(s, '}') != NULL) && !is_param(s)) {
            net_route_cleanup(r);
            return astro_fail(err, errlen, "route %s: a parameter must be a whole segment",
                              pattern);
        }
    }
    r->method = strdup(method);
    if (r->method == NULL) {
        net_route_cleanup(r);
        return astro_fail(err, errlen, "route %s: out of memory", pattern);
    }
    return ASTRO_OK;
}

void
net_route_cleanup(struct net_route *r)
{
    for (size_t i = 0; i < r->nseg; i++)
        free(r->segs[i]);
    free(r->segs);
    free(r->method);
    *r = (struct net_route){0};
}

static bool
segs_match(const struct net_route *r, char **segs, size_t n)
{
    if (r->nseg != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (is_param(r->segs[i]) ? segs[i][0] == '\0' : strcmp(r->segs[i], segs[i]) != 0)
            return false; /* a parameter is never empty */
    return true;
}

static bool
method_match(const struct net_route *r, const char *method)
{
    return strcmp(r->method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0);
}

/* Stores the decoded parameters of r into req->params. */
static int
bind_params(const struct net_route *r, char **segs, struct astro_http_req *req)
{
    req->params = calloc(r->nseg + 1, sizeof(*req->params));
    if (req->params == NULL)
        return ASTRO_ERR;
    for (size_t i = 0; i < r->nseg; i++) {
        if (!is_param(r->segs[i]))
            continue;
        struct net_kv *kv = &req->params[req->nparams++];
        kv->name = strndup(r->segs[i] + 1, strlen(r->segs[i]) - 2);
        kv->value = net_pct_decode(segs[i], strlen(segs[i]), false);
        if (kv->name == NULL || kv->value == NULL)
            return ASTRO_ERR;
    }
    return ASTRO_OK;
}

static void
free_segs(char **segs, long n)
{
    for (long i = 0; i < n; i++)
        free(segs[i]);
    free(segs);
}

const struct net_route *
net_route_match(const struct net_route *routes, size_t n, struct astro_http_req *req,
                int *status, char *allow, size_t allowlen)
{
    const char *url = req->url.p;
    size_t len = strcspn(url, "?#");
    char **segs = NULL;
    long nseg = split_path(url, len, &segs);
    const struct net_route *found = NULL;
    size_t used = 0;
    *status = 404;
    allow[0] = '\0';
    for (size_t i = 0; nseg >= 0 && i < n && found == NULL; i++) {
        if (!segs_match(&routes[i], segs, (size_t)nseg))
            continue;
        if (method_match(&routes[i], req->method)) {
            found = &routes[i];
        } else {
            *status = 405;
            int w = snprintf(allow + used, allowlen - used, "%s%s", used ? ", " : "",
                             routes[i].method);
            if (w > 0 && (size_t)w < allowlen - used)
                used += (size_t)w;
        }
    }
    if (found != NULL && bind_params(found, segs, req) != ASTRO_OK) {
        *status = 400;
        found = NULL;
    }
    free_segs(segs, nseg);
    return found;
}

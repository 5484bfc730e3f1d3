/* redis:// URL parsing (see astro/redis.h for the accepted forms). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "astro/redis.h"

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Percent-decodes [s, s+n) into out (NUL-terminated); `what` names the field in errors. */
static int
decode_part(const char *s, size_t n, char *out, size_t outlen, const char *what, char *err,
            size_t errlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return astro_fail(err, errlen, "redis url: %s: bad percent-escape at byte %zu "
                                  "(expected %%XX with hex digits)", what, i);
            c = hi * 16 + lo;
            if (c == 0)
                return astro_fail(err, errlen, "redis url: %s: %%00 is not allowed", what);
            i += 2;
        }
        if (o + 1 >= outlen)
            return astro_fail(err, errlen, "redis url: %s: longer than %zu bytes", what,
                              outlen - 1);
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return ASTRO_OK;
}

static int
parse_userinfo(const char *s, size_t n, struct astro_redis_url *out, char *err, size_t errlen)
{
    const char *colon = memchr(s, ':', n);
    if (colon == NULL)
        return astro_fail(err, errlen, "redis url: credentials need a password "
                          "(user:password@ or :password@)");
    size_t ulen = (size_t)(colon - s);
    if (decode_part(s, ulen, out->user, sizeof(out->user), "user", err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if (decode_part(colon + 1, n - ulen - 1, out->password, sizeof(out->password), "password",
                    err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    if (out->password[0] == '\0')
        return astro_fail(err, errlen, "redis url: password is empty");
    out->has_password = true;
    return ASTRO_OK;
}

/* Parses a decimal number in [lo, hi] from exactly [s, s+n). */
static int
parse_number(const char *s, size_t n, long lo, long hi, long *out)
{
    if (n == 0 || n > 9)
        return ASTRO_ERR;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return ASTRO_ERR;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return ASTRO_ERR;
    *out = v;
    return ASTRO_OK;
}

static int
parse_hostport(const char *s, size_t n, struct astro_redis_url *out, char *err, size_t errlen)
{
    const char *host = s, *port = NULL;
    size_t hlen = n;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL)
            return astro_fail(err, errlen, "redis url: host: missing ']' after IPv6 address");
        host = s + 1;
        hlen = (size_t)(close - host);
        if (close + 1 < s + n) {
            if (close[1] != ':')
                return astro_fail(err, errlen, "redis url: host: junk after ']'");
            port = close + 2;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon != NULL) {
            hlen = (size_t)(colon - s);
            port = colon + 1;
        }
    }
    if (hlen == 0)
        return astro_fail(err, errlen, "redis url: host is empty");
    if (hlen >= sizeof(out->host))
        return astro_fail(err, errlen, "redis url: host: longer than %zu bytes",
                          sizeof(out->host) - 1);
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    if (port != NULL) {
        long p;
        if (parse_number(port, (size_t)(s + n - port), 1, 65535, &p) != ASTRO_OK)
            return astro_fail(err, errlen, "redis url: port: \"%.*s\" is not a number in "
                              "1..65535", (int)(s + n - port), port);
        out->port = (int)p;
    }
    return ASTRO_OK;
}

static int
parse_db(const char *path, struct astro_redis_url *out, char *err, size_t errlen)
{
    if (strchr(path, '?') != NULL || strchr(path, '#') != NULL)
        return astro_fail(err, errlen, "redis url: query parameters are not supported");
    if (path[0] == '\0' || (path[0] == '/' && path[1] == '\0'))
        return ASTRO_OK;
    long db;
    if (parse_number(path + 1, strlen(path + 1), 0, 100000, &db) != ASTRO_OK)
        return astro_fail(err, errlen, "redis url: database: \"%s\" is not a number >= 0",
                          path + 1);
    out->db = (int)db;
    return ASTRO_OK;
}

int
astro_redis_url_parse(const char *url, struct astro_redis_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (url == NULL || url[0] == '\0')
        return astro_fail(err, errlen, "redis url: empty (expected redis://host:port/db)");
    if (strncmp(url, "rediss://", 9) == 0)
        return astro_fail(err, errlen, "redis url: TLS not supported by hiredis 0.14: "
                          "terminate TLS in a proxy");
    if (strncmp(url, "redis://", 8) != 0)
        return astro_fail(err, errlen, "redis url: scheme must be redis:// "
                          "(expected redis://[user:password@]host:port/db)");
    const char *auth = url + 8;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (auth[i] == '@')
            at = auth + i; /* last '@': a raw '@' in a password still parses */
    const char *hp = auth;
    if (at != NULL) {
        if (parse_userinfo(auth, (size_t)(at - auth), out, err, errlen) != ASTRO_OK)
            return ASTRO_ERR;
        hp = at + 1;
    }
    if (parse_hostport(hp, (size_t)(auth + alen - hp), out, err, errlen) != ASTRO_OK)
        return ASTRO_ERR;
    return parse_db(auth + alen, out, err, errlen);
}

void
astro_redis_url_format_masked(const struct astro_redis_url *u, char *buf, size_t buflen)
{
    const char *lb = strchr(u->host, ':') ? "[" : "";
    const char *rb = strchr(u->host, ':') ? "]" : "";
    snprintf(buf, buflen, "redis://%s%s%s%s%s:%d/%d", u->user, u->has_password ? ":***@" : "",
             lb, u->host, rb, u->port, u->db);
}

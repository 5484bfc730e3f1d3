/* The keyset cursor: an opaque token naming the last row of a page by its sort key (ts,
 * event_id). Opaque so clients do not build them, versioned so the format can change, and
 * decoded strictly so a tampered token is a 400, never a surprising page. */
#include <string.h>

#include "astro/time.h"
#include "query.h"

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t
b64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        size_t chars = n - i >= 3 ? 4 : n - i + 1;
        for (size_t k = 0; k < chars; k++)
            out[o++] = b64url[(v >> (18 - 6 * k)) & 63];
    }
    out[o] = '\0';
    return o;
}

static int
b64_value(char c)
{
    const char *p = c != '\0' ? strchr(b64url, c) : NULL;
    return p != NULL ? (int)(p - b64url) : -1;
}

/* Decodes unpadded base64url; refuses a length that no encoding produces and set bits in the
 * unused tail (so each byte string has exactly one token). Returns the byte count or -1. */
static long
b64_decode(const char *s, size_t len, unsigned char *out, size_t cap)
{
    if (len % 4 == 1 || (len / 4) * 3 + (len % 4 ? len % 4 - 1 : 0) > cap)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        size_t chars = len - i >= 4 ? 4 : len - i;
        unsigned v = 0;
        for (size_t k = 0; k < 4; k++) {
            int d = k < chars ? b64_value(s[i + k]) : 0;
            if (d < 0)
                return -1;
            v |= (unsigned)d << (18 - 6 * k);
        }
        size_t bytes = chars - 1;
        if (bytes < 3 && (v & (0xffffffu >> (8 * bytes))) != 0)
            return -1;
        for (size_t k = 0; k < bytes; k++)
            out[o++] = (unsigned char)(v >> (16 - 8 * k));
    }
    return (long)o;
}

int
qry_cursor_encode(int64_t ts_us, const char *id, char out[QRY_CURSOR_MAX])
{
    unsigned char raw[1 + 8 + 1 + ASTRO_EVENT_ID_MAX];
    size_t idlen = strlen(id);
    if (idlen == 0 || idlen > ASTRO_EVENT_ID_MAX)
        return ASTRO_ERR;
    raw[0] = QRY_CURSOR_VERSION;
    for (int i = 0; i < 8; i++)
        raw[1 + i] = (unsigned char)((uint64_t)ts_us >> (56 - 8 * i));
    raw[9] = (unsigned char)idlen;
    memcpy(raw + 10, id, idlen);
    b64_encode(raw, 10 + idlen, out);
    return ASTRO_OK;
}

int
qry_cursor_decode(const char *s, size_t len, int64_t *ts_us, char *id, char *err,
                  size_t errlen)
{
    unsigned char raw[1 + 8 + 1 + ASTRO_EVENT_ID_MAX];
    long n = len < QRY_CURSOR_MAX ? b64_decode(s, len, raw, sizeof(raw)) : -1;
    if (n < 11)
        return astro_fail(err, errlen, "not a cursor returned by this API");
    if (raw[0] != QRY_CURSOR_VERSION)
        return astro_fail(err, errlen, "unsupported cursor version %u", raw[0]);
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | raw[1 + i];
    int64_t ts = (int64_t)u;
    if (ts < ASTRO_TIME_MIN_US || ts > ASTRO_TIME_MAX_US || (long)raw[9] != n - 10)
        return astro_fail(err, errlen, "not a cursor returned by this API");
    char why[160];
    if (astro_event_check_id("cursor", (const char *)raw + 10, raw[9], ASTRO_EVENT_ID_MAX, id,
                             why, sizeof(why)) != ASTRO_OK ||
        memcmp(id, raw + 10, raw[9]) != 0)
        return astro_fail(err, errlen, "not a cursor returned by this API");
    *ts_us = ts;
    return ASTRO_OK;
}

/* Position tokens: the last entry id a subscriber has seen on every stream, so since= can
 * resume each stream exactly after it. Layout before base64url (no padding): version byte 2,
 * varint P, then for each slot BC_KINDS*p + kind the varints ms and seq. Opaque to clients.
 * Version 1 (before candles, issue 9) had two kinds per partition; it is still read, with the
 * candle streams at 0-0, so a client that resumes across an upgrade loses nothing it had. */
#include <stdio.h>
#include <string.h>

#include "broadcast.h"

#define TOKEN_VERSION 2
#define TOKEN_VERSION_1_KINDS 2

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int
bc_id_parse(const char *s, size_t len, struct bc_id *out)
{
    uint64_t v[2] = {0, 0};
    int part = 0;
    size_t digits = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '-' && part == 0 && digits > 0) {
            part = 1;
            digits = 0;
            continue;
        }
        if (s[i] < '0' || s[i] > '9' || v[part] > (UINT64_MAX - 9) / 10)
            return ASTRO_ERR;
        v[part] = v[part] * 10 + (uint64_t)(s[i] - '0');
        digits++;
    }
    if (part != 1 || digits == 0)
        return ASTRO_ERR;
    out->ms = v[0];
    out->seq = v[1];
    return ASTRO_OK;
}

int
bc_id_cmp(struct bc_id a, struct bc_id b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    if (a.seq != b.seq)
        return a.seq < b.seq ? -1 : 1;
    return 0;
}

static size_t
put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static int
get_varint(const uint8_t *p, size_t len, size_t *off, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && *off < len; shift += 7) {
        uint8_t b = p[(*off)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = v;
            return ASTRO_OK;
        }
    }
    return ASTRO_ERR;
}

size_t
bc_token_encode(const struct bc_pos *pos, char *out, size_t size)
{
    uint8_t raw[2 + BC_SLOTS * 20];
    size_t n = 0;
    raw[n++] = TOKEN_VERSION;
    n += put_varint(raw + n, pos->parts);
    for (uint32_t i = 0; i < BC_KINDS * pos->parts && i < BC_SLOTS; i++) {
        n += put_varint(raw + n, pos->id[i].ms);
        n += put_varint(raw + n, pos->id[i].seq);
    }
    size_t need = (n * 4 + 2) / 3;
    if (need + 1 > size)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)raw[i + 1] << 8;
        if (i + 2 < n)
            v |= raw[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = b64[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = b64[v & 63];
    }
    out[o] = '\0';
    return o;
}

static int
b64_value(char c)
{
    const char *p = c != '\0' ? strchr(b64, c) : NULL;
    return p != NULL ? (int)(p - b64) : -1;
}

/* Decodes base64url without padding into raw; returns the byte count or -1. */
static long
b64_decode(const char *s, uint8_t *raw, size_t size)
{
    size_t len = strlen(s), n = 0;
    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        size_t k = 0;
        for (; k < 4 && i + k < len; k++) {
            int d = b64_value(s[i + k]);
            if (d < 0)
                return -1;
            v |= (uint32_t)d << (18 - 6 * k);
        }
        for (size_t j = 0; j + 1 < k; j++) {
            if (n >= size)
                return -1;
            raw[n++] = (uint8_t)(v >> (16 - 8 * j));
        }
    }
    return (long)n;
}

int
bc_token_decode(const char *tok, uint32_t parts, struct bc_pos *out, char *err, size_t errlen)
{
    uint8_t raw[2 + BC_SLOTS * 20];
    uint64_t p = 0;
    size_t off = 1;
    uint32_t kinds = BC_KINDS;
    if (strlen(tok) > sizeof(raw) * 4 / 3 + 4)
        return astro_fail(err, errlen, "since: token too long");
    long n = b64_decode(tok, raw, sizeof(raw));
    if (n < 2 || (raw[0] != TOKEN_VERSION && raw[0] != 1))
        return astro_fail(err, errlen, "since: not a position token");
    if (raw[0] == 1)
        kinds = TOKEN_VERSION_1_KINDS;
    if (get_varint(raw, (size_t)n, &off, &p) != ASTRO_OK || p != parts)
        return astro_fail(err, errlen, "since: token is for another partition count");
    memset(out, 0, sizeof(*out));
    out->parts = parts;
    for (uint32_t part = 0; part < parts; part++)
        for (uint32_t k = 0; k < kinds; k++) {
            struct bc_id *id = &out->id[bc_slot(part, (int)k)];
            if (get_varint(raw, (size_t)n, &off, &id->ms) != ASTRO_OK ||
                get_varint(raw, (size_t)n, &off, &id->seq) != ASTRO_OK)
                return astro_fail(err, errlen, "since: truncated position token");
        }
    if (off != (size_t)n)
        return astro_fail(err, errlen, "since: trailing bytes in position token");
    return ASTRO_OK;
}

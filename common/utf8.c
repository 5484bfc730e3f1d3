/* Strict UTF-8 validation as a byte-at-a-time state machine; the state is only the number of
 * continuation bytes still due and the allowed range of the next one (RFC 3629 table 3-7), which
 * is exactly what rejects overlongs (E0 A0.., F0 90..), surrogates (ED ..9F) and > U+10FFFF. */
#include "astro/utf8.h"

void
astro_utf8_init(struct astro_utf8_state *st)
{
    st->need = 0;
    st->lo = 0x80;
    st->hi = 0xbf;
    st->bad = false;
}

/* Sets the state for lead byte c; false if c cannot start a sequence. */
static bool
start_sequence(struct astro_utf8_state *st, uint8_t c)
{
    st->lo = 0x80;
    st->hi = 0xbf;
    if (c < 0x80)
        return true;
    if (c >= 0xc2 && c <= 0xdf)
        st->need = 1;
    else if (c >= 0xe0 && c <= 0xef)
        st->need = 2;
    else if (c >= 0xf0 && c <= 0xf4)
        st->need = 3;
    else
        return false; /* continuation, C0/C1 overlong leads, F5..FF */
    if (c == 0xe0)
        st->lo = 0xa0; /* overlong 3-byte */
    else if (c == 0xed)
        st->hi = 0x9f; /* surrogates */
    else if (c == 0xf0)
        st->lo = 0x90; /* overlong 4-byte */
    else if (c == 0xf4)
        st->hi = 0x8f; /* above U+10FFFF */
    return true;
}

int
astro_utf8_feed(struct astro_utf8_state *st, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (st->bad)
        return ASTRO_ERR;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];
        if (st->need == 0) {
            if (c < 0x80)
                continue;
            if (!start_sequence(st, c))
                goto bad;
            continue;
        }
        if (c < st->lo || c > st->hi)
            goto bad;
        st->need--;
        st->lo = 0x80;
        st->hi = 0xbf;
    }
    return ASTRO_OK;
bad:
    st->bad = true;
    return ASTRO_ERR;
}

int
astro_utf8_finish(const struct astro_utf8_state *st)
{
    return st->bad || st->need != 0 ? ASTRO_ERR : ASTRO_OK;
}

bool
astro_utf8_valid(const char *s, size_t len)
{
    struct astro_utf8_state st;
    astro_utf8_init(&st);
    return astro_utf8_feed(&st, s, len) == ASTRO_OK && astro_utf8_finish(&st) == ASTRO_OK;
}

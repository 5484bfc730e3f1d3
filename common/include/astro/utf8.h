/* Strict UTF-8 validation (RFC 3629): rejects overlong forms, UTF-16 surrogates (U+D800..DFFF),
 * code points above U+10FFFF, stray continuation bytes and truncated sequences. The incremental
 * validator carries its state between chunks, so a WebSocket layer can check each fragment of a
 * message as it arrives and a sequence split across fragments is still accepted. */
#ifndef ASTRO_UTF8_H
#define ASTRO_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "astro/common.h"

/* Validator state; zero it (or call astro_utf8_init) before the first chunk. */
struct astro_utf8_state {
    uint8_t need; /* continuation bytes still expected */
    uint8_t lo;   /* allowed range of the next continuation byte */
    uint8_t hi;
    bool bad;     /* sticky: once invalid, every later feed fails */
};

/* True if s[0..len) is complete, valid UTF-8. */
bool astro_utf8_valid(const char *s, size_t len);

void astro_utf8_init(struct astro_utf8_state *st);

/* Feeds the next chunk. ASTRO_ERR as soon as the bytes seen so far cannot be a prefix of valid
 * UTF-8 (a sequence may still be open at the end of the chunk: that is not an error here). */
int astro_utf8_feed(struct astro_utf8_state *st, const void *buf, size_t len) ASTRO_MUST_CHECK;

/* Call at the end of the message: ASTRO_ERR if the input was invalid or ends mid-sequence. */
int astro_utf8_finish(const struct astro_utf8_state *st) ASTRO_MUST_CHECK;

#endif

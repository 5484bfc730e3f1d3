/* UUIDs: strict parsing, lowercase formatting, random v4 and name-based v5 (RFC 4122).
 *
 * Multi-originated event ids are v5 UUIDs under ASTRO_UUID_NAMESPACE (generated once for
 * Astrocyte, fixed forever) of the name  rule "\n" id1 "\n" id2 ... with the source ids sorted
 * bytewise (strcmp order), so replaying the same sources under the same rule yields the same id
 * in any language:  uuid5(UUID("94b66057-b01a-44fd-8392-a2e51e2e5d89"),
 *                         rule + "\n" + "\n".join(sorted(ids)))
 * Duplicate ids are kept (not collapsed). Rules and ids must not contain '\n' (event ids are
 * restricted to [A-Za-z0-9_.:-], so only the rule name is the caller's responsibility). */
#ifndef ASTRO_UUID_H
#define ASTRO_UUID_H

#include <stddef.h>
#include <stdint.h>

#include "astro/common.h"

#define ASTRO_UUID_STR_LEN 36
#define ASTRO_UUID_NAMESPACE "94b66057-b01a-44fd-8392-a2e51e2e5d89"

struct astro_uuid {
    uint8_t b[16];
};

/* Parses the canonical 8-4-4-4-12 hex form, any case, exactly 36 bytes of s[0..len); braces,
 * "urn:uuid:" and dashless forms are rejected. */
int astro_uuid_parse(const char *s, size_t len, struct astro_uuid *out) ASTRO_MUST_CHECK;

/* Writes the lowercase canonical form plus NUL into out (37 bytes). */
void astro_uuid_format(const struct astro_uuid *u, char out[ASTRO_UUID_STR_LEN + 1]);

/* Random (version 4) UUID from the OpenSSL CSPRNG; ASTRO_ERR only if the CSPRNG fails. */
int astro_uuid_v4(struct astro_uuid *out) ASTRO_MUST_CHECK;

/* Name-based (version 5, SHA-1) UUID of name[0..len) under namespace ns. */
int astro_uuid_v5(const struct astro_uuid *ns, const void *name, size_t len,
                  struct astro_uuid *out) ASTRO_MUST_CHECK;

/* The deterministic id of a multi-originated event (see the top of this file). ids (n strings,
 * borrowed) may come in any order; a sorted copy of the pointer array is made internally. */
int astro_uuid_derive(const char *rule, const char *const *ids, size_t n,
                      struct astro_uuid *out) ASTRO_MUST_CHECK;

#endif

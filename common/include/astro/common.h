/* Shared basics: status codes, must-check, and the error-message helper every parser uses. */
#ifndef ASTRO_COMMON_H
#define ASTRO_COMMON_H

#include <stddef.h>

#define ASTRO_OK 0
#define ASTRO_ERR (-1)

#define ASTRO_MUST_CHECK __attribute__((warn_unused_result))
#define ASTRO_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

#define ASTRO_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Formats a user-facing reason into err (if err is not NULL) and returns ASTRO_ERR, so a parser
 * can write `return astro_fail(err, errlen, "timestamp: not RFC 3339 or epoch ms");`. */
int astro_fail(char *err, size_t errlen, const char *fmt, ...) ASTRO_PRINTF(3, 4);

#endif

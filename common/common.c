#include <stdarg.h>
#include <stdio.h>

#include "astro/common.h"

int
astro_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return ASTRO_ERR;
}

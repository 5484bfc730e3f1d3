/* astro-admin: operator CLI. All logic lives in the admin library (cli.c and friends). */
#include <stdio.h>

#include "admin.h"
#include "astro/log.h"

int
main(int argc, char **argv)
{
    astro_log_init("astro-admin", "cli", ASTRO_LOG_WARN);
    return adm_main(argc, argv, stdout, stderr);
}

/* astro-produce: the demo and load producer (docs/operations.md). Flags in, one summary line
 * out; exit 0 when every event sent was acknowledged, 1 otherwise, 2 on bad flags. */
#include <stdio.h>

#include "produce.h"

int
main(int argc, char **argv)
{
    struct prd_config cfg;
    bool help;
    char err[512];
    if (prd_args_parse(argc, argv, &cfg, &help, err, sizeof(err)) != ASTRO_OK) {
        fprintf(stderr, "astro-produce: %s\n", err);
        return 2;
    }
    if (help) {
        prd_usage(stdout);
        return 0;
    }
    return prd_run(&cfg, stdout);
}

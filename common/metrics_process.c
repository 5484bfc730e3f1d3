/* Standard process metrics every daemon exposes: build info, start time, resident memory. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "astro/metrics.h"

/* Resident set size in bytes from /proc/self/statm (second field, in pages); 0 if unreadable. */
static double
resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    if (n != 2 || page <= 0)
        return 0;
    return (double)resident * (double)page;
}

static void
on_render_process(void *arg)
{
    astro_gauge_set(arg, resident_bytes());
}

int
astro_metrics_register_process(struct astro_metrics *m, const char *service, const char *version)
{
    char labels[256];
    if (astro_metrics_labels(labels, sizeof(labels), "service", service != NULL ? service : "",
                             "version", version != NULL ? version : "", (char *)NULL) != ASTRO_OK)
        return ASTRO_ERR;
    struct astro_gauge *info = astro_metrics_gauge(
        m, "astro_build_info", "Build of the running binary; the value is always 1.", labels);
    struct astro_gauge *start = astro_metrics_gauge(
        m, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
        NULL);
    struct astro_gauge *rss = astro_metrics_gauge(m, "process_resident_memory_bytes",
                                                  "Resident memory size in bytes.", NULL);
    if (info == NULL || start == NULL || rss == NULL)
        return ASTRO_ERR;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    astro_gauge_set(info, 1);
    astro_gauge_set(start, (double)now.tv_sec + (double)now.tv_nsec / 1e9);
    astro_gauge_set(rss, resident_bytes());
    return astro_metrics_on_render(m, on_render_process, rss);
}

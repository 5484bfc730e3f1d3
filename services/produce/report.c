/* The summary line and the stop signal, shared by the WebSocket and HTTP modes. */
#include <signal.h>

#include "produce.h"

static volatile sig_atomic_t stop_flag;

static void
on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

void
prd_signals_install(void)
{
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
}

bool
prd_stop_requested(void)
{
    return stop_flag != 0;
}

void
prd_report(struct prd_stats *st, uint64_t sent, FILE *out, int64_t now_us)
{
    double secs = (double)(now_us - st->start_us) / 1e6;
    int64_t p50 = prd_lat_quantile(&st->lat, 0.50), p99 = prd_lat_quantile(&st->lat, 0.99);
    fprintf(out, "astro-produce: sent %llu events in %llu messages in %.2f s (%.1f events/s); "
            "acked %llu (duplicates %llu), refused %llu, resent %llu messages, reconnected %llu "
            "times; ack latency p50 %.2f ms p99 %.2f ms\n", (unsigned long long)sent,
            (unsigned long long)st->messages, secs, secs > 0 ? (double)st->acked / secs : 0.0,
            (unsigned long long)st->acked, (unsigned long long)st->dups,
            (unsigned long long)st->rejected, (unsigned long long)st->retried,
            (unsigned long long)st->reconnects, (double)p50 / 1000.0, (double)p99 / 1000.0);
    fflush(out);
}

#!/usr/bin/env bash
# astro-broadcast benchmark (issue 7): fan-out to BENCH_CLIENTS subscribers vs a bare civetweb
# server writing the same messages to the same clients in the same run (medians of BENCH_RUNS),
# then XADD -> receipt latency at 10k events/s. Loopback only; bounded by `timeout`.
#
# usage: tests/bench/run_broadcast.sh [BUILD_DIR]   (default build-bench, configured if missing)
# env:   BENCH_RUNS=3 BENCH_CLIENTS=1000 BENCH_MESSAGES=1000 BENCH_LAT_SUBS=10 BENCH_LAT_EVENTS=20000
set -uo pipefail
cd "$(dirname "$0")/../.."
build="${1:-${BENCH_BUILD:-build-bench}}"
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Dbenchmarks=true --buildtype=release >/dev/null || exit 1
fi
ninja -C "$build" tests/bench/bench_broadcast tests/bench/bench_srv_civetweb \
  services/broadcast/astro-broadcast >/dev/null || exit 1
ulimit -n "$(ulimit -Hn)" 2>/dev/null
exec timeout 900 "$build/tests/bench/bench_broadcast" "${BENCH_CLIENTS:-1000}" \
  "${BENCH_MESSAGES:-1000}" "${BENCH_RUNS:-3}" "${BENCH_LAT_SUBS:-10}" \
  "${BENCH_LAT_EVENTS:-20000}"

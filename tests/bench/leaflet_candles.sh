#!/usr/bin/env bash
# astro-leaflet candles (issue 9): worker CPU per event with candles + indicators on 10k keys x 6
# timeframes, against the default rules only, at a steady rate; medians of BENCH_RUNS (3).
#   usage: tests/bench/leaflet_candles.sh [BUILD_DIR]  (default build-candles-bench, release)
#   env:   BENCH_RUNS=3 BENCH_RATE=10000 BENCH_SECONDS=15 BENCH_SPEEDUP=8
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build-candles-bench}"
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Dbenchmarks=true -Dbuildtype=release >/dev/null
fi
ninja -C "$build" tests/bench/bench_leaflet_candles services/leaflet/astro-leaflet >/dev/null
timeout 900 "$build/tests/bench/bench_leaflet_candles" "$build/services/leaflet/astro-leaflet" \
  deploy/rules/default.rules

#!/usr/bin/env bash
# astro-leaflet benchmarks (issue 5): the in-memory matcher and the drain of a Redis backlog
# against a bare XREADGROUP + XACK reader, both with deploy/rules/default.rules.
#   usage: tests/bench/leaflet.sh [BUILD_DIR]   (default build-leaflet-bench, configured if missing)
#   env:   BENCH_RUNS=3 BENCH_EVENTS=1000000 (drain) BENCH_MATCHER_EVENTS=2000000
#          BENCH_LEAFLET_OTHER=path/to/another/astro-leaflet: drained in the same runs (an A/B)
#   Both print per-run lines on stderr with CPU seconds (the machine is shared: wall-clock
#   rates include waiting for a core).
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build-leaflet-bench}"
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Dbenchmarks=true -Dbuildtype=release >/dev/null
fi
ninja -C "$build" tests/bench/bench_leaflet_matcher tests/bench/bench_leaflet_drain \
  services/leaflet/astro-leaflet >/dev/null
export BENCH_RUNS="${BENCH_RUNS:-3}"
timeout 600 "$build/tests/bench/bench_leaflet_matcher" deploy/rules/default.rules \
  "${BENCH_MATCHER_EVENTS:-2000000}"
timeout 1800 "$build/tests/bench/bench_leaflet_drain" "$build/services/leaflet/astro-leaflet" \
  deploy/rules/default.rules

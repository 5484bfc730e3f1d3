#!/usr/bin/env bash
# astro-ingest benchmark (issue 3), medians of BENCH_RUNS runs, each run measuring the baseline
# and ingest back to back on the same private redis-server:
#   (a) baseline: redis-benchmark -P 64 XADD of the same event fields (what Redis alone does);
#   (b) ingest throughput: bench_ingest, BENCH_CONNS WebSockets each keeping BENCH_WINDOW
#       messages of BENCH_BATCH events in flight; events acked per second; ratio = (b) / (a);
#   (c) ack latency at BENCH_RATE events/s (single-event messages): p50 / p99.
# usage: tests/bench/run_ingest.sh [BUILD_DIR]   (default build-bench, configured if missing)
# env:   BENCH_RUNS=3 BENCH_CONNS=16 BENCH_WINDOW=4 BENCH_BATCH=100 BENCH_SECONDS=5
#        BENCH_RATE=10000 BENCH_THREADS=2 (ingest loop threads)
set -uo pipefail
cd "$(dirname "$0")/../.."
build="${1:-${BENCH_BUILD:-build-bench}}"
runs="${BENCH_RUNS:-3}"; conns="${BENCH_CONNS:-16}"; window="${BENCH_WINDOW:-4}"
batch="${BENCH_BATCH:-100}"; secs="${BENCH_SECONDS:-5}"; rate="${BENCH_RATE:-10000}"
threads="${BENCH_THREADS:-2}"
key="bench-key-0123456789abcdef"
die() { echo "bench: $*" >&2; exit 1; }

if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Dbenchmarks=true >/dev/null || die "meson setup failed"
fi
ninja -C "$build" tests/bench/bench_ingest services/ingest/astro-ingest >/dev/null \
  || die "build failed"
command -v redis-benchmark >/dev/null || die "redis-benchmark is not installed"

tmp=$(mktemp -d); rpid=""; ipid=""
cleanup() {
  [ -n "$ipid" ] && kill "$ipid" 2>/dev/null && wait "$ipid" 2>/dev/null
  [ -n "$rpid" ] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
rport=$((20000 + RANDOM % 10000)); iport=$((rport + 1))

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "-" hi}'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
load_start=$(loadavg)

start_ingest() {
  redis-server --port "$rport" --save '' --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
  rpid=$!
  sleep 0.3
  ASTRO_REDIS_URL="redis://127.0.0.1:$rport/0" ASTRO_HTTP_PORT="$iport" \
    ASTRO_HTTP_BIND=127.0.0.1 ASTRO_HTTP_THREADS="$threads" ASTRO_BOOTSTRAP_API_KEY="$key" \
    ASTRO_LOG_LEVEL=warn ASTRO_BACKPRESSURE_HIGH=1000000000000 ASTRO_BACKPRESSURE_LOW=1 \
    ASTRO_MAX_AGE=0 "$build/services/ingest/astro-ingest" 2>"$tmp/ingest.log" &
  ipid=$!
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$iport/health/ready" && break; sleep 0.05
  done
}
stop_all() {
  [ -n "$ipid" ] && kill "$ipid" && wait "$ipid" 2>/dev/null; ipid=""
  [ -n "$rpid" ] && kill "$rpid" && wait "$rpid" 2>/dev/null; rpid=""
}

for run in $(seq 1 "$runs"); do
  redis-server --port "$rport" --save '' --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
  rpid=$!
  sleep 0.3
  # (a) baseline: the XADD ingest issues per event, pipelined 64 deep, 50 clients
  base=$(timeout 120 redis-benchmark -p "$rport" -n 1000000 -c 50 -P 64 -q \
      XADD astro:bench '*' id 3f0c1e52-8a4b-4c7e-9d2f-0b6a5e4d3c21 ts 1796094680546000 \
      src bench key dev1 type A val 1.5 2>/dev/null | tr '\r' '\n' | \
      awk '/requests per second/ {for (i=1;i<=NF;i++) if ($i ~ /^[0-9.]+$/) v=$i} END {print v}')
  stop_all
  # (b) throughput, then (c) latency, each on a fresh Redis and daemon
  start_ingest
  tp=$(BENCH_KEY="$key" timeout 120 "$build/tests/bench/bench_ingest" throughput 127.0.0.1 \
      "$iport" "$conns" "$window" "$batch" "$secs" | awk '{print $6}')
  stop_all
  start_ingest
  lt=$(BENCH_KEY="$key" timeout 120 "$build/tests/bench/bench_ingest" latency 127.0.0.1 \
      "$iport" "$conns" "$rate" "$secs")
  stop_all
  p50=$(echo "$lt" | awk '{print $4}'); p99=$(echo "$lt" | awk '{print $6}')
  echo "run $run: redis-benchmark XADD/s $base  ingest events/s $tp  ratio" \
       "$(awk -v a="$tp" -v b="$base" 'BEGIN {printf "%.3f", a / b}')  ack p50 ${p50} ms" \
       " p99 ${p99} ms  load $(loadavg)" >&2
  echo "$base $tp $p50 $p99 $(awk -v a="$tp" -v b="$base" 'BEGIN {printf "%.3f", a / b}')" \
    >>"$tmp/results"
done

col() { awk -v c="$1" '{print $c}' "$tmp/results"; }
echo "| metric (load average $load_start at start, $(loadavg) at end) | median of $runs | range |"
echo "|---|---|---|"
echo "| redis-benchmark -P 64 XADD (baseline) | $(col 1 | median) /s | $(col 1 | range) |"
echo "| astro-ingest, $conns WS x $window in flight x $batch events | $(col 2 | median) events/s |" \
     "$(col 2 | range) |"
echo "| ratio (median of the runs' ratios) | $(col 5 | median) | $(col 5 | range) |"
echo "| ack latency at $rate events/s, p50 / p99 | $(col 3 | median) ms / $(col 4 | median) ms |" \
     "p99 $(col 4 | range) ms |"

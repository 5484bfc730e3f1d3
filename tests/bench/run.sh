#!/usr/bin/env bash
# Network benchmarks of issue 11: the HTTP + WebSocket layer against a bare civetweb 1.15, both
# measured in the same run, medians of BENCH_RUNS runs, printed as Markdown to paste into
# docs/benchmarks.md. Loopback only; every step is bounded by `timeout`.
#
#   (a) fan-out: BENCH_CLIENTS WebSockets (bench_ws_client, its own process) receive
#       BENCH_MESSAGES messages of 300 bytes each; messages/s, server CPU s per million
#       messages, client CPU s.
#   (b) WebSocket handshakes/s with 50 upgrades in flight for BENCH_SECONDS.
#   (c) RSS per idle WebSocket with BENCH_IDLE connections open.
#   (d) GET /health requests/s with wrk (2 threads, 50 connections, BENCH_SECONDS).
#
# usage: tests/bench/run.sh [BUILD_DIR]   (default build-bench, configured if missing)
# env:   BENCH_RUNS=3 BENCH_CLIENTS=1000 BENCH_MESSAGES=1000 BENCH_IDLE=5000 BENCH_SECONDS=3
#        BENCH_THREADS=1 (layer loops in fan-out; serve mode uses one loop per core)
set -uo pipefail
cd "$(dirname "$0")/../.."

build="${1:-${BENCH_BUILD:-build-bench}}"
runs="${BENCH_RUNS:-3}"
clients="${BENCH_CLIENTS:-1000}"
messages="${BENCH_MESSAGES:-1000}"
idle="${BENCH_IDLE:-5000}"
seconds="${BENCH_SECONDS:-3}"
fan_threads="${BENCH_THREADS:-1}"
size=300

die() { echo "bench: $*" >&2; exit 1; }

if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Dbenchmarks=true >/dev/null || die "meson setup failed"
fi
ninja -C "$build" tests/bench/bench_ws_client tests/bench/bench_srv_layer \
  tests/bench/bench_srv_civetweb >/dev/null || die "build failed"
bin="$build/tests/bench"
command -v wrk >/dev/null || die "wrk is not installed"
ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" -gt $((idle + 100)) ] || die "ulimit -n too low for $idle connections"

tmp=$(mktemp -d)
server_pid=""
port=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# A port nobody listens on (probing with bash's /dev/tcp), below the ephemeral range so the
# thousands of client connections cannot be holding it.
eph_low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((10000 + RANDOM % (eph_low - 10000)))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  die "no free port"
}

median() {
  sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2];
                 else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

# field NAME FILE: the value after NAME on the file's matching line.
field() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}' "$2" | tail -n 1; }

wait_line() { # wait_line PATTERN FILE SECONDS
  local end=$((SECONDS + $3))
  until grep -q "$1" "$2" 2>/dev/null; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.05
  done
}

# start_server IMPL MODE ARGS...: runs bench_srv_IMPL MODE PORT ARGS... in the background on a
# free port (set in $port), waits for "ready"; tries three ports in case another process takes
# the one probed.
start_server() {
  local impl="$1" mode="$2"; shift 2
  for _ in 1 2 3; do
    port=$(free_port)
    # Not under timeout(1): server_pid must be the server itself (its RSS and CPU are read).
    "$bin/bench_srv_$impl" "$mode" "$port" "$@" >"$tmp/srv.out" 2>"$tmp/srv.err" &
    server_pid=$!
    wait_line '^ready' "$tmp/srv.out" 10 && return
    stop_server
  done
  cat "$tmp/srv.err" >&2
  die "$impl did not start"
}

stop_server() {
  kill "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null
  server_pid=""
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# CPU seconds (user + system) of a process so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }

# ---- (a) fan-out ----------------------------------------------------------------------------
fanout_once() { # IMPL -> appends "msgs_per_s cpu_per_million client_cpu" to $tmp/fan.IMPL
  local impl="$1" extra=()
  [ "$impl" = layer ] && extra=("$fan_threads")
  start_server "$impl" fanout "$clients" "$messages" "$size" "${extra[@]}"
  timeout 120 "$bin/bench_ws_client" recv 127.0.0.1 "$port" "$clients" >"$tmp/cli.out" \
    2>"$tmp/cli.err" || { cat "$tmp/cli.err" "$tmp/srv.err" >&2; die "fan-out client failed ($impl)"; }
  wait "$server_pid"; server_pid=""
  local got wall scpu ccpu
  got=$(field messages "$tmp/cli.out"); wall=$(field wall_s "$tmp/cli.out")
  ccpu=$(field client_cpu_s "$tmp/cli.out"); scpu=$(field server_cpu_s "$tmp/srv.out")
  [ "$got" = $((clients * messages)) ] || die "$impl: $got of $((clients * messages)) messages"
  awk -v g="$got" -v w="$wall" -v s="$scpu" -v c="$ccpu" \
    'BEGIN {printf "%.0f %.3f %.3f\n", g / w, s / g * 1e6, c}' >>"$tmp/fan.$impl"
}

# ---- (b) handshakes, (c) idle memory, (d) wrk: one serve-mode server per run -----------------
serve_once() { # IMPL
  local impl="$1" threads=0
  [ "$impl" = civetweb ] && threads=$((idle + 64))
  start_server "$impl" serve "$threads"
  sleep 0.3
  # (c) first, on a fresh process: RSS before and with $idle idle WebSockets.
  local rss0 rss1 fifo="$tmp/hold"
  rss0=$(rss_kib "$server_pid")
  rm -f "$fifo"; mkfifo "$fifo"
  timeout 120 "$bin/bench_ws_client" idle 127.0.0.1 "$port" "$idle" <"$fifo" >"$tmp/idle.out" \
    2>"$tmp/idle.err" &
  local idle_pid=$!
  exec 7>"$fifo"
  wait_line '^idle' "$tmp/idle.out" 60 || { cat "$tmp/idle.err" >&2; die "$impl: idle connections"; }
  sleep 0.5
  rss1=$(rss_kib "$server_pid")
  exec 7>&-
  wait "$idle_pid"
  awk -v a="$rss0" -v b="$rss1" -v n="$idle" 'BEGIN {printf "%.0f %.1f\n", (b - a) * 1024 / n, b / 1024}' \
    >>"$tmp/idle.$impl"
  sleep 0.5
  # (b) handshakes/s and the server's CPU for them.
  local c0 c1
  c0=$(cpu_of "$server_pid")
  timeout 60 "$bin/bench_ws_client" handshake 127.0.0.1 "$port" 50 "$seconds" >"$tmp/hs.out" \
    2>"$tmp/hs.err" || die "$impl: handshake client failed"
  c1=$(cpu_of "$server_pid")
  awk -v h="$(field handshakes "$tmp/hs.out")" -v w="$(field wall_s "$tmp/hs.out")" \
    -v f="$(field failed "$tmp/hs.out")" -v c="$(awk -v a="$c0" -v b="$c1" 'BEGIN {print b - a}')" \
    'BEGIN {printf "%.0f %.1f %d\n", h / w, c / h * 1e6, f}' >>"$tmp/hs.$impl"
  # (d) wrk.
  timeout 60 wrk -t2 -c50 -d"${seconds}s" "http://127.0.0.1:$port/health" >"$tmp/wrk.out" 2>&1 ||
    die "$impl: wrk failed"
  local non2xx
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$tmp/wrk.out")
  [ -z "$non2xx" ] || die "$impl: wrk saw $non2xx non-2xx answers"
  awk '/^Requests\/sec:/ {printf "%.0f\n", $2}' "$tmp/wrk.out" >>"$tmp/wrk.$impl"
  stop_server
}

for r in $(seq 1 "$runs"); do
  for impl in layer civetweb; do
    echo "bench: run $r/$runs $impl" >&2
    fanout_once "$impl"
    serve_once "$impl"
  done
done

col() { cut -d' ' -f"$2" "$1" | median; }
spread() { cut -d' ' -f"$2" "$1" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "–" hi}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "n/a"; else printf "%.2f", a / b}'; }
row() { # LABEL FILE_STEM COLUMN
  local l c
  l=$(col "$tmp/$2.layer" "$3"); c=$(col "$tmp/$2.civetweb" "$3")
  echo "| $1 | $l ($(spread "$tmp/$2.layer" "$3")) | $c ($(spread "$tmp/$2.civetweb" "$3")) |" \
    "$(ratio "$l" "$c") |"
}

cores=$(nproc)
cat <<EOF
Measured $(date -u +%Y-%m-%d) on $(uname -m), $cores cores, $(uname -r); medians of $runs runs;
server and load client on the same machine (loopback). Each cell: median (min–max);
ratio = layer median / civetweb median.

| metric | layer | civetweb 1.15 | ratio |
|---|---|---|---|
$(row "(a) fan-out messages/s ($clients clients x $messages x ${size} B)" fan 1)
$(row "(a) server CPU s per million messages" fan 2)
$(row "(a) load client CPU s (whole run)" fan 3)
$(row "(b) WebSocket handshakes/s (50 in flight, ${seconds} s)" hs 1)
$(row "(b) server CPU µs per handshake" hs 2)
$(row "(b) failed upgrades" hs 3)
$(row "(c) RSS bytes per idle WebSocket ($idle open)" idle 1)
$(row "(c) server RSS MiB with $idle open" idle 2)
$(row "(d) GET /health requests/s (wrk -t2 -c50 ${seconds} s)" wrk 1)
EOF
echo
echo "Layer: $fan_threads loop(s) in fan-out, one loop per core in (b)-(d); civetweb: one worker"
echo "thread per connection ($((clients + 16)) in (a), $((idle + 64)) in (b)-(d))."

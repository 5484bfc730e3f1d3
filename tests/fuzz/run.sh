#!/usr/bin/env bash
# Builds every libFuzzer target with clang (ASan + UBSan) and runs each for a bounded time.
#
# For each target fuzz_<name>: first every file in tests/fuzz/regress/<name>/ is replayed (a
# crash any run ever found must keep passing), then the fuzzer runs for FUZZ_SECONDS (default 60)
# from the seeds in tests/fuzz/corpus/<name>/ (or tests/fuzz/corpus/ when the target has no
# directory of its own). New inputs go to a scratch directory, so the seed corpus in git only
# changes by hand. A crash leaves its input in $FUZZ_ARTIFACTS (default build-fuzz/artifacts):
# copy it into tests/fuzz/regress/<name>/, fix the bug, and it is replayed from then on.
#
# Environment: FUZZ_SECONDS, FUZZ_BUILD (default build-fuzz), FUZZ_TARGETS (names, default all),
# FUZZ_ARTIFACTS. Exit status: 0 when every replay and every run is clean.
set -uo pipefail
cd "$(dirname "$0")/../.."

seconds="${FUZZ_SECONDS:-60}"
build="${FUZZ_BUILD:-build-fuzz}"
artifacts="${FUZZ_ARTIFACTS:-$build/artifacts}"

if [ ! -f "$build/build.ninja" ]; then
  CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args=-fsanitize=fuzzer-no-link || exit 1
fi
# Only the fuzz targets (and what they link) need building.
targets=$(ninja -C "$build" -t targets all 2>/dev/null | grep -o '^tests/fuzz/fuzz_[A-Za-z0-9_]*:' |
  tr -d ':' | sort -u)
[ -n "$targets" ] || { echo "fuzz: no targets configured"; exit 1; }
# shellcheck disable=SC2086
ninja -C "$build" $targets || exit 1

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
mkdir -p "$artifacts"
status=0
for t in $targets; do
  name="${t#tests/fuzz/fuzz_}"
  if [ -n "${FUZZ_TARGETS:-}" ] && ! grep -qw "$name" <<<"$FUZZ_TARGETS"; then
    continue
  fi
  bin="$build/$t"
  regress="tests/fuzz/regress/$name"
  seeds="tests/fuzz/corpus/$name"
  [ -d "$seeds" ] || seeds="tests/fuzz/corpus"
  if compgen -G "$regress/*" >/dev/null; then
    echo "fuzz: $name: replaying $(find "$regress" -type f | wc -l) regression inputs"
    if ! "$bin" -runs=1 "$regress"/* >"$artifacts/$name.regress.log" 2>&1; then
      echo "fuzz: $name: a regression input fails again; see $artifacts/$name.regress.log"
      tail -n 30 "$artifacts/$name.regress.log"
      status=1
      continue
    fi
  fi
  work=$(mktemp -d)
  echo "fuzz: $name: ${seconds}s from $seeds"
  if ! "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$artifacts/$name-" "$work" "$seeds" >"$artifacts/$name.log" 2>&1; then
    echo "fuzz: $name: FAILED; input saved under $artifacts/$name-*; log $artifacts/$name.log"
    tail -n 40 "$artifacts/$name.log"
    status=1
  else
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$artifacts/$name.log" |
      sed "s/^/fuzz: $name: /"
  fi
  rm -rf "$work"
done
exit "$status"

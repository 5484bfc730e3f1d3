#!/usr/bin/env bash
# End to end, as a user runs it: deploy/local/astro starts the whole platform (private redis +
# PostgreSQL in a temporary state directory, on free ports, binaries of this build), a broadcast
# WebSocket subscribes, astro-produce sends the abc-pairs pattern through ingest, and then:
#   - the producer's ids are the documented ones (reproducible seed) and all were acked;
#   - every expected integrated event (exact ids, computed here from the documented derivation)
#     arrives on the broadcast WebSocket, is served by the query API and sits in PostgreSQL,
#     and the mono events sit in PostgreSQL too;
#   - `down` leaves no process behind.
# Needs ASTRO_BIN_DIR (the meson build root) and ASTRO_SRC (the source root): meson sets both.
set -uo pipefail
SRC=${ASTRO_SRC:?}
BIN=${ASTRO_BIN_DIR:?}
HELPER=$SRC/tests/integration/e2e_helper.py
KEYS=20
SEED=$((RANDOM * 32768 + RANDOM))
STATE=$(mktemp -d /tmp/astro-e2e.XXXXXX)
WORK=$STATE/e2e
mkdir -p "$WORK"
fails=0
listener=""

ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

cleanup() {
  [ -n "$listener" ] && kill "$listener" 2>/dev/null
  ASTRO_STATE_DIR=$STATE "$SRC/deploy/local/astro" down >/dev/null 2>&1
  rm -rf "$STATE"
}
trap cleanup EXIT

# Ten consecutive free loopback ports.
base=$(python3 - <<'PY'
import random, socket
for _ in range(200):
    b = random.randrange(20000, 60000)
    socks = []
    try:
        for p in range(b, b + 10):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(b); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
)
export ASTRO_STATE_DIR=$STATE ASTRO_PORT_BASE=$base ASTRO_BIN_DIR=$BIN ASTRO_DEMO=0 ASTRO_PARTITIONS=4
P_PG=$((base + 1)) P_INGEST=$((base + 2)) P_QUERY=$((base + 7)) P_BCAST=$((base + 8))

if ! timeout 180 "$SRC/deploy/local/astro" up >"$WORK/up.log" 2>&1; then
  cat "$WORK/up.log"
  echo "FAIL: deploy/local/astro up"
  exit 1
fi
ok "platform up (ports $base..$((base + 8)), state $STATE)"
for svc in ingest leaflet-1 leaflet-2 archiver-1 archiver-2 query broadcast; do
  [ -s "$STATE/run/$svc.pid" ] || bad "$svc was not started (not in the build?)"
done
KEY=$(cat "$STATE/api_key")
python3 "$HELPER" expect "$SEED" "$KEYS" "$WORK/mono.expected" "$WORK/multi.expected"

# Subscribe before producing, so live delivery (not backfill) is what is checked.
python3 "$HELPER" listen "ws://127.0.0.1:$P_BCAST/stream/ws?stream=multi&api_key=$KEY" \
  "$WORK/ready" "$WORK/multi.expected" 60 "$WORK/multi.ws" >"$WORK/listen.log" 2>&1 &
listener=$!
for _ in $(seq 100); do [ -f "$WORK/ready" ] && break; sleep 0.1; done
[ -f "$WORK/ready" ] && ok "broadcast WebSocket subscribed" || bad "no subscribed message on broadcast"

out=$(timeout 60 "$BIN/services/produce/astro-produce" --url "ws://127.0.0.1:$P_INGEST/stream" \
      --api-key "$KEY" --pattern abc-pairs --keys "$KEYS" --count $((3 * KEYS)) --rate 200 \
      --seed "$SEED" --ids-out "$WORK/mono.sent" --quiet 2>&1)
rc=$?
echo "$out"
[ $rc -eq 0 ] && grep -q "acked $((3 * KEYS)) (duplicates 0), refused 0" <<<"$out" &&
  ok "producer: all $((3 * KEYS)) events acked" || bad "producer exit $rc"
cmp -s "$WORK/mono.sent" "$WORK/mono.expected" && ok "producer ids are the documented uuid5 ids" ||
  bad "producer ids differ from the documented derivation"

wait "$listener" && ok "all $((2 * KEYS)) integrated events arrived on the broadcast WebSocket" ||
  bad "broadcast: $(cat "$WORK/listen.log")"
listener=""

# Query API: every expected multi id, polled until archived (archiver -> PostgreSQL).
missing=0
for id in $(cat "$WORK/multi.expected"); do
  found=0
  for _ in $(seq 150); do
    body=$(curl -s -H "X-API-Key: $KEY" "http://127.0.0.1:$P_QUERY/events/multi/$id")
    if [ "$(jq -r .event_id <<<"$body" 2>/dev/null)" = "$id" ]; then found=1; break; fi
    sleep 0.2
  done
  [ $found = 1 ] || { missing=$((missing + 1)); echo "query: $id: $body"; }
done
[ $missing = 0 ] && ok "query API serves all $((2 * KEYS)) integrated events by id" ||
  bad "query API: $missing integrated events missing"
rule=$(curl -s -H "X-API-Key: $KEY" "http://127.0.0.1:$P_QUERY/events/multi/$(head -1 "$WORK/multi.expected")" |
       jq -r '.correlation_rule + " " + (.source_events | length | tostring)')
[ "$rule" = "type_A_and_B_within_window 2" ] && ok "first integrated event: rule and 2 sources" ||
  bad "first integrated event: got \"$rule\""

# PostgreSQL: exactly the expected rows, once each.
psql_q() {
  local pgbin
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$pgbin/psql" -h 127.0.0.1 -p "$P_PG" -U astro -d astro -Atc "$1"
  else "$pgbin/psql" -h 127.0.0.1 -p "$P_PG" -U astro -d astro -Atc "$1"; fi
}
in_list() { cut -d' ' -f1 "$1" | sed "s/.*/'&'/" | paste -sd, -; }
n=$(psql_q "SELECT count(*) FROM multi_events WHERE event_id::text IN ($(in_list "$WORK/multi.expected"))")
[ "$n" = $((2 * KEYS)) ] && ok "PostgreSQL holds the $n integrated events" || bad "multi_events: $n rows"
n=$(psql_q "SELECT count(*) FROM mono_events WHERE event_id::text IN ($(in_list "$WORK/mono.expected"))")
[ "$n" = $((3 * KEYS)) ] && ok "PostgreSQL holds the $n mono events" || bad "mono_events: $n rows"

# down: nothing of ours may be left.
pids=$(cat "$STATE"/run/*.pid 2>/dev/null)
pgpid=$(head -1 "$STATE/pg/postmaster.pid" 2>/dev/null)
timeout 120 "$SRC/deploy/local/astro" down >"$WORK/down.log" 2>&1 || bad "down failed: $(cat "$WORK/down.log")"
left=""
for p in $pids $pgpid; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
[ -z "$left" ] && ok "down: no process left" || bad "down left processes:$left"
grep -q SIGKILL "$WORK/down.log" && bad "down had to SIGKILL: $(grep SIGKILL "$WORK/down.log")"

# Sanitizer builds: any report in a service log (leaks at exit included) is a failure.
san=$(grep -h "AddressSanitizer\|LeakSanitizer\|runtime error:" "$STATE"/logs/*.log 2>/dev/null)
if [ -n "$san" ]; then
  bad "sanitizer report in the service logs"
  grep -h -A20 "AddressSanitizer\|LeakSanitizer\|runtime error:" "$STATE"/logs/*.log | head -60
fi

echo "e2e: $fails failure(s)"
[ $fails -eq 0 ]

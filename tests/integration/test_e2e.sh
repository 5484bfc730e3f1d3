#!/usr/bin/env bash
# End to end, as a user runs it: deploy/local/astro starts the whole platform (private redis +
# PostgreSQL in a temporary state directory, on free ports, binaries of this build), a broadcast
# WebSocket subscribes, astro-produce sends the abc-pairs pattern through ingest, and then:
#   - the producer's ids are the documented ones (reproducible seed) and all were acked;
#   - every expected integrated event (exact ids, computed here from the documented derivation)
#     arrives on the broadcast WebSocket, is served by the query API and sits in PostgreSQL,
#     and the mono events sit in PostgreSQL too;
#   - trades from astro-produce become 1s candles and indicators (issue 9) in PostgreSQL that
#     equal a recomputation in SQL from the archived trades, and the query API serves them;
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
# The default rules with the trade candles on a 1 s timeframe (so they close within the test)
# and short indicators (so they are ready after three candles).
sed -e 's/^candles trade .*/candles trade timeframes 1s 1m volume volume/' \
    -e 's/^indicators .*/indicators sma 3 ema 3 rsi 3/' "$SRC/deploy/rules/default.rules" >"$WORK/e2e.rules"
grep -q '^candles trade timeframes 1s' "$WORK/e2e.rules" || { echo "FAIL: no candles line to adapt"; exit 1; }
export ASTRO_RULES_FILE=$WORK/e2e.rules
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

# Candles: trades through ingest -> leaflet (1s candles) -> archiver -> PostgreSQL -> query API.
# The same seed as the abc-pairs run: the pattern is part of each id, so none is a duplicate.
NTRADES=600
out=$(timeout 60 "$BIN/services/produce/astro-produce" --url "ws://127.0.0.1:$P_INGEST/stream" \
      --api-key "$KEY" --pattern trades --keys 3 --count $NTRADES --rate 200 --seed "$SEED" \
      --quiet 2>&1)
rc=$?
[ $rc -eq 0 ] && grep -q "acked $NTRADES (duplicates 0), refused 0" <<<"$out" &&
  ok "producer: $NTRADES trades acked" || bad "trades producer exit $rc: $out"
# Every trade ends up in a closed 1s candle once the idle watermark passes the last second.
n=""
for _ in $(seq 150); do
  n=$(psql_q "SELECT coalesce(sum(trades), 0) FROM candles WHERE event_type = 'trade' AND \"interval\" = '1s'")
  [ "$n" = "$NTRADES" ] && break
  sleep 0.2
done
[ "$n" = "$NTRADES" ] && ok "1s candles in PostgreSQL count all $NTRADES trades" ||
  bad "1s candles count $n trades, want $NTRADES"
# The candles equal what SQL computes from the archived trades: count, high, low, volume (open
# and close depend on the stream order of equal timestamps: the unit tests cover them).
mism=$(psql_q "WITH t AS (
    SELECT key, date_trunc('second', ts) AS b, count(*) AS n, max(value) AS hi, min(value) AS lo,
           sum(coalesce((metadata->>'volume')::float8, 1)) AS vol
    FROM mono_events WHERE event_type = 'trade' GROUP BY 1, 2)
  SELECT count(*) FROM t FULL JOIN (SELECT * FROM candles WHERE event_type = 'trade'
                                    AND \"interval\" = '1s') k
    ON k.key = t.key AND k.bucket_start = t.b
  WHERE k.key IS NULL OR t.key IS NULL OR k.trades <> t.n OR k.high <> t.hi OR k.low <> t.lo
     OR abs(k.volume - t.vol) > 1e-9")
[ "$mism" = 0 ] && ok "every 1s candle equals the SQL recomputation from mono_events" ||
  bad "$mism candles differ from the SQL recomputation"
# sma_3 at each candle = the mean of its close and the two before (once 3 candles exist).
read -r sma_n sma_bad <<<"$(psql_q "WITH c AS (
    SELECT key, bucket_start, avg(close) OVER w AS sma, count(*) OVER w AS n
    FROM candles WHERE event_type = 'trade' AND \"interval\" = '1s'
    WINDOW w AS (PARTITION BY key ORDER BY bucket_start ROWS 2 PRECEDING))
  SELECT count(*), count(*) FILTER (WHERE abs(i.value - c.sma) > 1e-9 * abs(c.sma))
  FROM c JOIN indicators i ON i.key = c.key AND i.ts = c.bucket_start AND i.\"interval\" = '1s'
   AND i.event_type = 'trade' AND i.name = 'sma_3' WHERE c.n = 3 AND i.ready" | tr '|' ' ')"
[ "${sma_n:-0}" -gt 0 ] && [ "$sma_bad" = 0 ] && ok "sma_3 of $sma_n candles equals SQL's moving average" ||
  bad "sma_3: $sma_n ready values, $sma_bad differ from SQL"
want=$(psql_q "SELECT count(*) FROM candles WHERE key = 'SYM0' AND \"interval\" = '1s'")
body=$(curl -s -H "X-API-Key: $KEY" "http://127.0.0.1:$P_QUERY/candles/SYM0?timeframe=1s&limit=1000")
got=$(jq -r '.candles | length' <<<"$body" 2>/dev/null)
[ -n "$want" ] && [ "$want" -gt 0 ] && [ "$got" = "$want" ] &&
  ok "query API serves the $got 1s candles of SYM0" || bad "query /candles/SYM0: $got of $want: ${body:0:300}"

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

#!/usr/bin/env bash
# The flash-sale benchmark in one command (make bench): brings the native
# stack up (scripts/stack.sh), builds flashsale and flashbench, migrates,
# starts `flashsale serve` with rate limits raised for a single load source
# (unless something already answers /readyz on the port) and the inventory
# consumer (when the binary has one and none runs), then runs flashbench:
# ceilings, the flash sale, verification, report. Stops what it started.
#
# Usage: scripts/bench.sh [flashbench flags...]     e.g. --rate 20000 --duration 30s
# Every flashbench flag may also be given as FLASHBENCH_<FLAG> in the
# environment (FLASHBENCH_RATE=20000); flags given here win over the
# defaults below. Script settings:
#   BENCH_PORT=18080       port of the service under test
#   BENCH_CEILINGS=1       measure the ceilings first (0: skip)
#   BENCH_CONSUMERS=auto   the consumers run inside serve when it has consumers-enabled; else start
#                          `flashsale consume inventory` if available and not running (0: never)
#   BENCH_OUT=dir          report directory (default bench-results/<timestamp>)
#   BENCH_OFF=1            with the ceilings, when this script starts the service on fresh stores: also
#                          start a second serve with the relay and the consumers off (port BENCH_PORT+2,
#                          databases flashbench_off_*, Redis prefix flashbench-off) for the baseline of
#                          their cost (issue 12; about 10 s more) (0: not)
#   The service's debug listener (/metrics, /debug/pprof) is BENCH_DEBUG_PORT (BENCH_PORT+1) when this
#   script starts it: flashbench reads the group commit's latency and serve's CPU profile there; the
#   relay-off service listens on BENCH_OFF_PORT (BENCH_PORT+2).
#   BENCH_STACK=scripts/stack.sh  the stack script; BENCH_STACK_CMD=up (env: only read the settings of a
#                          stack already running, e.g. the one of another checkout, and never start one)
#   BENCH_FRESH=1          when this script starts the service: give the run databases of its own
#                          (flashbench_0..N-1, dropped and recreated), Redis keys (prefix flashbench,
#                          wiped), its own topics and consumer groups, so what earlier runs left (orders whose payment window closes,
#                          a ledger consumer still catching up) does not load the machine (0: use
#                          FLASHSALE_DATABASE_URLS, the topic and the groups as they are)
# Exit status: flashbench's (0 every check passed, 1 a check failed, 2 the run failed).
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PORT="${BENCH_PORT:-18080}"
CEILINGS="${BENCH_CEILINGS:-1}"
CONSUMERS="${BENCH_CONSUMERS:-auto}"
FRESH="${BENCH_FRESH:-1}"
OFF="${BENCH_OFF:-1}"
DEBUG_PORT="${BENCH_DEBUG_PORT:-$((PORT + 1))}"
OFF_PORT="${BENCH_OFF_PORT:-$((PORT + 2))}"
OUT="${BENCH_OUT:-bench-results/$(date +%Y%m%d-%H%M%S)}"
export FLASHSALE_JWT_SECRET="${FLASHSALE_JWT_SECRET:-dev-secret-change-me-0123456789}"

say() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 2; }

ready() { bin/flashbench ready "http://127.0.0.1:${1:-$PORT}" 2>/dev/null; }

mkdir -p "$OUT"
T0=$SECONDS

say "stack up"
STACK="${BENCH_STACK:-scripts/stack.sh}"
# The assignment, not eval, carries the stack's exit status: a stack that
# did not come up must stop the run here, not at the first missing setting.
STACK_ENV="$("$STACK" "${BENCH_STACK_CMD:-up}")" || die "the stack did not come up ($STACK ${BENCH_STACK_CMD:-up})"
eval "$STACK_ENV"

# fresh_run points the service at databases, topics and consumer groups of
# this run alone. Earlier runs leave work behind on the dev databases (their
# orders expire 15 min later, each expiry an event the ledger applies), and
# that work would be measured as part of this run's ceilings and peaks.
fresh_run() {
  local run="$1"
  ORIG_DATABASE_URLS="$FLASHSALE_DATABASE_URLS"
  FLASHSALE_DATABASE_URLS="$(fresh_dbs flashbench "$ORIG_DATABASE_URLS")"
  export FLASHSALE_DATABASE_URLS
  # The new databases count sales from 1 again: keys an earlier run left
  # under the same sale ids would be taken for this run's.
  export FLASHSALE_REDIS_PREFIX=flashbench
  wipe_redis flashbench
  WIPE_AT_EXIT+=(flashbench)
  export FLASHSALE_KAFKA_TOPIC="flashbench.$run.orders"
  export FLASHSALE_DEAD_LETTER_TOPIC="flashbench.$run.orders.dlq"
  export FLASHSALE_CONSUMER_GROUP_PREFIX="flashbench-$run"
}

# fresh_dbs drops and recreates PREFIX_0..N-1, one per URL of the list, and
# prints their URLs.
fresh_dbs() {
  local prefix="$1" urls=() u db i=0
  IFS=, read -ra list <<<"$2"
  for u in "${list[@]}"; do
    db="${prefix}_$i"
    psql -X -q -v ON_ERROR_STOP=1 "$(db_url "$u" postgres)" \
      -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
    urls+=("$(db_url "$u" "$db")")
    i=$((i + 1))
  done
  (IFS=,; echo "${urls[*]}")
}

# wipe_redis unlinks every key under PREFIX: on every Redis node.
wipe_redis() {
  local u
  IFS=, read -ra list <<<"$FLASHSALE_REDIS_ADDRS"
  for u in "${list[@]}"; do
    redis-cli -h "${u%:*}" -p "${u##*:}" --scan --pattern "$1:*" \
      | xargs -r -n 1000 redis-cli -h "${u%:*}" -p "${u##*:}" unlink >/dev/null
  done
}

# start_off_service starts a second serve with the relay and the consumers
# off, on databases, a Redis prefix, topics and groups of its own: its order
# peak is the baseline their cost is measured against (issue 12). Its
# orders never reach the first service's relay or the checks.
start_off_service() {
  local urls
  urls="$(fresh_dbs flashbench_off "$ORIG_DATABASE_URLS")"
  wipe_redis flashbench-off
  WIPE_AT_EXIT+=(flashbench-off)
  FLASHSALE_DATABASE_URLS="$urls" bin/flashsale migrate up
  say "starting flashsale serve with relay and consumers off on 127.0.0.1:$OFF_PORT (log $OUT/serve-off.log)"
  FLASHSALE_DATABASE_URLS="$urls" FLASHSALE_REDIS_PREFIX=flashbench-off \
    FLASHSALE_KAFKA_TOPIC="$FLASHSALE_KAFKA_TOPIC.off" FLASHSALE_DEAD_LETTER_TOPIC="$FLASHSALE_DEAD_LETTER_TOPIC.off" \
    FLASHSALE_CONSUMER_GROUP_PREFIX="$FLASHSALE_CONSUMER_GROUP_PREFIX-off" \
    bin/flashsale serve --http-addr "127.0.0.1:$OFF_PORT" --migrate-on-start=false \
    --ip-rate 1000000 --ip-burst 1000000 --relay-enabled=false --consumers-enabled=false \
    --log-level warn >"$OUT/serve-off.log" 2>&1 &
  OFF_PID=$!
  STARTED+=("$OFF_PID")
  for _ in $(seq 1 120); do
    ready "$OFF_PORT" && return 0
    kill -0 "$OFF_PID" 2>/dev/null || break
    sleep 0.25
  done
  tail -n 20 "$OUT/serve-off.log" >&2
  say "the relay-off service did not start: the relay + consumers cost is not measured"
  OFF_PID=""
}

# db_url replaces the database name of a postgres:// URL.
db_url() { sed -E "s|^(postgres(ql)?://[^/]*)/[^?]*|\1/$2|" <<<"$1"; }

say "build"
go build -o bin/flashsale ./cmd/flashsale
go build -o bin/flashbench ./cmd/flashbench

say "migrate"
bin/flashsale migrate up

STARTED=()
stop_started() {
  local pid
  for pid in "${STARTED[@]}"; do
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}
# A fresh run's Redis keys go when it ends, once the services are stopped:
# its buyers' idempotency keys live for a day, and millions of them would
# make every later SCAN of the node (the tests' cleanup of their own prefix,
# the next run's wipe) walk them all.
WIPE_AT_EXIT=()
cleanup() {
  stop_started
  local p
  for p in "${WIPE_AT_EXIT[@]}"; do wipe_redis "$p"; done
}
trap cleanup EXIT

SERVICE_PID=""
DEBUG_URL=""
OFF_PID=""
RUN_NOTE="the dev databases, topic and consumer groups (FLASHSALE_*)"
if ! ready && [[ "$FRESH" != 0 ]]; then
  fresh_run "$(date +%Y%m%d%H%M%S)"
  RUN_NOTE="fresh databases flashbench_*, Redis prefix flashbench (wiped), topic $FLASHSALE_KAFKA_TOPIC, groups $FLASHSALE_CONSUMER_GROUP_PREFIX-*"
  say "this run's own stores: $RUN_NOTE"
  bin/flashsale migrate up
fi
if ready; then
  SERVICE_PID="$(ss -Hltnp "sport = :$PORT" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n1)"
  say "a service already answers on :$PORT (pid ${SERVICE_PID:-unknown}); using it as it is"
else
  say "starting flashsale serve on 127.0.0.1:$PORT (log $OUT/serve.log)"
  # All the load comes from 127.0.0.1: the per-IP limit would refuse it.
  bin/flashsale serve --http-addr "127.0.0.1:$PORT" --debug-addr "127.0.0.1:$DEBUG_PORT" --migrate-on-start=false \
    --ip-rate 1000000 --ip-burst 1000000 --log-level warn >"$OUT/serve.log" 2>&1 &
  SERVICE_PID=$!
  STARTED+=("$SERVICE_PID")
  for _ in $(seq 1 120); do
    ready && break
    kill -0 "$SERVICE_PID" 2>/dev/null || { tail -n 20 "$OUT/serve.log" >&2; die "flashsale serve exited"; }
    sleep 0.25
  done
  ready || { tail -n 20 "$OUT/serve.log" >&2; die "flashsale serve never became ready"; }
  DEBUG_URL="http://127.0.0.1:$DEBUG_PORT"
  OFF_PID=""
  [[ "$OFF" != 0 && "$CEILINGS" == 1 && -n "${ORIG_DATABASE_URLS:-}" ]] && start_off_service
fi

CONSUMER_PID=""
if [[ "$CONSUMERS" != 0 ]] && bin/flashsale --help 2>&1 | grep -q -- '-consumers-enabled'; then
  say "the event consumers run inside flashsale serve (consumers-enabled)"
elif [[ "$CONSUMERS" != 0 ]] && bin/flashsale --help 2>&1 | grep -q 'consume inventory'; then
  CONSUMER_PID="$(pgrep -f 'flashsale consume inventory' | head -n1 || true)"
  if [[ -n "$CONSUMER_PID" ]]; then
    say "the inventory consumer already runs (pid $CONSUMER_PID)"
  else
    say "starting flashsale consume inventory (log $OUT/consume-inventory.log)"
    bin/flashsale consume inventory --migrate-on-start=false --log-level warn >"$OUT/consume-inventory.log" 2>&1 &
    CONSUMER_PID=$!
    STARTED+=("$CONSUMER_PID")
  fi
fi

# Processes whose CPU and memory the report shows.
DBNAMES="$(tr ',' '\n' <<<"$FLASHSALE_DATABASE_URLS" | sed -n 's|.*/\([^/?]*\)?.*|\1|p; s|.*/\([^/?]*\)$|\1|p' | paste -sd, -)"
ARGS=(--url "http://127.0.0.1:$PORT" --out "$OUT")
[[ -n "$SERVICE_PID" ]] && ARGS+=(--service-pid "$SERVICE_PID")
[[ -n "$DEBUG_URL" ]] && ARGS+=(--debug-url "$DEBUG_URL")
[[ -n "$OFF_PID" ]] && ARGS+=(--off-url "http://127.0.0.1:$OFF_PORT" --off-service-pid "$OFF_PID")
[[ -n "$CONSUMER_PID" ]] && ARGS+=(--proc "consume-inventory=$CONSUMER_PID")
while read -r name _ _ _ pid; do
  [[ -n "${pid:-}" ]] || continue
  case "$name" in
    postgres)
      # The whole cluster (other users of the stack included), and only the
      # backends connected to the service's databases.
      ARGS+=(--proc "postgres (cluster)=$pid+" --proc "postgres (service dbs)=$pid+$DBNAMES") ;;
    redis1|kafka) ARGS+=(--proc "$name=$pid") ;;
  esac
done < <("$STACK" status 2>/dev/null | sed -n 's/^\([a-z0-9]*\) *up *[^ ]* *\(pid\) \([0-9]*\)$/\1 x x x \3/p')
[[ -n "${FLASHSALE_CONSUMER_GROUP_PREFIX:-}" ]] && ARGS+=(--ledger-group "$FLASHSALE_CONSUMER_GROUP_PREFIX-inventory")
[[ "$CEILINGS" == 1 ]] && ARGS+=(--ceilings)
KAFKA_VERSION="$(ls "$(dirname "$STACK")/../.stack/kafka/libs" 2>/dev/null | sed -n 's/^kafka-clients-\(.*\)\.jar$/\1/p' | head -n1 || true)"
[[ -n "$KAFKA_VERSION" ]] && ARGS+=(--note "kafka=$KAFKA_VERSION")
ARGS+=(--note "stack=native, scripts/stack.sh (PostgreSQL, 3 Redis, Kafka on loopback)")
if COMMIT="$(git rev-parse --short HEAD 2>/dev/null)"; then
  git diff --quiet HEAD 2>/dev/null || COMMIT+=" + uncommitted changes"
  ARGS+=(--note "commit=$COMMIT")
fi
ARGS+=(--note "flashsale serve=127.0.0.1:$PORT, ip-rate/ip-burst 1000000, other settings default")
ARGS+=(--note "stores=$RUN_NOTE")

say "ready after $((SECONDS - T0))s; running flashbench ${ARGS[*]} $*"
rc=0
bin/flashbench "${ARGS[@]}" "$@" || rc=$?
say "done in $((SECONDS - T0))s (exit $rc)"
exit "$rc"

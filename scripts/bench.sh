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
# Exit status: flashbench's (0 every check passed, 1 a check failed, 2 the run failed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PORT="${BENCH_PORT:-18080}"
CEILINGS="${BENCH_CEILINGS:-1}"
CONSUMERS="${BENCH_CONSUMERS:-auto}"
OUT="${BENCH_OUT:-bench-results/$(date +%Y%m%d-%H%M%S)}"
export FLASHSALE_JWT_SECRET="${FLASHSALE_JWT_SECRET:-dev-secret-change-me-0123456789}"

say() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 2; }

ready() { bin/flashbench ready "http://127.0.0.1:$PORT" 2>/dev/null; }

mkdir -p "$OUT"
T0=$SECONDS

say "stack up"
eval "$(scripts/stack.sh up)"

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
trap stop_started EXIT

SERVICE_PID=""
if ready; then
  SERVICE_PID="$(ss -Hltnp "sport = :$PORT" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n1)"
  say "a service already answers on :$PORT (pid ${SERVICE_PID:-unknown}); using it as it is"
else
  say "starting flashsale serve on 127.0.0.1:$PORT (log $OUT/serve.log)"
  # All the load comes from 127.0.0.1: the per-IP limit would refuse it.
  bin/flashsale serve --http-addr "127.0.0.1:$PORT" --migrate-on-start=false \
    --ip-rate 1000000 --ip-burst 1000000 --log-level warn >"$OUT/serve.log" 2>&1 &
  SERVICE_PID=$!
  STARTED+=("$SERVICE_PID")
  for _ in $(seq 1 120); do
    ready && break
    kill -0 "$SERVICE_PID" 2>/dev/null || { tail -n 20 "$OUT/serve.log" >&2; die "flashsale serve exited"; }
    sleep 0.25
  done
  ready || { tail -n 20 "$OUT/serve.log" >&2; die "flashsale serve never became ready"; }
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
done < <(scripts/stack.sh status 2>/dev/null | sed -n 's/^\([a-z0-9]*\) *up *[^ ]* *\(pid\) \([0-9]*\)$/\1 x x x \3/p')
[[ "$CEILINGS" == 1 ]] && ARGS+=(--ceilings)
KAFKA_VERSION="$(ls .stack/kafka/libs 2>/dev/null | sed -n 's/^kafka-clients-\(.*\)\.jar$/\1/p' | head -n1)"
[[ -n "$KAFKA_VERSION" ]] && ARGS+=(--note "kafka=$KAFKA_VERSION")
ARGS+=(--note "stack=native, scripts/stack.sh (PostgreSQL, 3 Redis, Kafka on loopback)")
if COMMIT="$(git rev-parse --short HEAD 2>/dev/null)"; then
  git diff --quiet HEAD 2>/dev/null || COMMIT+=" + uncommitted changes"
  ARGS+=(--note "commit=$COMMIT")
fi
ARGS+=(--note "flashsale serve=127.0.0.1:$PORT, ip-rate/ip-burst 1000000, other settings default")

say "ready after $((SECONDS - T0))s; running flashbench ${ARGS[*]} $*"
rc=0
bin/flashbench "${ARGS[@]}" "$@" || rc=$?
say "done in $((SECONDS - T0))s (exit $rc)"
exit "$rc"

#!/usr/bin/env bash
# The flash sale across the multi-node topology (make bench-scale, issue 14):
# for each instance count (SCALE_COUNTS, default "1 2 3") it brings up
# scripts/scale.sh's topology with that many `flashsale serve` processes
# behind HAProxy, then runs flashbench twice through HAProxy:
#   sale    the flash sale (SCALE_STOCK units, SCALE_BUYERS buyers, open model
#           at SCALE_RATE/s), with every verification flashbench makes
#           (exactly-once units, events, ledger, every 201 durable)
#   orders  a closed run in which every request wins (stock far above the
#           demand), for each process's CPU per durable order
# and writes one table (report.md, report.json) over the counts, with each
# server's CPU per order: every serve, PostgreSQL 1 and 2 (their backends),
# each Redis Cluster master, the RedLock nodes, Kafka, HAProxy, the consumers.
# No ceilings are measured here (make bench has them); on 2 shared cores more
# instances are not faster: what each server costs per order is the point.
#
# Settings: SCALE_COUNTS="1 2 3" SCALE_STOCK=5000 SCALE_BUYERS=50000
#   SCALE_RATE=1000 SCALE_DURATION=10s SCALE_VUS=128 BENCH_OUT=dir
#   STACK_NAME / STACK_PORT_OFFSET as for scripts/scale.sh.
# The serve processes are restarted at the start so that they run with the
# benchmark's settings (per-IP limits raised: all the load comes from one IP).
# Exit status: 0 when every run passed its verification, 1 otherwise.
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
COUNTS="${SCALE_COUNTS:-1 2 3}"
STOCK="${SCALE_STOCK:-5000}"
BUYERS="${SCALE_BUYERS:-50000}"
RATE="${SCALE_RATE:-1000}"
DURATION="${SCALE_DURATION:-10s}"
VUS="${SCALE_VUS:-128}"
OUT="${BENCH_OUT:-bench-results/$(date +%Y%m%d-%H%M%S)-scale}"
export FLASHSALE_JWT_SECRET="${FLASHSALE_JWT_SECRET:-dev-secret-change-me-0123456789}"
export FLASHSALE_IP_RATE=1000000 FLASHSALE_IP_BURST=1000000 FLASHSALE_LOG_LEVEL=warn

say() { printf '[bench-scale] %s\n' "$*" >&2; }
die() { printf '[bench-scale] ERROR: %s\n' "$*" >&2; exit 2; }

mkdir -p "$OUT"
eval "$(scripts/stack.sh paths)"
SRUN="$STACK_DIR/scale/run"
pidof_file() { [[ -r "$1" ]] && head -n1 "$1" | tr -dc '0-9'; }

# Serve processes started earlier may run with other settings: stop them, so
# that `scale.sh up` starts them with this script's environment.
for f in "$SRUN"/serve-*.pid; do
  [[ -e "$f" ]] || continue
  pid="$(pidof_file "$f")"; [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  rm -f "$f"
done

go build -o bin/flashbench ./cmd/flashbench

# procs prints flashbench's --proc flags for every server of the topology.
procs() {
  local f name pid dbs
  for f in "$SRUN"/serve-*.pid "$SRUN"/consume-*.pid "$SRUN"/haproxy.pid "$SRUN"/cluster-*.pid; do
    [[ -e "$f" ]] || continue
    name="$(basename "$f" .pid)"; pid="$(pidof_file "$f")"
    [[ -n "$pid" ]] && printf -- '--proc\n%s=%s\n' "${name/cluster-/redis-cluster-}" "$pid"
  done
  dbs="flashsale_0,flashsale_1"
  pid="$(head -n1 "$PG_DATA/postmaster.pid")"; printf -- '--proc\npostgres-1=%s+%s\n' "$pid" "$dbs"
  pid="$(head -n1 "$(dirname "$PG_DATA")2/data/postmaster.pid")"; printf -- '--proc\npostgres-2=%s+%s\n' "$pid" "$dbs"
  scripts/stack.sh status 2>/dev/null | sed -n 's/^\(redis[123]\|kafka\) *up *[^ ]* *pid \([0-9]*\)$/--proc\n\1=\2/p'
}

rc=0
for n in $COUNTS; do
  say "topology with $n instances"
  SCALE_ENV="$(scripts/scale.sh up "$n")" || die "the topology with $n instances did not come up"
  eval "$SCALE_ENV"
  mapfile -t PROCS < <(procs)
  common=(--url "$FLASHSALE_SCALE_URL" --ledger-group "$FLASHSALE_CONSUMER_GROUP_PREFIX-inventory" "${PROCS[@]}"
    --note "topology=scripts/scale.sh up $n: HAProxy over $n serve, 2 PostgreSQL, Redis Cluster of 3 masters, 2 consume processes"
    --note "commit=$(git rev-parse --short HEAD)")
  say "n=$n: the flash sale"
  bin/flashbench "${common[@]}" --out "$OUT/n$n-sale" --stock "$STOCK" --buyers "$BUYERS" --rate "$RATE" \
    --duration "$DURATION" >"$OUT/n$n-sale.log" 2>&1 || rc=1
  tail -n 3 "$OUT/n$n-sale.log" >&2
  say "n=$n: durable orders, every request a winner"
  bin/flashbench "${common[@]}" --out "$OUT/n$n-orders" --model closed --vus "$VUS" --duration "$DURATION" \
    --stock 10000000 --buyers 300000 >"$OUT/n$n-orders.log" 2>&1 || rc=1
  tail -n 3 "$OUT/n$n-orders.log" >&2
done

scripts/bench-scale-report.sh "$OUT" $COUNTS >"$OUT/report.md"
say "report in $OUT/report.md (exit $rc)"
cat "$OUT/report.md"
exit "$rc"

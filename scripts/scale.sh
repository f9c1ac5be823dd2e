#!/usr/bin/env bash
# The multi-node topology of flashsale, on top of the stack of scripts/stack.sh
# (PostgreSQL 1, Redis nodes 1-3, Kafka), all native processes (no Docker):
#   PostgreSQL 2    127.0.0.1:55433   a second cluster (initdb as postgres, same binaries):
#                                     database flashsale_0 stays on PostgreSQL 1,
#                                     flashsale_1 lives here, so the shards (i mod 2) spread
#   Redis Cluster   127.0.0.1:46390-46392 (bus 56390-56392), 3 masters, no replicas:
#                                     stock, per-buyer limits, rate limits, idempotency claims
#                                     (FLASHSALE_STOCK_REDIS_ADDRS); nodes 1-3 stay for RedLock
#   Kafka topic     flashsale.scale.orders, 6 partitions
#   flashsale serve x N  127.0.0.1:58081..  (SCALE_INSTANCES, default 2), each its own process
#   flashsale consume inventory x 2   separate processes in one consumer group
#   HAProxy         127.0.0.1:58080   leastconn over the serve processes, GET /readyz health checks
#
# Usage: scripts/scale.sh up [N] | down | status | env
# `up` installs what is missing (haproxy, and what stack.sh installs), is idempotent (what
# runs stays), prints `export NAME=value` lines on stdout (also in STACK/scale/env) and its
# progress on stderr. `down` stops what `up` started here, base stack included; data is kept.
# STACK_NAME / STACK_PORT_OFFSET as for scripts/stack.sh: every port above shifts by the
# offset, so a named topology runs beside the default one. The cluster bus port is
# port + 10000 and must stay <= 65535, hence cluster ports below 55535.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_SH="$ROOT/scripts/stack.sh"
STACK_NAME="${STACK_NAME:-}"
if [[ -z "$STACK_NAME" ]]; then PORT_OFFSET=0; else PORT_OFFSET="${STACK_PORT_OFFSET:--30000}"; fi
[[ "$PORT_OFFSET" =~ ^-?[0-9]+$ ]] || { printf '[scale] ERROR: STACK_PORT_OFFSET must be a number\n' >&2; exit 2; }

# Where the base stack keeps its state (stack.sh paths), so the scale-out lives beside it.
eval "$("$STACK_SH" paths)"
SCALE="$STACK_DIR/scale"
SRUN="$SCALE/run"
SLOG="$LOG_DIR/scale"
BIN="$SCALE/bin/flashsale"

PG2_PORT=$((55433 + PORT_OFFSET))
PG2_DIR="$(dirname "$PG_DATA")2"  # beside the first cluster's directory: postgres can reach it too
PG2_DATA="$PG2_DIR/data"
CLUSTER_PORTS=($((46390 + PORT_OFFSET)) $((46391 + PORT_OFFSET)) $((46392 + PORT_OFFSET)))
LB_PORT=$((58080 + PORT_OFFSET))
TOPIC=flashsale.scale.orders
PARTITIONS=6
CONSUMERS=2
WAIT=30

say() { printf '[scale] %s\n' "$*" >&2; }
die() { printf '[scale] ERROR: %s\n' "$*" >&2; exit 1; }
fail() { local f="$1"; shift; printf '[scale] ERROR: %s\n' "$*" >&2; [[ -f "$f" ]] && tail -n 30 "$f" >&2; exit 1; }
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do ((SECONDS < deadline)) || return 1; sleep 0.5; done
}
# pid of a pid file if alive and its command line contains PATTERN (a reused pid is not ours).
live_pid() {
  local pid cmd
  [[ -r "$1" ]] || return 1
  pid="$(head -n1 "$1" | tr -dc '0-9')"; [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ "$cmd" == *"$2"* ]] && printf '%s\n' "$pid"
}
stop_pid() {
  local pid
  pid="$(live_pid "$1" "$2")" || { rm -f "$1"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  wait_until 15 bash -c "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null || true
  rm -f "$1"
}

need_haproxy() {
  command -v haproxy >/dev/null 2>&1 && return
  [[ $EUID -eq 0 ]] || die "haproxy is missing (apt-get install -y haproxy, as root)"
  say "apt-get install -y haproxy"
  # The package would start the system service; this topology runs its own instance.
  local policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; policy=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >&2 || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >&2; }
  ((policy)) && rm -f /usr/sbin/policy-rc.d
  command -v haproxy >/dev/null 2>&1 || die "haproxy install failed"
}

# ---------------------------------------------------------------- PostgreSQL 2
pg2_as() { (cd / && runuser -u postgres -- "$@"); }
pg2_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG2_PORT" -t 2 >/dev/null 2>&1; }
pg2_psql() { PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG2_PORT" -U postgres "$@"; }

start_pg2() {
  if live_pid "$PG2_DATA/postmaster.pid" "$PG2_DATA" >/dev/null; then
    say "postgres2: already running, port $PG2_PORT"
  else
    port_open "$PG2_PORT" && die "postgres2: port $PG2_PORT is in use by another process"
    mkdir -p "$PG2_DIR"; chown postgres:postgres "$PG2_DIR"; chmod 700 "$PG2_DIR"
    if [[ ! -s "$PG2_DATA/PG_VERSION" ]]; then
      say "postgres2: initdb $PG2_DATA"
      pg2_as "$PG_BIN/initdb" -D "$PG2_DATA" -U postgres -E UTF8 --locale=C --auth-local=trust --auth-host=trust \
        >"$SLOG/postgres2.initdb.log" 2>&1 || fail "$SLOG/postgres2.initdb.log" "postgres2: initdb failed"
    fi
    # The first cluster's settings, another port and socket directory.
    sed -e "s/^port = .*/port = $PG2_PORT/" -e "s|^unix_socket_directories = .*|unix_socket_directories = '$PG2_DIR'|" \
      "$PG_DATA/stack.conf" >"$PG2_DATA/stack.conf"
    grep -q "include_if_exists = 'stack.conf'" "$PG2_DATA/postgresql.conf" || echo "include_if_exists = 'stack.conf'" >>"$PG2_DATA/postgresql.conf"
    chown postgres:postgres "$PG2_DATA/stack.conf"
    touch "$PG2_DIR/postgres.log"; chown postgres:postgres "$PG2_DIR/postgres.log"
    say "postgres2: starting on 127.0.0.1:$PG2_PORT"
    pg2_as "$PG_BIN/pg_ctl" -D "$PG2_DATA" -l "$PG2_DIR/postgres.log" -w -t "$WAIT" start </dev/null >/dev/null 2>&1 8>&- \
      || fail "$PG2_DIR/postgres.log" "postgres2: pg_ctl start failed"
  fi
  wait_until "$WAIT" pg2_ready || fail "$PG2_DIR/postgres.log" "postgres2: not ready within ${WAIT}s"
  [[ "$(pg2_psql -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'flashsale'")" == 1 ]] \
    || pg2_psql -d postgres -c "CREATE ROLE flashsale LOGIN SUPERUSER" >/dev/null
  [[ "$(pg2_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'flashsale_1'")" == 1 ]] \
    || pg2_psql -d postgres -c "CREATE DATABASE flashsale_1 OWNER flashsale" >/dev/null
}

stop_pg2() {
  if live_pid "$PG2_DATA/postmaster.pid" "$PG2_DATA" >/dev/null; then
    say "postgres2: stopping"
    pg2_as "$PG_BIN/pg_ctl" -D "$PG2_DATA" -m fast -w -t 60 stop >/dev/null 2>&1 || die "postgres2: pg_ctl stop failed"
  fi
}

# ---------------------------------------------------------------- Redis Cluster
cluster_pidfile() { echo "$SRUN/cluster-$1.pid"; }
cluster_ok() { redis-cli -p "${CLUSTER_PORTS[0]}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

start_cluster() {
  local p dir
  for p in "${CLUSTER_PORTS[@]}"; do
    if live_pid "$(cluster_pidfile "$p")" "redis-server 127.0.0.1:$p" >/dev/null; then continue; fi
    port_open "$p" && die "redis cluster: port $p is in use by another process"
    dir="$SCALE/cluster/$p"; mkdir -p "$dir"
    cat >"$dir/redis.conf" <<EOF
# Written by scripts/scale.sh on every start; edit the script, not this file.
bind 127.0.0.1
port $p
protected-mode no
daemonize yes
pidfile $(cluster_pidfile "$p")
logfile $SLOG/cluster-$p.log
dir $dir
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 5000
save ""
appendonly yes
appendfsync everysec
EOF
    say "redis cluster: starting node 127.0.0.1:$p (bus $((p + 10000)))"
    redis-server "$dir/redis.conf" </dev/null >/dev/null 2>&1 8>&- || fail "$SLOG/cluster-$p.log" "redis-server $p failed"
    wait_until "$WAIT" bash -c "[[ \$(redis-cli -p $p ping 2>/dev/null) == PONG ]]" || fail "$SLOG/cluster-$p.log" "node $p did not answer"
  done
  # A node that kept its nodes.conf rejoins by itself; a new set is created once.
  if ! cluster_ok && [[ "$(redis-cli -p "${CLUSTER_PORTS[0]}" cluster info | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')" == 1 ]]; then
    say "redis cluster: creating 3 masters"
    redis-cli --cluster create "${CLUSTER_PORTS[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >"$SLOG/cluster-create.log" 2>&1 \
      || fail "$SLOG/cluster-create.log" "redis-cli --cluster create failed"
  fi
  wait_until "$WAIT" cluster_ok || fail "$SLOG/cluster-${CLUSTER_PORTS[0]}.log" "cluster_state not ok within ${WAIT}s"
}

stop_cluster() {
  local p
  for p in "${CLUSTER_PORTS[@]}"; do
    if live_pid "$(cluster_pidfile "$p")" "redis-server 127.0.0.1:$p" >/dev/null; then
      redis-cli -p "$p" shutdown >/dev/null 2>&1 || true
      stop_pid "$(cluster_pidfile "$p")" "redis-server 127.0.0.1:$p"
    fi
  done
}

# ---------------------------------------------------------------- flashsale processes
env_lines() {
  local addrs="" p
  for p in "${CLUSTER_PORTS[@]}"; do addrs+="${addrs:+,}127.0.0.1:$p"; done
  "$STACK_SH" env | grep -v FLASHSALE_DATABASE_URLS
  printf 'export FLASHSALE_DATABASE_URLS=%s\n' \
    "postgres://flashsale@127.0.0.1:$PG_PORT/flashsale_0?sslmode=disable,postgres://flashsale@127.0.0.1:$PG2_PORT/flashsale_1?sslmode=disable"
  printf 'export FLASHSALE_STOCK_REDIS_ADDRS=%s\n' "$addrs"
  printf 'export FLASHSALE_KAFKA_TOPIC=%s\n' "$TOPIC"
  printf 'export FLASHSALE_KAFKA_PARTITIONS=%s\n' "$PARTITIONS"
  printf 'export FLASHSALE_CONSUMER_GROUP_PREFIX=%s\n' flashsale-scale
  printf 'export FLASHSALE_DEAD_LETTER_TOPIC=%s\n' "$TOPIC.dlq"
  printf 'export FLASHSALE_SCALE_URL=%s\n' "http://127.0.0.1:$LB_PORT"
}

# launch NAME PATTERN CMD...: run a flashsale process in the background with the topology's env.
launch() {
  local name="$1"; shift
  if live_pid "$SRUN/$name.pid" "$BIN" >/dev/null; then say "$name: already running"; return; fi
  say "$name: $*"
  (eval "$(env_lines)"; export FLASHSALE_JWT_SECRET="${FLASHSALE_JWT_SECRET:-dev-secret-change-me-0123456789}"
    exec setsid "$BIN" "$@" </dev/null >>"$SLOG/$name.log" 2>&1 8>&-) &
  echo $! >"$SRUN/$name.pid"
}

instance_ready() { curl -fs -o /dev/null "http://127.0.0.1:$1/readyz"; }

start_service() {
  local n="$1" i port
  say "building flashsale"
  (cd "$ROOT" && go build -o "$BIN" ./cmd/flashsale) 8>&- || die "go build failed"
  (eval "$(env_lines)"; export FLASHSALE_JWT_SECRET="${FLASHSALE_JWT_SECRET:-dev-secret-change-me-0123456789}"
    "$BIN" migrate up >>"$SLOG/migrate.log" 2>&1) || fail "$SLOG/migrate.log" "flashsale migrate up failed"
  for ((i = 1; i <= n; i++)); do
    port=$((LB_PORT + i))
    launch "serve-$i" serve --http-addr "127.0.0.1:$port" --migrate-on-start=false --consumers-enabled=false
  done
  for ((i = 1; i <= CONSUMERS; i++)); do launch "consume-$i" consume inventory; done
  for ((i = 1; i <= n; i++)); do
    wait_until 60 instance_ready $((LB_PORT + i)) || fail "$SLOG/serve-$i.log" "serve-$i: /readyz not ready within 60s"
  done
  echo "$n" >"$SRUN/instances"
}

start_haproxy() {
  local n="$1" i cfg="$SCALE/haproxy.cfg"
  need_haproxy
  {
    printf '# Written by scripts/scale.sh on every start; edit the script, not this file.\n'
    printf 'global\n  maxconn 8000\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n'
    printf '  option http-keep-alive\n\nfrontend api\n  bind 127.0.0.1:%s\n  default_backend flashsale\n\n' "$LB_PORT"
    printf 'backend flashsale\n  balance leastconn\n  option httpchk GET /readyz\n  http-check expect status 200\n'
    for ((i = 1; i <= n; i++)); do
      printf '  server serve-%d 127.0.0.1:%d check inter 1s fall 2 rise 1\n' "$i" $((LB_PORT + i))
    done
  } >"$cfg"
  haproxy -c -f "$cfg" >/dev/null 2>&1 || fail "$cfg" "haproxy -c rejected $cfg"
  # The backend list depends on N: a running HAProxy is replaced.
  stop_pid "$SRUN/haproxy.pid" "haproxy -f $cfg"
  say "haproxy: 127.0.0.1:$LB_PORT over $n instances"
  (exec setsid haproxy -f "$cfg" -db </dev/null >>"$SLOG/haproxy.log" 2>&1 8>&-) &
  echo $! >"$SRUN/haproxy.pid"
  wait_until "$WAIT" bash -c "curl -fs -o /dev/null http://127.0.0.1:$LB_PORT/readyz" || fail "$SLOG/haproxy.log" "haproxy not answering"
}

stop_service() {
  local f
  stop_pid "$SRUN/haproxy.pid" "haproxy -f"
  for f in "$SRUN"/serve-*.pid "$SRUN"/consume-*.pid; do
    [[ -e "$f" ]] && say "stopping $(basename "$f" .pid)" && stop_pid "$f" "$BIN"
  done
  rm -f "$SRUN/instances"
}

# ---------------------------------------------------------------- commands
cmd_up() {
  local n="${1:-${SCALE_INSTANCES:-2}}" t0=$SECONDS
  [[ "$n" =~ ^[1-9][0-9]?$ ]] || die "instances must be 1-99, not '$n'"
  mkdir -p "$SRUN" "$SLOG" "$SCALE/bin"
  exec 8>"$SRUN/lock"; flock -w 600 8 || die "another scripts/scale.sh holds $SRUN/lock"
  "$STACK_SH" up >/dev/null 8>&-
  start_pg2
  start_cluster
  # More instances than before: the extra ones start; fewer: the surplus stops.
  for f in "$SRUN"/serve-*.pid; do
    [[ -e "$f" ]] || continue
    i="${f##*/serve-}"; i="${i%.pid}"
    ((i > n)) && say "stopping serve-$i" && stop_pid "$f" "$BIN"
  done
  start_service "$n"
  start_haproxy "$n"
  env_lines >"$SCALE/env"
  say "topology up in $((SECONDS - t0))s: http://127.0.0.1:$LB_PORT ($n instances, $CONSUMERS consumers; env in $SCALE/env)"
  env_lines
}

cmd_down() {
  mkdir -p "$SRUN"
  exec 8>"$SRUN/lock"; flock -w 600 8 || die "another scripts/scale.sh holds $SRUN/lock"
  stop_service
  stop_cluster
  stop_pg2
  "$STACK_SH" down 8>&-
  say "down (data kept in $SCALE and ${PG2_DIR})"
}

cmd_status() {
  local rc=0 p i f
  "$STACK_SH" status || rc=1
  if pg2_ready; then printf '%-9s up    127.0.0.1:%s\n' postgres2 "$PG2_PORT"; else printf '%-9s down  127.0.0.1:%s\n' postgres2 "$PG2_PORT"; rc=1; fi
  for p in "${CLUSTER_PORTS[@]}"; do
    if pid="$(live_pid "$(cluster_pidfile "$p")" "redis-server 127.0.0.1:$p")"; then printf '%-9s up    127.0.0.1:%s  pid %s\n' cluster "$p" "$pid"
    else printf '%-9s down  127.0.0.1:%s\n' cluster "$p"; rc=1; fi
  done
  cluster_ok || { printf 'cluster   state not ok\n'; rc=1; }
  for f in "$SRUN"/serve-*.pid "$SRUN"/consume-*.pid "$SRUN"/haproxy.pid; do
    [[ -e "$f" ]] || continue
    if pid="$(live_pid "$f" "")"; then printf '%-9s up    pid %s\n' "$(basename "$f" .pid)" "$pid"
    else printf '%-9s down\n' "$(basename "$f" .pid)"; rc=1; fi
  done
  [[ -e "$SRUN/haproxy.pid" ]] || { printf 'haproxy   down  127.0.0.1:%s\n' "$LB_PORT"; rc=1; }
  return "$rc"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) env_lines ;;
  *) printf 'usage: scripts/scale.sh up [N] | down | status | env\n' >&2; exit 2 ;;
esac

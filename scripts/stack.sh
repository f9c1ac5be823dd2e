#!/usr/bin/env bash
# Native local dependency stack for flashsale (no Docker):
#   PostgreSQL 15  127.0.0.1:55432  (private cluster in .stack/pg/data, dbs flashsale_0, flashsale_1)
#   Redis x3       127.0.0.1:56379, 56380, 56381  (.stack/redis/{1,2,3})
#   Kafka 4.1      127.0.0.1:59092  (KRaft broker+controller, controller on 59093, .stack/kafka)
#
# Usage: scripts/stack.sh up | down | status | env | paths | selftest
#        scripts/stack.sh start|stop postgres|redis1|redis2|redis3|kafka
#
# STACK_NAME=NAME runs a second, independent instance (the fault suite's, which
# kills its processes): state under .stack-NAME/, every port shifted by
# STACK_PORT_OFFSET (default -30000: PostgreSQL 25432, Redis 26379-26381, Kafka
# 29092/29093). Unset, it is the default instance above. The default offset keeps
# the ports below the kernel's ephemeral range (32768-60999): while a broker is
# down, a client dialing it again and again can be given the broker's own port
# as its source port (a TCP self-connect) and then hold it, so the restarted
# broker cannot bind.
#
# `up` prints `export NAME=value` lines on stdout (also written to .stack/env); all
# progress goes to stderr, so  eval "$(scripts/stack.sh up)"  works.
# State: .stack/ (data, logs in .stack/log, pid files in .stack/run). `down` keeps the data;
# `rm -rf .stack` after `down` resets everything.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_NAME="${STACK_NAME:-}"
[[ -z "$STACK_NAME" || "$STACK_NAME" =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] \
  || { printf '[stack] ERROR: STACK_NAME must be lowercase letters, digits and dashes\n' >&2; exit 2; }
if [[ -z "$STACK_NAME" ]]; then
  STACK="$ROOT/.stack"
  PORT_OFFSET=0
  INSTANCE_KEY="$ROOT"
else
  STACK="$ROOT/.stack-$STACK_NAME"
  PORT_OFFSET="${STACK_PORT_OFFSET:--30000}"
  [[ "$PORT_OFFSET" =~ ^-?[0-9]+$ ]] || { printf '[stack] ERROR: STACK_PORT_OFFSET must be a number\n' >&2; exit 2; }
  INSTANCE_KEY="$ROOT#$STACK_NAME"
fi
LOG_DIR="$STACK/log"
RUN_DIR="$STACK/run"

PG_BIN=/usr/lib/postgresql/15/bin
PG_PORT=$((55432 + PORT_OFFSET))
# PostgreSQL runs as the OS user postgres, which must be able to reach its
# data: when a parent of the checkout is not searchable by others (a clone
# under /root, say), the cluster lives under /var/lib/flashsale-stack instead.
searchable_by_others() {
  local d="$1"
  while [[ "$d" != "/" && -n "$d" ]]; do
    [[ "$(stat -c %A "$d")" =~ ^d........[xt] ]] || return 1
    d="$(dirname "$d")"
  done
}
if searchable_by_others "$ROOT"; then
  PG_DIR="$STACK/pg"
  PG_LOG="$LOG_DIR/postgres.log"
else
  PG_DIR="/var/lib/flashsale-stack/$(printf '%s' "$INSTANCE_KEY" | sha256sum | cut -c1-12)/pg"
  PG_LOG="$PG_DIR/postgres.log"
fi
PG_DATA="$PG_DIR/data"
PG_DBS=(flashsale_0 flashsale_1)

REDIS_PORTS=($((56379 + PORT_OFFSET)) $((56380 + PORT_OFFSET)) $((56381 + PORT_OFFSET)))

KAFKA_PORT=$((59092 + PORT_OFFSET))
KAFKA_CONTROLLER_PORT=$((59093 + PORT_OFFSET))
KAFKA_HEAP="${STACK_KAFKA_HEAP:-512m}"
KAFKA_DIR="$STACK/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_POM="$ROOT/deploy/kafka/pom.xml"
KAFKA_TEMPLATE="$ROOT/deploy/kafka/server.properties"
KAFKA_LOG4J="$ROOT/deploy/kafka/log4j2.properties"
KAFKA_LOG="$LOG_DIR/kafka.log"          # written by log4j2
KAFKA_OUT="$LOG_DIR/kafka.out"          # JVM stdout/stderr
KAFKA_PIDFILE="$RUN_DIR/kafka.pid"

WAIT_KAFKA=60
WAIT_OTHER=20
WAIT_LOAD=300 # Redis node 1 reloading a large append-only file answers LOADING meanwhile

COMPONENTS=(postgres redis1 redis2 redis3 kafka)

# ---------------------------------------------------------------- helpers

say() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# Tail of a log file to stderr, for failure reports.
show_log() {
  local f="$1"
  if [[ -f "$f" ]]; then
    printf '[stack] ---- last lines of %s ----\n' "$f" >&2
    tail -n "${2:-40}" "$f" >&2 || true
    printf '[stack] ----\n' >&2
  else
    printf '[stack] (no log file %s)\n' "$f" >&2
  fi
}

# fail COMPONENT LOGFILE MESSAGE: report and exit non-zero.
fail() {
  local comp="$1" logf="$2"; shift 2
  printf '[stack] ERROR: %s: %s\n' "$comp" "$*" >&2
  show_log "$logf"
  exit 1
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Best-effort description of who listens on PORT (for error messages).
port_owner() {
  if command -v ss >/dev/null 2>&1; then
    ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n1
  fi
}

# PID from a pid file if that process is alive and its command line contains PATTERN.
# (Guards against a stale pid file whose pid got reused by something else.)
live_pid() {
  local pidfile="$1" pattern="$2" pid cmd
  [[ -r "$pidfile" ]] || return 1
  pid="$(head -n1 "$pidfile" 2>/dev/null | tr -dc '0-9')"
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ "$cmd" == *"$pattern"* ]] || return 1
  printf '%s\n' "$pid"
}

# True when PID has exited. A zombie awaiting its reaper counts as exited, but only once
# all its threads are gone (a JVM's main thread turns Z before the others finish exiting).
pid_gone() {
  local state
  state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 0
  [[ -z "$state" ]] && return 0
  [[ "$state" == Z ]] || return 1
  local tasks=("/proc/$1/task/"*)
  ((${#tasks[@]} <= 1))
}

# Fail fast when PORT is taken by a process that is not ours.
ensure_port_free() {
  local comp="$1" port="$2" owner
  if port_open "$port"; then
    owner="$(port_owner "$port")"
    die "$comp: port $port on 127.0.0.1 is already in use by another process${owner:+ ($owner)}, not by this stack (no live pid in $RUN_DIR). Stop it or free port $port."
  fi
}

# wait_until SECONDS CMD...: poll CMD every 0.5 s until it succeeds or the time is up.
wait_until() {
  local secs="$1"; shift
  local deadline=$((SECONDS + secs))
  while :; do
    if "$@"; then return 0; fi
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

lock_stack() {
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  exec 9>"$RUN_DIR/lock"
  if ! flock -w 600 9; then die "another scripts/stack.sh holds $RUN_DIR/lock"; fi
}

# ---------------------------------------------------------------- installs

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "need to install $*, but apt-get is missing"
  [[ $EUID -eq 0 ]] || die "need to install $* (run as root, or install them yourself)"
  export DEBIAN_FRONTEND=noninteractive
  # Packages like redis-server/postgresql start a system service on install; keep them from
  # doing so (this stack runs its own private instances), unless a policy already exists.
  local made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0
  if ((APT_UPDATED == 0)); then
    say "apt-get update"
    apt-get update -qq >&2 || rc=$?
    APT_UPDATED=1
  fi
  if ((rc == 0)); then
    say "apt-get install -y $*"
    apt-get install -y -qq "$@" >&2 || rc=$?
  fi
  if ((made_policy)); then rm -f /usr/sbin/policy-rc.d; fi
  ((rc == 0)) || die "apt-get install $* failed"
}

java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)[."].*/\1/p' | head -n1
}

need_postgres() {
  if [[ ! -x "$PG_BIN/initdb" || ! -x "$PG_BIN/pg_ctl" ]]; then
    apt_install postgresql-15
  fi
  command -v psql >/dev/null 2>&1 || apt_install postgresql-client-15
  if ! id -u postgres >/dev/null 2>&1; then
    say "creating OS user postgres"
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
}

need_redis() {
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    apt_install redis-server
  fi
}

need_kafka_tools() {
  local major
  major="$(java_major 2>/dev/null || true)"
  if [[ -z "$major" || "$major" -lt 17 ]]; then
    apt_install openjdk-17-jre-headless
  fi
  command -v mvn >/dev/null 2>&1 || apt_install maven
}

# ---------------------------------------------------------------- postgres

pg_as() { (cd / && runuser -u postgres -- "$@"); }

pg_pid() { live_pid "$PG_DATA/postmaster.pid" "$PG_DATA"; }

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2 >/dev/null 2>&1; }

pg_psql() {
  PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"
}

# Socket dir: inside .stack/pg, unless that path is too long for a unix socket (107 bytes).
pg_socket_dir() {
  if (( ${#PG_DIR} + 20 < 100 )); then
    printf '%s\n' "$PG_DIR"
  else
    printf '/tmp/flashsale-pg-%s\n' "$(printf '%s' "$INSTANCE_KEY" | sha256sum | cut -c1-12)"
  fi
}

pg_prepare() {
  need_postgres
  mkdir -p "$PG_DIR"
  chown postgres:postgres "$PG_DIR"
  chmod 700 "$PG_DIR"
  if ! runuser -u postgres -- test -w "$PG_DIR"; then
    die "postgres: OS user postgres cannot reach $PG_DIR (a parent directory is not searchable by others; chmod o+x it)"
  fi
  local sock; sock="$(pg_socket_dir)"
  mkdir -p "$sock"; chown postgres:postgres "$sock"
  touch "$PG_LOG"; chown postgres:postgres "$PG_LOG"
  if [[ ! -s "$PG_DATA/PG_VERSION" ]]; then
    say "postgres: initdb $PG_DATA"
    rm -rf "$PG_DATA"
    pg_as "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C \
      --auth-local=trust --auth-host=trust >>"$PG_LOG" 2>&1 \
      || fail postgres "$PG_LOG" "initdb failed"
    echo "include_if_exists = 'stack.conf'" >>"$PG_DATA/postgresql.conf"
  fi
  # Regenerated every start so edits to this script apply to an existing cluster.
  cat >"$PG_DATA/stack.conf" <<EOF
# Written by scripts/stack.sh on every start; edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sock'
max_connections = 300
shared_buffers = 256MB
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  chown postgres:postgres "$PG_DATA/stack.conf"
}

start_postgres() {
  if pg_pid >/dev/null; then
    say "postgres: already running (pid $(pg_pid)), port $PG_PORT"
  else
    ensure_port_free postgres "$PG_PORT"
    pg_prepare
    say "postgres: starting on 127.0.0.1:$PG_PORT"
    # shellcheck disable=SC2094 # pg_ctl's own messages and the server log share one file, both append.
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$WAIT_OTHER" start </dev/null >>"$PG_LOG" 2>&1 9>&- \
      || fail postgres "$PG_LOG" "pg_ctl start failed"
  fi
  pg_pid >"$RUN_DIR/postgres.pid" || true
  wait_until "$WAIT_OTHER" pg_ready || fail postgres "$PG_LOG" "pg_isready -h 127.0.0.1 -p $PG_PORT did not answer within ${WAIT_OTHER}s"
  pg_bootstrap
}

# Role and databases, idempotently.
pg_bootstrap() {
  local has db
  has="$(pg_psql -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'flashsale'")" \
    || fail postgres "$PG_LOG" "cannot query pg_roles"
  if [[ "$has" != 1 ]]; then
    say "postgres: creating role flashsale"
    pg_psql -d postgres -c "CREATE ROLE flashsale LOGIN SUPERUSER" >/dev/null
  fi
  for db in "${PG_DBS[@]}"; do
    has="$(pg_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")"
    if [[ "$has" != 1 ]]; then
      say "postgres: creating database $db"
      pg_psql -d postgres -c "CREATE DATABASE $db OWNER flashsale" >/dev/null
    fi
  done
}

stop_postgres() {
  if pg_pid >/dev/null; then
    say "postgres: stopping"
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null 2>&1 \
      || fail postgres "$PG_LOG" "pg_ctl stop failed"
  else
    say "postgres: not running"
  fi
  rm -f "$RUN_DIR/postgres.pid"
}

# ---------------------------------------------------------------- redis

redis_port() { echo "${REDIS_PORTS[$(($1 - 1))]}"; }
redis_pidfile() { echo "$RUN_DIR/redis$1.pid"; }
redis_log() { echo "$LOG_DIR/redis$1.log"; }
redis_pid() { live_pid "$(redis_pidfile "$1")" "redis-server 127.0.0.1:$(redis_port "$1")"; }
redis_ready() { [[ "$(redis-cli -h 127.0.0.1 -p "$(redis_port "$1")" ping 2>/dev/null)" == PONG ]]; }
# redis_answers: PONG, or LOADING while it reads its append-only file back.
redis_answers() {
  local r
  r="$(redis-cli -h 127.0.0.1 -p "$(redis_port "$1")" ping 2>&1)"
  [[ "$r" == PONG || "$r" == *LOADING* ]]
}

start_redis() {
  local n="$1" port dir conf aof
  port="$(redis_port "$n")"
  if redis_pid "$n" >/dev/null; then
    say "redis$n: already running (pid $(redis_pid "$n")), port $port"
  else
    ensure_port_free "redis$n" "$port"
    need_redis
    dir="$STACK/redis/$n"; conf="$dir/redis.conf"
    mkdir -p "$dir"
    # Node 1 (stock, reservations, claims) as production runs it: AOF fsynced
    # every second; the service rebuilds from PostgreSQL what a restart loses
    # (docs/ARCHITECTURE.md, "When Redis loses writes"). Nodes 2-3 hold leases only.
    aof=no; [[ "$n" == 1 ]] && aof=yes
    cat >"$conf" <<EOF
# Written by scripts/stack.sh on every start; edit the script, not this file.
bind 127.0.0.1
port $port
protected-mode no
daemonize yes
supervised no
pidfile $(redis_pidfile "$n")
logfile $(redis_log "$n")
loglevel notice
dir $dir
save ""
appendonly $aof
appendfsync everysec
EOF
    rm -f "$(redis_pidfile "$n")"
    say "redis$n: starting on 127.0.0.1:$port"
    redis-server "$conf" </dev/null >>"$(redis_log "$n")" 2>&1 9>&- || fail "redis$n" "$(redis_log "$n")" "redis-server failed to start"
  fi
  wait_until "$WAIT_OTHER" redis_answers "$n" \
    || fail "redis$n" "$(redis_log "$n")" "redis-cli -p $port ping did not answer within ${WAIT_OTHER}s"
  # A dev machine's node 1 may hold millions of keys: loading them back
  # takes longer than starting, and is progress, not a hang.
  wait_until "$WAIT_LOAD" redis_ready "$n" \
    || fail "redis$n" "$(redis_log "$n")" "redis-cli -p $port ping still did not answer PONG after ${WAIT_LOAD}s of loading"
  # The daemon writes its pid file just after forking; make sure it is there.
  wait_until 5 redis_pid "$n" >/dev/null || fail "redis$n" "$(redis_log "$n")" "no pid file $(redis_pidfile "$n")"
}

stop_redis() {
  local n="$1" pid port
  port="$(redis_port "$n")"
  if pid="$(redis_pid "$n")"; then
    say "redis$n: stopping (pid $pid)"
    redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
    if ! wait_until 10 pid_gone "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      wait_until 10 pid_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
    fi
  else
    say "redis$n: not running"
  fi
  rm -f "$(redis_pidfile "$n")"
}

# ---------------------------------------------------------------- kafka

kafka_pid() { live_pid "$KAFKA_PIDFILE" "kafka.Kafka $KAFKA_PROPS"; }

# Run a Kafka CLI class from the gathered jars; its log4j output goes to .stack/log/kafka-tools.log.
KAFKA_TOOL_JAVA=(java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
  -Dlog4j2.configurationFile="$KAFKA_LOG4J" -Dkafka.logs.dir="$LOG_DIR"
  -Dkafka.log.name=kafka-tools -Dkafka.log.level=WARN
  -cp "$KAFKA_LIBS/*")
kafka_tool() { "${KAFKA_TOOL_JAVA[@]}" "$@"; }

# A metadata request (topic list) answered within 30 s.
kafka_answers() {
  port_open "$KAFKA_PORT" || return 1
  timeout 30 "${KAFKA_TOOL_JAVA[@]}" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list >/dev/null 2>&1
}

# Gather the jars with Maven, only when they are missing or deploy/kafka/pom.xml changed.
kafka_libs() {
  local sum have=""
  [[ -f "$KAFKA_POM" ]] || die "kafka: missing $KAFKA_POM"
  sum="$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)"
  [[ -f "$KAFKA_DIR/pom.sha256" ]] && have="$(cat "$KAFKA_DIR/pom.sha256")"
  if [[ "$have" == "$sum" ]] && compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  need_kafka_tools
  say "kafka: gathering jars with mvn into $KAFKA_LIBS (first time can take a few minutes)"
  rm -rf "$KAFKA_LIBS" "$KAFKA_DIR/pom.sha256"
  mkdir -p "$KAFKA_LIBS"
  if ! mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$KAFKA_LIBS" >"$LOG_DIR/kafka-mvn.log" 2>&1; then
    fail kafka "$LOG_DIR/kafka-mvn.log" "mvn dependency:copy-dependencies failed"
  fi
  echo "$sum" >"$KAFKA_DIR/pom.sha256"
}

kafka_render_config() {
  [[ -f "$KAFKA_TEMPLATE" ]] || die "kafka: missing $KAFKA_TEMPLATE"
  mkdir -p "$KAFKA_DATA"
  # The template's ports are the default instance's; another instance shifts them.
  sed -e "s|@KAFKA_DATA_DIR@|$KAFKA_DATA|g" -e "s|127.0.0.1:59092|127.0.0.1:$KAFKA_PORT|g" \
    -e "s|127.0.0.1:59093|127.0.0.1:$KAFKA_CONTROLLER_PORT|g" "$KAFKA_TEMPLATE" >"$KAFKA_PROPS.tmp"
  mv "$KAFKA_PROPS.tmp" "$KAFKA_PROPS"
}

kafka_format() {
  [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
  local id
  if [[ -s "$KAFKA_DIR/cluster.id" ]]; then
    id="$(cat "$KAFKA_DIR/cluster.id")"
  else
    id="$(kafka_tool kafka.tools.StorageTool random-uuid 2>>"$LOG_DIR/kafka-format.log" | tail -n1)" \
      || fail kafka "$LOG_DIR/kafka-format.log" "StorageTool random-uuid failed"
    [[ -n "$id" ]] || fail kafka "$LOG_DIR/kafka-format.log" "StorageTool random-uuid printed nothing"
    echo "$id" >"$KAFKA_DIR/cluster.id"
  fi
  say "kafka: formatting storage (cluster id $id)"
  kafka_tool kafka.tools.StorageTool format -t "$id" -c "$KAFKA_PROPS" --standalone \
    >>"$LOG_DIR/kafka-format.log" 2>&1 || fail kafka "$LOG_DIR/kafka-format.log" "StorageTool format failed"
}

# Launch the broker in the background (does not wait for it).
launch_kafka() {
  if kafka_pid >/dev/null; then
    say "kafka: already running (pid $(kafka_pid)), port $KAFKA_PORT"
    if [[ -f "$KAFKA_DIR/pom.sha256" && "$(cat "$KAFKA_DIR/pom.sha256")" != "$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)" ]]; then
      say "kafka: NOTE deploy/kafka/pom.xml changed; 'scripts/stack.sh stop kafka && scripts/stack.sh start kafka' to apply"
    fi
    return 0
  fi
  ensure_port_free kafka "$KAFKA_PORT"
  ensure_port_free kafka "$KAFKA_CONTROLLER_PORT"
  mkdir -p "$KAFKA_DIR"
  need_kafka_tools
  kafka_libs
  kafka_render_config
  kafka_format
  say "kafka: starting on 127.0.0.1:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
  rm -f "$KAFKA_PIDFILE"
  printf '\n===== %s start =====\n' "$(date '+%F %T')" >>"$KAFKA_OUT"
  # bash writes its own pid, then execs java (same pid); setsid detaches it from this shell.
  # shellcheck disable=SC2016 # $$ and $@ are for the inner bash.
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka-launch "$KAFKA_PIDFILE" \
    java -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_LOG4J" -Dkafka.logs.dir="$LOG_DIR" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
    </dev/null >>"$KAFKA_OUT" 2>&1 9>&- &
  disown || true
  wait_until 5 kafka_pid >/dev/null || fail kafka "$KAFKA_OUT" "the JVM did not stay up"
}

wait_kafka() {
  local deadline=$((SECONDS + WAIT_KAFKA))
  while :; do
    if ! kafka_pid >/dev/null; then
      show_log "$KAFKA_LOG" 30
      fail kafka "$KAFKA_OUT" "the broker process exited"
    fi
    kafka_answers && break
    if ((SECONDS >= deadline)); then
      show_log "$KAFKA_OUT" 20
      fail kafka "$KAFKA_LOG" "no answer to a metadata request on 127.0.0.1:$KAFKA_PORT within ${WAIT_KAFKA}s"
    fi
    sleep 1
  done
}

start_kafka() { launch_kafka; wait_kafka; }

stop_kafka() {
  local pid
  if pid="$(kafka_pid)"; then
    say "kafka: stopping (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until 20 pid_gone "$pid"; then
      say "kafka: still running after 20s, SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait_until 5 pid_gone "$pid" || true
    fi
  else
    say "kafka: not running"
  fi
  rm -f "$KAFKA_PIDFILE"
}

# ---------------------------------------------------------------- commands

env_lines() {
  local urls="" addrs="" db p
  for db in "${PG_DBS[@]}"; do
    urls+="${urls:+,}postgres://flashsale@127.0.0.1:$PG_PORT/$db?sslmode=disable"
  done
  for p in "${REDIS_PORTS[@]}"; do addrs+="${addrs:+,}127.0.0.1:$p"; done
  printf 'export FLASHSALE_DATABASE_URLS=%s\n' "$urls"
  printf 'export FLASHSALE_REDIS_ADDRS=%s\n' "$addrs"
  printf 'export FLASHSALE_KAFKA_BROKERS=%s\n' "127.0.0.1:$KAFKA_PORT"
}

# Where this instance keeps its state, for tools that signal its processes
# (the fault suite): pid files, data directories, the PostgreSQL binaries.
paths_lines() {
  printf 'STACK_DIR=%s\n' "$STACK"
  printf 'RUN_DIR=%s\n' "$RUN_DIR"
  printf 'LOG_DIR=%s\n' "$LOG_DIR"
  printf 'PG_BIN=%s\n' "$PG_BIN"
  printf 'PG_DATA=%s\n' "$PG_DATA"
  printf 'PG_PORT=%s\n' "$PG_PORT"
  printf 'REDIS_DIRS=%s\n' "$STACK/redis/1,$STACK/redis/2,$STACK/redis/3"
  printf 'REDIS_PORTS=%s\n' "$(IFS=,; echo "${REDIS_PORTS[*]}")"
  printf 'KAFKA_PORT=%s\n' "$KAFKA_PORT"
}

component_start() {
  case "$1" in
    postgres) start_postgres ;;
    redis1|redis2|redis3) start_redis "${1#redis}" ;;
    kafka) start_kafka ;;
    *) die "unknown component '$1' (one of: ${COMPONENTS[*]})" ;;
  esac
}

component_stop() {
  case "$1" in
    postgres) stop_postgres ;;
    redis1|redis2|redis3) stop_redis "${1#redis}" ;;
    kafka) stop_kafka ;;
    *) die "unknown component '$1' (one of: ${COMPONENTS[*]})" ;;
  esac
}

cmd_up() {
  local t0=$SECONDS
  lock_stack
  # Kafka's JVM is the slowest to come up: launch it first, start the rest meanwhile.
  launch_kafka
  start_postgres
  start_redis 1
  start_redis 2
  start_redis 3
  wait_kafka
  env_lines >"$STACK/env"
  say "all up in $((SECONDS - t0))s (env also in ${STACK#"$ROOT"/}/env)"
  env_lines
}

cmd_down() {
  lock_stack
  stop_kafka
  stop_redis 1
  stop_redis 2
  stop_redis 3
  stop_postgres
  say "down (data kept in $STACK)"
}

# status line: NAME up|down ADDR [pid]
cmd_status() {
  local all=0 pid n port
  if pid="$(pg_pid)" && pg_ready; then
    printf '%-9s up    127.0.0.1:%s  pid %s\n' postgres "$PG_PORT" "$pid"
  else
    printf '%-9s down  127.0.0.1:%s\n' postgres "$PG_PORT"; all=1
  fi
  for n in 1 2 3; do
    port="$(redis_port "$n")"
    if pid="$(redis_pid "$n")" && redis_ready "$n"; then
      printf '%-9s up    127.0.0.1:%s  pid %s\n' "redis$n" "$port" "$pid"
    else
      printf '%-9s down  127.0.0.1:%s\n' "redis$n" "$port"; all=1
    fi
  done
  if pid="$(kafka_pid)" && port_open "$KAFKA_PORT"; then
    printf '%-9s up    127.0.0.1:%s  pid %s\n' kafka "$KAFKA_PORT" "$pid"
  else
    printf '%-9s down  127.0.0.1:%s\n' kafka "$KAFKA_PORT"; all=1
  fi
  return "$all"
}

# End-to-end check of every component (needs the stack up).
cmd_selftest() {
  local p db topic msg got
  for db in "${PG_DBS[@]}"; do
    got="$("$PG_BIN/psql" -X -tA -h 127.0.0.1 -p "$PG_PORT" -U flashsale -d "$db" \
      -c "SELECT current_user || '@' || current_database() || ' fsync=' || current_setting('fsync') || ' max_connections=' || current_setting('max_connections')")" \
      || die "selftest: postgres $db"
    say "selftest: postgres $got"
  done
  for p in "${REDIS_PORTS[@]}"; do
    got="$(redis-cli -h 127.0.0.1 -p "$p" set stack:selftest ok >/dev/null && redis-cli -h 127.0.0.1 -p "$p" get stack:selftest)"
    redis-cli -h 127.0.0.1 -p "$p" del stack:selftest >/dev/null
    [[ "$got" == ok ]] || die "selftest: redis $p"
    say "selftest: redis 127.0.0.1:$p set/get ok"
  done
  topic="stack-selftest-$$-$RANDOM"
  msg="hello-$(date +%s%N)"
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
    --create --topic "$topic" --partitions 1 --replication-factor 1 >&2 || die "selftest: kafka create topic"
  printf '%s\n' "$msg" | kafka_tool org.apache.kafka.tools.ConsoleProducer \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" --topic "$topic" >&2 || die "selftest: kafka produce"
  got="$(kafka_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
    --topic "$topic" --from-beginning --max-messages 1 --timeout-ms 30000 2>/dev/null || true)"
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
    --delete --topic "$topic" >/dev/null 2>&1 || true
  [[ "$got" == "$msg" ]] || die "selftest: kafka consumed '$got', expected '$msg'"
  say "selftest: kafka topic $topic produce/consume ok"
  say "selftest: all ok"
}

usage() {
  cat >&2 <<EOF
usage: scripts/stack.sh up | down | status | env | paths | selftest
       scripts/stack.sh start|stop postgres|redis1|redis2|redis3|kafka
EOF
  exit 2
}

main() {
  local cmd="${1:-}"
  case "$cmd" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) env_lines ;;
    paths) paths_lines ;;
    selftest) cmd_selftest ;;
    start|stop)
      [[ $# -eq 2 ]] || usage
      lock_stack
      if [[ "$cmd" == start ]]; then component_start "$2"; else component_stop "$2"; fi
      ;;
    *) usage ;;
  esac
}

main "$@"

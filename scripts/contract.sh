#!/usr/bin/env bash
# The API contract test (make contract): runs schemathesis against a running
# flashsale, generating requests from api/openapi.json (as the service serves
# it) and failing on any server error, status, content type, header or body
# the document does not describe, or schema-invalid request accepted.
#
# Brings the stack up, builds flashsale, installs schemathesis once into a
# venv (bin/contract-venv; python3-venv from apt-get when missing), starts `flashsale serve` on fresh databases, a
# Redis prefix and a topic of this run's own (dropped at the end), mints a
# real admin and buyer token, creates sale 1, then runs schemathesis twice:
# the buyer and public operations with the buyer's token, the admin
# operations with the admin's. The SSE streams and the page are not fuzzed:
# a stream never ends, so a generated request to one would only time out.
#
# Settings: CONTRACT_EXAMPLES=100 (most examples per operation and phase),
#           CONTRACT_OUT=dir (reports; default bench-results/contract-<timestamp>),
#           STACK_SH=scripts/stack.sh (the stack script to bring up and read env from).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SCHEMATHESIS_VERSION=4.32.5
VENV="$ROOT/bin/contract-venv"
EXAMPLES="${CONTRACT_EXAMPLES:-100}"
OUT="${CONTRACT_OUT:-bench-results/contract-$(date +%Y%m%d-%H%M%S)}"
STACK_SH="${STACK_SH:-scripts/stack.sh}"
export FLASHSALE_JWT_SECRET="${FLASHSALE_JWT_SECRET:-dev-secret-change-me-0123456789}"

say() { printf '[contract] %s\n' "$*" >&2; }
die() { printf '[contract] ERROR: %s\n' "$*" >&2; exit 2; }

# install_schemathesis makes the venv once; a venv with the pinned version is kept.
install_schemathesis() {
  if [[ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" == *" $SCHEMATHESIS_VERSION" ]]; then
    return
  fi
  say "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  rm -rf "$VENV"
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    command -v apt-get >/dev/null 2>&1 && [[ $EUID -eq 0 ]] \
      || die "python3 has no venv module: install python3-venv (Debian) yourself"
    say "apt-get install -y python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
  fi
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
}

# db_url replaces the database name of a postgres:// URL.
db_url() { sed -E "s|^(postgres(ql)?://[^/]*)/[^?]*|\1/$2|" <<<"$1"; }

RUN="contract$$"
DBS=()
ADMIN_URL=""
SERVICE_PID=""
cleanup() {
  local db u
  if [[ -n "$SERVICE_PID" ]]; then
    kill -TERM "$SERVICE_PID" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$SERVICE_PID" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$SERVICE_PID" 2>/dev/null || true
  fi
  for db in "${DBS[@]}"; do
    psql -X -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  IFS=, read -ra list <<<"${REDIS_ADDRS:-}"
  for u in "${list[@]}"; do
    unlink_keys "${u%:*}" "${u##*:}" "$RUN:*" || true
  done
}

# unlink_keys removes a node's keys matching a pattern, a SCAN page per
# round trip. In Redis, not through redis-cli's output: the idempotency
# keys hold a NUL byte, which that output cuts.
unlink_keys() {
  local cursor=0
  while :; do
    cursor="$(redis-cli -h "$1" -p "$2" eval "local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', 1000)
      for _, k in ipairs(r[2]) do redis.call('UNLINK', k) end
      return r[1]" 0 "$cursor" "$3")" || return 1
    [[ "$cursor" == 0 ]] && return 0
  done
}
trap cleanup EXIT

# fresh_stores points the service at databases, Redis keys and a topic of
# this run alone, so sale 1 is the one this script creates (the document's
# examples name it) and nothing another user of the stack does interferes.
fresh_stores() {
  local urls=() u db i=0
  IFS=, read -ra list <<<"$FLASHSALE_DATABASE_URLS"
  for u in "${list[@]}"; do
    db="${RUN}_$i"
    ADMIN_URL="$(db_url "$u" postgres)"
    DBS+=("$db")
    psql -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" -c "CREATE DATABASE $db" >/dev/null
    urls+=("$(db_url "$u" "$db")")
    i=$((i + 1))
  done
  FLASHSALE_DATABASE_URLS="$(IFS=,; echo "${urls[*]}")"
  REDIS_ADDRS="$FLASHSALE_REDIS_ADDRS"
  export FLASHSALE_DATABASE_URLS FLASHSALE_REDIS_PREFIX="$RUN" FLASHSALE_KAFKA_TOPIC="$RUN.orders" \
    FLASHSALE_DEAD_LETTER_TOPIC="$RUN.orders.dlq" FLASHSALE_CONSUMER_GROUP_PREFIX="$RUN"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$OUT"
install_schemathesis
say "stack up"
STACK_ENV="$("$STACK_SH" up)" || die "the stack did not come up"
eval "$STACK_ENV"
say "build"
go build -o bin/flashsale ./cmd/flashsale
fresh_stores
bin/flashsale migrate up

PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
say "starting flashsale serve on $BASE (log $OUT/serve.log)"
# Schemathesis is one client on 127.0.0.1 sending as fast as it can: limits
# high enough that it explores the operations rather than the 429 answer.
# No relay or consumers: the API is under test, and a run's topic and
# consumer groups would be left behind in Kafka.
bin/flashsale serve --http-addr "127.0.0.1:$PORT" --migrate-on-start=false --relay-enabled=false --consumers-enabled=false \
  --ip-rate 100000 --ip-burst 100000 --user-rate 100000 --user-burst 100000 --log-level warn \
  >"$OUT/serve.log" 2>&1 &
SERVICE_PID=$!
for _ in $(seq 1 120); do
  curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break
  kill -0 "$SERVICE_PID" 2>/dev/null || { tail -n 20 "$OUT/serve.log" >&2; die "flashsale serve exited"; }
  sleep 0.25
done
curl -fsS "$BASE/readyz" >/dev/null || { tail -n 20 "$OUT/serve.log" >&2; die "flashsale serve never became ready"; }

ADMIN="$(bin/flashsale token --sub contract-admin --admin --ttl 1h)"
BUYER="$(bin/flashsale token --sub contract-buyer --ttl 1h)"
now="$(date -u +%s)"
sale="$(curl -fsS -X POST "$BASE/v1/admin/sales" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d "{\"sku\":\"CONTRACT-1\",\"title\":\"Contract test\",\"price_cents\":1000,\"currency\":\"EUR\",\"stock\":1000000,
       \"per_user_limit\":1000000,\"starts_at\":\"$(date -u -d "@$((now - 60))" +%FT%TZ)\",\"ends_at\":\"$(date -u -d "@$((now + 3600))" +%FT%TZ)\"}")"
[[ "$sale" == *'"id":"1"'* ]] || die "the first sale of fresh databases is not sale 1: $sale"

# Checks: no 5xx; every status, content type, documented header and body as
# documented; a request the document calls invalid (or without a required
# header) is refused with a 4xx; an operation that needs a token refuses
# one without.
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,missing_required_header,ignored_auth
run() {
  local name="$1"; shift
  say "schemathesis: $name operations"
  "$VENV/bin/schemathesis" run "$BASE/openapi.json" --url "$BASE" --checks "$CHECKS" \
    --phases examples,coverage,fuzzing --max-examples "$EXAMPLES" --seed 13 \
    --generation-with-security-parameters false --request-timeout 10 \
    --report junit --report-junit-path "$OUT/$name.junit.xml" "$@"
}
rc=0
run buyer -H "Authorization: Bearer $BUYER" --include-tag buyer --include-tag public || rc=1
run admin -H "Authorization: Bearer $ADMIN" --include-tag admin || rc=1
kill -0 "$SERVICE_PID" 2>/dev/null || { tail -n 20 "$OUT/serve.log" >&2; die "flashsale serve died during the run"; }
if grep -q '"level":"ERROR"' "$OUT/serve.log"; then
  grep '"level":"ERROR"' "$OUT/serve.log" | head -n 20 >&2
  say "the service logged errors (above)"
  rc=1
fi
say "done (exit $rc); reports in $OUT"
exit "$rc"

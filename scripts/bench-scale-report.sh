#!/usr/bin/env bash
# The table of make bench-scale (scripts/bench-scale.sh) from its flashbench
# reports: scripts/bench-scale-report.sh OUT N... prints Markdown on stdout and
# writes OUT/report.json, one entry per instance count with the sale's figures
# and each process's CPU µs per durable order (the closed run, every request
# a winner): the per-order cost profile a capacity model reads.
set -euo pipefail
OUT="$1"; shift
[[ $# -gt 0 ]] || { echo "usage: $0 OUT N..." >&2; exit 2; }

entry() {
  jq -n --argjson n "$1" --slurpfile s "$OUT/n$1-sale/report.json" --slurpfile o "$OUT/n$1-orders/report.json" '
    ($s[0]) as $s | ($o[0]) as $o |
    {instances: $n,
     sale: {passed: $s.passed, orders: $s.load.orders, orders_per_s: $s.load.orders_per_s,
            sold_out_s: $s.load.sellout_last_201_s, answers_per_s: $s.load.requests_per_s,
            p50_ms: $s.load.latency_ms.all.p50_ms, p99_ms: $s.load.latency_ms.all.p99_ms,
            created_p99_ms: $s.load.latency_ms.created.p99_ms, sold_out_p99_ms: $s.load.latency_ms.sold_out.p99_ms},
     orders: {passed: $o.passed, orders: $o.load.orders, orders_per_s: $o.load.orders_per_s,
              pg_xacts_per_order: (($o.load.pg_xacts // 0) / ([$o.load.orders, 1] | max))},
     cpu_us_per_order: ([$o.load.processes[] | select(.name != "flashbench (generator)")
                         | {key: .name, value: ((.cpu_seconds * 1e6 / ([$o.load.orders, 1] | max)) | round)}] | from_entries)}'
}

for n in "$@"; do entry "$n"; done | jq -s '{runs: .}' >"$OUT/report.json"

jq -r '
  def f: if . == null then "–" else (. * 10 | round / 10 | tostring) end;
  "## make bench-scale: the flash sale through HAProxy over 1…N instances", "",
  "| instances | verification (sale, orders) | sale orders/s until sold out | sold out after s | answers/s | p50 / p99 ms (all) | p99 winners / losers ms | closed orders/s | PostgreSQL transactions per order (closed, both databases, every client) |",
  "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
  (.runs[] | "| \(.instances) | \(if .sale.passed then "passed" else "FAILED" end), \(if .orders.passed then "passed" else "FAILED" end) | \(.sale.orders_per_s | round) | \(.sale.sold_out_s | f) | \(.sale.answers_per_s | round) | \(.sale.p50_ms | f) / \(.sale.p99_ms | f) | \(.sale.created_p99_ms | f) / \(.sale.sold_out_p99_ms | f) | \(.orders.orders_per_s | round) | \(.orders.pg_xacts_per_order * 100 | round / 100) |"),
  "", "CPU µs per durable order by process (closed run, every request a winner):", "",
  ([.runs[].cpu_us_per_order | keys[]] | unique) as $procs |
  "| process | " + ([.runs[] | "\(.instances) inst."] | join(" | ")) + " |",
  "|---|" + ([.runs[] | "---:"] | join("|")) + "|",
  ($procs[] as $p | "| \($p) | " + ([.runs[] | (.cpu_us_per_order[$p] // "–" | tostring)] | join(" | ")) + " |"),
  "| **all servers** | " + ([.runs[] | ([.cpu_us_per_order | to_entries[] | .value] | add | tostring)] | join(" | ")) + " |"
' "$OUT/report.json"

#!/usr/bin/env bash
# Side-by-side: Apache ZooKeeper 3.8 (Debian's package, forceSync on) and
# corral (standalone, fdatasync on every batch), same machine, same
# corral-loadgen runs. Prints a markdown table. Usage:
#   bench/compare.sh [DURATION_S] [CLIENTS] [INFLIGHT]
# Needs: apt-get install zookeeper; cargo build --release -p net -p loadgen
# The Rust driver does the same and more (server CPU over the exact measured
# window, RSS, ratios, plots, a page in docs/benchmarks/, --ensemble):
#   cargo run -p bench --release -- compare --duration 8
# This script stays as the quick dependency-free table.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-8}; clients=${2:-32}; inflight=${3:-16}
work=$(mktemp -d)
source bench/zookeeper.sh
zk_port=$(free_port); corral_port=$(free_port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
keep_logs() { echo "--- zk log"; tail -20 "$work/zk.log"; echo "--- corral log"; tail -5 "$work/corral.log"; }

start_zookeeper "$work" "$zk_port"
pids+=($!); zk_pid=$!
# --no-admin-server, as admin.enableServer=false above: port 8080 may be taken.
target/release/corral server --client-port "$corral_port" --data-dir "$work/corral" --four-letter-words "*" \
  --no-admin-server > "$work/corral.log" 2>&1 &
pids+=($!); corral_pid=$!

wait_ready() { answers_ruok "$1" || { echo "server on $1 did not start"; keep_logs; exit 1; }; }
wait_ready "$zk_port"; wait_ready "$corral_port"

cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
run() { # name pid port workload
  local c0 c1; c0=$(cpu "$2")
  target/release/corral-loadgen --connect "127.0.0.1:$3" --clients "$clients" --inflight "$inflight" \
    --duration "$duration" --warmup 2 --json "$work/r.json" "$4" > /dev/null
  c1=$(cpu "$2")
  python3 - "$work/r.json" "$c0" "$c1" "$1" "$4" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); c0, c1 = float(sys.argv[2]), float(sys.argv[3])
cpu_s = (c1 - c0) / 100.0
print(f"| {sys.argv[4]} | {sys.argv[5]} | {r['ops_per_s']:.0f} | {r['latency_ms']['p50']:.2f} | {r['latency_ms']['p99']:.2f} | {r['latency_ms']['p999']:.2f} | {cpu_s * 1e6 / max(r['ops'], 1):.1f} |")
PY
}
# Warm ZooKeeper's JIT first, unmeasured.
target/release/corral-loadgen --connect "127.0.0.1:$zk_port" --duration 5 --warmup 0 read > /dev/null
target/release/corral-loadgen --connect "127.0.0.1:$zk_port" --duration 5 --warmup 0 write > /dev/null
echo "| server | workload | ops/s | p50 ms | p99 ms | p99.9 ms | server CPU us/op |"
echo "|---|---|---|---|---|---|---|"
for w in read write mixed; do
  run zookeeper "$zk_pid" "$zk_port" "$w"
  run corral "$corral_pid" "$corral_port" "$w"
done

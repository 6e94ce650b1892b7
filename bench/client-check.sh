#!/usr/bin/env bash
# Is corral-loadgen a fair client? Runs it and Apache ZooKeeper's own Java
# client (bench/java/ZkLoad.java, same load shape) against one Apache
# ZooKeeper 3.8 server, alternating, and prints each run's throughput and
# the client's own CPU per operation as a markdown table. If loadgen were
# the bottleneck, the Java client would get more out of the same server.
#   bench/client-check.sh [DURATION_S] [CLIENTS] [INFLIGHT] [RUNS]
# Needs: apt-get install zookeeper; cargo build --release -p loadgen; javac
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-8}; clients=${2:-32}; inflight=${3:-16}; runs=${4:-3}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
source bench/zookeeper.sh
port=$(free_port)
cp=$ZK_CP
javac -d "$work/classes" -cp "$cp" bench/java/ZkLoad.java
start_zookeeper "$work" "$port"
pids+=($!)
answers_ruok "$port" || { echo "ZooKeeper did not start"; tail -20 "$work/zk.log"; exit 1; }
shape=(--clients "$clients" --inflight "$inflight" --value-size 1024 --keys 1000)

loadgen() { # workload duration warmup -> "ops/s client-cpu-us/op"
  target/release/corral-loadgen --connect "127.0.0.1:$port" "${shape[@]}" --duration "$2" --warmup "$3" \
    --json "$work/r.json" "$1" > /dev/null
  python3 -c "import json;r=json.load(open('$work/r.json'));print(f\"{r['ops_per_s']:.0f} {r['loadgen_cpu_s']*1e6/max(r['ops'],1):.1f}\")"
}
java_client() { # workload duration warmup -> "ops/s client-cpu-us/op"
  java -Xmx1g -cp "$work/classes:$cp" -Dlog4j.configuration=none ZkLoad --connect "127.0.0.1:$port" \
    "${shape[@]}" --duration "$2" --warmup "$3" "$1" 2>/dev/null | tail -1 |
    python3 -c "import json,sys;r=json.loads(sys.stdin.read());print(f\"{r['ops_per_s']:.0f} {r['client_cpu_us_per_op']:.1f}\")"
}

# ZooKeeper's JIT first, and the Java client's, unmeasured.
for w in read write; do loadgen "$w" 5 0 > /dev/null; java_client "$w" 5 0 > /dev/null; done
echo "| client | workload | ops/s per run | median ops/s | client CPU µs/op (median run) |"
echo "|---|---|---|---|---|"
for w in read write; do
  declare -a lg=() jv=()
  for _ in $(seq "$runs"); do
    lg+=("$(loadgen "$w" "$duration" 2)")
    jv+=("$(java_client "$w" "$duration" 2)")
  done
  for name in corral-loadgen zookeeper-java; do
    if [[ $name == corral-loadgen ]]; then set -- "${lg[@]}"; else set -- "${jv[@]}"; fi
    printf '%s\n' "$@" | python3 -c "
import sys
rows = sorted((float(a), float(b)) for a, b in (l.split() for l in sys.stdin))
mid = rows[len(rows) // 2]
print(f\"| $name | $w | {', '.join(f'{r[0]:.0f}' for r in rows)} | {mid[0]:.0f} | {mid[1]:.1f} |\")"
  done
done

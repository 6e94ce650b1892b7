#!/usr/bin/env bash
# Three-server ensembles side by side on 127.0.0.1: Apache ZooKeeper 3.8
# (Debian's package, forceSync on) and corral (fdatasync on every batch),
# the same corral-loadgen runs with sessions spread over the three servers,
# then a leader failover under a light write load. Prints markdown tables.
# The ensembles run one after the other, so they never compete for the CPU.
#   bench/ensemble.sh [DURATION_S] [CLIENTS] [INFLIGHT]
# KINDS="corral" (or "zookeeper") runs one side only; WORKLOADS="" skips the
# loadgen runs; FAILOVERS=N measures N failovers (a fresh ensemble each).
# Needs: apt-get install zookeeper; pip install kazoo;
#        cargo build --release -p net -p loadgen
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-8}; clients=${2:-32}; inflight=${3:-16}
work=$(mktemp -d)
source bench/zookeeper.sh
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; [ -n "${KEEP_BENCH_DIR:-}" ] && echo "kept $work" || rm -rf "$work"; }
trap cleanup EXIT
cp=$ZK_CP

# start_ensemble KIND: writes configs, starts three servers; sets $connect
# and ${spid[1..3]}.
declare -A spid sport
start_ensemble() {
  local kind=$1 servers="" i
  for i in 1 2 3; do
    sport[$i]=$(free_port)
    servers+="server.$i=127.0.0.1:$(free_port):$(free_port)"$'\n'
  done
  connect=""
  for i in 1 2 3; do
    local dir="$work/$kind$i"
    mkdir -p "$dir"; echo "$i" > "$dir/myid"
    cat > "$dir/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir
clientPort=${sport[$i]}
clientPortAddress=127.0.0.1
4lw.commands.whitelist=*
admin.enableServer=false
maxClientCnxns=0
forceSync=yes
$servers
CFG
    if [ "$kind" = zookeeper ]; then
      java -Xms1g -Xmx1g -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" > "$dir/server.log" 2>&1 &
    else
      # One core each: three servers share this machine's cores.
      target/release/corral server --zoo-cfg "$dir/zoo.cfg" --cores 1 > "$dir/server.log" 2>&1 &
    fi
    spid[$i]=$!; pids+=($!)
    connect+="${connect:+,}127.0.0.1:${sport[$i]}"
  done
  for i in 1 2 3; do wait_mode "${sport[$i]}"; done
}
mode() { python3 - "$1" <<'PY' 2>/dev/null || true
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2); s.sendall(b"srvr")
out = b""
while True:
    d = s.recv(4096)
    if not d: break
    out += d
for l in out.decode().splitlines():
    if l.startswith("Mode: "): print(l[6:])
PY
}
wait_mode() { for _ in $(seq 300); do
  case "$(mode "$1")" in leader|follower) return;; esac; sleep 0.2; done
  echo "server on $1 does not serve"; tail -n 30 "$work"/*/server.log; exit 1; }
leader_index() { for i in 1 2 3; do [ "$(mode "${sport[$i]}")" = leader ] && { echo "$i"; return; }; done; echo 0; }
stop_ensemble() { for i in 1 2 3; do kill -9 "${spid[$i]}" 2>/dev/null || true; done; sleep 1
  [ -n "${KEEP_BENCH_DIR:-}" ] && for i in 1 2 3; do mv "$work/$kind$i" "$work/$kind$i.$(date +%s%N)"; done; true; }
cpu3() { local t=0 i; for i in 1 2 3; do t=$((t + $(awk '{print $14+$15}' "/proc/${spid[$i]}/stat"))); done; echo "$t"; }
run() { # kind workload
  local c0 c1; c0=$(cpu3)
  target/release/corral-loadgen --connect "$connect" --clients "$clients" --inflight "$inflight" \
    --duration "$duration" --warmup 2 --json "$work/r.json" "$2" > /dev/null
  c1=$(cpu3)
  python3 - "$work/r.json" "$c0" "$c1" "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); c0, c1 = float(sys.argv[2]), float(sys.argv[3])
cpu_s = (c1 - c0) / 100.0
print(f"| {sys.argv[4]} x3 | {sys.argv[5]} | {r['ops_per_s']:.0f} | {r['latency_ms']['p50']:.2f} | {r['latency_ms']['p99']:.2f} | {r['latency_ms']['p999']:.2f} | {cpu_s * 1e6 / max(r['ops'], 1):.1f} |")
PY
}
failover() { # kind: kill -9 the leader under 100 setData/s, time until writes succeed again
  local l; l=$(leader_index)
  python3 bench/failover.py "$connect" "${spid[$l]}" "$1" 2> "$work/failover-$1.log"
}

results=()
for kind in ${KINDS:-zookeeper corral}; do
  start_ensemble "$kind"
  if [ "$kind" = zookeeper ]; then
    # Warm the JIT, unmeasured.
    target/release/corral-loadgen --connect "$connect" --duration 5 --warmup 0 read > /dev/null
    target/release/corral-loadgen --connect "$connect" --duration 5 --warmup 0 write > /dev/null
  fi
  for w in ${WORKLOADS-read write mixed}; do results+=("$(run "$kind" "$w")"); done
  results+=("FAILOVER $(failover "$kind")")
  stop_ensemble
  # More failover samples, each on a fresh ensemble.
  for _ in $(seq 2 "${FAILOVERS:-1}"); do
    start_ensemble "$kind"
    results+=("FAILOVER $(failover "$kind")")
    stop_ensemble
  done
done
echo "| ensemble | workload | ops/s | p50 ms | p99 ms | p99.9 ms | server CPU us/op (3 servers) |"
echo "|---|---|---|---|---|---|---|"
for r in "${results[@]}"; do case "$r" in FAILOVER*) ;; *) echo "$r";; esac; done
echo
echo "| ensemble | leader killed: writes unavailable for |"
echo "|---|---|"
for r in "${results[@]}"; do case "$r" in FAILOVER*) echo "${r#FAILOVER }";; esac; done

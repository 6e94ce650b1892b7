#!/usr/bin/env bash
# Runs Apache ZooKeeper's own Java client, zkCli and Apache Curator recipes
# (all from Debian's packages, see PACKAGES) against a fresh server.
#
#   net/tests/java/run.sh                    # against corral
#   TARGET=zookeeper net/tests/java/run.sh   # against Apache ZooKeeper 3.8 (Debian's)
#   TARGET=corral-ensemble net/tests/java/run.sh   # against a follower of 3 corral servers
#
# Environment:
#   CORRAL_BIN   corral binary (default: <repo>/target/debug/corral; build it
#                with `cargo build -p net`)
#   TARGET       corral (default) or zookeeper
#   TESTS        space-separated subset of: ZkClientTest CuratorRecipesTest zkcli
#   KEEP_WORK=1  keep the temp dir (server log, client logs) and print its path
#
# Prints one PASS/FAIL line per test case, then exactly
# `java-clients: N passed, M failed`, and exits non-zero if M > 0.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
TARGET=${TARGET:-corral}
CORRAL_BIN=${CORRAL_BIN:-$REPO/target/debug/corral}
TESTS=${TESTS:-ZkClientTest CuratorRecipesTest zkcli}
JAVA_DIR=/usr/share/java

WORK=$(mktemp -d /tmp/corral-java-tests.XXXXXX)
SERVER_PID=""
CHILD_PID=""
ENSEMBLE_PIDS=()

cleanup() {
    local rc=$?
    if [[ -n $CHILD_PID ]]; then
        kill "$CHILD_PID" 2>/dev/null || true
        wait "$CHILD_PID" 2>/dev/null || true
    fi
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    for p in "${ENSEMBLE_PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [[ ${KEEP_WORK:-0} == 1 ]]; then
        echo "java-clients: work dir kept at $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
    echo "java-clients: $*" >&2
    echo "java-clients: 0 passed, 1 failed"
    exit 1
}

# ---- classpath from Debian's jars -------------------------------------
# zookeeper.jar and the curator jars carry a manifest Class-Path naming their
# dependencies in /usr/share/java (jute, netty, slf4j-api, guava, ...), so
# listing the top-level jars is enough. slf4j-simple is the log backend.
CP=""
for jar in zookeeper curator-client curator-framework curator-recipes slf4j-simple; do
    [[ -f $JAVA_DIR/$jar.jar ]] || die "missing $JAVA_DIR/$jar.jar; install the packages in $HERE/PACKAGES"
    CP=${CP:+$CP:}$JAVA_DIR/$jar.jar
done
command -v javac >/dev/null || die "javac not found; install the packages in $HERE/PACKAGES"

mkdir -p "$WORK/classes"
javac -nowarn -encoding UTF-8 -cp "$CP" -d "$WORK/classes" "$HERE"/src/*.java 2>"$WORK/javac.log" || {
    cat "$WORK/javac.log" >&2
    die "javac failed"
}
RUN_CP="$WORK/classes:$CP"
# Empty containers are removed every CONTAINER_CHECK_MS on both servers, so
# the tests can watch it happen.
CONTAINER_CHECK_MS=1000
JAVA_OPTS=(-Xmx256m -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Dorg.slf4j.simpleLogger.logFile=System.err
    -Dtest.containerCheckMs=$CONTAINER_CHECK_MS)
# Each program has its own watchdog (seconds) on top of per-test timeouts.
SUITE_TIMEOUT=${SUITE_TIMEOUT:-150}

# ---- server -------------------------------------------------------------
PORT=$(java -cp "$WORK/classes" FreePort)
CONNECT=127.0.0.1:$PORT
mkdir -p "$WORK/data"

ruok() {
    local reply=""
    reply=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && printf ruok >&3 && cat <&3" 2>/dev/null) || true
    [[ $reply == imok ]]
}

case $TARGET in
corral)
    [[ -x $CORRAL_BIN ]] || die "corral binary $CORRAL_BIN not found; run \`cargo build -p net\` or set CORRAL_BIN"
    cat >"$WORK/zoo.cfg" <<EOF
clientPortAddress=127.0.0.1
clientPort=$PORT
dataDir=$WORK/data
EOF
    # --no-admin-server: the admin server's default port 8080 is shared by
    # every server on the machine (ZooKeeper's side sets
    # admin.enableServer=false).
    "$CORRAL_BIN" server --zoo-cfg "$WORK/zoo.cfg" --client-port "$PORT" --data-dir "$WORK/data" \
        --four-letter-words '*' --pre-alloc-size 4096 --container-check-interval "$CONTAINER_CHECK_MS" \
        --no-admin-server >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    ;;
corral-ensemble)
    # Three corral processes; the tests talk to a follower, so every write,
    # sync and session goes through forwarding to the leader.
    [[ -x $CORRAL_BIN ]] || die "corral binary $CORRAL_BIN not found; run \`cargo build -p net\` or set CORRAL_BIN"
    SERVERS=""
    declare -a MEMBER_PORT
    for i in 1 2 3; do
        MEMBER_PORT[$i]=$(java -cp "$WORK/classes" FreePort)
        SERVERS+="server.$i=127.0.0.1:$(java -cp "$WORK/classes" FreePort):$(java -cp "$WORK/classes" FreePort)"$'\n'
    done
    for i in 1 2 3; do
        mkdir -p "$WORK/s$i"
        echo "$i" >"$WORK/s$i/myid"
        printf 'tickTime=2000\ninitLimit=10\nsyncLimit=5\nclientPortAddress=127.0.0.1\nclientPort=%s\ndataDir=%s\n%s' \
            "${MEMBER_PORT[$i]}" "$WORK/s$i" "$SERVERS" >"$WORK/s$i/zoo.cfg"
        "$CORRAL_BIN" server --zoo-cfg "$WORK/s$i/zoo.cfg" --cores 1 \
            --four-letter-words '*' --pre-alloc-size 4096 --container-check-interval "$CONTAINER_CHECK_MS" \
            --no-admin-server >"$WORK/s$i/server.log" 2>&1 &
        ENSEMBLE_PIDS+=($!)
    done
    mode() { { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf srvr >&3 && cat <&3" 2>/dev/null || true; } | sed -n 's/^Mode: //p'; }
    for _ in $(seq 1 300); do
        modes=""
        for i in 1 2 3; do modes+="$(mode "${MEMBER_PORT[$i]}") "; done
        [[ $modes == *leader* && $(grep -o follower <<<"$modes" | wc -l || true) == 2 ]] && break
        sleep 0.1
    done
    for i in 1 2 3; do
        if [[ $(mode "${MEMBER_PORT[$i]}") == follower ]]; then
            PORT=${MEMBER_PORT[$i]}
            SERVER_PID=${ENSEMBLE_PIDS[$((i - 1))]}
            ln -sf "$WORK/s$i/server.log" "$WORK/server.log"
            break
        fi
    done
    CONNECT=127.0.0.1:$PORT
    ;;
zookeeper)
    cat >"$WORK/zoo.cfg" <<EOF
tickTime=2000
dataDir=$WORK/data
clientPort=$PORT
clientPortAddress=127.0.0.1
4lw.commands.whitelist=*
admin.enableServer=false
EOF
    java -Xmx256m -Dznode.container.checkIntervalMs="$CONTAINER_CHECK_MS" \
        -cp "$JAVA_DIR/zookeeper.jar:$JAVA_DIR/slf4j-simple.jar" \
        org.apache.zookeeper.server.quorum.QuorumPeerMain "$WORK/zoo.cfg" >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    ;;
*)
    die "unknown TARGET=$TARGET (corral, corral-ensemble or zookeeper)"
    ;;
esac

for _ in $(seq 1 300); do
    ruok && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if ! ruok; then
    tail -n 30 "$WORK/server.log" >&2 || true
    die "$TARGET did not answer ruok on $CONNECT"
fi
echo "java-clients: $TARGET is up on $CONNECT"

# ---- tests ----------------------------------------------------------------
passed=0
failed=0

# run NAME CMD... : runs one test program, streams its PASS/FAIL lines and
# counts them; a non-zero exit without any FAIL line counts as one failure.
run() {
    local name=$1 rc=0 p f
    shift
    echo "java-clients: running $name"
    # In the background and waited for, so that a signal to this script is
    # handled at once (bash defers traps while a foreground child runs).
    timeout 300 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    grep -E '^(PASS|FAIL|SKIP) ' "$WORK/$name.out" || true
    p=$(grep -c '^PASS ' "$WORK/$name.out" || true)
    f=$(grep -c '^FAIL ' "$WORK/$name.out" || true)
    if [[ $rc != 0 && $f == 0 ]]; then
        echo "FAIL $name: exited with status $rc without reporting a failure; last output:"
        tail -n 20 "$WORK/$name.out" "$WORK/$name.err" | sed 's/^/    /'
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
}

for t in $TESTS; do
    case $t in
    ZkClientTest | CuratorRecipesTest)
        run "$t" java "${JAVA_OPTS[@]}" -cp "$RUN_CP" "$t" "$CONNECT" "$SUITE_TIMEOUT"
        ;;
    zkcli)
        run zkcli "$HERE/zkcli_test.sh" "$CONNECT"
        ;;
    *)
        die "unknown test $t"
        ;;
    esac
done

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "FAIL server: $TARGET exited during the tests"
    failed=$((failed + 1))
fi

if [[ $failed -gt 0 ]]; then
    echo "java-clients: last lines of the $TARGET log:"
    tail -n 30 "$WORK/server.log" | sed 's/\x1b\[[0-9;]*m//g; s/^/    /'
fi
echo "java-clients: $passed passed, $failed failed"
[[ $failed -eq 0 ]]

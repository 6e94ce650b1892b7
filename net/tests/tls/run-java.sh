#!/usr/bin/env bash
# Apache ZooKeeper's own Java client and zkCli (ZooKeeperMain), from
# Debian's jars, over TLS against a fresh server started from the same
# zoo.cfg for both servers (secureClientPort, ssl.clientAuth=need, PEM key
# and trust stores; see README.md).
#
#   net/tests/tls/run-java.sh                    # against corral
#   TARGET=zookeeper net/tests/tls/run-java.sh   # against Apache ZooKeeper 3.8 (Debian's)
#
# Environment:
#   CORRAL_BIN   corral binary (default: <repo>/target/debug/corral)
#   TARGET       corral (default) or zookeeper
#   KEEP_WORK=1  keep the temp dir (certificates, zoo.cfg, server and client logs)
#
# The clients get TLS from system properties only:
#   zookeeper.client.secure=true
#   zookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty
#   zookeeper.ssl.keyStore.location=client.pem   zookeeper.ssl.keyStore.type=PEM
#   zookeeper.ssl.trustStore.location=ca.pem     zookeeper.ssl.trustStore.type=PEM
# zookeeper.jar's manifest Class-Path names netty-handler, -transport,
# -buffer and -common but not netty-codec (SslHandler's superclass) nor
# netty-resolver (the client's Bootstrap), so both go on the classpath of
# the server and of every client. (For the same reason Debian's
# /usr/share/zookeeper/bin/zkCli.sh, whose CLASSPATH is fixed to
# zookeeper.jar, only reports ConnectionLoss over TLS.)
#
# Prints one PASS/FAIL line per check, then exactly
# `tls-java: N passed, M failed`, and exits non-zero if M > 0.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
TARGET=${TARGET:-corral}
CORRAL_BIN=${CORRAL_BIN:-$REPO/target/debug/corral}
JAVA_DIR=/usr/share/java

WORK=$(mktemp -d /tmp/corral-tls-java.XXXXXX)
SERVER_PID=""
CHILD_PID=""

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
    if [[ ${KEEP_WORK:-0} == 1 ]]; then
        echo "tls-java: work dir kept at $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
    echo "tls-java: $*" >&2
    echo "tls-java: 0 passed, 1 failed"
    exit 1
}

# ---- classpath, certificates, the test program ---------------------------------
CP=""
for jar in zookeeper netty-codec netty-resolver slf4j-simple; do
    [[ -f $JAVA_DIR/$jar.jar ]] || die "missing $JAVA_DIR/$jar.jar; install the packages in $REPO/net/tests/java/PACKAGES"
    CP=${CP:+$CP:}$JAVA_DIR/$jar.jar
done
command -v javac >/dev/null || die "javac not found; install the packages in $REPO/net/tests/java/PACKAGES"
command -v openssl >/dev/null || die "openssl not found"

CERTS=$WORK/certs
bash "$HERE/gen-certs.sh" "$CERTS" >"$WORK/gen-certs.log" 2>&1 || {
    cat "$WORK/gen-certs.log" >&2
    die "gen-certs.sh failed"
}
mkdir -p "$WORK/classes"
javac -nowarn -encoding UTF-8 -cp "$CP" -d "$WORK/classes" "$HERE"/src/*.java 2>"$WORK/javac.log" || {
    cat "$WORK/javac.log" >&2
    die "javac failed"
}
RUN_CP="$WORK/classes:$CP"
JAVA_OPTS=(-Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Dorg.slf4j.simpleLogger.logFile=System.err)

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# tls_props KEYSTORE TRUSTSTORE: the client's TLS system properties; an
# empty KEYSTORE means no client certificate.
tls_props() {
    local props=(-Dzookeeper.client.secure=true
        -Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty
        "-Dzookeeper.ssl.trustStore.location=$CERTS/$2" -Dzookeeper.ssl.trustStore.type=PEM)
    if [[ -n $1 ]]; then
        props+=("-Dzookeeper.ssl.keyStore.location=$CERTS/$1" -Dzookeeper.ssl.keyStore.type=PEM)
    fi
    printf '%s\n' "${props[@]}"
}
mapfile -t GOOD_TLS < <(tls_props client.pem ca.pem)

# ---- server -------------------------------------------------------------------
PORT=$(free_port)
SECURE_PORT=$(free_port)
while [[ $SECURE_PORT == "$PORT" ]]; do SECURE_PORT=$(free_port); done
PLAIN=127.0.0.1:$PORT
SECURE=127.0.0.1:$SECURE_PORT
mkdir -p "$WORK/data"
cat >"$WORK/zoo.cfg" <<EOF
tickTime=2000
dataDir=$WORK/data
clientPort=$PORT
secureClientPort=$SECURE_PORT
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
ssl.keyStore.location=$CERTS/server.pem
ssl.keyStore.type=PEM
ssl.trustStore.location=$CERTS/ca.pem
ssl.trustStore.type=PEM
ssl.clientAuth=need
4lw.commands.whitelist=*
admin.enableServer=false
EOF

case $TARGET in
corral)
    [[ -x $CORRAL_BIN ]] || die "corral binary $CORRAL_BIN not found; run \`cargo build -p net\` or set CORRAL_BIN"
    "$CORRAL_BIN" server --zoo-cfg "$WORK/zoo.cfg" --cores 1 >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    ;;
zookeeper)
    cat >"$WORK/log4j.properties" <<EOF
log4j.rootLogger=INFO, F
log4j.appender.F=org.apache.log4j.ConsoleAppender
log4j.appender.F.layout=org.apache.log4j.PatternLayout
log4j.appender.F.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
EOF
    java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dlog4j.configuration="file:$WORK/log4j.properties" \
        -cp "$JAVA_DIR/zookeeper.jar:$JAVA_DIR/netty-codec.jar:$JAVA_DIR/netty-resolver.jar:$JAVA_DIR/slf4j-log4j12.jar:$JAVA_DIR/log4j-1.2.jar" \
        org.apache.zookeeper.server.quorum.QuorumPeerMain "$WORK/zoo.cfg" >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    ;;
*)
    die "unknown TARGET=$TARGET (corral or zookeeper)"
    ;;
esac

ruok() {
    local reply=""
    reply=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && printf ruok >&3 && cat <&3" 2>/dev/null) || true
    [[ $reply == imok ]]
}
secure_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SECURE_PORT" 2>/dev/null
}

for _ in $(seq 1 300); do
    ruok && secure_open && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if ! ruok || ! secure_open; then
    tail -n 30 "$WORK/server.log" >&2 || true
    die "$TARGET did not answer ruok on $PLAIN or open $SECURE"
fi
echo "tls-java: $TARGET is up, plain $PLAIN, TLS $SECURE"

# ---- tests ----------------------------------------------------------------------
passed=0
failed=0
n=0

pass() {
    passed=$((passed + 1))
    echo "PASS $1"
}

fail() {
    failed=$((failed + 1))
    echo "FAIL $1: $2"
}

# run NAME CMD... : runs one program, streams its PASS/FAIL lines and counts
# them; a non-zero exit without any FAIL line counts as one failure.
run() {
    local name=$1 rc=0 p f
    shift
    # In the background and waited for, so that a signal to this script is
    # handled at once (bash defers traps while a foreground child runs).
    timeout 180 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    # Prefixed with the run's name: the same program runs more than once.
    grep -E '^(PASS|FAIL) ' "$WORK/$name.out" | sed -E "s/^(PASS|FAIL) /\\1 $name: /" || true
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

# zkcli NAME SERVER PROPS... -- ARGS... : one zkCli one-shot command; sets OUT
# (stdout and stderr without the banner and logging) and RC.
OUT=""
RC=0
zkcli() {
    local name=$1 server=$2 raw
    shift 2
    local props=()
    while [[ $1 != -- ]]; do
        props+=("$1")
        shift
    done
    shift
    n=$((n + 1))
    set +e
    timeout 60 java "${JAVA_OPTS[@]}" "${props[@]}" -cp "$CP" org.apache.zookeeper.ZooKeeperMain \
        -server "$server" "$@" >"$WORK/zkcli-$n-$name.log" 2>&1 &
    CHILD_PID=$!
    wait "$CHILD_PID"
    RC=$?
    CHILD_PID=""
    set -e
    raw=$(cat "$WORK/zkcli-$n-$name.log")
    OUT=$(printf '%s\n' "$raw" | grep -v -E '^(Connecting to |WATCHER::|WatchedEvent state:SyncConnected type:None path:null|SLF4J:|\[main\] ERROR org.apache.zookeeper.util.ServiceUtils - Exiting JVM with code 0|$)' || true)
}

# expect NAME REGEX : the last zkCli command exited 0 and printed a line matching REGEX.
expect() {
    if [[ $RC != 0 ]]; then
        fail "zkCli.$1" "exit code $RC; output: $(printf '%s' "$OUT" | tr '\n' '|')"
    elif ! printf '%s\n' "$OUT" | grep -q -E -- "$2"; then
        fail "zkCli.$1" "output does not match /$2/; output: $(printf '%s' "$OUT" | tr '\n' '|')"
    else
        pass "zkCli.$1"
    fi
}

# 1. The Java client over TLS: a session, ephemeral + persistent znodes, a
#    watch, setData, the event, read back.
run java-tls java "${JAVA_OPTS[@]}" "${GOOD_TLS[@]}" -cp "$RUN_CP" TlsClientTest "$SECURE"

# 2. zkCli one-shot commands over TLS, and the same znode through the plain port.
Z=/tls-zkcli-$$
zkcli create "$SECURE" "${GOOD_TLS[@]}" -- create "$Z" data
expect tls.create "^Created $Z\$"
zkcli get "$SECURE" "${GOOD_TLS[@]}" -- get "$Z"
expect tls.get '^data$'
zkcli plain-get "$PLAIN" -- get "$Z"
expect plain.get '^data$'
zkcli plain-set "$PLAIN" -- set "$Z" fromplain
expect plain.set '.*'
zkcli get-after-plain-set "$SECURE" "${GOOD_TLS[@]}" -- get "$Z"
expect tls.get.afterPlainSet '^fromplain$'
zkcli delete "$SECURE" "${GOOD_TLS[@]}" -- delete "$Z"
expect tls.delete '.*'
zkcli stat-deleted "$PLAIN" -- stat "$Z"
if printf '%s\n' "$OUT" | grep -q -E "Node does not exist: $Z"; then
    pass zkCli.plain.deletedOverTls
else
    fail zkCli.plain.deletedOverTls "output: $(printf '%s' "$OUT" | tr '\n' '|')"
fi

# 3. Refusals: the Java client never gets a session.
refused() {
    local name=$1
    shift
    run "refused-$name" java "${JAVA_OPTS[@]}" "$@" -cp "$RUN_CP" TlsClientTest --expect-refused "$name" "$SECURE"
}
mapfile -t ROGUE < <(tls_props rogue-client.pem ca.pem)
refused rogueCaClientCert "${ROGUE[@]}"
mapfile -t EXPIRED < <(tls_props expired-client.pem ca.pem)
refused expiredClientCert "${EXPIRED[@]}"
mapfile -t NOCERT < <(tls_props "" ca.pem)
refused noClientCert "${NOCERT[@]}"
# The plain client (NIO socket, no TLS) on the secure port.
refused plaintextOnSecurePort
mapfile -t DISTRUST < <(tls_props client.pem rogue-ca.pem)
refused clientDistrustsServer "${DISTRUST[@]}"

# 4. After the refusals the server still serves both ports.
if kill -0 "$SERVER_PID" 2>/dev/null && ruok; then
    pass server.aliveAfterRefusals
else
    fail server.aliveAfterRefusals "$TARGET exited or stopped answering ruok"
fi
run java-tls-after-refusals java "${JAVA_OPTS[@]}" "${GOOD_TLS[@]}" -cp "$RUN_CP" TlsClientTest "$SECURE"
Z2=/tls-zkcli-after-$$
zkcli plain-create-after "$PLAIN" -- create "$Z2" plain
expect plain.create.afterRefusals "^Created $Z2\$"
zkcli tls-get-after "$SECURE" "${GOOD_TLS[@]}" -- get "$Z2"
expect tls.get.afterRefusals '^plain$'
zkcli tls-delete-after "$SECURE" "${GOOD_TLS[@]}" -- delete "$Z2"
expect tls.delete.afterRefusals '.*'

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    fail server "$TARGET exited during the tests"
fi

if [[ $failed -gt 0 ]]; then
    echo "tls-java: last lines of the $TARGET log:"
    tail -n 40 "$WORK/server.log" | sed 's/\x1b\[[0-9;]*m//g; s/^/    /'
fi
echo "tls-java: $passed passed, $failed failed"
[[ $failed -eq 0 ]]

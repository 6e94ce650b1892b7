#!/usr/bin/env bash
# Drives a server with Apache ZooKeeper's zkCli (Debian's zookeeper package),
# one one-shot command per invocation, and checks the output.
#
#   zkcli_test.sh HOST:PORT
#
# ZKCLI overrides the zkCli command (default /usr/share/zookeeper/bin/zkCli.sh,
# or `java -cp /usr/share/java/zookeeper.jar org.apache.zookeeper.ZooKeeperMain`
# when the script is missing). Prints one PASS/FAIL line per check and a
# summary; exits non-zero if any check failed.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 HOST:PORT" >&2
    exit 2
fi
SERVER=$1
if [[ -n ${ZKCLI:-} ]]; then
    read -r -a CLI <<<"$ZKCLI"
elif [[ -x /usr/share/zookeeper/bin/zkCli.sh ]]; then
    CLI=(/usr/share/zookeeper/bin/zkCli.sh)
else
    CLI=(java -cp /usr/share/java/zookeeper.jar org.apache.zookeeper.ZooKeeperMain)
fi

passed=0
failed=0
OUT=""
RC=0
N=/cli

# zk ARGS... : runs one zkCli command; sets OUT (stdout+stderr without the
# connection banner and logging noise) and RC.
zk() {
    local raw
    set +e
    raw=$(timeout 30 "${CLI[@]}" -server "$SERVER" "$@" 2>&1)
    RC=$?
    set -e
    OUT=$(printf '%s\n' "$raw" | grep -v -E '^(Connecting to |WATCHER::|WatchedEvent state:SyncConnected type:None path:null|SLF4J:|log4j:|$)' || true)
}

pass() {
    passed=$((passed + 1))
    echo "PASS zkCli.$1"
}

fail() {
    failed=$((failed + 1))
    echo "FAIL zkCli.$1: $2"
}

# expect NAME WANT_RC REGEX... : the last command's exit code must be WANT_RC
# ("0" or "nonzero") and its output must match every extended REGEX (each on
# some line).
expect() {
    local name=$1 want=$2
    shift 2
    if [[ $want == 0 && $RC != 0 ]] || [[ $want == nonzero && $RC == 0 ]]; then
        fail "$name" "exit code $RC (wanted $want); output: $(printf '%s' "$OUT" | tr '\n' '|')"
        return
    fi
    local re
    for re in "$@"; do
        if ! printf '%s\n' "$OUT" | grep -q -E -- "$re"; then
            fail "$name" "output does not match /$re/; output: $(printf '%s' "$OUT" | tr '\n' '|')"
            return
        fi
    done
    pass "$name"
}

# Leftovers from an earlier run against a long-lived server.
zk deleteall "$N"

zk create "$N" x
expect create 0 "^Created $N\$"

zk get "$N"
expect get 0 '^x$'

zk set "$N" y
expect set 0

zk get -s "$N"
expect get-s 0 '^y$' '^dataVersion = 1$' '^dataLength = 1$' '^numChildren = 0$'

zk stat "$N"
expect stat 0 '^cZxid = 0x[0-9a-f]+$' '^mZxid = 0x[0-9a-f]+$' '^ctime = ' '^dataVersion = 1$' \
    '^cversion = 0$' '^aclVersion = 0$' '^ephemeralOwner = 0x0$' '^dataLength = 1$' '^numChildren = 0$'

zk ls /
expect ls-root 0 '^\[(.*, )?cli(, .*)?\]$' '^\[(.*, )?zookeeper(, .*)?\]$'

zk create "$N" again
expect create-existing nonzero "^Node already exists: $N\$"

zk create "$N/k" kv
expect create-child 0 "^Created $N/k\$"

zk create -s "$N/sq-" s
expect create-sequential 0 "^Created $N/sq-0000000001\$"

zk create -c "$N/cont"
expect create-container 0 "^Created $N/cont\$"

zk ls "$N"
expect ls-children 0 '^\[cont, k, sq-0000000001\]$'

zk ls -R "$N"
expect ls-recursive 0 "^$N\$" "^$N/k\$" "^$N/sq-0000000001\$"

zk ls -s "$N"
expect ls-stat 0 '^numChildren = 3$' '^cversion = 3$'

zk getAllChildrenNumber "$N"
expect getAllChildrenNumber 0 '^3$'

zk set -v 7 "$N" z
expect set-bad-version nonzero "^version No is not valid : $N\$"

zk get /no-such-node
expect get-missing nonzero '^Node does not exist: /no-such-node$'

zk delete "$N"
expect delete-non-empty nonzero "^Node not empty: $N\$"

zk getAcl "$N"
expect getAcl 0 "^'world,'anyone\$" '^: cdrwa$'

zk setAcl "$N/k" world:anyone:r
expect setAcl 0

zk getAcl "$N/k"
expect getAcl-after-setAcl 0 "^'world,'anyone\$" '^: r$'

zk set "$N/k" nope
expect set-no-permission nonzero "^Insufficient permission : $N/k\$"

zk sync "$N"
expect sync 0 '^Sync is OK$'

zk whoami
expect whoami 0 '^ip: 127\.0\.0\.1$'

zk delete "$N/k"
expect delete-child 0

zk deleteall "$N"
expect deleteall 0

zk stat "$N"
expect stat-after-delete nonzero "^Node does not exist: $N\$"

zk create "$N" x
zk delete "$N"
expect delete 0

zk ls /
if [[ $RC == 0 ]] && ! printf '%s\n' "$OUT" | grep -q -E '^\[(.*, )?cli(, .*)?\]$'; then
    pass ls-after-delete
else
    fail ls-after-delete "rc=$RC output: $(printf '%s' "$OUT" | tr '\n' '|')"
fi

echo "zkCli: $passed passed, $failed failed"
[[ $failed -eq 0 ]]

#!/usr/bin/env bash
# The storage fuzz targets, briefly: the CI smoke run (~30 s of fuzzing
# after the build). Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets
# rustc take the -Z flags cargo-fuzz passes (sanitizer, coverage).
#
#   storage/fuzz/smoke.sh                 # 10 s per target
#   FUZZ_SECONDS=600 storage/fuzz/smoke.sh wal_model   # a longer run of one
#
# A crash leaves its input in storage/fuzz/artifacts/<target>/ and prints
# the command that replays it; cargo fuzz exits non-zero, and so does this.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-10}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(wal_model segment snapshot)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
# -O -a: optimised, with debug assertions and overflow checks.
cargo fuzz build -O -a
mkdir -p logs
for t in "${targets[@]}"; do
    echo "== fuzz $t for ${seconds}s (log: storage/fuzz/logs/$t.log)"
    mkdir -p "corpus/$t"
    status=0
    # corpus/<t> grows (ignored by git); seeds/<t> are the committed valid
    # shapes to start from (tests/fuzz_bodies.rs write_fuzz_seeds).
    cargo fuzz run -O -a "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
        >"logs/$t.log" 2>&1 || status=$?
    grep -E '^Done|stat::number_of_executed_units' "logs/$t.log" || true
    if [ "$status" -ne 0 ]; then
        grep -E -A3 'panicked|ERROR|SUMMARY|Reproduce with' "logs/$t.log" | head -40
        echo "fuzz target $t failed (exit $status); input in storage/fuzz/artifacts/$t/"
        exit 1
    fi
done
echo "fuzz smoke: ${#targets[@]} targets, ${seconds}s each, no crash"

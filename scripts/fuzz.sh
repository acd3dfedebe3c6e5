#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for FUZZ_SECONDS each (default 60), from
# the committed seed corpus (new inputs go to a scratch copy under
# fuzz/target/, so the committed corpus stays small).
#
#   scripts/fuzz.sh build     build the targets
#   scripts/fuzz.sh run       build, then fuzz each target
#
# The targets are libFuzzer binaries (libfuzzer-sys), built with plain cargo
# and the coverage flags cargo-fuzz would pass, so nothing extra is
# installed. Those flags are nightly-only; the stable toolchain accepts them
# with RUSTC_BOOTSTRAP=1. No sanitizer: the code under test forbids unsafe,
# so a crash is a panic, an overflow (debug assertions stay on) or running
# out of the memory limit.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
BIN_DIR="target/$TRIPLE/release"

targets() {
    sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^sparta-fuzz$'
}

build() {
    # Not linted here (scripts/test.sh lints the workspace as it builds).
    unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
    export RUSTC_BOOTSTRAP=1
    export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
    # The workspace's lock file: the same dependency versions as everything
    # else, not whatever is newest today (cargo adds libfuzzer-sys to it).
    cp ../Cargo.lock Cargo.lock
    cargo build --release --target "$TRIPLE" --bins
}

run() {
    build
    local seconds=${FUZZ_SECONDS:-60}
    for target in $(targets); do
        local scratch="target/corpus/$target"
        mkdir -p "$scratch" "target/artifacts/$target"
        cp -n "corpus/$target/"* "$scratch/" 2>/dev/null || true
        echo "fuzz: $target for ${seconds}s"
        "$BIN_DIR/$target" "$scratch" -artifact_prefix="target/artifacts/$target/" \
            -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
    done
}

case "${1:-run}" in
    build) build ;;
    run) run ;;
    *) echo "usage: $0 [build|run]" >&2; exit 2 ;;
esac

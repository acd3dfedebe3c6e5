#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for FUZZ_SECONDS each (default 60), from
# the committed seed corpus (new inputs go to a scratch copy under
# fuzz/target/, so the committed corpus stays small).
#
#   scripts/fuzz.sh install   install cargo-fuzz from crates.io if missing
#   scripts/fuzz.sh run       fuzz each target (installs first)
#
# cargo-fuzz needs nightly-only rustc flags; the stable toolchain accepts
# them with RUSTC_BOOTSTRAP=1. Targets build without a sanitizer (`-s none`):
# the code under test forbids unsafe, so a crash is a panic, an overflow
# (debug assertions stay on) or running out of the memory limit.
set -euo pipefail
cd "$(dirname "$0")/.."

install() {
    if cargo fuzz --version >/dev/null 2>&1; then
        return
    fi
    cargo install --locked cargo-fuzz
}

run() {
    install
    local seconds=${FUZZ_SECONDS:-60}
    cd fuzz
    export RUSTC_BOOTSTRAP=1
    for target in $(cargo fuzz list); do
        local scratch="target/corpus/$target"
        mkdir -p "$scratch"
        cp -n "corpus/$target/"* "$scratch/" 2>/dev/null || true
        echo "fuzz: $target for ${seconds}s"
        cargo fuzz run -s none --debug-assertions "$target" "$scratch" -- \
            -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
    done
}

case "${1:-run}" in
    install) install ;;
    run) run ;;
    *) echo "usage: $0 [install|run]" >&2; exit 2 ;;
esac

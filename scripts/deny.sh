#!/usr/bin/env bash
# cargo deny: licenses, bans and sources (deny.toml says why advisories are
# off). Installs cargo-deny from crates.io once (kept in ~/.cargo/bin; the
# first build takes minutes), then checks.
#
#   scripts/deny.sh install   only install it (make test does this while the code compiles)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deny --version >/dev/null 2>&1; then
    # Unoptimized and without debug info: it compiles in 83 s on 2 cores
    # (its release profile, even without LTO: 207 s) and the check takes
    # 4 s instead of 2, once per `make test`.
    CARGO_PROFILE_DEV_OPT_LEVEL=0 CARGO_PROFILE_DEV_DEBUG=0 \
        cargo install --locked --debug cargo-deny
fi
[ "${1:-check}" = install ] && exit 0
# --offline keeps cargo-deny from fetching anything itself, and so also its
# `cargo metadata`, which needs every crate for every target in Cargo.lock:
# a build fetches only the host's (on a fresh machine, android and wasm-only
# crates are missing). Fetch them first; quick once they are cached.
cargo fetch --locked --quiet
cargo deny --offline check licenses bans sources

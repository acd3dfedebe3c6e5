#!/usr/bin/env bash
# cargo deny: licenses, bans and sources (deny.toml says why advisories are
# off). Installs cargo-deny from crates.io once (kept in ~/.cargo/bin; the
# first build takes minutes), then checks.
#
#   scripts/deny.sh install   only install it (make test does this while the code compiles)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deny --version >/dev/null 2>&1; then
    # cargo-deny's own release profile is fat LTO in one codegen unit, for
    # the smallest binary; a check tool needs none of that, and without it
    # the build takes a fraction of the time on 2 cores.
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        cargo install --locked cargo-deny
fi
[ "${1:-check}" = install ] && exit 0
# --offline keeps cargo-deny from fetching anything itself, and so also its
# `cargo metadata`, which needs every crate for every target in Cargo.lock:
# a build fetches only the host's (on a fresh machine, android and wasm-only
# crates are missing). Fetch them first; quick once they are cached.
cargo fetch --locked --quiet
cargo deny --offline check licenses bans sources

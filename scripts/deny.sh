#!/usr/bin/env bash
# cargo deny: licenses, bans and sources (deny.toml says why advisories are
# off). Installs cargo-deny from crates.io once (kept in ~/.cargo/bin; the
# first build takes minutes), then checks.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deny --version >/dev/null 2>&1; then
    cargo install --locked cargo-deny
fi
cargo deny --offline check licenses bans sources

#!/usr/bin/env bash
# `make test`: installs what the tests need while the Rust code compiles,
# then runs every test (scripts/run-tests.sh).
#
# Two lanes, side by side:
#   tools  `make tools` (Go programs built from the Go module proxy, Debian
#          packages, emulators), cargo-deny, toxiproxy, and the Go test
#          programs (fixture, git server, ...) built once so the tests find
#          them in the Go build cache. Mostly downloads and Go builds.
#   rust   cargo fmt --check, the debug build of every test binary linted
#          by clippy as it compiles, and the fuzz targets.
# On a fresh 2-core machine each lane waits on the network or on one long
# compile for minutes; overlapping them saves those minutes. The tools
# lane's output is printed when it ends, so the log stays readable.
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p target
tools_log=target/test-tools.log

tools_lane() {
    make --no-print-directory tools
    bash scripts/deny.sh install
    bash scripts/install-toxiproxy.sh >/dev/null
    # With the settings tests/support builds them with (the git server
    # alone takes -mod=mod), so the builds there find this one's cache.
    local dir
    for dir in fixture sumdb-fixture otlp-receiver; do
        (cd "tests/$dir" && go build -o /dev/null .)
    done
    (cd tests/gitserver && GOFLAGS=-mod=mod go build -o /dev/null .)
}

# Its own process group, so a failure in the rust lane stops it whole.
export -f tools_lane
setsid bash -euo pipefail -c tools_lane >"$tools_log" 2>&1 &
tools_pid=$!
stop_tools() { kill -- "-$tools_pid" 2>/dev/null || true; }
trap stop_tools EXIT

started=$(date +%s)
cargo fmt --all -- --check
# Clippy lints while the code compiles: clippy-driver, what `cargo clippy`
# runs, wraps rustc for the workspace's own crates (-D warnings as `cargo
# clippy -- -D warnings` passes it), so every dependency is compiled once,
# not checked for clippy and then built again: minutes on a fresh 2-core
# machine. The same targets as `cargo clippy --all-targets` (make lint).
# Exported: the test runs after this find the same builds. This also
# builds target/debug/sparta (crates/sparta has an integration test), with
# the workspace's features: `cargo build -p sparta` unifies fewer and would
# compile the server a second time.
RUSTC_WORKSPACE_WRAPPER="$(rustc --print sysroot)/bin/clippy-driver"
# One argument, so no reliance on clippy's internal separator for several.
CLIPPY_ARGS="-Dwarnings"
export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
cargo test --workspace --all-targets --no-run
bash scripts/fuzz.sh build
echo "test: rust lane done in $(($(date +%s) - started)) s" >&2

status=0
wait "$tools_pid" || status=$?
trap - EXIT
# The go command's download lines are many and say little.
grep -v '^go: downloading ' "$tools_log" >&2 || true
if [ "$status" != 0 ]; then
    echo "test: installing the tools failed (exit $status); the whole log is $tools_log" >&2
    exit "$status"
fi
echo "test: tools lane done in $(($(date +%s) - started)) s (both lanes)" >&2

bash scripts/run-tests.sh

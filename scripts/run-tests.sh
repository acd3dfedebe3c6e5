#!/usr/bin/env bash
# Runs every test against real things: starts the S3-compatible server, runs
# the Rust unit, conformance and end-to-end suites, then the deployment
# checks, and stops the server whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
cleanup() {
  bash scripts/s3-server.sh stop "$work/s3" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

bash scripts/s3-server.sh start "$work/s3" "$work/s3.env"
# shellcheck disable=SC1091
set -a; source "$work/s3.env"; set +a

export SPARTA_BIN="$PWD/target/debug/sparta"
cargo test --workspace --no-fail-fast -- --test-threads=4

bash scripts/deploy-check.sh
bash scripts/deploy-prometheus-test.sh

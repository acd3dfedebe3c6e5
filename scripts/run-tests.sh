#!/usr/bin/env bash
# Runs every test against real things: starts the S3-compatible server, runs
# the Rust unit, conformance and end-to-end suites, then the deployment
# checks, and stops the server whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

cleanup() { bash scripts/s3-server.sh stop >/dev/null 2>&1 || true; }
trap cleanup EXIT

env_file=$(bash scripts/s3-server.sh start)
# shellcheck disable=SC1090
set -a; source "$env_file"; set +a

export SPARTA_BIN="$PWD/target/debug/sparta"
cargo test --workspace --no-fail-fast

# A bounded slice of fuzzing (make fuzz runs longer).
FUZZ_SECONDS="${FUZZ_SECONDS:-10}" bash scripts/fuzz.sh run

bash scripts/deploy-check.sh
bash scripts/deploy-prometheus-test.sh

#!/usr/bin/env bash
# Runs every test against real things: starts the S3-compatible server, runs
# the Rust unit, conformance and end-to-end suites, then the deployment
# checks, and stops the server whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

cleanup() {
    bash scripts/s3-server.sh stop >/dev/null 2>&1 || true
    bash scripts/cloud-emulators.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

env_file=$(bash scripts/s3-server.sh start)
set -a
# shellcheck disable=SC1090
source "$env_file"
set +a
# fake-gcs-server and Azurite for the gs:// and az:// conformance tests.
cloud_env_file=$(bash scripts/cloud-emulators.sh start)
set -a
# shellcheck disable=SC1090
source "$cloud_env_file"
set +a

export SPARTA_BIN="$PWD/target/debug/sparta"
cargo test --workspace --no-fail-fast

# The S3 conformance suite again, configured by the AWS conventions alone
# (AWS_ENDPOINT_URL and keys in AWS_* variables, no Sparta S3 settings).
# --workspace, not -p sparta-storage: the same features as the run above, so
# nothing is compiled again (one package alone unifies fewer features).
AWS_ENDPOINT_URL="$SPARTA_TEST_S3_ENDPOINT" AWS_REGION="$SPARTA_TEST_S3_REGION" \
AWS_ACCESS_KEY_ID="$SPARTA_TEST_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SPARTA_TEST_S3_SECRET_KEY" \
SPARTA_TEST_S3_AWS_ENV=1 timeout 600 cargo test --workspace --test conformance s3::

# A bounded slice of fuzzing (make fuzz runs longer): 8 s for each of the
# seven targets keeps the slice under a minute.
FUZZ_SECONDS="${FUZZ_SECONDS:-8}" bash scripts/fuzz.sh run

# Licenses, bans and sources of every dependency (deny.toml).
bash scripts/deny.sh

bash scripts/deploy-check.sh
bash scripts/deploy-prometheus-test.sh

#!/usr/bin/env bash
# Runs the storage conformance suite against a fresh S3-compatible server:
# install (once), start, test, stop (also on failure).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
S3="$ROOT/scripts/s3-server.sh"
"$S3" install
env_file="$("$S3" start)"
trap '"$S3" stop' EXIT
# shellcheck disable=SC1090
source "$env_file"
cd "$ROOT"
cargo test -p sparta-storage "$@"

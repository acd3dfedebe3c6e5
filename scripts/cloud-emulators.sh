#!/usr/bin/env bash
# Google Cloud Storage and Azure Blob emulators for Sparta's storage
# conformance suite: fake-gcs-server (built from the Go module proxy) and
# Azurite (from the npm registry), installed into target/tools.
#
#   scripts/cloud-emulators.sh install   install both once (idempotent, quick when present)
#   scripts/cloud-emulators.sh start     start both on 127.0.0.1, create the bucket and
#                                        the container, write the env file, print its path
#   scripts/cloud-emulators.sh stop      stop both and remove their data
#
# Env: SPARTA_TOOLS_DIR (default <repo>/target/tools), SPARTA_CLOUD_STATE_DIR
# (default <repo>/target/cloud-emulators).
set -euo pipefail

FAKE_GCS_VERSION="v1.56.1"
AZURITE_VERSION="3.37.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${SPARTA_TOOLS_DIR:-$ROOT/target/tools}"
STATE="${SPARTA_CLOUD_STATE_DIR:-$ROOT/target/cloud-emulators}"
GCS_BIN="$TOOLS/bin/fake-gcs-server"
AZURITE_DIR="$TOOLS/azurite"
AZURITE_BIN="$AZURITE_DIR/node_modules/.bin/azurite-blob"
BUCKET="sparta-test"
CONTAINER="sparta-test"
# Azurite's well-known development account (public, documented by Microsoft).
AZ_ACCOUNT="devstoreaccount1"
AZ_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
ENV_FILE="$STATE/cloud.env"

die() { echo "cloud-emulators: $*" >&2; exit 1; }

install() {
    if ! [[ -x "$GCS_BIN" && "$(cat "$TOOLS/fake-gcs-server.version" 2>/dev/null)" == "$FAKE_GCS_VERSION" ]]; then
        command -v go >/dev/null || die "go is needed to build fake-gcs-server"
        mkdir -p "$TOOLS/bin"
        echo "cloud-emulators: building fake-gcs-server $FAKE_GCS_VERSION" >&2
        GOBIN="$TOOLS/bin" GOFLAGS=-modcacherw CGO_ENABLED=0 \
            go install "github.com/fsouza/fake-gcs-server@$FAKE_GCS_VERSION"
        echo "$FAKE_GCS_VERSION" > "$TOOLS/fake-gcs-server.version"
    fi
    if ! [[ -x "$AZURITE_BIN" && "$(cat "$TOOLS/azurite.version" 2>/dev/null)" == "$AZURITE_VERSION" ]]; then
        command -v npm >/dev/null || die "npm is needed to install azurite"
        mkdir -p "$AZURITE_DIR"
        echo "cloud-emulators: installing azurite $AZURITE_VERSION" >&2
        npm install --silent --no-audit --no-fund --prefix "$AZURITE_DIR" "azurite@$AZURITE_VERSION" >&2
        echo "$AZURITE_VERSION" > "$TOOLS/azurite.version"
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

alive() { [[ -f "$STATE/$1.pid" ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

# Waits until URL answers (any HTTP status) or NAME's process has exited.
wait_http() {
    local name="$1" url="$2" i
    for i in $(seq 1 150); do
        alive "$name" || die "$name exited; see $STATE/$name.log"
        if curl -s -o /dev/null --max-time 2 "$url"; then return 0; fi
        sleep 0.2
    done
    die "$name not ready after 30 s; see $STATE/$name.log"
}

start() {
    install
    mkdir -p "$STATE"
    if alive gcs && alive azurite && [[ -f "$ENV_FILE" ]]; then
        echo "$ENV_FILE"
        return 0
    fi
    stop
    mkdir -p "$STATE"
    local gcs_port az_port data
    gcs_port="$(free_port)"
    az_port="$(free_port)"
    data="$(mktemp -d "${TMPDIR:-/tmp}/sparta-cloud-data.XXXXXX")"
    echo "$data" > "$STATE/data"
    mkdir -p "$data/gcs/$BUCKET"

    # The folder under -data becomes the bucket.
    setsid "$GCS_BIN" -scheme http -host 127.0.0.1 -port "$gcs_port" \
        -public-host "127.0.0.1:$gcs_port" -external-url "http://127.0.0.1:$gcs_port" \
        -backend memory -data "$data/gcs" -log-level warn \
        >> "$STATE/gcs.log" 2>&1 < /dev/null &
    echo $! > "$STATE/gcs.pid"

    setsid node "$AZURITE_DIR/node_modules/azurite/dist/src/blob/main.js" \
        --blobHost 127.0.0.1 --blobPort "$az_port" \
        --skipApiVersionCheck --silent --inMemoryPersistence \
        >> "$STATE/azurite.log" 2>&1 < /dev/null &
    echo $! > "$STATE/azurite.pid"

    wait_http gcs "http://127.0.0.1:$gcs_port/storage/v1/b"
    wait_http azurite "http://127.0.0.1:$az_port/"

    # Create the container: one Shared Key signed REST call, made with
    # python's standard library.
    python3 - "$az_port" "$AZ_ACCOUNT" "$AZ_KEY" "$CONTAINER" <<'PY'
import base64, hashlib, hmac, sys, urllib.request
from email.utils import formatdate
port, account, key, container = sys.argv[1:]
date = formatdate(usegmt=True)
version = "2021-08-06"
canon_headers = f"x-ms-date:{date}\nx-ms-version:{version}\n"
canon_resource = f"/{account}/{account}/{container}\nrestype:container"
to_sign = "PUT\n\n\n\n\n\n\n\n\n\n\n\n" + canon_headers + canon_resource
sig = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
req = urllib.request.Request(
    f"http://127.0.0.1:{port}/{account}/{container}?restype=container", method="PUT",
    headers={"x-ms-date": date, "x-ms-version": version,
             "Authorization": f"SharedKey {account}:{sig}", "Content-Length": "0"})
try:
    urllib.request.urlopen(req, timeout=5)
except urllib.error.HTTPError as e:
    if e.code != 409:  # 409: already there
        sys.exit(f"cloud-emulators: could not create container {container}: HTTP {e.code} {e.read()[:300]!r}")
PY

    # The variables each ecosystem's own tools read: Google's client libraries
    # take STORAGE_EMULATOR_HOST, object_store's Azure client the AZURE_* pair.
    cat > "$ENV_FILE" <<ENV
export STORAGE_EMULATOR_HOST=http://127.0.0.1:$gcs_port
export AZURE_STORAGE_USE_EMULATOR=true
export AZURITE_BLOB_STORAGE_URL=http://127.0.0.1:$az_port
export SPARTA_TEST_GCS_BUCKET=$BUCKET
export SPARTA_TEST_AZURE_CONTAINER=$CONTAINER
ENV
    echo "$ENV_FILE"
}

stop_one() {
    local name="$1" pid i
    if alive "$name"; then
        pid="$(cat "$STATE/$name.pid")"
        kill "$pid"
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$STATE/$name.pid"
}

stop() {
    stop_one gcs
    stop_one azurite
    if [[ -f "$STATE/data" ]]; then
        local data
        data="$(cat "$STATE/data")"
        # Only ever remove a folder this script made.
        [[ "$data" == */sparta-cloud-data.* ]] && rm -rf "$data"
    fi
    rm -f "$STATE/data" "$ENV_FILE"
}

cmd="${1:-}"
shift || true
case "$cmd" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    *) die "usage: $0 install|start|stop" ;;
esac

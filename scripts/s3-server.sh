#!/usr/bin/env bash
# S3-compatible test server for Sparta: Versity S3 Gateway (versitygw) with
# its posix backend, built from the Go module proxy. See
# crates/sparta-storage/README.md for why this server.
#
#   scripts/s3-server.sh install            build versitygw once (idempotent)
#   scripts/s3-server.sh start [--port N]   start on 127.0.0.1, create the bucket,
#                                           write the env file, print its path
#   scripts/s3-server.sh stop [--keep]      stop it; --keep keeps data and port
#                                           so a later start resumes them
#   scripts/s3-server.sh env                print the env file's path
#
# Env: SPARTA_TOOLS_DIR (default <repo>/target/tools), SPARTA_S3_STATE_DIR
# (default <repo>/target/s3-server), SPARTA_TEST_S3_BUCKET (default sparta-test).
set -euo pipefail

VERSITYGW_VERSION="v1.8.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${SPARTA_TOOLS_DIR:-$ROOT/target/tools}"
STATE="${SPARTA_S3_STATE_DIR:-$ROOT/target/s3-server}"
BIN="$TOOLS/bin/versitygw"
BUCKET="${SPARTA_TEST_S3_BUCKET:-sparta-test}"
ACCESS_KEY="sparta-test-key"
SECRET_KEY="sparta-test-secret"
ENV_FILE="$STATE/s3.env"

die() { echo "s3-server: $*" >&2; exit 1; }

install() {
    if [[ -x "$BIN" && -f "$TOOLS/versitygw.version" && "$(cat "$TOOLS/versitygw.version")" == "$VERSITYGW_VERSION" ]]; then
        return 0
    fi
    command -v go >/dev/null || die "go is needed to build versitygw"
    mkdir -p "$TOOLS/bin"
    echo "s3-server: building versitygw $VERSITYGW_VERSION (about 2 minutes on 2 cores)" >&2
    GOBIN="$TOOLS/bin" GOFLAGS=-modcacherw CGO_ENABLED=0 \
        go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
    echo "$VERSITYGW_VERSION" > "$TOOLS/versitygw.version"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

running() {
    [[ -f "$STATE/pid" ]] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null
}

# Signed S3 request with curl's SigV4 support: METHOD PATH.
s3_request() {
    local method=(-X "$1")
    # curl waits for a body after `-X HEAD`; --head tells it there is none.
    [[ "$1" == HEAD ]] && method=(--head)
    curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "${method[@]}" \
        --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
        -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
        "http://127.0.0.1:$(cat "$STATE/port")$2"
}

start() {
    local port=""
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --port) port="$2"; shift 2 ;;
            *) die "unknown start option $1" ;;
        esac
    done
    install
    mkdir -p "$STATE"
    if running; then
        echo "$ENV_FILE"
        return 0
    fi
    # Reuse the data dir and port of a `stop --keep`, so a restart looks like
    # the same server coming back.
    if [[ -f "$STATE/data" && -d "$(cat "$STATE/data")" ]]; then
        [[ -n "$port" ]] || port="$(cat "$STATE/port")"
    else
        mktemp -d "${TMPDIR:-/tmp}/sparta-s3-data.XXXXXX" > "$STATE/data"
    fi
    [[ -n "$port" ]] || port="$(free_port)"
    echo "$port" > "$STATE/port"
    local data
    data="$(cat "$STATE/data")"

    ROOT_ACCESS_KEY="$ACCESS_KEY" ROOT_SECRET_KEY="$SECRET_KEY" \
        setsid "$BIN" --port "127.0.0.1:$port" posix "$data" \
        >> "$STATE/server.log" 2>&1 < /dev/null &
    echo $! > "$STATE/pid"

    local i code=""
    for i in $(seq 1 100); do
        running || die "versitygw exited; see $STATE/server.log"
        code="$(s3_request GET / 2>/dev/null || true)"
        [[ "$code" == "200" ]] && break
        sleep 0.1
    done
    [[ "$code" == "200" ]] || die "versitygw not ready after 10 s; see $STATE/server.log"

    code="$(s3_request HEAD "/$BUCKET" || true)"
    if [[ "$code" != "200" ]]; then
        code="$(s3_request PUT "/$BUCKET" || true)"
        [[ "$code" == "200" ]] || die "could not create bucket $BUCKET (HTTP $code)"
    fi

    cat > "$ENV_FILE" <<ENV
export SPARTA_TEST_S3_ENDPOINT=http://127.0.0.1:$port
export SPARTA_TEST_S3_BUCKET=$BUCKET
export SPARTA_TEST_S3_ACCESS_KEY=$ACCESS_KEY
export SPARTA_TEST_S3_SECRET_KEY=$SECRET_KEY
export SPARTA_TEST_S3_REGION=us-east-1
ENV
    echo "$ENV_FILE"
}

stop() {
    local keep=0
    [[ "${1:-}" == "--keep" ]] && keep=1
    if running; then
        local pid i
        pid="$(cat "$STATE/pid")"
        kill "$pid"
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$STATE/pid"
    if [[ $keep -eq 0 ]]; then
        if [[ -f "$STATE/data" ]]; then
            local data
            data="$(cat "$STATE/data")"
            # Only ever remove a folder this script made.
            [[ "$data" == */sparta-s3-data.* ]] && rm -rf "$data"
        fi
        rm -f "$STATE/data" "$STATE/port" "$ENV_FILE"
    fi
}

cmd="${1:-}"
shift || true
case "$cmd" in
    install) install ;;
    start) start "$@" ;;
    stop) stop "$@" ;;
    env) echo "$ENV_FILE" ;;
    *) die "usage: $0 install|start [--port N]|stop [--keep]|env" ;;
esac

#!/usr/bin/env bash
# End-to-end check of the dashboard and alert rules against real metrics:
# starts Sparta (memory store) in front of the fixture upstream and a real
# Prometheus (Debian's package) scraping it every second with the alert rules
# loaded, drives traffic (miss, hit, zip, upstream 404, upstream 5xx,
# concurrent cold requests), then evaluates every dashboard and alert
# expression through Prometheus's /api/v1/query and checks the counters moved.
# Everything listens on 127.0.0.1 and stops when the script exits.
#
# Env: SPARTA_BIN (default target/debug/sparta), SPARTA_TEST_UPSTREAM (the
# fixture's URL; default: build and start tests/fixture here).
# Needs: scripts/install-deploy-tools.sh (prometheus, the Python venv), go.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=${SPARTA_TOOLS_DIR:-$ROOT/.tools}
export PATH="$TOOLS/bin:/usr/local/go/bin:$PATH"
PY="$TOOLS/venv/bin/python"
SPARTA_BIN=${SPARTA_BIN:-$ROOT/target/debug/sparta}

for tool in prometheus curl "$PY"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "prometheus-test: $tool missing: run scripts/install-deploy-tools.sh" >&2; exit 1; }
done
[ -x "$SPARTA_BIN" ] || { echo "prometheus-test: no sparta binary at $SPARTA_BIN (cargo build -p sparta)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

log() { printf 'prometheus-test: %s\n' "$*" >&2; }
# wait_for FILE SECONDS: waits until FILE exists and is non-empty.
wait_for() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    [ -s "$1" ] && return 0
    sleep 0.1
  done
  return 1
}
dump_logs() {
  local f
  for f in "$work"/*.log; do
    [ -f "$f" ] || continue
    echo "--- $(basename "$f") (last 30 lines)" >&2
    tail -n 30 "$f" >&2
  done
}
free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- upstream: the e2e fixture ------------------------------------------------
if [ -n "${SPARTA_TEST_UPSTREAM:-}" ]; then
  upstream=${SPARTA_TEST_UPSTREAM%/}
else
  log "building the fixture upstream (tests/fixture)"
  (cd tests/fixture && GOFLAGS=-buildvcs=false go build -o "$work/fixture" .)
  "$work/fixture" --listen 127.0.0.1:0 --addr-file "$work/fixture.addr" --large-size 1MiB \
    >"$work/fixture.log" 2>&1 &
  pids+=($!)
  wait_for "$work/fixture.addr" 60 || { log "fixture did not start"; dump_logs; exit 1; }
  upstream="http://$(cat "$work/fixture.addr")"
fi
curl -fsS "$upstream/_fixture/modules" >/dev/null || { log "upstream $upstream is not the fixture (no /_fixture/modules)"; exit 1; }
curl -fsS -X POST "$upstream/_fixture/reset" >/dev/null

# --- Sparta ------------------------------------------------------------------
mkdir -p "$work/spool"
# Fixture modules have no checksum database records: they are private here.
"$SPARTA_BIN" serve --listen 127.0.0.1:0 --storage memory:// --upstream "$upstream" \
  --nosumdb 'fixture.test' --spool-dir "$work/spool" --log-format json --ready-file "$work/sparta.addr" \
  >"$work/sparta.log" 2>&1 &
pids+=($!)
wait_for "$work/sparta.addr" 60 || { log "sparta did not start"; dump_logs; exit 1; }
sparta="http://$(cat "$work/sparta.addr")"
curl -fsS "$sparta/metrics" >/dev/null || { log "no /metrics at $sparta"; dump_logs; exit 1; }
log "sparta at $sparta, upstream $upstream"

# --- Prometheus ----------------------------------------------------------------
port=$(free_port)
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/deploy/prometheus/alerts.yaml
scrape_configs:
  - job_name: sparta
    static_configs:
      - targets: ["${sparta#http://}"]
EOF
prometheus --config.file "$work/prometheus.yml" --storage.tsdb.path "$work/tsdb" \
  --web.listen-address "127.0.0.1:$port" >"$work/prometheus.log" 2>&1 &
pids+=($!)
prom="http://127.0.0.1:$port"
for ((i = 0; i < 300; i++)); do
  curl -fsS "$prom/-/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$prom/-/ready" >/dev/null || { log "prometheus did not become ready"; dump_logs; exit 1; }
# The first scrape, so the counters' starting values are recorded.
for ((i = 0; i < 100; i++)); do
  curl -fsS "$prom/api/v1/query?query=up%7Bjob%3D%22sparta%22%7D%3D%3D1" | grep -q '"value"' && break
  sleep 0.1
done
log "prometheus at $prom scraping every second"

"$PY" deploy/tools/deploy_checks.py exprs deploy/grafana/sparta.json deploy/prometheus/alerts.yaml >"$work/exprs.jsonl"
if ! "$PY" deploy/tools/prometheus_e2e.py "$sparta" "$upstream" "$prom" "$work/exprs.jsonl"; then
  dump_logs
  exit 1
fi

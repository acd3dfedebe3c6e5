#!/usr/bin/env bash
# The bash -c snippets take their arguments as $1, $2: single quotes are meant.
# shellcheck disable=SC2016
# Checks every deployment file with real tools, offline:
#   - the chart's copies (helm/sparta/files/) equal deploy/ byte for byte
#   - alert rules: promtool check rules, promtool test rules, metrics/labels vs CONTRACTS.md
#   - Prometheus config of the compose stack: promtool check config
#   - Grafana dashboard: JSON, datasource variable, no __inputs, every query vs CONTRACTS.md
#   - Dockerfile: BuildKit's parser and linter, runtime stage requirements
#   - docker-compose.yml: compose-go (the loader of `docker compose config`)
#   - Helm chart: helm lint --strict and helm template for each ci/*-values.yaml,
#     kubernetes-validate --strict (bundled Kubernetes schemas) on the output,
#     ServiceMonitor/PrometheusRule decoded strictly into prometheus-operator types
#     (no schema bundle covers these CRDs), structural checks, and renders that must fail
# Needs: scripts/install-deploy-tools.sh (run first; `make tools` does).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=${SPARTA_TOOLS_DIR:-$ROOT/.tools}
export PATH="$TOOLS/bin:$PATH"
PY="$TOOLS/venv/bin/python"
CHART=helm/sparta

# The binary that reads the chart's config.toml (make test builds it).
SPARTA_BIN=${SPARTA_BIN:-$ROOT/target/debug/sparta}
for tool in helm promtool deploycheck kubernetes-validate "$PY" "$SPARTA_BIN"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "deploy-check: $tool missing: run scripts/install-deploy-tools.sh" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
# check NAME CMD...: runs one check, prints its output only when it fails.
check() {
  local name=$1; shift
  if "$@" >"$work/out" 2>&1; then
    passed=$((passed + 1))
    printf 'ok    %s\n' "$name"
  else
    failed=$((failed + 1))
    printf 'FAIL  %s\n' "$name"
    sed 's/^/      /' "$work/out"
  fi
}
# must_fail NAME PATTERN CMD...: the command must fail with PATTERN in its output.
must_fail() {
  local name=$1 pattern=$2; shift 2
  if "$@" >"$work/out" 2>&1; then
    failed=$((failed + 1))
    printf 'FAIL  %s (succeeded, should have failed)\n' "$name"
  elif grep -Eq -- "$pattern" "$work/out"; then
    passed=$((passed + 1))
    printf 'ok    %s\n' "$name"
  else
    failed=$((failed + 1))
    printf 'FAIL  %s (failed without /%s/)\n' "$name" "$pattern"
    sed 's/^/      /' "$work/out"
  fi
}

# --- copies inside the chart -------------------------------------------------
check "chart copy of alerts.yaml equals deploy/prometheus/alerts.yaml" \
  cmp deploy/prometheus/alerts.yaml "$CHART/files/alerts.yaml"
check "chart copy of sparta.json equals deploy/grafana/sparta.json" \
  cmp deploy/grafana/sparta.json "$CHART/files/sparta.json"

# --- Prometheus --------------------------------------------------------------
check "promtool check rules" promtool check rules deploy/prometheus/alerts.yaml
check "promtool test rules (one test per alert)" \
  bash -c 'cd deploy/prometheus && promtool test rules alerts_test.yaml'
check "alert rules use metrics and labels from CONTRACTS.md" \
  "$PY" deploy/tools/deploy_checks.py rules deploy/prometheus/alerts.yaml
# The compose config names the rules by their in-container path.
sed "s#/etc/prometheus/alerts.yaml#$ROOT/deploy/prometheus/alerts.yaml#" deploy/prometheus/prometheus.yml >"$work/prometheus.yml"
check "promtool check config (compose Prometheus)" promtool check config "$work/prometheus.yml"

# --- Grafana -----------------------------------------------------------------
check "dashboard: datasource variable, no __inputs, queries vs CONTRACTS.md" \
  "$PY" deploy/tools/deploy_checks.py dashboard deploy/grafana/sparta.json
check "grafana provisioning files parse" "$PY" -c '
import sys, yaml
for f in sys.argv[1:]:
    d = yaml.safe_load(open(f))
    assert d.get("apiVersion") == 1, f
    assert d.get("datasources") or d.get("providers"), f
' deploy/grafana/provisioning/datasources/prometheus.yaml deploy/grafana/provisioning/dashboards/sparta.yaml

# --- container and compose ---------------------------------------------------
check "Dockerfile: BuildKit parser and linter, runtime stage" deploycheck dockerfile deploy/Dockerfile
check "docker-compose.yml: compose-go load (docker compose config)" \
  env SPARTA_UPSTREAM=https://goproxy.example.com deploycheck compose deploy/docker-compose.yml

# --- Helm chart --------------------------------------------------------------
for values in "$CHART"/ci/*-values.yaml; do
  name=$(basename "$values" -values.yaml)
  out="$work/render-$name.yaml"
  check "helm lint --strict ($name)" helm lint --strict "$CHART" -f "$values"
  # With the prometheus-operator API, as on a cluster running kube-prometheus-stack.
  check "helm template ($name)" \
    bash -c 'helm template sparta "$1" -f "$2" --namespace goproxy --api-versions monitoring.coreos.com/v1 >"$3"' _ "$CHART" "$values" "$out"
  check "kubernetes-validate --strict ($name)" \
    bash -c 'kubernetes-validate --strict --quiet "$1" >"$2" 2>&1; rc=$?; cat "$2";
      # Only the two prometheus-operator kinds may lack a schema; deploycheck crd covers them.
      if grep -v -E "^WARN .* find schema for kind (ServiceMonitor|PrometheusRule) with api version monitoring.coreos.com/v1" "$2" | grep -q .; then exit 1; fi
      exit $rc' _ "$out" "$work/kv.out"
  check "ServiceMonitor/PrometheusRule strict decode ($name)" deploycheck crd "$out"
  check "rendered manifests: probes, security, config, monitoring ($name)" \
    "$PY" deploy/tools/deploy_checks.py rendered "$out" "$name"
  check "no ServiceMonitor/PrometheusRule without the CRD API ($name)" \
    bash -c '! helm template sparta "$1" -f "$2" | grep -Eq "^kind: (ServiceMonitor|PrometheusRule)$"' _ "$CHART" "$values"
  # The rendered config.toml is read by the real binary: every key known,
  # every value valid (a typo in the chart would stop the pod at start-up).
  check "sparta config reads the chart's config.toml ($name)" \
    bash -c '"$1" -c "import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d.get(\"kind\") == \"ConfigMap\" and \"config.toml\" in d.get(\"data\", {}):
        open(sys.argv[2], \"w\").write(d[\"data\"][\"config.toml\"])" "$2" "$3" &&
      test -s "$3" && (cd "$(dirname "$3")" && env -u SPARTA_STORAGE "$4" config --config "$3" >/dev/null)' \
    _ "$PY" "$out" "$work/config-$name.toml" "$SPARTA_BIN"
done

default="$CHART/ci/default-values.yaml"
must_fail "refuses filesystem storage with 2 replicas" "replicaCount: 1" \
  helm template sparta "$CHART" -f "$default" --set replicaCount=2
must_fail "refuses filesystem storage with autoscaling" "replicaCount: 1" \
  helm template sparta "$CHART" -f "$default" --set autoscaling.enabled=true
must_fail "refuses a render without an upstream" "config.upstream is required" \
  helm template sparta "$CHART"
must_fail "refuses a grace period not above the shutdown grace" "must exceed" \
  helm template sparta "$CHART" -f "$default" --set terminationGracePeriodSeconds=30
must_fail "refuses a virtual-hosted endpoint without the bucket" "bucket's own URL" \
  helm template sparta "$CHART" -f "$CHART/ci/cos-values.yaml" --set storage.s3.endpoint=https://cos.ap-guangzhou.myqcloud.com
must_fail "schema rejects an unknown log format" "logFormat" \
  helm lint --strict "$CHART" -f "$default" --set config.logFormat=xml
must_fail "schema rejects a misspelt value" "additional properties|not allowed" \
  helm lint --strict "$CHART" -f "$default" --set config.cachesize=1GiB

echo "deploy-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

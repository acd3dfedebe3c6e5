#!/usr/bin/env bash
# Installs what scripts/deploy-check.sh and scripts/deploy-prometheus-test.sh
# need, idempotently (a second run takes a few seconds):
#   helm          built from the Go module proxy (go install), pinned, in .tools/bin
#   deploycheck   deploy/tools/deploycheck (compose-go, BuildKit's Dockerfile
#                 parser, prometheus-operator types), built into .tools/bin
#   promtool, prometheus   Debian's `prometheus` package (apt-get)
#   kubernetes-validate    PyPI, pinned, in a venv at .tools/venv; it bundles the
#                 Kubernetes JSON schemas, so validation works offline
# SPARTA_TOOLS_DIR overrides the .tools directory.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
# helm.sh/helm/v3 v3.22.0 builds against k8s.io/client-go v0.37: Kubernetes 1.37
# is what `helm template` and `helm lint` assume unless told otherwise.
HELM_K8S_MINOR=37
KUBERNETES_VALIDATE_VERSION=1.37.0

TOOLS=${SPARTA_TOOLS_DIR:-$PWD/.tools}
mkdir -p "$TOOLS/bin"
export PATH="$TOOLS/bin:/usr/local/go/bin:$HOME/go/bin:$PATH"

log() { printf 'install-deploy-tools: %s\n' "$*" >&2; }
elapsed() { echo "$(($(date +%s) - $1))s"; }

bash scripts/install-go.sh

# --- helm ------------------------------------------------------------------
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
  helm_ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$HELM_K8S_MINOR"
done
helm_ok() {
  [ -x "$TOOLS/bin/helm" ] || return 1
  local info
  info=$(go version -m "$TOOLS/bin/helm" 2>/dev/null) || return 1
  grep -Eq "^[[:space:]]+mod[[:space:]]+helm.sh/helm/v3[[:space:]]+${HELM_VERSION}[[:space:]]" <<<"$info" &&
    grep -Fq "k8sVersionMinor=$HELM_K8S_MINOR" <<<"$info"
}
if helm_ok; then
  log "helm $HELM_VERSION present"
else
  log "building helm $HELM_VERSION from the Go module proxy (a few minutes when the Go cache is cold)"
  t=$(date +%s)
  GOBIN="$TOOLS/bin" GOFLAGS=-buildvcs=false go install -ldflags "$helm_ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  helm_ok || { log "helm build did not produce $HELM_VERSION"; exit 1; }
  log "helm built in $(elapsed "$t")"
fi

# --- deploycheck -----------------------------------------------------------
# Always rebuilt: the Go build cache makes this a relink when nothing changed.
t=$(date +%s)
(cd deploy/tools/deploycheck && GOFLAGS=-buildvcs=false go build -o "$TOOLS/bin/deploycheck" .)
log "deploycheck built in $(elapsed "$t")"

# --- promtool and prometheus (Debian) --------------------------------------
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  log "promtool and prometheus present ($(promtool --version 2>&1 | head -n 1))"
else
  log "installing Debian's prometheus package (promtool and the server)"
  t=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # The package's service is not started: there is no init system here, and
  # policy-rc.d refuses it in containers.
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  command -v promtool >/dev/null && command -v prometheus >/dev/null
  log "prometheus package installed in $(elapsed "$t")"
fi

# --- kubernetes-validate (PyPI, offline schemas) ---------------------------
kv_ok() {
  [ -x "$TOOLS/venv/bin/kubernetes-validate" ] &&
    [ "$("$TOOLS/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))' 2>/dev/null)" = "$KUBERNETES_VALIDATE_VERSION" ]
}
if kv_ok; then
  log "kubernetes-validate $KUBERNETES_VALIDATE_VERSION present"
else
  log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION from PyPI into $TOOLS/venv"
  t=$(date +%s)
  if ! python3 -m venv "$TOOLS/venv" >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    python3 -m venv "$TOOLS/venv"
  fi
  "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  kv_ok || { log "kubernetes-validate did not install"; exit 1; }
  log "kubernetes-validate installed in $(elapsed "$t")"
fi
ln -sf "$TOOLS/venv/bin/kubernetes-validate" "$TOOLS/bin/kubernetes-validate"

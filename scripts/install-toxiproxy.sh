#!/usr/bin/env bash
# Builds Shopify's toxiproxy (server and CLI) from the Go module proxy for the
# tests and benchmarks that need a slow or failing link on loopback.
# Idempotent: quick when the pinned version is already built. Prints the
# server's path.
#
# Env: SPARTA_TOOLS_DIR (default <repo>/target/tools).
set -euo pipefail

TOXIPROXY_VERSION="v2.12.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${SPARTA_TOOLS_DIR:-$ROOT/target/tools}"
STAMP="$TOOLS/toxiproxy.version"

if [[ -x "$TOOLS/bin/toxiproxy-server" && -x "$TOOLS/bin/toxiproxy-cli" && -f "$STAMP" \
      && "$(cat "$STAMP")" == "$TOXIPROXY_VERSION" ]]; then
    echo "$TOOLS/bin/toxiproxy-server"
    exit 0
fi
command -v go >/dev/null || { echo "install-toxiproxy: go is needed" >&2; exit 1; }
mkdir -p "$TOOLS/bin"
echo "install-toxiproxy: building toxiproxy $TOXIPROXY_VERSION" >&2
for cmd in server cli; do
    GOBIN="$TOOLS/bin" GOFLAGS=-modcacherw CGO_ENABLED=0 \
        go install "github.com/Shopify/toxiproxy/v2/cmd/$cmd@$TOXIPROXY_VERSION"
done
mv -f "$TOOLS/bin/server" "$TOOLS/bin/toxiproxy-server"
mv -f "$TOOLS/bin/cli" "$TOOLS/bin/toxiproxy-cli"
echo "$TOXIPROXY_VERSION" > "$STAMP"
echo "$TOOLS/bin/toxiproxy-server"

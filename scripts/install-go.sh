#!/usr/bin/env bash
# Makes sure a recent `go` command is on PATH (the Makefile puts .tools/go/bin
# first). The machine's own Go is used when it is new enough; otherwise
# Debian's golang-go is installed and used only to fetch the Go toolchain
# module of GO_VERSION through the Go module proxy into .tools/go.
set -euo pipefail

GO_VERSION=${GO_VERSION:-1.26.8}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
export PATH="$TOOLS/go/bin:$PATH"

version_ok() {
  command -v go >/dev/null 2>&1 || return 1
  local have
  have=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
  [ -n "$have" ] || return 1
  # sort -V puts the smaller first: ok when the wanted one is not greater.
  [ "$(printf '%s\n%s\n' "$GO_VERSION" "$have" | sort -V | head -n1)" = "$GO_VERSION" ]
}

if version_ok; then
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "install-go: installing Debian golang-go to bootstrap" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq golang-go >/dev/null
fi
echo "install-go: fetching the go$GO_VERSION toolchain module" >&2
arch=$(go env GOARCH)
mod="golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-$arch"
dir=$(GOPATH="$TOOLS/gopath" GOFLAGS=-modcacherw GOTOOLCHAIN=local \
  go mod download -json "$mod" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
rm -rf "$TOOLS/go"
ln -s "$dir" "$TOOLS/go"
chmod +x "$TOOLS/go/bin/"* "$TOOLS/go/pkg/tool/"*/* 2>/dev/null || true
version_ok || { echo "install-go: go$GO_VERSION is still not on PATH" >&2; exit 1; }
echo "install-go: $(go version)" >&2

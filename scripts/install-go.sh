#!/usr/bin/env bash
# Makes sure a `go` command (1.21 or newer) is on PATH: the machine's own if
# present, else Debian's golang-go, which then fetches a newer toolchain
# through the Go module proxy when a module asks for one.
set -euo pipefail

go_ok() {
  command -v go >/dev/null 2>&1 || return 1
  local v
  v=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
  [ -n "$v" ] || return 1
  local major minor
  major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
  [ "$major" -gt 1 ] || [ "$minor" -ge 21 ]
}

if go_ok; then
  exit 0
fi
echo "installing go (Debian golang-go)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq golang-go >/dev/null
if ! go_ok; then
  echo "go on PATH is too old: $(go version 2>/dev/null); GOTOOLCHAIN=auto will fetch a newer one when a module needs it" >&2
fi

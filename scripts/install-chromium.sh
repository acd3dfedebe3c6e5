#!/usr/bin/env bash
# Installs what the browse-page test needs, idempotently and quickly when present:
# Debian's chromium (no browser download by Playwright) and playwright-core (the
# driver library only) into tests/ui/node_modules.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v chromium >/dev/null 2>&1; then
    echo "install-chromium: installing Debian's chromium" >&2
    if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
command -v node >/dev/null 2>&1 || { echo "install-chromium: node is required (Debian's nodejs)" >&2; exit 1; }

cd "$ROOT/tests/ui"
if [[ ! -f node_modules/playwright-core/package.json ]]; then
    echo "install-chromium: installing playwright-core (driver library, no browsers)" >&2
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --no-package-lock --silent
fi

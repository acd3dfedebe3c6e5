#!/usr/bin/env bash
# Installs Debian's nginx for the tests that put it in front of Sparta.
# Idempotent and quick when nginx is already there. The package's own
# service is not started: tests run their own nginx on loopback.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-nginx: not root; install the nginx package by hand" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Keep the package's post-install step from starting a system nginx.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends nginx-light >/dev/null 2>&1 \
    || apt-get install -y -qq --no-install-recommends nginx >/dev/null

#!/usr/bin/env bash
# Installs Debian's OpenSSH server for the test of ssh:// remotes
# (tests/e2e/direct_ssh.rs starts its own sshd on loopback). Idempotent and
# quick when sshd is already there. The package's own service is not started.
set -euo pipefail
if [ -x /usr/sbin/sshd ] && command -v ssh-keygen >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-sshd: not root; install the openssh-server package by hand" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Keep the package's post-install step from starting a system sshd.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null

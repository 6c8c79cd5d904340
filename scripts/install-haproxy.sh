#!/usr/bin/env bash
# Install Debian's haproxy for the deployment test (tests/deploy: HAProxy in front of two gateways,
# started and stopped by the test's playbook run on loopback ports).
# Idempotent: nothing to do when it is already installed.
set -euo pipefail
if [ -x /usr/sbin/haproxy ]; then exit 0; fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-haproxy: installing haproxy" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q haproxy >/dev/null; then
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q haproxy >/dev/null
fi
[ -x /usr/sbin/haproxy ]

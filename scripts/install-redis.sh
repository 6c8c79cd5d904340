#!/usr/bin/env bash
# Install Debian's redis-server for the shared-state tests (they start their own on loopback).
# Idempotent: nothing to do when it is already on PATH.
set -euo pipefail
command -v redis-server >/dev/null 2>&1 && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-redis: installing redis-server" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q redis-server >/dev/null; then
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q redis-server >/dev/null
fi
command -v redis-server >/dev/null

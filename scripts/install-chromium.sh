#!/usr/bin/env bash
# Install Debian's chromium for the dashboard's browser test (tests/admin/test_dashboard_browser.py
# drives it headless with Playwright; no browser is downloaded). Idempotent: nothing to do when it
# is already on PATH.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-chromium: installing chromium" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q chromium >/dev/null; then
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q chromium >/dev/null
fi
command -v chromium >/dev/null

#!/usr/bin/env bash
# Create or refresh the project venv (.venv) with the gateway, the worker tools and test deps.
# Idempotent: re-installs only when pyproject.toml changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MPR_VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.mpr-stamp"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "bootstrap: installing the project into $VENV" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e '.[test,worker]'
echo "$want" > "$stamp"

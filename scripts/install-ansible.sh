#!/usr/bin/env bash
# Install the Ansible controller tools (ansible-core, ansible-lint) into an isolated venv.
#
#   scripts/install-ansible.sh [VENV]        # default: <repo>/.venv-ansible
#
# Idempotent: a venv that already has the pinned versions is left as it is. Versions are pinned
# in deploy/ansible/requirements.txt. The playbooks use only ansible.builtin modules, so no
# collection has to be fetched from Galaxy.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${1:-"$repo/.venv-ansible"}
reqs="$repo/deploy/ansible/requirements.txt"
python=${PYTHON:-python3}

if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "install-ansible: $python is older than 3.11; set PYTHON=/path/to/python3.11+" >&2
  exit 1
fi

stamp="$venv/.mpr-ansible-requirements"
if [[ -x "$venv/bin/ansible-playbook" && -x "$venv/bin/ansible-lint" && -f "$stamp" ]] \
   && cmp -s "$reqs" "$stamp"; then
  echo "install-ansible: $venv is up to date"
  exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs"
playbook_version=$("$venv/bin/ansible-playbook" --version)
lint_version=$("$venv/bin/ansible-lint" --offline --version 2>&1)
echo "install-ansible: ${playbook_version%%$'\n'*}; ${lint_version%%$'\n'*}"
cp "$reqs" "$stamp"
echo "install-ansible: ready: $venv/bin/ansible-playbook"

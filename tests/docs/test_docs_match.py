"""What the docs say against what the code does, one test per statement that once drifted:
Ansible variables the docs name exist in the roles, the ``/metrics`` content type, the 429s'
``type``, the recipe for a key's rate-limit bucket, and the licence ``pyproject.toml`` names."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

from gateway.errors import RateLimited
from gateway.state.redis_state import bucket_key
from gateway.telemetry import CONTENT_TYPE
from gateway.tenants.keyring import build_keyring, hash_key
from tests.support.gateway_proc import REPO

DOCS = REPO / "docs"
ANSIBLE = REPO / "deploy" / "ansible"
_VARIABLE = re.compile(r"`((?:vllm_worker|gateway|haproxy|redis|common|mpr|vault)_[a-z0-9_]+)`")


def _text(*parts: str) -> str:
    return REPO.joinpath(*parts).read_text(encoding="utf-8")


def _sources(*roots: str) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for r in roots for p in (REPO / r).rglob("*") if p.is_file() and p.suffix in (".py", ".yml", ".yaml", ".j2", ".cfg"))


def test_every_ansible_style_variable_the_docs_name_exists() -> None:
    """A name like `mpr_register_url` that nothing defines: following the docs silently does nothing."""
    known = _sources("deploy/ansible", "gateway", "worker_launch")
    named = {name for path in [REPO / "README.md", *DOCS.glob("*.md")] for name in _VARIABLE.findall(path.read_text(encoding="utf-8"))}
    assert "vllm_worker_register_url" in named
    missing = sorted(name for name in named if name not in known and name.removesuffix("_total") not in known)
    assert missing == []


def test_operations_md_names_the_roles_register_variable() -> None:
    text = _text("docs", "operations.md")
    assert "`vllm_worker_register_url`" in text and "mpr_register_url" not in text
    assert re.search(r"^vllm_worker_register_url:", _text("deploy", "ansible", "roles", "vllm_worker", "defaults", "main.yml"), re.M)


def test_observability_md_says_the_metrics_content_type_served() -> None:
    text = _text("docs", "observability.md")
    said = re.findall(r"served as `(text/plain;[^`]*)`", text)
    assert said == [CONTENT_TYPE]
    assert "Prometheus 2.x" in text and "Prometheus 3.x" in text


def test_tenants_md_says_the_429_type_sent() -> None:
    text = _text("docs", "tenants.md")
    said = re.findall(r'The 429s carry .*?`"type": "([a-z_]+)"`', text, re.S)
    assert said == [RateLimited.error_type]


def test_scaling_md_finds_a_keys_bucket() -> None:
    """The shell recipe in scaling.md, run as written (the console script in place of
    ``.venv/bin/mpr-gateway``), names the bucket the gateway uses for that key."""
    text = _text("docs", "scaling.md")
    block = text[text.index("### Finding a key's bucket") :]
    script = block[block.index("```bash") + len("```bash") : block.index("```", block.index("```bash") + 7)]
    lines = [line for line in script.strip().splitlines() if line.startswith(("subject=", "bucket="))]
    assert len(lines) == 2
    command = f"{sys.executable} -m gateway"
    shell = "\n".join(line.replace(".venv/bin/mpr-gateway", command) for line in lines) + '\nprintf %s "$bucket"'
    plain = "sk-tenant-research-0001"
    result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60, cwd=REPO, env={**os.environ, "KEY": plain})
    assert result.returncode == 0, result.stderr
    tenant = build_keyring([], [plain], None).authenticate(f"Bearer {plain}")
    assert tenant is not None and tenant.subject == hash_key(plain)
    assert result.stdout == bucket_key("mpr:", tenant.subject)  # what charge() takes from with this key
    assert "`{prefix}rl:{sha256(subject)[:32]}`" in text


def test_the_licence_pyproject_names_is_shipped() -> None:
    project = tomllib.loads(_text("pyproject.toml"))["project"]
    assert project["license"] == "Apache-2.0"
    licence = _text("LICENSE")
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in licence

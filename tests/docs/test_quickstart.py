"""The files docs/quickstart-deploy.md hands a newcomer: the one-GPU-box config, served as it is
(the real ``mpr-gateway serve`` against fake specialists and a fake target on loopback, driven by
the environment variables the page lists), and the example inventory (placeholder hosts only,
one host in both groups, a target the gateway accepts)."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from gateway.config.loader import parse_config
from tests.gateway.conftest import DIRTY, refining
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import REPO, clean_env, free_port

CONFIG = REPO / "config" / "examples" / "one-gpu-box.yaml"
INVENTORY = REPO / "deploy" / "ansible" / "inventory.one-box.example.yml"
LAB = ("jw1", "jw2", "jw3", "kcloud", "129.254.", "etri", "sbs29", "distribute_models")
DOCUMENTATION_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]


def _check_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", str(CONFIG)], capture_output=True, text=True, timeout=60, cwd=REPO,
        env={**clean_env(), **env},
    )


@pytest.mark.parametrize("env", [{}, {"MPR_TARGET_API": "chat", "MPR_TARGET_URL": "http://192.0.2.20:8080/v1", "MPR_TARGET_MODEL": "m"}])
def test_the_example_config_checks_clean(env: dict[str, str]) -> None:
    result = _check_config(env)
    assert result.returncode == 0, result.stderr
    assert "adapters: cleaner, describer, paraphraser" in result.stdout and "warning" not in result.stderr


@pytest.fixture
def peer() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        refining(fake)
        yield fake


def test_the_example_config_serves_as_shipped(peer: FakeOpenAI) -> None:
    port = free_port()
    env = {**clean_env(), "MPR_WORKER_URL": peer.base_url, "MPR_TARGET_URL": peer.base_url, "MPR_TARGET_MODEL": "target-model",
           "OPENAI_API_KEY": "sk-target"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(CONFIG), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "the gateway exited"
            try:
                if httpx.get(url + "/ready", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "not ready in 30 s"
            time.sleep(0.1)
        reply = httpx.post(url + "/v1/chat/completions", json={"model": "target-model", "messages": [{"role": "user", "content": DIRTY}]}, timeout=10)
        ready = httpx.get(url + "/ready", timeout=5).json()
    finally:
        proc.terminate()
        proc.wait(15)
    assert reply.status_code == 200, reply.text
    assert not reply.headers["x-mpr-refinement"].startswith(("off", "fallback", "skipped"))  # refined
    assert all(peer.requests_for(role) for role in ("cleaner", "describer", "paraphraser"))  # by all three, at one endpoint
    assert set(ready["adapters"]) == {"cleaner", "describer", "paraphraser"}
    target_calls = [r for r in peer.requests if r.body.get("model") == "target-model"]
    assert target_calls and target_calls[0].headers.get("Authorization") == "Bearer sk-target"


def _hosts(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: vars_ or {} for name, vars_ in (tree["all"].get("hosts") or {}).items()}


def test_the_example_inventory_is_one_placeholder_box() -> None:
    text = INVENTORY.read_text()
    assert not [name for name in LAB if name in text.split("# Another layout")[0]]
    tree = yaml.safe_load(text)
    hosts = _hosts(tree)
    assert list(hosts) == ["gpu-box"]
    box = hosts["gpu-box"]
    assert any(ipaddress.ip_address(box["ansible_host"]) in net for net in DOCUMENTATION_NETS)
    groups = tree["all"]["children"]
    assert list(groups["gateway"]["hosts"]) == ["gpu-box"] and list(groups["workers"]["hosts"]) == ["gpu-box"]
    assert box["mpr_worker_roles"] == ["cleaner", "describer", "paraphraser"]
    assert box["mpr_gateway_port"] != box["mpr_worker_port"]
    size = box["mpr_model_size"]
    assert {role: set(sizes) for role, sizes in box["mpr_adapters"].items()} == {r: {size} for r in ("cleaner", "describer", "paraphraser")}
    config = parse_config({"targets": box["mpr_targets"]}, base_dir=REPO, source=str(INVENTORY))  # the gateway accepts them
    assert [t.name for t in config.targets] == ["gpt-4o-mini"]

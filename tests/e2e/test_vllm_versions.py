"""Adapter versions hot-loaded into the session's running vLLM (``mpr-worker launch`` starts it with
``VLLM_ALLOW_RUNTIME_LORA_UPDATING``), without a restart: ``mpr-worker adapters load cleaner@2``
verifies the version's weights digest and recorded base model and loads it under its own LoRA name;
a tampered copy and a version recorded for another base model are refused before vLLM sees them;
the worker's registration (the launcher's announcer, here run in-process against the session's
vLLM) announces the new name, and after ``load --replace`` the gateway's cleaner stage calls
``cleaner@2``; unloading works and the worker is left as it was (``cleaner`` served, no versions).

The versions live in a copy of the session's manifests (the session's own files are not touched):
version 2 is a copy of the random *describer* LoRA with its own record, so it really is other
weights under another name."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from adapter_lifecycle.versions import record_version
from tests.e2e.worker_proc import REPO, WorkerProcess, console_script
from tests.registry.helpers import ADMIN_KEY, REGISTER_KEY, pooled, routes_with_registration, until
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import GatewayProcess
from worker_launch.register import Announcer, Registration

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(600)]

TYPO_PROMPT = "Waht is teh capitol of Frnace and how big is it?"


@pytest.fixture(scope="module")
def versions_dir(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A worker config over a copy of the session's manifests and adapters, with cleaner versions:
    1 (the cleaner LoRA), 2 (the describer LoRA), 3 (tampered after recording), 4 (recorded for
    another base model)."""
    out = tmp_path_factory.mktemp("versions")
    shutil.copytree(test_model_dir / "lora_adapters", out / "lora_adapters")
    shutil.copytree(test_model_dir / "adapters", out / "adapters")
    config = yaml.safe_load((test_model_dir / "worker.yaml").read_text())
    config["base_model"] = str(test_model_dir / config["base_model"])
    (out / "worker.yaml").write_text(yaml.safe_dump(config))
    manifest = out / "lora_adapters" / "cleaner"
    for n, source, base in ((1, "cleaner", "mpr-test/tiny-llama"), (2, "describer", "mpr-test/tiny-llama"),
                            (3, "cleaner", "mpr-test/tiny-llama"), (4, "cleaner", "meta-llama/Llama-3.2-3B-Instruct")):
        shutil.copytree(out / "adapters" / source, out / "versions" / f"cleaner-{n}")
        record_version(manifest, "cleaner", out / "versions" / f"cleaner-{n}", base)
    with (out / "versions" / "cleaner-3" / "adapter_model.safetensors").open("r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\x7f\x7f\x7f\x7f")  # same size, other bytes: only the digest can tell
    return out


def adapters_cli(versions_dir: Path, worker: WorkerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([console_script("mpr-worker"), "adapters", *args, "--config", str(versions_dir / "worker.yaml"),
                           "--url", worker.url], capture_output=True, text=True, timeout=300, cwd=REPO)


def served(worker: WorkerProcess) -> list[str]:
    body = httpx.get(worker.url + "/v1/models", timeout=10).json()
    return [m["id"] for m in body["data"] if m.get("parent")]


def complete(worker: WorkerProcess, model: str) -> httpx.Response:
    return httpx.post(worker.base_url + "/completions", timeout=120,
                      json={"model": model, "prompt": "the capital of france", "max_tokens": 4, "temperature": 0})


@pytest.fixture
def restore(vllm_worker: WorkerProcess, versions_dir: Path) -> Iterator[None]:
    """Leave the session's worker serving exactly what it was launched with."""
    yield
    names = served(vllm_worker)
    if "cleaner" not in names:
        adapters_cli(versions_dir, vllm_worker, "load", "cleaner")
    for name in names:
        if "@" in name:
            adapters_cli(versions_dir, vllm_worker, "unload", name)
    assert sorted(served(vllm_worker)) == ["cleaner", "describer", "paraphraser"]


def test_refused_versions_never_reach_vllm(vllm_worker: WorkerProcess, versions_dir: Path, restore: None) -> None:
    tampered = adapters_cli(versions_dir, vllm_worker, "load", "cleaner@3")
    assert tampered.returncode == 1, tampered.stderr
    assert "ERROR cleaner: version 3 (cleaner@3): weights digest mismatch" in tampered.stderr
    assert "expected sha256" in tampered.stderr and "actual" in tampered.stderr
    other_base = adapters_cli(versions_dir, vllm_worker, "load", "cleaner@4")
    assert other_base.returncode == 1, other_base.stderr
    assert "version 4 (cleaner@4) was trained on base model 'meta-llama/Llama-3.2-3B-Instruct'" in other_base.stderr
    assert not any("@" in n for n in served(vllm_worker))
    # verify-adapters says the same, with the role, version and both digests
    verify = subprocess.run([console_script("mpr-worker"), "verify-adapters", "--config", str(versions_dir / "worker.yaml"),
                             "--role", "cleaner@3"], capture_output=True, text=True, timeout=120)
    assert verify.returncode == 1 and "FAIL cleaner: cleaner@3" in verify.stdout and "digest mismatch" in verify.stderr


def test_a_second_version_is_hot_loaded_served_announced_and_unloaded(
    vllm_worker: WorkerProcess, versions_dir: Path, restore: None, tmp_path: Path
) -> None:
    started = time.monotonic()
    pid = vllm_worker.server_pid()
    loaded = adapters_cli(versions_dir, vllm_worker, "load", "cleaner@2")
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert "event=adapter_loaded" in loaded.stdout
    assert sorted(served(vllm_worker)) == ["cleaner", "cleaner@2", "describer", "paraphraser"]
    r = complete(vllm_worker, "cleaner@2")
    assert r.status_code == 200, r.text
    until(lambda: vllm_worker.lora_requests("cleaner@2") > 0, 10, "vLLM to log a request for cleaner@2")
    assert vllm_worker.server_pid() == pid  # no restart

    with FakeOpenAI() as echo:
        tree = routes_with_registration(echo.base_url, adapter={"timeout_s": 120, "params": {"temperature": 0.0, "max_tokens": 8}})
        tree["refinement"]["deadline_s"] = 150
        with GatewayProcess(tree, tmp_path) as gw:
            reg = Registration(gateway=gw.url, node="hotload-node", url=vllm_worker.base_url, tier="cpu",
                               adapters={"cleaner": "cleaner"}, base_model="mpr-tiny-llama", heartbeat_s=0.5, key=REGISTER_KEY)
            announcer = Announcer(reg, vllm_url=vllm_worker.url)  # what `mpr-worker launch --register` runs
            try:
                announcer.up()
                until(lambda: pooled(gw) == [vllm_worker.base_url], 15, "the worker to register")
                [record] = _workers(gw)
                assert record["adapters"]["cleaner"] == "cleaner"  # the launch name stays the one sent...
                assert record["loras"]["cleaner"] == ["cleaner", "cleaner@2"]  # ...the candidate is announced

                again = adapters_cli(versions_dir, vllm_worker, "load", "cleaner@2")
                assert again.returncode == 1 and "already been loaded" in again.stderr  # vLLM's own refusal
                promote = adapters_cli(versions_dir, vllm_worker, "load", "cleaner@2", "--replace")  # the old name goes
                assert promote.returncode == 0, promote.stderr
                assert sorted(served(vllm_worker)) == ["cleaner@2", "describer", "paraphraser"]
                until(lambda: _workers(gw)[0]["adapters"]["cleaner"] == "cleaner@2", 15, "the re-announcement")
                before = vllm_worker.lora_requests("cleaner@2")
                stage = _refine(gw)
                assert stage.get("error") is None, stage
                until(lambda: vllm_worker.lora_requests("cleaner@2") > before, 10, "the gateway's call to cleaner@2")

                # `load cleaner@1 --replace` swaps versions in one step; then unload and the legacy entry back
                swap = adapters_cli(versions_dir, vllm_worker, "load", "cleaner@1", "--replace")
                assert swap.returncode == 0, swap.stderr
                assert sorted(served(vllm_worker)) == ["cleaner@1", "describer", "paraphraser"]
                until(lambda: _workers(gw)[0]["adapters"]["cleaner"] == "cleaner@1", 15, "the swap to be announced")
                assert complete(vllm_worker, "cleaner@2").status_code == 404  # unloaded
                assert complete(vllm_worker, "cleaner@1").status_code == 200
                assert adapters_cli(versions_dir, vllm_worker, "load", "cleaner").returncode == 0  # the legacy entry
                until(lambda: _workers(gw)[0]["adapters"]["cleaner"] == "cleaner", 15, "the launch name to be sent again")
                assert adapters_cli(versions_dir, vllm_worker, "unload", "cleaner@1").returncode == 0
                until(lambda: _workers(gw)[0]["loras"]["cleaner"] == ["cleaner"], 15, "the unload to be announced")
            finally:
                announcer.close()
            until(lambda: pooled(gw) == [], 10, "the announcer to deregister")
    assert vllm_worker.server_pid() == pid
    print(f"hot-load e2e: {time.monotonic() - started:.1f}s")


def _workers(gw: GatewayProcess) -> list[dict[str, Any]]:
    r = httpx.get(gw.url + "/admin/workers", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=5)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def _refine(gw: GatewayProcess) -> dict[str, Any]:
    r = httpx.post(gw.base_url + "/chat/completions", timeout=180, json={
        "model": "test-model", "messages": [{"role": "user", "content": TYPO_PROMPT}], "mpr": {"return_details": True}})
    assert r.status_code == 200, r.text
    stage: dict[str, Any] = r.json()["mpr"]["stages"].get("cleaner", {})
    return stage

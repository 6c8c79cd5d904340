"""A real CPU vLLM worker registers itself (``mpr-worker launch --device cpu --register``): it
joins the gateway's cleaner pool as a ``cpu`` endpoint and serves the stage under its own LoRA name
(the config's ``model`` for the role is one vLLM does not have); killed outright, it drops out
after three missed heartbeats; started again, it registers and serves again; a clean stop
deregisters it. Its own vLLM (one role), not the session's; the target is a fake echo peer."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.worker_proc import REPO, WorkerProcess, console_script, pid_alive
from tests.registry.helpers import REGISTER_KEY, pooled, routes_with_registration, status_endpoints, until
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import GatewayProcess

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(420)]

TYPO_PROMPT = "Waht is teh capitol of Frnace and how big is it?"
HEARTBEAT_S = 1.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RegisteringWorker(WorkerProcess):
    """``mpr-worker launch --role cleaner --device cpu --register GW --heartbeat-s 1``."""

    def __init__(self, gateway_url: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gateway_url = gateway_url

    def argv(self) -> list[str]:
        return [console_script("mpr-worker"), "launch", "--config", str(self.worker_config), "--role", "cleaner",
                "--device", "cpu", "--host", "127.0.0.1", "--port", str(self.port), "--vllm-python", str(self.python),
                "--register", self.gateway_url, "--register-key", REGISTER_KEY, "--heartbeat-s", str(HEARTBEAT_S)]

    def restart(self, timeout_s: float = 420.0) -> None:
        """Launch again (same port, same node, same log): ready once it logged a second ``event=ready``."""
        self.proc = subprocess.Popen(self.argv(), stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT, cwd=REPO,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.wait_ready(ready_events=2, timeout_s=timeout_s)

    def kill_outright(self) -> None:
        """SIGKILL vLLM's process group and the launcher: no deregistration, the heartbeats just stop."""
        assert self.proc is not None
        server = self.server_pid()
        os.killpg(server, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait(10)
        until(lambda: not pid_alive(server), 30, "the vLLM server to die")


@pytest.fixture
def echo() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def _refine(gw: GatewayProcess) -> dict[str, Any]:
    r = httpx.post(gw.base_url + "/chat/completions", timeout=180, json={
        "model": "test-model", "messages": [{"role": "user", "content": TYPO_PROMPT}], "mpr": {"return_details": True}})
    assert r.status_code == 200, r.text
    stage: dict[str, Any] = r.json()["mpr"]["stages"].get("cleaner", {})
    return {"header": r.headers["x-mpr-refinement"], **stage}


def test_a_cpu_worker_registers_serves_drops_out_when_killed_and_comes_back(
    test_model_dir: Path, vllm_python_path: Path, echo: FakeOpenAI, tmp_path: Path
) -> None:
    started = time.monotonic()
    tree = routes_with_registration(echo.base_url, adapter={"timeout_s": 120, "params": {"temperature": 0.0, "max_tokens": 8}})
    tree["refinement"]["deadline_s"] = 150
    with GatewayProcess(tree, tmp_path) as gw:
        worker = RegisteringWorker(gw.url, test_model_dir / "worker.yaml", _free_port(), vllm_python_path, tmp_path / "worker.log")
        try:
            worker.start()
            until(lambda: pooled(gw) == [worker.base_url], 10, "the worker to register")
            [endpoint] = httpx.get(gw.url + "/ready", timeout=5).json()["adapters"]["cleaner"]
            assert endpoint["url"] == worker.base_url and endpoint["source"] == "registered" and endpoint["tier"] == "cpu"
            assert status_endpoints(gw) == [(worker.base_url, "registered", "cpu")]
            before = worker.lora_requests("cleaner")
            stage = _refine(gw)
            assert "error" not in stage or stage["error"] is None, stage  # served under the registered LoRA name
            until(lambda: worker.lora_requests("cleaner") > before, 10, "vLLM to log the cleaner LoRA")
            assert "event=registered" in worker.logs()

            worker.kill_outright()
            gone = until(lambda: pooled(gw) == [], 3 * HEARTBEAT_S + 5, "the killed worker to drop out")
            assert "worker.expired: " in gw.logs()
            assert status_endpoints(gw) == []
            assert _refine(gw)["header"] != "cleaner"  # no endpoint: the prompt goes through unrefined

            worker.restart()  # the same port and node: registered again once vLLM is ready
            until(lambda: pooled(gw) == [worker.base_url], 10, "the restarted worker to register again")
            before = worker.lora_requests("cleaner")
            stage = _refine(gw)
            assert stage.get("error") is None, stage
            until(lambda: worker.lora_requests("cleaner") > before, 10, "vLLM to log the cleaner LoRA again")
        finally:
            code = worker.stop()
        assert code == 0, worker.tail()
        assert "event=deregistered" in worker.logs()
        until(lambda: pooled(gw) == [], 5, "a clean stop to deregister")
    print(f"registration e2e: {time.monotonic() - started:.1f}s (dropped out {gone:.1f}s after the kill)")

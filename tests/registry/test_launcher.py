"""``mpr-worker launch --register`` for real, with a fake vLLM, against a real gateway process:
registered once vLLM is ready, deregistered while it restarts after a crash and registered again,
deregistered on SIGTERM; a gateway that refuses or is unreachable never stops the worker."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry.helpers import REGISTER_KEY, listed, pooled, routes_with_registration, until
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, free_port
from tests.worker_launch.test_supervisor import MPR_WORKER, fake_python, test_model, worker_config  # noqa: F401 - fixtures


class RegisteringLauncher:
    def __init__(self, config: Path, python: Path, log: Path, gateway: str, key: str, **env: str) -> None:
        self.port = free_port()
        argv = [MPR_WORKER, "launch", "--config", str(config), "--role", "cleaner,describer", "--device", "cpu",
                "--host", "127.0.0.1", "--port", str(self.port), "--vllm-python", str(python),
                "--register", gateway, "--register-key", key, "--heartbeat-s", "0.5"]
        self.log = log
        self.proc = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **env})

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def text(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


@pytest.fixture
def target() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.mark.timeout(90)
def test_the_launcher_registers_deregisters_across_a_crash_and_on_sigterm(
    worker_config: Path, fake_python: Path, tmp_path: Path, target: FakeOpenAI  # noqa: F811
) -> None:
    with GatewayProcess(routes_with_registration(target.base_url, ("cleaner", "describer")), tmp_path) as gw:
        launcher = RegisteringLauncher(worker_config, fake_python, tmp_path / "launch.log", gw.url, REGISTER_KEY,
                                       FAKE_VLLM_CRASH_AFTER_S="3", FAKE_VLLM_STATE=str(tmp_path / "state"))
        try:
            until(lambda: pooled(gw, "cleaner") == [launcher.base_url] and pooled(gw, "describer") == [launcher.base_url], 20,
                  "the launcher to register")
            [entry] = listed(gw)
            assert entry["tier"] == "cpu" and entry["roles"] == ["cleaner", "describer"] and entry["url"] == launcher.base_url
            assert entry["heartbeat_s"] == 0.5 and entry["adapters"]["cleaner"]
            until(lambda: "event=crashed" in launcher.text(), 20, "the fake vLLM to crash")
            assert "event=deregistered" in launcher.text()
            until(lambda: launcher.text().count("event=ready") == 2, 20, "the restart")
            until(lambda: pooled(gw, "cleaner") == [launcher.base_url], 5, "registered again")
        finally:
            code = launcher.stop()
        assert code == 0, launcher.text()
        assert launcher.text().count("event=deregistered") >= 2
        until(lambda: pooled(gw, "cleaner") == [], 3, "deregistered on SIGTERM")


@pytest.mark.timeout(60)
def test_a_refusing_or_absent_gateway_never_stops_the_worker(
    worker_config: Path, fake_python: Path, tmp_path: Path, target: FakeOpenAI  # noqa: F811
) -> None:
    absent = RegisteringLauncher(worker_config, fake_python, tmp_path / "absent.log", f"http://127.0.0.1:{free_port()}", "k")
    with GatewayProcess(routes_with_registration(target.base_url), tmp_path) as gw:
        refused = RegisteringLauncher(worker_config, fake_python, tmp_path / "refused.log", gw.url, "wrong-key")
        try:
            for launcher in (absent, refused):
                until(lambda launcher=launcher: "event=register_failed" in launcher.text(), 20, "a failed registration logged")
            refused_log = refused.text()
            assert "http_401" in refused_log
            until(lambda: absent.text().count("event=ready") == 1, 5, "ready")
            time.sleep(1.5)  # a few more beats: still running, the failure logged once
            assert absent.proc.poll() is None and refused.proc.poll() is None
            assert absent.text().count("event=register_failed") == 1
            assert pooled(gw) == []
        finally:
            assert refused.stop() == 0 and absent.stop() == 0

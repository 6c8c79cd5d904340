"""Supervision: pure backoff decisions, and ``mpr-worker launch`` running a fake vLLM for real."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from worker_launch.config import RestartPolicy
from worker_launch.supervisor import failures_after_exit, restart_delay, should_give_up

FAKE_VLLM = Path(__file__).with_name("fake_vllm.py")
MPR_WORKER = str(Path(sys.executable).parent / "mpr-worker")


def test_restart_delay_grows_and_caps() -> None:
    policy = RestartPolicy(initial_delay_s=1, multiplier=2, max_delay_s=10)
    assert [restart_delay(policy, n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_long_uptime_resets_the_failure_count() -> None:
    policy = RestartPolicy(reset_after_s=300)
    assert failures_after_exit(policy, 5, uptime_s=10) == 6
    assert failures_after_exit(policy, 5, uptime_s=301) == 1


def test_give_up_only_with_a_limit() -> None:
    assert not should_give_up(RestartPolicy(max_restarts=0), 10_000)
    assert not should_give_up(RestartPolicy(max_restarts=3), 2)
    assert should_give_up(RestartPolicy(max_restarts=3), 3)


# -- the real launcher against a fake vLLM -------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.fixture(scope="module")
def test_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from worker_launch.testmodel import build_test_model

    out = tmp_path_factory.mktemp("tm")
    build_test_model(out)
    return out


@pytest.fixture()
def worker_config(test_model: Path, tmp_path: Path) -> Path:
    data = yaml.safe_load((test_model / "worker.yaml").read_text())
    data.update(adapters_dir=str(test_model / "lora_adapters"), base_model=str(test_model / "tiny-llama"),
                health={"startup_timeout_s": 20, "poll_interval_s": 0.1},
                restart={"initial_delay_s": 0.2, "max_delay_s": 1})
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture()
def fake_python(tmp_path: Path) -> Path:
    """An interpreter path whose ``-m vllm...`` runs the fake server (``-c`` probes succeed)."""
    script = tmp_path / "python"
    script.write_text(f'#!/bin/sh\nif [ "$1" = "-c" ]; then exit 0; fi\nexec {sys.executable} {FAKE_VLLM} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


class Launcher:
    def __init__(self, config: Path, python: Path, log: Path, env: dict[str, str]) -> None:
        argv = [MPR_WORKER, "launch", "--config", str(config), "--role", "cleaner,describer,paraphraser",
                "--device", "cpu", "--host", "127.0.0.1", "--port", str(_free_port()), "--vllm-python", str(python)]
        self.log = log
        self.proc = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **env})

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, needle: str, count: int = 1, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.text().count(needle) >= count:
                return
            if self.proc.poll() is not None and self.text().count(needle) < count:
                raise AssertionError(f"launcher exited {self.proc.returncode}:\n{self.text()}")
            time.sleep(0.05)
        raise AssertionError(f"no {needle!r} x{count} in:\n{self.text()}")

    def server_pid(self) -> int:
        line = [ln for ln in self.text().splitlines() if "event=started" in ln][-1]
        return int(line.split("pid=")[1].split()[0])


@pytest.fixture()
def launch(worker_config: Path, fake_python: Path, tmp_path: Path) -> Iterator:
    launchers: list[Launcher] = []

    def start(**env: str) -> Launcher:
        launcher = Launcher(worker_config, fake_python, tmp_path / f"launch{len(launchers)}.log", env)
        launchers.append(launcher)
        return launcher

    yield start
    for launcher in launchers:
        if launcher.proc.poll() is None:
            launcher.proc.kill()
            launcher.proc.wait(10)


def test_ready_then_sigterm_is_forwarded_to_the_whole_process_group(launch, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    launcher = launch(FAKE_VLLM_CHILD_PIDFILE=str(pidfile))
    launcher.wait_for("event=ready")
    server, child = launcher.server_pid(), int(pidfile.read_text())
    assert _alive(server) and _alive(child)
    launcher.proc.send_signal(signal.SIGTERM)
    assert launcher.proc.wait(20) == 0
    assert not _alive(server) and not _alive(child), "vLLM and its engine processes must be gone"
    text = launcher.text()
    assert "event=signal signal=SIGTERM action=forwarding" in text and "event=stopped" in text
    assert "VLLM_CPU_KVCACHE_SPACE=1" in text and "--enable-lora" in text  # the command is logged


def test_missing_lora_fails_with_a_clear_message(launch) -> None:
    launcher = launch(FAKE_VLLM_DROP="describer")
    assert launcher.proc.wait(30) == 3
    text = launcher.text()
    assert "does not list LoRA adapter(s) describer" in text and "event=startup_failed" in text
    assert not _alive(launcher.server_pid())


def test_crashed_server_is_restarted_with_backoff(launch, tmp_path: Path) -> None:
    launcher = launch(FAKE_VLLM_CRASH_AFTER_S="0.5", FAKE_VLLM_STATE=str(tmp_path / "state"))
    launcher.wait_for("event=ready")
    first = launcher.server_pid()
    launcher.wait_for("event=crashed")
    launcher.wait_for("event=ready", count=2)
    assert launcher.server_pid() != first
    assert "exit_code=9" in launcher.text() and "restart_in_s=0.2" in launcher.text()
    launcher.proc.send_signal(signal.SIGINT)
    assert launcher.proc.wait(20) == 0


def test_server_that_cannot_start_fails_the_launch(launch) -> None:
    launcher = launch(FAKE_VLLM_EXIT_AT_START="1")
    assert launcher.proc.wait(30) == 1
    assert "event=startup_failed reason=exited exit_code=1" in launcher.text()

"""Run ``mpr-worker launch`` (and through it one real vLLM) as a subprocess for end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
ROLES = ("cleaner", "describer", "paraphraser")
_STARTED_RE = re.compile(r"mpr-worker INFO event=started pid=(\d+)")


def console_script(name: str) -> str:
    """The console script installed next to the running interpreter (the project venv)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise RuntimeError(f"{path} not found: install the project (pip install -e .[test,worker])")
    return str(path)


def vllm_python() -> Path:
    """``$MPR_VLLM_PYTHON`` or ``.venv-vllm/bin/python``; the e2e tests need a real vLLM."""
    return Path(os.environ.get("MPR_VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")


class WorkerProcess:
    """One ``mpr-worker launch --role cleaner,describer,paraphraser --device cpu`` on loopback."""

    def __init__(self, worker_config: Path, port: int, python: Path, log_path: Path,
                 otlp_endpoint: str | None = None) -> None:
        self.worker_config = worker_config
        self.port = port
        self.python = python
        self.log_path = log_path
        self.otlp_endpoint = otlp_endpoint
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.ready_after_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def argv(self) -> list[str]:
        argv = [console_script("mpr-worker"), "launch", "--config", str(self.worker_config),
                "--role", ",".join(ROLES), "--device", "cpu", "--host", "127.0.0.1", "--port", str(self.port),
                "--vllm-python", str(self.python)]
        if self.otlp_endpoint:
            argv += ["--otlp-traces-endpoint", self.otlp_endpoint]
        return argv

    def start(self, timeout_s: float = 420.0) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.wait_ready(ready_events=1, timeout_s=timeout_s)
        self.ready_after_s = time.monotonic() - self.started_at
        return self

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, chars: int = 4000) -> str:
        return self.logs()[-chars:]

    def count(self, needle: str) -> int:
        return self.logs().count(needle)

    def wait_ready(self, ready_events: int, timeout_s: float) -> None:
        """Wait until the launcher has logged ``event=ready`` ``ready_events`` times."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.count("event=ready") >= ready_events:
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"mpr-worker exited with {self.proc.returncode}:\n{self.tail()}")
            time.sleep(0.5)
        raise RuntimeError(f"vLLM not ready after {timeout_s:.0f}s:\n{self.tail()}")

    def server_pid(self) -> int:
        """PID of the vLLM server the launcher started last."""
        pids = _STARTED_RE.findall(self.logs())
        if not pids:
            raise RuntimeError(f"no vLLM pid in the launcher log:\n{self.tail()}")
        return int(pids[-1])

    def lora_requests(self, name: str) -> int:
        """How many requests vLLM logged for LoRA ``name`` (``--enable-log-requests``)."""
        return self.count(f"lora_name='{name}'")

    def base_requests(self) -> int:
        """How many chat requests vLLM logged for the base model (no LoRA)."""
        return len(re.findall(r"Received request chatcmpl-\S+: .*lora_request: None", self.logs()))

    def healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM the launcher (it forwards to vLLM); returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False

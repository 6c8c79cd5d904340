"""Start ``mpr-gateway serve`` (the installed console script) as a subprocess on loopback."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.e2e.worker_proc import REPO, ROLES, console_script


def e2e_routes(worker_base_url: str, base_model: str, echo_base_url: str) -> dict[str, Any]:
    """Routes: adapters and target ``tiny`` on the one vLLM worker; target ``echo`` on a separate peer.

    Timeouts are generous: the point is correctness on a 2-core CI machine, not latency.
    """
    adapter_params = {"temperature": 0.0, "max_tokens": 48}
    return {
        "server": {"host": "127.0.0.1", "port": 0, "probe_interval_s": 0.5},
        "targets": [
            {"name": "tiny", "endpoints": [worker_base_url], "upstream_model": base_model,
             "timeout_s": 120, "cooldown_s": 1},
            {"name": "echo", "endpoints": [echo_base_url], "upstream_model": "target-model",
             "timeout_s": 30, "cooldown_s": 1},
        ],
        "adapters": {
            role: {"endpoints": [worker_base_url], "model": role,
                   "prompt": str(REPO / "lora_adapters" / role / "prompt.md"),
                   "params": adapter_params, "timeout_s": 60, "cooldown_s": 1}
            for role in ROLES
        },
        "refinement": {"deadline_s": 90, "stages": list(ROLES), "cache": {"enabled": False}},  # every call reaches the stages
    }


class GatewayProcess:
    """``mpr-gateway serve --config FILE --host 127.0.0.1 --port P``; stopped with SIGTERM."""

    def __init__(self, routes: dict[str, Any], workdir: Path, port: int) -> None:
        self.routes = routes
        self.workdir = workdir
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "gateway.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> GatewayProcess:
        config = self.workdir / "routes.yaml"
        config.write_text(yaml.safe_dump(self.routes, sort_keys=False))
        self.proc = subprocess.Popen(
            [console_script("mpr-gateway"), "serve", "--config", str(config), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT, cwd=REPO, env=dict(os.environ))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mpr-gateway exited with {self.proc.returncode}:\n{self.logs()[-4000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"mpr-gateway not healthy after {timeout_s:.0f}s:\n{self.logs()[-4000:]}")

    def ready(self) -> tuple[int, dict[str, Any]]:
        response = httpx.get(self.url + "/ready", timeout=5.0)
        return response.status_code, response.json()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

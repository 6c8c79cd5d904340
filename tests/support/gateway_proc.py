"""Run the real gateway (``mpr-gateway serve``) as a subprocess on loopback for tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]


def clean_env() -> dict[str, str]:
    """``os.environ`` without the client and admin keys (``MPR_API_KEYS``, ``MPR_ADMIN_KEY``, read by
    default): a developer's shell must not switch auth on in test gateways; pass them in ``env``."""
    return {k: v for k, v in os.environ.items() if k not in ("MPR_API_KEYS", "MPR_ADMIN_KEY")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def routes(target_url: str, adapter_url: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A routes.yaml tree: one target ``test-model`` → ``target-model``; adapters at ``adapter_url``.

    The refinement cache is off (tests send the same prompt to differently behaving stages); pass
    ``refinement={"cache": {"enabled": True}}`` to test it."""
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "probe_interval_s": 0.5},
        "targets": [{"name": "test-model", "endpoints": [target_url], "upstream_model": "target-model", "timeout_s": 10, "cooldown_s": 1}],
        "refinement": {"deadline_s": 2.0, "cache": {"enabled": False}},
    }
    if adapter_url:
        config["adapters"] = {
            role: {
                "endpoints": [adapter_url],
                "model": role,
                "prompt": str(REPO / "lora_adapters" / role / "prompt.md"),
                "timeout_s": 1.0,
                "cooldown_s": 1,
            }
            for role in ("cleaner", "describer", "paraphraser")
        }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


class GatewayProcess:
    """``with GatewayProcess(config_tree, tmp_path) as gw:`` — ``gw.base_url`` ends in ``/v1``."""

    def __init__(
        self,
        config: dict[str, Any],
        workdir: Path,
        env: dict[str, str] | None = None,
        workers: int = 1,
        port: int | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.config = config
        self.command = command or [sys.executable, "-m", "gateway"]  # or the installed console script
        self.workers = workers  # ``serve --workers``; 1 (one process) unless a test asks for more
        self.workdir = workdir
        self.env = env or {}
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"gateway-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def start(self) -> GatewayProcess:
        return self.launch().wait_ready()

    @property
    def config_path(self) -> Path:
        """The routes file the process was started with (rewrite it, then reload)."""
        return self.workdir / f"routes-{self.port}.yaml"

    def rewrite(self, config: dict[str, Any]) -> None:
        """Replace the routes file with ``config`` (the running process reads it on a reload)."""
        self.config = config
        self.config_path.write_text(yaml.safe_dump(config))

    def launch(self) -> GatewayProcess:
        """Start the process without waiting (start several, then :meth:`wait_ready` each)."""
        path = self.config_path
        path.write_text(yaml.safe_dump(self.config))
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [*self.command, "serve", "--config", str(path), "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**clean_env(), **self.env},
            cwd=REPO,
        )
        return self

    def ready(self) -> tuple[int, dict[str, Any]]:
        """``/ready``'s status and body."""
        response = httpx.get(self.url + "/ready", timeout=5.0)
        return response.status_code, response.json()

    def wait_ready(self, timeout_s: float = 30) -> GatewayProcess:
        """Wait until ``/health`` answers 200; raises with the log tail if the process died."""
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"gateway did not start in {timeout_s:g}s")

    def terminate(self) -> None:
        """Ask the process to exit without waiting (then :meth:`stop` waits)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def stop(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return None if self.proc is None else self.proc.returncode

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

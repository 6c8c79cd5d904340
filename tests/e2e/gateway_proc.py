"""The e2e tests' routes and gateway launcher: ``mpr-gateway serve`` (the installed console script)
on loopback, through the one launcher of :mod:`tests.support.gateway_proc`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.worker_proc import REPO, ROLES, console_script
from tests.support.gateway_proc import GatewayProcess as SupportGatewayProcess


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


class GatewayProcess(SupportGatewayProcess):
    """``mpr-gateway serve`` (the installed console script) on ``port``: the tests' one launcher
    (:class:`tests.support.gateway_proc.GatewayProcess`) with the e2e tests' signature."""

    def __init__(self, routes: dict[str, Any], workdir: Path, port: int) -> None:
        super().__init__(routes, workdir, port=port, command=[console_script("mpr-gateway")])

    @property
    def routes(self) -> dict[str, Any]:
        return self.config

    def start(self, timeout_s: float = 60.0) -> GatewayProcess:  # type: ignore[override]
        self.launch().wait_ready(timeout_s)
        return self

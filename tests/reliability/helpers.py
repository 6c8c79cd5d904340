"""Shared helpers for the reliability suite: config trees, an in-process gateway, resource counters."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil
import yaml

from tests.support.gateway_proc import REPO, free_port

ROLES = ("cleaner", "describer", "paraphraser")


def routes_for(
    target_url: str,
    adapter_urls: dict[str, str] | None,
    *,
    probe_interval_s: float = 0.5,
    adapter_timeout_s: float = 1.0,
    deadline_s: float = 2.0,
    target_timeout_s: float = 10.0,
    server: dict[str, Any] | None = None,
    refinement: dict[str, Any] | None = None,
    target: dict[str, Any] | None = None,
    telemetry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A routes.yaml tree: target ``test-model`` → ``target-model``; one peer URL per adapter.
    The refinement cache is off (faults are injected into the stages of repeated prompts)."""
    tree: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "probe_interval_s": probe_interval_s, **(server or {})},
        "targets": [
            {
                "name": "test-model",
                "endpoints": [target_url],
                "upstream_model": "target-model",
                "timeout_s": target_timeout_s,
                "connect_timeout_s": 1.0,
                "cooldown_s": 1,
                **(target or {}),
            }
        ],
        "refinement": {"deadline_s": deadline_s, "cache": {"enabled": False}, **(refinement or {})},
    }
    if telemetry:
        tree["telemetry"] = telemetry
    if adapter_urls:
        tree["adapters"] = {
            role: {
                "endpoints": [url],
                "model": role,
                "prompt": str(REPO / "lora_adapters" / role / "prompt.md"),
                "timeout_s": adapter_timeout_s,
                "connect_timeout_s": 1.0,
                "cooldown_s": 1,
            }
            for role, url in adapter_urls.items()
        }
    return tree


class InProcessGateway:
    """The real app under uvicorn in a thread of this process, so its asyncio tasks can be counted."""

    def __init__(self, tree: dict[str, Any], workdir: Path) -> None:
        from gateway.app import create_app
        from gateway.config import load_config

        path = workdir / "routes-inproc.yaml"
        path.write_text(yaml.safe_dump(tree))
        self.config = load_config(path)
        self.app = create_app(self.config)
        self.port = free_port()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> InProcessGateway:
        import uvicorn

        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_config=None, access_log=False,
            lifespan="on", timeout_graceful_shutdown=2, loop="asyncio",
        )
        self.server = uvicorn.Server(config)

        def run() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            loop.run_until_complete(self.server.serve())
            loop.close()

        self._thread = threading.Thread(target=run, name="gateway-inproc", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("in-process gateway did not start")
            time.sleep(0.02)
        return self

    def tasks(self) -> list[str]:
        """Names of the asyncio tasks alive on the gateway's loop (coroutine names)."""
        assert self.loop is not None

        async def names() -> list[str]:
            me = asyncio.current_task()
            return sorted(t.get_coro().__qualname__ for t in asyncio.all_tasks() if t is not me)  # type: ignore[union-attr]

        return asyncio.run_coroutine_threadsafe(names(), self.loop).result(5)

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)

    def __enter__(self) -> InProcessGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tcp_sockets(pid: int | None = None) -> list[Any]:
    """The process's TCP sockets (psutil ``pconn`` tuples)."""
    proc = psutil.Process(pid) if pid else psutil.Process()
    return list(proc.net_connections(kind="tcp"))


def gateway_sockets(gateway_port: int, peer_ports: Iterable[int], pid: int | None = None) -> dict[str, int]:
    """Counts of the gateway's own sockets: listener, accepted client conns, upstream conns, CLOSE_WAIT.

    In-process, client and peer sockets live in the same process: only sockets whose local port is
    the gateway's, or whose remote port is a peer's, belong to the gateway.
    """
    peers = set(peer_ports)
    out = {"listen": 0, "client": 0, "upstream": 0, "close_wait": 0}
    for c in tcp_sockets(pid):
        local = c.laddr.port if c.laddr else None
        remote = c.raddr.port if c.raddr else None
        if local == gateway_port:
            out["listen" if c.status == psutil.CONN_LISTEN else "client"] += 1
        elif remote in peers and local not in peers:
            out["upstream"] += 1
        else:
            continue
        if c.status == psutil.CONN_CLOSE_WAIT:
            out["close_wait"] += 1
    return out


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 1e6


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> tuple[Any, float]:
    """(last value, seconds waited): polls until truthy or ``timeout``."""
    started = time.monotonic()
    while True:
        value = predicate()
        elapsed = time.monotonic() - started
        if value or elapsed > timeout:
            return value, elapsed
        time.sleep(interval)


def sse_events(raw: bytes) -> list[bytes]:
    """The ``data:`` payloads of an SSE body."""
    return [line[5:].strip() for line in raw.split(b"\n") if line.startswith(b"data:")]


def figures(name: str, **values: Any) -> None:
    """Print a test's figures in one greppable line (``pytest -s`` or the captured output shows it)."""
    print(f"\nFIGURES {name}: " + ", ".join(f"{k}={v}" for k, v in values.items()), flush=True)

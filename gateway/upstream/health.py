"""Background health probes: ``GET {base}/models`` on every endpoint, every ``probe_interval_s``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

import msgspec

from gateway.upstream.pool import EndpointPool
from gateway.upstream.wire import Session, Timeout, WireError

log = logging.getLogger("gateway.health")


async def probe_endpoint(session: Session, url: str, timeout_s: float, headers: dict[str, str] | None = None) -> tuple[bool, float, str | None]:
    """(up, latency ms, error) for one base URL."""
    started = time.perf_counter()
    try:
        response = await session.get(url + "/models", headers=headers, timeout=Timeout(total=timeout_s))
        try:
            body = await response.read()
        finally:
            response.release()
        ok = response.status < 500
        error = None if ok else f"http_{response.status}"
        if response.status == 429:
            error = "http_429"  # alive but shedding load: stays up, and /ready says why
        elif response.status == 200 and not _is_json(response.headers.get("content-type", ""), body):
            ok, error = False, "malformed"  # an HTML error page or broken JSON is no OpenAI endpoint
    except (WireError, TimeoutError, OSError, ValueError) as exc:
        ok, error = False, type(exc).__name__
    return ok, (time.perf_counter() - started) * 1000, error


def _is_json(content_type: str, body: bytes) -> bool:
    if "json" not in content_type.lower():
        return False
    try:
        msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return False
    return True


class Prober:
    """Probes every pool's endpoints concurrently, forever, until cancelled."""

    def __init__(self, pools: Iterable[tuple[EndpointPool, Session, dict[str, str] | None]], interval_s: float) -> None:
        self.pools = list(pools)
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def probe_all(self) -> None:
        timeout = max(0.5, min(2.0, self.interval_s * 0.8))

        async def one(pool: EndpointPool, session: Session, headers: dict[str, str] | None, endpoint) -> None:  # type: ignore[no-untyped-def]
            was_up = endpoint.up
            ok, ms, error = await probe_endpoint(session, endpoint.url, timeout, headers)
            pool.record_probe(endpoint, ok, ms, error)
            if was_up != endpoint.up:
                log.warning("endpoint %s of %s is now %s", endpoint.url, pool.name, "up" if ok else f"down ({error})")

        await asyncio.gather(
            *(one(pool, session, headers, e) for pool, session, headers in self.pools for e in pool.endpoints),
            return_exceptions=True,
        )

    async def _loop(self) -> None:
        await asyncio.sleep(min(0.5, self.interval_s))  # let the server bind first (self-hosted targets)
        while True:
            await self.probe_all()
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="mpr-prober")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

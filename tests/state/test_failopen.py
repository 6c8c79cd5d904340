"""FailOpenState against a real redis-server that is killed, hung (SIGSTOP) and restarted: calls
never block past the short timeout, limits fall back to local buckets, recovery is automatic."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gateway.state.failopen import FailOpenState
from gateway.state.local import LocalState
from gateway.state.metrics import StateCollector
from gateway.state.redis_state import RedisState
from tests.support.redis_server import RedisServer


@pytest.fixture
async def state(redis_server: RedisServer):  # type: ignore[no-untyped-def]
    s = FailOpenState(
        RedisState(redis_server.url, prefix="f:", op_timeout_s=0.1, connect_timeout_s=0.2),
        LocalState(),
        backoff_s=0.05,
        backoff_max_s=0.3,
    )
    yield s
    await s.close()


def _scrape(state: FailOpenState) -> str:
    registry = CollectorRegistry()
    registry.register(StateCollector(lambda: state))  # type: ignore[arg-type]
    return generate_latest(registry).decode()


async def _recovered(state: FailOpenState, timeout: float) -> float:
    started = time.monotonic()
    while not state.reachable:
        assert time.monotonic() - started < timeout, f"not reachable again within {timeout}s: {state.status()}"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_killed_redis_falls_back_to_local_and_recovers(state: FailOpenState, redis_server: RedisServer) -> None:
    assert [await state.take("k", 0.01, 3) for _ in range(2)] == [0.0, 0.0]  # shared bucket: 1 left
    await state.cache_put("c", b"v", 30)
    assert await state.cache_get("c") == b"v"
    assert 'mpr_state_backend_up{kind="redis"} 1.0' in _scrape(state)

    redis_server.kill()
    started = time.monotonic()
    local = [await state.take("k", 0.01, 3) for _ in range(4)]
    assert local[:3] == [0.0, 0.0, 0.0] and local[3] > 0  # a fresh local bucket of 3
    assert await state.cache_get("c") is None  # no shared cache while down
    await state.cache_put("c2", b"v", 30)
    await state.mark_down("p", "http://x/v1", 1.0, "e")
    assert time.monotonic() - started < 1.0
    status = state.status()
    assert status["reachable"] is False and status["errors"]["take"] == 1 and status["since"] > 0
    metrics = _scrape(state)
    assert 'mpr_state_backend_up{kind="redis"} 0.0' in metrics
    assert 'mpr_state_errors_total{kind="redis",op="take"} 1.0' in metrics

    await asyncio.sleep(0.4)
    redis_server.start()  # same port, empty data
    took = await _recovered(state, 3.0)
    assert state.status()["errors"].get("ping", 0) >= 1
    assert await state.take("k", 0.01, 3) == 0.0  # Redis again: its (new) bucket
    await state.cache_put("c", b"again", 30)
    assert await state.cache_get("c") == b"again"
    print(f"recovered {took:.2f}s after restart")


async def test_hung_redis_costs_one_timeout_then_nothing(state: FailOpenState, redis_server: RedisServer) -> None:
    assert await state.take("k", 10.0, 5) == 0.0
    redis_server.pause()
    try:
        started = time.monotonic()
        assert await state.take("k", 10.0, 5) == 0.0  # timed out, then the local bucket
        first = time.monotonic() - started
        started = time.monotonic()
        for _ in range(20):
            await state.take("k2", 10.0, 50)
            await state.cache_get("x")
        rest = time.monotonic() - started
        assert first < 0.5, first
        assert rest < 0.05, rest  # unreachable: Redis is not touched at all
        assert state.status()["reachable"] is False
    finally:
        redis_server.resume()
    await _recovered(state, 3.0)


async def test_idle_gateway_notices_through_the_listener(state: FailOpenState, redis_server: RedisServer) -> None:
    state.watch_down(lambda *verdict: None)  # what the runtime does at start
    await asyncio.sleep(0.2)
    redis_server.kill()
    started = time.monotonic()
    while state.reachable:  # no call made: the dropped subscription says it
        assert time.monotonic() - started < 3.0, state.status()
        await asyncio.sleep(0.02)
    assert state.status()["errors"].get("listen", 0) >= 1
    redis_server.start()
    await _recovered(state, 3.0)

"""RedisState against a real redis-server: the Lua token bucket (atomic across clients), the TTL
cache, verdicts over pub/sub (also after a server restart)."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from gateway.state.redis_state import RedisState
from tests.support.redis_server import RedisServer, patient_state


@pytest.fixture
async def pair(redis_server: RedisServer):  # type: ignore[no-untyped-def]
    a, b = patient_state(redis_server.url), patient_state(redis_server.url)
    yield a, b
    await a.close()
    await b.close()


async def test_bucket_shared_by_two_clients(pair: tuple[RedisState, RedisState]) -> None:
    a, b = pair
    results = [await (a if i % 2 else b).take("key", 0.5, 3) for i in range(4)]
    assert results[:3] == [0.0, 0.0, 0.0]
    assert 1.5 < results[3] <= 2.0  # one token at 0.5/s
    assert await a.take("another", 0.5, 3) == 0.0


async def test_bucket_refills_at_rate(pair: tuple[RedisState, RedisState]) -> None:
    a, _ = pair
    assert [await a.take("k", 20.0, 2) for _ in range(3)][-1] > 0
    await asyncio.sleep(0.06)  # 1.2 tokens at 20/s
    assert await a.take("k", 20.0, 2) == 0.0
    assert await a.take("k", 20.0, 2) > 0


async def test_bucket_is_atomic_under_concurrency(pair: tuple[RedisState, RedisState]) -> None:
    a, b = pair
    results = await asyncio.gather(*((a if i % 2 else b).take("hot", 0.01, 10) for i in range(60)))
    assert sum(1 for r in results if r == 0.0) == 10


async def test_a_burst_shares_a_bounded_pool_of_sockets(redis_server: RedisServer) -> None:
    state = RedisState(redis_server.url, prefix="t:", connect_timeout_s=2.0, op_timeout_s=2.0, max_connections=4)
    raw = Redis.from_url(redis_server.url)
    try:
        results = await asyncio.gather(*(state.take("burst", 0.01, 25) for _ in range(200)))
        assert sum(1 for r in results if r == 0.0) == 25  # every call answered, still atomic
        clients = (await raw.info("clients"))["connected_clients"]
        assert clients <= 4 + 1, clients  # the pool's sockets and this raw one, not one per call
    finally:
        await state.close()
        await raw.aclose()


async def test_keys_are_hashed_and_expire(pair: tuple[RedisState, RedisState], redis_server: RedisServer) -> None:
    a, _ = pair
    await a.take("sk-secret-key", 10.0, 5)
    raw = Redis.from_url(redis_server.url)
    try:
        keys = [k.decode() for k in await raw.keys("*")]
        assert len(keys) == 1 and keys[0].startswith("t:rl:") and "secret" not in keys[0]
        assert 0 < await raw.pttl(keys[0]) <= 1500  # burst/rate + 1 s: idle buckets go away
    finally:
        await raw.aclose()


async def test_cache_ttl_and_prefix(pair: tuple[RedisState, RedisState], redis_server: RedisServer) -> None:
    a, b = pair
    await a.cache_put("q", b"\x00answer", 0.2)
    assert await b.cache_get("q") == b"\x00answer"
    other = patient_state(redis_server.url, prefix="other:")
    try:
        assert await other.cache_get("q") is None
    finally:
        await other.close()
    await asyncio.sleep(0.3)
    assert await b.cache_get("q") is None
    await a.cache_put("zero", b"x", 0)
    assert await a.cache_get("zero") is None
    assert a.status() == {"kind": "redis", "url": redis_server.url, "key_prefix": "t:"}


async def _until(predicate, timeout: float) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_verdicts_reach_other_processes_only(pair: tuple[RedisState, RedisState]) -> None:
    a, b = pair
    seen_a: list[tuple[str, str, float, str]] = []
    seen_b: list[tuple[str, str, float, str]] = []
    a.watch_down(lambda *v: seen_a.append(v))
    b.watch_down(lambda *v: seen_b.append(v))
    await asyncio.sleep(0.2)  # both subscribed
    await a.mark_down("target:m", "http://x/v1", 5.0, "refused")
    await _until(lambda: seen_b, 2.0)
    assert seen_b == [("target:m", "http://x/v1", 5.0, "refused")]
    await asyncio.sleep(0.1)
    assert seen_a == []  # its own verdict is not applied twice


async def test_listener_resubscribes_after_restart(redis_server: RedisServer) -> None:
    a = RedisState(redis_server.url, listen_backoff_s=0.05, listen_backoff_max_s=0.2)
    seen: list[str] = []
    a.watch_down(lambda pool, url, s, e: seen.append(url))
    try:
        await asyncio.sleep(0.2)
        redis_server.kill()
        await asyncio.sleep(0.5)
        redis_server.start()
        b = RedisState(redis_server.url)
        try:
            async def published() -> bool:
                await b.mark_down("p", "http://after/v1", 1.0, "e")
                return bool(seen)

            deadline = time.monotonic() + 5
            while not await published():
                assert time.monotonic() < deadline, "listener did not resubscribe"
                await asyncio.sleep(0.1)
        finally:
            await b.close()
    finally:
        await a.close()
    assert "http://after/v1" in seen

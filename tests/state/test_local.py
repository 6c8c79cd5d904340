"""LocalState: token buckets per (rate, burst), the TTL cache, status; the pool's shared verdicts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.config.models import StateConfig
from gateway.state.build import build_state
from gateway.state.failopen import FailOpenState, next_backoff
from gateway.state.local import LocalState
from gateway.upstream.pool import EndpointPool


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_token_bucket_burst_then_refill() -> None:
    clock = Clock()
    state = LocalState(clock=clock)
    assert [await state.take("k", 2.0, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await state.take("k", 2.0, 3) == pytest.approx(0.5)  # one token at 2/s
    assert await state.take("other", 2.0, 3) == 0.0  # buckets are per key
    clock.now += 0.5
    assert await state.take("k", 2.0, 3) == 0.0
    assert await state.take("k", 2.0, 3) > 0
    clock.now += 10  # refills up to burst, not beyond
    assert [await state.take("k", 2.0, 3) for _ in range(4)][-1] > 0


async def test_burst_zero_means_one_second_of_rate() -> None:
    state = LocalState(clock=Clock())
    results = [await state.take("k", 4.0, 0) for _ in range(5)]
    assert results[:4] == [0.0] * 4 and results[4] > 0


async def test_cache_ttl_and_lru() -> None:
    clock = Clock()
    state = LocalState(max_entries=2, clock=clock)
    await state.cache_put("a", b"1", 1.0)
    await state.cache_put("b", b"2", 5.0)
    assert await state.cache_get("a") == b"1"
    clock.now += 1.0
    assert await state.cache_get("a") is None  # expired
    await state.cache_put("c", b"3", 5.0)
    await state.cache_put("d", b"4", 5.0)  # "b" least recently used: evicted
    assert await state.cache_get("b") is None and await state.cache_get("d") == b"4"
    assert state.status() == {"kind": "local", "reachable": True, "cache_entries": 2}


async def test_mark_down_is_local_only() -> None:
    state = LocalState()
    seen: list[tuple[str, str, float, str]] = []
    state.watch_down(lambda *v: seen.append(v))
    await state.mark_down("target:m", "http://a/v1", 5.0, "refused")
    assert seen == []


def test_pool_publishes_failures_and_applies_verdicts() -> None:
    clock = Clock()
    pool = EndpointPool.of("target:m", ["http://a/v1", "http://b/v1"], cooldown_s=5.0, clock=clock)
    published: list[tuple[str, str, str]] = []
    pool.on_failure = lambda p, e, err: published.append((p.name, e.url, err))
    a, b = pool.endpoints
    pool.mark_failure(a, "refused")
    assert published == [("target:m", "http://a/v1", "refused")]
    assert pool.apply_verdict("http://b/v1", 3.0, "timeout") is True
    assert published == [("target:m", "http://a/v1", "refused")]  # a verdict is not published again
    assert b.up is False and b.cooldown_until == 103.0 and b.last_error == "shared: timeout"
    assert pool.apply_verdict("http://c/v1", 3.0, "x") is False
    assert pool.pick() is b  # both cooling down: the one that recovers first
    clock.now += 3.0
    assert pool.pick() is b


def test_config_and_build() -> None:
    assert isinstance(build_state(StateConfig()), LocalState)
    state = build_state(StateConfig(redis_url="redis://127.0.0.1:1/0", key_prefix="x:"))
    assert isinstance(state, FailOpenState)
    assert state.status()["kind"] == "redis" and state.status()["url"] == "redis://127.0.0.1:1/0"
    assert build_state(StateConfig(redis_url="redis://:secret@h:6379/0")).status()["url"] == "redis://h:6379/0"
    with pytest.raises(ValidationError, match="redis_url"):
        StateConfig(redis_url="http://h:6379")
    assert [round(next_backoff(d, 2.0), 2) for d in (0.2, 0.4, 1.6, 2.0)] == [0.4, 0.8, 2.0, 2.0]

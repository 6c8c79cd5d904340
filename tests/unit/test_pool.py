from __future__ import annotations

from gateway.upstream.pool import EndpointPool


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_least_outstanding() -> None:
    pool = EndpointPool.of("p", ["a", "b", "c"])
    a, b, c = pool.endpoints
    pool.acquire(a)
    pool.acquire(a)
    pool.acquire(b)
    assert pool.pick() is c
    pool.acquire(c)
    pool.acquire(c)
    assert pool.pick() is b


def test_cooldown_skips_then_recovers() -> None:
    clock = Clock()
    pool = EndpointPool.of("p", ["a", "b"], cooldown_s=5, clock=clock)
    a, b = pool.endpoints
    pool.acquire(b)
    pool.mark_failure(a, "refused")
    assert pool.pick() is b and not a.up
    clock.now += 5.1
    assert pool.pick() is a


def test_all_cooling_picks_first_to_recover() -> None:
    clock = Clock()
    pool = EndpointPool.of("p", ["a", "b"], cooldown_s=5, clock=clock)
    a, b = pool.endpoints
    pool.mark_failure(b, "x")
    clock.now += 1
    pool.mark_failure(a, "x")
    assert pool.pick() is b


def test_exclude_for_retry() -> None:
    pool = EndpointPool.of("p", ["a", "b"])
    a, b = pool.endpoints
    assert pool.pick(exclude=[a]) is b
    assert pool.pick(exclude=[a, b]) is None


def test_probe_success_ends_cooldown() -> None:
    clock = Clock()
    pool = EndpointPool.of("p", ["a"], cooldown_s=30, clock=clock)
    (a,) = pool.endpoints
    pool.record_probe(a, False, 1.0, "refused")
    assert not pool.any_up and a.cooldown_until > clock.now
    pool.record_probe(a, True, 1.0, None)
    assert pool.any_up and a.cooldown_until == 0.0 and a.last_error is None

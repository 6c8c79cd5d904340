"""The tier choice of adapter pools (pure) and the pool operations registration uses."""

from __future__ import annotations

from gateway.upstream.pool import Endpoint, EndpointPool
from gateway.upstream.tiers import choose, saturated, spill_over


def _e(url: str, tier: str | None, outstanding: int = 0, cooldown_until: float = 0.0) -> Endpoint:
    return Endpoint(url, outstanding=outstanding, cooldown_until=cooldown_until, tier=tier)


def test_without_a_preference_the_least_busy_ready_endpoint_wins_whatever_its_tier() -> None:
    gpu, cpu = _e("g", "gpu", 2), _e("c", "cpu", 1)
    assert choose([gpu, cpu], now=10) is cpu
    assert choose([], now=10) is None


def test_prefer_gpu_keeps_cpu_endpoints_for_when_the_gpus_are_down_or_saturated() -> None:
    gpu, cpu = _e("g", "gpu", 3), _e("c", "cpu", 0)
    assert choose([cpu, gpu], now=10, prefer="gpu", max_inflight=4) is gpu  # busier, but not saturated
    gpu.outstanding = 4
    assert choose([cpu, gpu], now=10, prefer="gpu", max_inflight=4) is cpu  # saturated: spill over
    cpu.outstanding = 5
    assert choose([cpu, gpu], now=10, prefer="gpu", max_inflight=4) is gpu  # all saturated: least busy
    gpu.outstanding, gpu.cooldown_until = 0, 20.0
    cpu.outstanding = 0
    assert choose([cpu, gpu], now=10, prefer="gpu") is cpu  # the GPU cools down
    cpu.cooldown_until = 15.0
    assert choose([cpu, gpu], now=10, prefer="gpu") is cpu  # all cooling down: first to recover


def test_endpoints_of_no_declared_tier_count_as_the_preferred_tier() -> None:
    plain, cpu = _e("p", None, 2), _e("c", "cpu", 0)
    assert not spill_over(plain, "gpu") and spill_over(cpu, "gpu") and not spill_over(cpu, "none")
    assert choose([cpu, plain], now=0, prefer="gpu") is plain
    assert choose([plain, cpu], now=0, prefer="cpu") is cpu
    assert saturated(_e("x", None, 4), 4) and not saturated(_e("x", None, 3), 4)


def test_a_pool_adds_registered_endpoints_once_and_removes_only_registered_ones() -> None:
    pool = EndpointPool("adapter:cleaner", [Endpoint("http://a/v1")], prefer="gpu", max_inflight=1)
    assert pool.add(Endpoint("http://b/v1", model="lora-b", tier="cpu", source="registered"))
    assert not pool.add(Endpoint("http://b/v1", source="registered"))
    assert not pool.add(Endpoint("http://a/v1", source="registered"))  # a configured URL stays configured
    assert pool.pick() is pool.endpoints[0]
    pool.acquire(pool.endpoints[0])
    assert pool.pick() is pool.endpoints[1]  # the configured one is saturated at max_inflight 1
    assert pool.remove("http://a/v1") is None  # configured: not removed
    removed = pool.remove("http://b/v1")
    assert removed is not None and removed.model == "lora-b"
    assert [e.url for e in pool.endpoints] == ["http://a/v1"]

"""Shared state across real gateway processes: two ``mpr-gateway serve`` subprocesses and one real
redis-server share per-key rate limits and endpoint cool-downs; with Redis killed they keep
serving on local limits, ``/ready`` and ``/metrics`` say so, and a restart is picked up by itself."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.peers import FaultyPeer
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes
from tests.support.redis_server import RedisServer

KEY, OTHER = "sk-shared-one-0123456789", "sk-shared-two-0123456789"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def target() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def _state(redis: RedisServer) -> dict[str, Any]:
    return {"redis_url": redis.url, "key_prefix": "gw:", "op_timeout_s": 0.5, "retry_backoff_s": 0.1, "retry_backoff_max_s": 0.5}


def _chat(gw: GatewayProcess, key: str = KEY) -> httpx.Response:
    return httpx.post(gw.base_url + "/chat/completions", json={"model": "test-model", "messages": MESSAGES}, headers={"authorization": f"Bearer {key}"}, timeout=10)


def _models(gw: GatewayProcess, key: str = KEY) -> httpx.Response:
    return httpx.get(gw.base_url + "/models", headers={"authorization": f"Bearer {key}"}, timeout=10)


def _ready_state(gw: GatewayProcess) -> dict[str, Any]:
    state: dict[str, Any] = httpx.get(gw.url + "/ready", timeout=5).json()["state"]
    return state


def _until(predicate: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout}s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_per_key_limit_held_across_two_gateways(redis_server: RedisServer, target: FakeOpenAI, tmp_path: Path) -> None:
    tree = routes(target.base_url, server={"api_keys": [KEY, OTHER], "rate_limit": {"requests_per_s": 0.01, "burst": 3}}, state=_state(redis_server))
    one, two = GatewayProcess(tree, tmp_path).launch(), GatewayProcess(tree, tmp_path).launch()
    try:
        one.wait_ready(), two.wait_ready()
        statuses = [_chat(one).status_code, _models(two).status_code, _chat(two).status_code]
        limited = _chat(one)
        assert statuses == [200, 200, 200]
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limit_exceeded" and int(limited.headers["retry-after"]) >= 1
        assert _models(two).status_code == 429  # the Litestar route shares the same bucket
        assert _chat(two, OTHER).status_code == 200  # per key
        assert [_ready_state(gw)["reachable"] for gw in (one, two)] == [True, True]
    finally:
        one.stop(), two.stop()


def test_redis_down_fails_open_then_recovers(redis_server: RedisServer, target: FakeOpenAI, tmp_path: Path) -> None:
    tree = routes(target.base_url, server={"api_keys": [KEY], "rate_limit": {"requests_per_s": 0.01, "burst": 3}}, state=_state(redis_server))
    with GatewayProcess(tree, tmp_path) as gw:
        assert [_chat(gw).status_code for _ in range(2)] == [200, 200]  # the shared bucket has 1 left
        redis_server.kill()
        started = time.monotonic()
        local = [_chat(gw).status_code for _ in range(4)]
        assert local == [200, 200, 200, 429], local  # a fresh local bucket of 3: the limit still holds
        assert time.monotonic() - started < 3.0
        state = _ready_state(gw)
        assert state["kind"] == "redis" and state["reachable"] is False and state["since"] > 0, state
        assert httpx.get(gw.url + "/ready").status_code == 200  # fail open: still ready
        metrics = httpx.get(gw.url + "/metrics").text
        assert 'mpr_state_backend_up{kind="redis"} 0.0' in metrics
        assert re.search(r'mpr_state_errors_total\{kind="redis",op="(take|listen)"\} [1-9]', metrics), metrics

        redis_server.start()  # same port, no data
        took = _until(lambda: _ready_state(gw)["reachable"], 5.0, "reachable again")
        assert _chat(gw).status_code == 200  # the new server's bucket
        keys = redis_server_keys(redis_server)
        assert any(k.startswith("gw:rl:") for k in keys), keys
        assert 'mpr_state_backend_up{kind="redis"} 1.0' in httpx.get(gw.url + "/metrics").text
        print(f"recovered {took:.2f}s after the restart")


def redis_server_keys(server: RedisServer) -> list[str]:
    import redis

    client = redis.Redis.from_url(server.url)
    try:
        return [k.decode() for k in client.keys("*")]
    finally:
        client.close()


def test_cooldown_shared_between_gateways(redis_server: RedisServer, target: FakeOpenAI, tmp_path: Path) -> None:
    flaky = FaultyPeer().start()
    try:
        tree = routes(target.base_url, server={"probe_interval_s": 60}, state=_state(redis_server))
        # least outstanding sends the first request to the first endpoint (ties go first); affinity
        # (the default) would place it by the ports' hash and might never try the flaky one
        tree["targets"][0].update(endpoints=[flaky.base_url, target.base_url], cooldown_s=30, balance="least_outstanding")
        one, two = GatewayProcess(tree, tmp_path).launch(), GatewayProcess(tree, tmp_path).launch()
        try:
            one.wait_ready(), two.wait_ready()
            time.sleep(1.0)  # the first probes (both endpoints up) are done; the next in 60 s
            flaky.inject("down")
            assert _chat(one, "x").status_code == 200  # the flaky endpoint refused, the other answered
            assert any(e["url"] == flaky.base_url and e["cooling_down"] for e in httpx.get(one.url + "/ready").json()["targets"]["test-model"])
            flaky.open_port()  # back up: only the shared verdict keeps it out of rotation now

            def cooling(gw: GatewayProcess) -> bool:
                endpoints = httpx.get(gw.url + "/ready", timeout=5).json()["targets"]["test-model"]
                return any(e["url"] == flaky.base_url and e["cooling_down"] for e in endpoints)

            _until(lambda: cooling(two), 3.0, "the verdict reached the other gateway")
            flaky.requests.clear()
            assert [_chat(two, "x").status_code for _ in range(5)] == [200] * 5
            assert flaky.requests_for("target-model") == []  # skipped by the gateway that never saw it fail
            endpoint = next(e for e in httpx.get(two.url + "/ready").json()["targets"]["test-model"] if e["url"] == flaky.base_url)
            assert endpoint["last_error"].startswith("shared: ")
        finally:
            one.stop(), two.stop()
    finally:
        flaky.stop()


def test_local_state_by_default(target: FakeOpenAI, tmp_path: Path) -> None:
    tree = routes(target.base_url, server={"rate_limit": {"requests_per_s": 0.01, "burst": 2}})
    with GatewayProcess(tree, tmp_path) as gw:
        assert [_chat(gw, "anon").status_code for _ in range(3)] == [200, 200, 429]
        state = _ready_state(gw)
        assert state["kind"] == "local" and state["reachable"] is True
        assert 'mpr_state_backend_up{kind="local"} 1.0' in httpx.get(gw.url + "/metrics").text


def test_per_key_limit_held_across_the_workers_of_one_server(redis_server: RedisServer, target: FakeOpenAI, tmp_path: Path) -> None:
    """``serve --workers 2`` on one Redis: the workers take from one bucket (each new connection
    may land on either worker; without shared state each would allow the whole burst)."""
    tree = routes(target.base_url, server={"api_keys": [KEY], "rate_limit": {"requests_per_s": 0.01, "burst": 4}}, state=_state(redis_server))
    gw = GatewayProcess(tree, tmp_path, workers=2).launch()
    try:
        gw.wait_ready()
        statuses = [_chat(gw).status_code for _ in range(12)]  # a new connection each: both workers serve
        assert statuses.count(200) == 4 and statuses.count(429) == 8, statuses
    finally:
        gw.stop()

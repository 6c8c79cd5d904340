"""Registration storage behind SharedState: in memory (expiry on its clock), in a directory shared
by the processes of ``serve --workers N``, in a real Redis (every replica sees every worker, with a
TTL), and through the fail-open wrapper while Redis is down."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.state.failopen import FailOpenState
from gateway.state.local import LocalState
from gateway.state.redis_state import RedisState
from gateway.state.registrations import DirectoryRegistrations, MemoryRegistrations, registrations_from_env
from tests.support.redis_server import RedisServer, patient_state


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


async def test_memory_registrations_expire_at_their_ttl() -> None:
    clock = Clock()
    state = LocalState(clock=clock)
    await state.register_put("a", b"A", 3.0)
    await state.register_put("b", b"B", 10.0)
    clock.now += 2.9
    assert await state.register_all() == {"a": b"A", "b": b"B"}
    await state.register_put("a", b"A2", 3.0)  # a heartbeat renews it
    clock.now += 2.9
    assert await state.register_all() == {"a": b"A2", "b": b"B"}
    clock.now += 0.2
    assert await state.register_all() == {"b": b"B"}


def test_a_directory_is_shared_by_two_stores_and_expires_on_the_wall_clock(tmp_path: Path) -> None:
    clock = Clock()
    one, two = DirectoryRegistrations(tmp_path / "reg", clock), DirectoryRegistrations(tmp_path / "reg", clock)
    one.put("node/with odd:chars", b'{"x": 1}', 5.0)
    two.put("b", b"B", 1.0)
    assert two.all() == {"node/with odd:chars": b'{"x": 1}', "b": b"B"}
    assert one.all() == two.all()
    clock.now += 2
    assert one.all() == {"node/with odd:chars": b'{"x": 1}'}
    clock.now += 1000  # long expired: the files go
    assert one.all() == {} and list((tmp_path / "reg").iterdir()) == []


def test_the_supervisor_env_picks_the_directory_store(tmp_path: Path) -> None:
    assert isinstance(registrations_from_env({}), MemoryRegistrations)
    store = registrations_from_env({"MPR_REGISTRY_DIR": str(tmp_path / "r")})
    assert isinstance(store, DirectoryRegistrations) and store.directory == tmp_path / "r"


async def test_redis_registrations_are_seen_by_every_client_and_expire(redis_server: RedisServer) -> None:
    a = patient_state(redis_server.url)
    b = patient_state(redis_server.url)
    other = patient_state(redis_server.url, prefix="other:")
    try:
        await a.register_put("n1", b"one", 0.4)
        await b.register_put("n2", b"two", 30)
        await a.cache_put("worker:not-a-registration", b"x", 30)  # the cache's keys never look like workers
        assert await b.register_all() == {"n1": b"one", "n2": b"two"}
        assert await other.register_all() == {}
        await asyncio.sleep(0.6)
        assert await a.register_all() == {"n2": b"two"}
    finally:
        for state in (a, b, other):
            await state.close()


async def test_while_redis_is_down_a_gateway_sees_the_registrations_it_heard(redis_server: RedisServer) -> None:
    state = FailOpenState(RedisState(redis_server.url, prefix="t:", op_timeout_s=0.3), LocalState(), backoff_s=0.1, backoff_max_s=0.2)
    try:
        await state.register_put("n1", b"one", 30)
        assert await state.register_all() == {"n1": b"one"}
        redis_server.kill()
        assert await state.register_all() == {"n1": b"one"}  # from the fallback
        assert not state.reachable
        await state.register_put("n2", b"two", 30)
        assert await state.register_all() == {"n1": b"one", "n2": b"two"}
    finally:
        await state.close()

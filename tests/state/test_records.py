"""Durable records (response owners, canary verdicts): in memory, in a server's shared directory
(``serve --workers N`` without Redis), in Redis, and through the fail-open wrapper."""

from __future__ import annotations

from pathlib import Path

from gateway.state.local import LocalState
from gateway.state.records import DirectoryRecords, MemoryRecords
from tests.support.redis_server import RedisServer, patient_state


def test_memory_records_expire_and_stay_bounded() -> None:
    now = [100.0]
    records = MemoryRecords(capacity=3, clock=lambda: now[0])
    for i in range(4):
        records.put(f"k{i}", b"v%d" % i, 10)
    assert records.get("k0") is None and records.get("k3") == b"v3"  # the oldest went past the capacity
    now[0] = 111.0
    assert records.get("k3") is None  # expired


def test_directory_records_are_shared_between_processes_and_swept(tmp_path: Path) -> None:
    now = [100.0]
    one, two = DirectoryRecords(tmp_path, clock=lambda: now[0]), DirectoryRecords(tmp_path, clock=lambda: now[0])
    one.put("resp:abc", b'["t1","gpt",null]', 30)
    assert two.get("resp:abc") == b'["t1","gpt",null]'  # another worker of the server reads it
    assert two.get("resp:other") is None
    now[0] = 200.0
    assert two.get("resp:abc") is None
    removed = sum(two.sweep(f"{i:02x}") for i in range(256))
    assert removed == 1 and not any(p.is_file() for p in tmp_path.rglob("*"))


async def test_local_state_keeps_records_apart_from_the_cache() -> None:
    state = LocalState(max_entries=1, records=MemoryRecords())
    await state.record_put("resp:1", b"owner", 60)
    for i in range(10):  # traffic through the cache never evicts a record
        await state.cache_put(f"refine:{i}", b"x", 60)
    assert await state.record_get("resp:1") == b"owner"


async def test_redis_records(redis_server: RedisServer) -> None:
    a, b = patient_state(redis_server.url), patient_state(redis_server.url)
    try:
        await a.record_put("canary:cleaner:cleaner@2", b'{"state":"rolled_back"}', 60)
        assert await b.record_get("canary:cleaner:cleaner@2") == b'{"state":"rolled_back"}'
        assert await b.record_get("canary:none") is None
    finally:
        await a.close()
        await b.close()

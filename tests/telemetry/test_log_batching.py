"""The JSON-line handler writes in batches: a line within the flush interval, at once on warnings."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time

from gateway.logs import AccessLog, JsonLineHandler


class RawCounter(io.RawIOBase):
    """An unbuffered stream (as ``sys.stdout.buffer`` with ``PYTHONUNBUFFERED``) counting writes."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.writes = 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.writes += 1
        self.data += bytes(b)
        return len(b)


def test_lines_are_batched_and_flushed_by_the_timer() -> None:
    raw = RawCounter()
    handler = JsonLineHandler(raw, flush_interval_s=0.05)

    async def main() -> None:
        handler._last_flush = time.monotonic()  # just flushed: the next lines are held
        for i in range(50):
            handler.write_entry({"level": "info", "logger": "t", "msg": f"line {i}"})
        assert raw.writes == 0  # held
        await asyncio.sleep(0.15)
        assert raw.writes == 1  # one write for the 50 lines

    asyncio.run(main())
    lines = [json.loads(line) for line in raw.data.decode().splitlines()]
    assert [e["msg"] for e in lines] == [f"line {i}" for i in range(50)]
    assert all(e["ts"].endswith("Z") for e in lines)


def test_a_log_record_writes_at_once_with_what_was_held() -> None:
    raw = RawCounter()
    handler = JsonLineHandler(raw, flush_interval_s=60)
    logger = logging.getLogger("test.batching")
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)

    async def main() -> None:
        handler._last_flush = time.monotonic()
        handler.write_entry({"level": "info", "logger": "t", "msg": "access"})
        assert raw.writes == 0  # an access line is held
        logger.info("worker w1 registered")  # an event: out at once, after what was held
        assert raw.writes == 1
        handler.write_entry({"level": "warning", "logger": "t", "msg": "slow"}, logging.WARNING)
        assert raw.writes == 2  # an access line at WARNING+ is not held either

    try:
        asyncio.run(main())
    finally:
        logger.handlers[:] = []
    assert [json.loads(line)["msg"] for line in raw.data.decode().splitlines()] == ["access", "worker w1 registered", "slow"]


def test_without_an_event_loop_a_line_is_written_at_once() -> None:
    raw = RawCounter()
    handler = JsonLineHandler(raw, flush_interval_s=60)
    handler.write_entry({"level": "info", "logger": "t", "msg": "now"})
    assert raw.writes == 1 and json.loads(raw.data)["msg"] == "now"


def test_access_line_shape(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    raw = RawCounter()
    handler = JsonLineHandler(raw)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])
    access = AccessLog("gateway.access.test")
    access.write("POST /x 200 1.0ms", {"method": "POST", "status": 200})
    handler.flush()
    entry = json.loads(raw.data)
    assert list(entry) == ["ts", "level", "logger", "msg", "method", "status"]
    assert entry["level"] == "info" and entry["logger"] == "gateway.access.test" and entry["msg"] == "POST /x 200 1.0ms"

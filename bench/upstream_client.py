"""CPU per upstream call: the gateway's wire client against aiohttp's, in the same run.

    .venv/bin/python bench/upstream_client.py [--calls 20000] [--concurrency 32] [--rounds 3]

One process on one core (``taskset``-style affinity to core 0; the fake upstream on core 1) makes
``--calls`` keep-alive ``POST /v1/chat/completions`` calls at ``--concurrency`` and reads each
answer whole, with each client in turn, ``--rounds`` alternations (order reversed every other
round). Printed: µs of this process's CPU per call, each client's best round and the ratio of
the medians of the per-round ratios to aiohttp. ``floor`` is a bare ``asyncio.Protocol`` on the
same httptools parser with no pool bound, timeouts or checks: what a call cannot go below in
Python here. Loopback only; the fake upstream is started and stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httptools
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.upstream.wire import Session, Timeout  # noqa: E402

BODY = b'{"model":"bench-model","messages":[{"role":"user","content":"Explain how a hash table handles collisions in simple terms."}]}'
HEADERS = {"content-type": "application/json", "accept-encoding": "identity", "authorization": "Bearer sk-upstream"}


class _FloorConnection(asyncio.Protocol):
    """The least a keep-alive call can do: write, parse the answer, hand back the body."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[bytes] | None = None
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.done is not None
        self.done.set_result(b"".join(self.body))

    async def call(self, request: bytes) -> bytes:
        self.body = []
        self.done = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(request)
        return await self.done


class _Floor:
    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[_FloorConnection] = []
        lines = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
        self.request = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n{lines}content-length: {len(BODY)}\r\n\r\n").encode() + BODY

    async def __call__(self) -> None:
        conn = self.idle.pop() if self.idle else None
        if conn is None:
            _, conn = await asyncio.get_running_loop().create_connection(_FloorConnection, "127.0.0.1", self.port)
        assert await conn.call(self.request)
        self.idle.append(conn)


async def _drive(call: Callable[[], Awaitable[None]], n: int, concurrency: int) -> None:
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _measure(args: argparse.Namespace, port: int) -> dict[str, list[float]]:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    connector = aiohttp.TCPConnector(limit=1024, keepalive_timeout=30)
    aio = aiohttp.ClientSession(connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar())
    aio_timeout = aiohttp.ClientTimeout(total=None, sock_connect=2, sock_read=600)
    wire = Session(1024)
    wire_timeout = Timeout(connect=2, read=600)

    async def aiohttp_call() -> None:
        async with aio.post(url, data=BODY, headers=HEADERS, timeout=aio_timeout) as response:
            assert response.status == 200 and await response.read()

    async def wire_call() -> None:
        response = await wire.post(url, data=BODY, headers=HEADERS, timeout=wire_timeout)
        assert response.status == 200 and await response.read()
        response.release()

    clients: dict[str, Callable[[], Awaitable[None]]] = {"aiohttp": aiohttp_call, "wire": wire_call, "floor": _Floor(port)}
    results: dict[str, list[float]] = {name: [] for name in clients}
    try:
        for round_ in range(args.rounds):
            order = list(clients.items()) if round_ % 2 == 0 else list(clients.items())[::-1]
            for name, call in order:
                await _drive(call, 2_000, args.concurrency)  # warm: connections open, caches filled
                start = time.process_time()
                await _drive(call, args.calls, args.concurrency)
                results[name].append((time.process_time() - start) / args.calls * 1e6)
    finally:
        await aio.close()
        await wire.close()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port", type=int, default=19390)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {0})
    upstream = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, str(ROOT / "bench" / "fake_upstream.py"), "--port", str(args.port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.5)
        results = uvloop.run(_measure(args, args.port))
    finally:
        upstream.terminate()
        upstream.wait(10)
    base = results["aiohttp"]
    print(f"CPU per upstream call (µs, one core, c={args.concurrency}, {args.calls} calls a round, {args.rounds} rounds)\n")
    print("| client | best round | rounds | × aiohttp (median of per-round ratios) |")
    print("|---|---|---|---|")
    for name, values in results.items():
        ratio = statistics.median(v / b for v, b in zip(values, base))
        print(f"| {name} | {min(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} | {ratio:.2f} |")


if __name__ == "__main__":
    main()

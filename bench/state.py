"""What a shared rate limit costs per request: ``take`` on LocalState vs Redis; prints figures.

    .venv/bin/python bench/state.py [--redis-url redis://127.0.0.1:6379/0] [--n 5000] [--concurrency 32]

Without ``--redis-url`` it starts Debian's ``redis-server`` on a free loopback port (``--save ""
--appendonly no``) and stops it afterwards. Reported: p50 / p99 µs of one ``take`` (the Lua token
bucket: one round trip) sequentially, the same through the fail-open wrapper (what the gateway
runs), one ``GET`` of the cache, and the throughput of ``--concurrency`` concurrent takes — against
the in-process bucket, with the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.state.failopen import FailOpenState  # noqa: E402
from gateway.state.local import LocalState  # noqa: E402
from gateway.state.redis_state import RedisState  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found: bash scripts/install-redis.sh, or pass --redis-url")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(8).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start")


async def _timed(call: Callable[[int], Awaitable[object]], n: int) -> list[float]:
    """µs per call, sequential (after n/10 warm-up calls)."""
    for i in range(n // 10):
        await call(i)
    samples = []
    for i in range(n):
        started = time.perf_counter_ns()
        await call(i)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


async def _throughput(call: Callable[[int], Awaitable[object]], n: int, concurrency: int) -> float:
    """Calls per second with ``concurrency`` callers."""
    async def worker(w: int) -> None:
        for i in range(w, n, concurrency):
            await call(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return n / (time.perf_counter() - started)


def _p(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1]


async def main(url: str, n: int, concurrency: int) -> None:
    local = LocalState()
    redis = RedisState(url, prefix="bench:", op_timeout_s=1.0)
    failopen = FailOpenState(RedisState(url, prefix="bench:", op_timeout_s=1.0), LocalState())
    keys = [f"sk-bench-{i % 100}" for i in range(n)]  # 100 callers
    rows: list[tuple[str, list[float], float]] = []
    for name, take in (
        ("local take", lambda i: local.take(keys[i % n], 1e6, 1000)),
        ("redis take (Lua)", lambda i: redis.take(keys[i % n], 1e6, 1000)),
        ("fail-open redis take", lambda i: failopen.take(keys[i % n], 1e6, 1000)),
        ("redis cache_get", lambda i: redis.cache_get(keys[i % n])),
    ):
        samples = await _timed(take, n)
        rows.append((name, samples, await _throughput(take, n, concurrency)))
    await redis.close()
    await failopen.close()
    base = statistics.median(rows[0][1])
    print(f"shared-state cost per request: {n} calls, {concurrency} concurrent callers for the throughput, {url}")
    print(f"{'':24} {'p50 µs':>9} {'p99 µs':>9} {'× local p50':>12} {'calls/s (conc.)':>16}")
    for name, samples, per_s in rows:
        p50 = statistics.median(samples)
        print(f"{name:24} {p50:9.1f} {_p(samples, 99):9.1f} {p50 / base:12.0f} {per_s:16.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        redis_url = args.redis_url
        if redis_url is None:
            server, redis_url = _start_redis(tmp)
        try:
            asyncio.run(main(redis_url, args.n, args.concurrency))
        finally:
            if server is not None:
                server.terminate()
                server.wait(10)

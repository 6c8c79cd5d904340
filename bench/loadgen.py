"""Python (aiohttp + uvloop) load driver for what wrk cannot see.

* ``stream``: closed-loop streaming clients; time to first body byte (TTFB), full-stream time,
  checks every stream ends with ``[DONE]``.
* ``headers``: closed-loop non-streaming clients; latency plus the gateway's ``x-mpr-refine-ms`` and
  ``x-mpr-refinement`` response headers.
* ``hold``: opens N streams at once, waits until each has its first chunk, calls back (the harness
  samples RSS there), then closes them.

Every run is bounded by a duration and a request count. Used by ``bench/run.py``; also a CLI:

    python bench/loadgen.py stream URL --body-file F --concurrency 32 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time
from collections.abc import Callable

import aiohttp

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench-local-7f3c2a91"}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))]


def _session(limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=60, force_close=False),
        timeout=aiohttp.ClientTimeout(total=120),
    )


async def _closed_loop(worker: Callable, concurrency: int, duration: float, max_requests: int, warmup: float):
    """Run ``worker(session, record)`` in ``concurrency`` loops; return samples after warm-up."""
    samples: list = []
    errors = collections.Counter()
    count = 0
    started = 0
    async with _session(concurrency) as session:
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + duration

        async def loop() -> None:
            nonlocal count, started
            while time.perf_counter() < stop_at and count < max_requests:
                t0 = time.perf_counter()
                started += 1
                try:
                    sample = await worker(session)
                except Exception as exc:  # noqa: BLE001 - counted, reported
                    errors[type(exc).__name__] += 1
                    continue
                if t0 >= measure_from:
                    count += 1
                    if isinstance(sample, str):
                        errors[sample] += 1
                    else:
                        samples.append(sample)

        await asyncio.gather(*(loop() for _ in range(concurrency)))
        elapsed = time.perf_counter() - measure_from
    errors["_all_requests"] = started  # warm-up included: the denominator for CPU per request
    return samples, dict(errors), elapsed


async def stream_run(url: str, body: bytes, headers: dict | None = None, concurrency: int = 32,
                     duration: float = 5.0, max_requests: int = 200_000, warmup: float = 1.0) -> dict:
    hdrs = {**HEADERS, **(headers or {})}

    async def one(session: aiohttp.ClientSession):
        t0 = time.perf_counter()
        async with session.post(url, data=body, headers=hdrs) as resp:
            first = await resp.content.readany()
            ttfb = time.perf_counter() - t0
            tail = first
            while True:
                chunk = await resp.content.readany()
                if not chunk:
                    break
                tail = (tail + chunk)[-64:]
            total = time.perf_counter() - t0
            if resp.status != 200:
                return f"http_{resp.status}"
            if b"[DONE]" not in tail:
                return "no_done"
            return ttfb, total

    samples, errors, elapsed = await _closed_loop(one, concurrency, duration, max_requests, warmup)
    all_requests = errors.pop("_all_requests")
    ttfb = [s[0] * 1000 for s in samples]
    total = [s[1] * 1000 for s in samples]
    return {"n": len(samples), "all_requests": all_requests, "errors": errors, "rps": len(samples) / elapsed,
            "ttfb_p50": pct(ttfb, 50), "ttfb_p90": pct(ttfb, 90), "ttfb_p99": pct(ttfb, 99),
            "total_p50": pct(total, 50), "total_p99": pct(total, 99)}


async def headers_run(url: str, body: bytes, headers: dict | None = None, concurrency: int = 32,
                      duration: float = 5.0, max_requests: int = 200_000, warmup: float = 1.0) -> dict:
    hdrs = {**HEADERS, **(headers or {})}

    async def one(session: aiohttp.ClientSession):
        t0 = time.perf_counter()
        async with session.post(url, data=body, headers=hdrs) as resp:
            await resp.read()
            lat = time.perf_counter() - t0
            if resp.status != 200:
                return f"http_{resp.status}"
            ms = resp.headers.get("x-mpr-refine-ms")
            return lat, float(ms) if ms not in (None, "") else float("nan"), resp.headers.get("x-mpr-refinement", "")

    samples, errors, elapsed = await _closed_loop(one, concurrency, duration, max_requests, warmup)
    errors.pop("_all_requests")
    lat = [s[0] * 1000 for s in samples]
    refine = [s[1] for s in samples if s[1] == s[1]]
    kinds = collections.Counter(s[2] for s in samples)
    return {"n": len(samples), "errors": errors, "rps": len(samples) / elapsed,
            "p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99),
            "refine_p50": pct(refine, 50), "refine_p90": pct(refine, 90), "refine_p99": pct(refine, 99),
            "refinement": dict(kinds.most_common(4))}


async def hold_streams(url: str, body: bytes, n: int, on_open: Callable[[], object],
                       headers: dict | None = None, open_timeout: float = 60.0) -> dict:
    """Open ``n`` streams, wait for each first chunk, call ``on_open()``, then close them all."""
    hdrs = {**HEADERS, **(headers or {})}
    opened = 0
    all_open = asyncio.Event()
    release = asyncio.Event()
    errors = collections.Counter()

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal opened
        try:
            async with session.post(url, data=body, headers=hdrs) as resp:
                first = await resp.content.readany()
                if resp.status != 200 or not first:
                    errors[f"http_{resp.status}"] += 1
                    return
                opened += 1
                if opened == n:
                    all_open.set()
                await release.wait()
        except Exception as exc:  # noqa: BLE001
            errors[type(exc).__name__] += 1

    t0 = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=open_timeout + 30)) as session:
        tasks = [asyncio.create_task(one(session)) for _ in range(n)]
        try:
            await asyncio.wait_for(all_open.wait(), open_timeout)
        except asyncio.TimeoutError:
            pass
        open_s = time.perf_counter() - t0
        result = on_open()
        release.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"opened": opened, "open_s": open_s, "errors": dict(errors), "result": result}


def run(coro):
    if uvloop is not None:
        return uvloop.run(coro)
    return asyncio.run(coro)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["stream", "headers"])
    ap.add_argument("url")
    ap.add_argument("--body-file", required=True)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--header", action="append", default=[], help="name: value")
    args = ap.parse_args()
    body = open(args.body_file, "rb").read()
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    fn = stream_run if args.mode == "stream" else headers_run
    print(json.dumps(run(fn(args.url, body, headers, args.concurrency, args.duration)), indent=1))


if __name__ == "__main__":
    main()

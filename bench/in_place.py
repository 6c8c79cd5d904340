"""The skip path against refinement off, in place: the gateway's ASGI app driven in-process under load.

    .venv/bin/python bench/in_place.py [--rounds 8] [--requests 20000] [--concurrency 32]
                                       [--time gateway.endpoints.refinement_run:PromptRefinement.begin_turn ...]

``bench/features.py`` times each feature in a tight loop, where its code and data stay in the CPU's
caches; ``bench/run.py`` serves it through uvicorn, where they do not, and the machine's noise
moves a pass by ±10%. This sits between them: the app ``mpr-gateway serve`` builds from
``bench/run.py``'s config, called as an ASGI app at ``--concurrency`` by coroutines on this
process's one core (no sockets on the client side), its upstream calls going to the fake upstream
on the other core. Rounds alternate refinement off and the skip gate (a clean prompt seen before),
the order reversed every other round; each prints CPU µs per request of both, and the end the
median of the per-round differences and ratios. ``--time`` wraps the named functions with a
``perf_counter`` pair and prints their mean µs per call as called under this load (the wrapper
adds ≈ 0.1 µs a call): the cost a function pays in place, against its tight-loop cost.

Loopback only; the fake upstream started here is stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import run as bench  # noqa: E402  (the fake upstream, the bench config, the ports, the client key)

MODELS = {"off": "bench-off", "skip": "bench-refine"}


def scope(length: int) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {bench.KEY}".encode()),
               (b"content-type", b"application/json"), (b"content-length", str(length).encode())]
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "scheme": "http", "method": "POST",
            "root_path": "", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
            "query_string": b"", "headers": headers, "state": {}}


async def call(app: Any, body: bytes) -> int:
    """One request through the ASGI app; its status."""
    sent = False
    answered = asyncio.Event()
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif not message.get("more_body"):
            answered.set()

    await app(scope(len(body)), receive, send)
    return status


async def drive(app: Any, body: bytes, n: int, concurrency: int) -> int:
    """``n`` requests at ``concurrency``; how many were not answered 200."""
    left, bad = n, 0

    async def worker() -> None:
        nonlocal left, bad
        while left > 0:
            left -= 1
            bad += await call(app, body) != 200

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return bad


async def lifespan(app: Any) -> Callable[[], Any]:
    """Start the app's lifespan; returns the coroutine function that ends it."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put))
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")

    async def stop() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task

    return stop


def timed(spec: str, totals: dict[str, list[float]]) -> None:
    """Wrap ``module:Class.method`` (or ``module:function``, when its callers look it up in the module
    at call time) to add its calls' count and time to ``totals``."""
    module_name, _, qualname = spec.partition(":")
    owner: Any = importlib.import_module(module_name)
    *parents, name = qualname.split(".")
    for part in parents:
        owner = getattr(owner, part)
    inner = getattr(owner, name)
    entry = totals.setdefault(spec, [0.0, 0.0])
    clock = time.perf_counter

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return inner(*args, **kwargs)
        finally:
            entry[0] += 1
            entry[1] += clock() - started

    setattr(owner, name, wrapper)


async def measure(args: argparse.Namespace) -> None:
    from gateway.app import create_app
    from gateway.config.loader import load_config
    from gateway.logs import JsonLineHandler
    from gateway.serving import heap

    work = Path(tempfile.mkdtemp(prefix="mpr-in-place-"))
    log = (work / "gateway.log").open("wb")  # noqa: SIM115 - the access log goes to a file, as a served gateway's stdout
    root = logging.getLogger()
    root.handlers[:] = [JsonLineHandler(log)]
    root.setLevel(logging.INFO)
    conf = bench.gateway_config(work, {"cleaner": 0, "describer": 0, "paraphraser": 0}, "in-place")
    app = create_app(load_config(conf))
    stop = await lifespan(app)
    heap.settle()  # as a serving process does after start-up
    totals: dict[str, list[float]] = {}
    for spec in args.time:
        timed(spec, totals)
    bodies = {name: bench.body(model, bench.CLEAN) for name, model in MODELS.items()}
    for body in bodies.values():
        await drive(app, body, 2000, args.concurrency)  # warm: connections, memoised verdict
    figures: dict[str, list[float]] = {name: [] for name in MODELS}
    spent: dict[str, float] = {}
    try:
        for k in range(args.rounds):
            for name in (MODELS if k % 2 == 0 else list(MODELS)[::-1]):
                for entry in totals.values():
                    entry[:] = [0.0, 0.0]
                started = time.process_time()
                bad = await drive(app, bodies[name], args.requests, args.concurrency)
                figures[name].append((time.process_time() - started) / args.requests * 1e6)
                if bad:
                    raise RuntimeError(f"{name}: {bad} requests not answered 200")
                if name == "skip":
                    spent = {spec: e[1] / e[0] * 1e6 for spec, e in totals.items() if e[0]}
            line = "  ".join(f"{name} {figures[name][-1]:6.1f}" for name in MODELS)
            print(f"round {k + 1}: CPU µs/request  {line}  skip - off {figures['skip'][-1] - figures['off'][-1]:5.1f}",
                  file=sys.stderr, flush=True)
    finally:
        await stop()
        log.close()
    gaps = [s - o for s, o in zip(figures["skip"], figures["off"], strict=True)]
    ratios = [o / s for s, o in zip(figures["skip"], figures["off"], strict=True)]
    print(f"In place ({args.rounds} rounds of {args.requests} requests at c={args.concurrency}, one core; "
          "medians of the per-round figures)\n")
    print("| | CPU µs per request |\n|---|---|")
    print(f"| refinement off | {statistics.median(figures['off']):.1f} |")
    print(f"| skip gate, a clean prompt seen before | {statistics.median(figures['skip']):.1f} |")
    print(f"| skip − off | {statistics.median(gaps):.1f} (rounds {min(gaps):.1f}–{max(gaps):.1f}) |")
    print(f"\nskip gate vs refinement off (throughput terms, off ÷ skip): {statistics.median(ratios):.3f} "
          f"(rounds {min(ratios):.3f}–{max(ratios):.3f})")
    if args.time:
        print("\n| function, last skip round | µs per call in place |\n|---|---|")
        for spec, value in spent.items():
            print(f"| `{spec}` | {value:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--port-base", type=int, default=19500)
    ap.add_argument("--time", action="append", default=[], metavar="MODULE:QUALNAME",
                    help="a function to time in place (repeatable)")
    args = ap.parse_args()
    for name in bench.PORTS:
        bench.PORTS[name] += args.port_base
    os.sched_setaffinity(0, {int(bench.SUT_CORE)})
    upstream = bench.start_upstream()
    try:
        import uvloop

        uvloop.run(measure(args))
    finally:
        upstream.stop()


if __name__ == "__main__":
    main()

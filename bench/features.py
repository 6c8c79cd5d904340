"""What each default-on feature costs a request, in µs of CPU: ``python bench/features.py``.

Every figure is the feature's own per-request work, called in-process on objects of a real
runtime (the ``bench/run.py`` gateway config: refinement targets, three adapters, the gate's
lexicon and language model loaded), best of five passes. Where a feature wraps other work
(middleware, the tenant gate) the figure is the wrapped call minus the bare call, measured in the
same pass. ``bench/run.py`` prints this table with its own; the next feature knows its budget
from it: a pass-through request costs the bare Litestar + aiohttp floor ≈ 170-200 µs here.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import CLEAN, KEY  # noqa: E402 - the same prompt and client key as bench/run.py
PASSES = 5


def best_us(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(PASSES):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - start) / rounds * 1e6)
    return best


async def best_async_us(fn: Callable[[], Awaitable[object]], rounds: int) -> float:
    best = float("inf")
    for _ in range(PASSES):
        start = time.perf_counter()
        for _ in range(rounds):
            await fn()
        best = min(best, (time.perf_counter() - start) / rounds * 1e6)
    return best


async def paired_us(wrapped: Callable[[], Awaitable[object]], bare: Callable[[], Awaitable[object]], rounds: int) -> float:
    """µs ``wrapped`` costs over ``bare`` (each pass measures both; the smallest difference of
    the passes' best is kept)."""
    w = b = float("inf")
    for _ in range(PASSES):
        w = min(w, await best_async_us(wrapped, rounds))
        b = min(b, await best_async_us(bare, rounds))
    return max(0.0, w - b)


def _config(work: Path, keys: bool) -> Any:
    import run as R  # bench/run.py: the same gateway config

    from gateway.config.loader import load_config

    path = R.gateway_config(work, {"cleaner": 50, "describer": 50, "paraphraser": 50}, "features-keys" if keys else "features")
    if not keys:  # run.py's config has one client key (no limits): this one has none
        text = path.read_text()
        path.write_text(text[: text.index(", keys: [")] + "}" + text[text.index("}]}") + 3 :])
    return load_config(path)


def _scope() -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/v1/chat/completions", "path_template": "/v1/chat/completions",
            "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"), (b"authorization", b"Bearer " + KEY.encode())],
            "client": ("127.0.0.1", 5000), "mpr_model": "bench-off"}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _sink(message: dict[str, Any]) -> None:
    return None


_START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
_BODY = {"type": "http.response.body", "body": b"{}", "more_body": False}


async def _inner(scope: Any, receive: Any, send: Any) -> None:
    await send(dict(_START))
    await send(_BODY)


async def measure(rounds: int = 20_000) -> list[tuple[str, float, str]]:
    """(feature, µs per request, what runs) for each default-on feature."""
    from gateway.endpoints.chat import ChatCompletions
    from gateway.endpoints.common import admit
    from gateway.endpoints.routing_keys import chat_affinity
    from gateway.logs import JsonLineHandler
    from gateway.refinement.controls import parse_controls
    from gateway.refinement.gate import decide
    from gateway.runtime import build_runtime
    from gateway.sse import UsageFilter
    from gateway.telemetry.middleware import TelemetryMiddleware
    from gateway.tenants.gate import metered
    from gateway.tenants.usage import StreamUsage
    import fake_upstream

    work = Path(tempfile.mkdtemp(prefix="mpr-features-"))
    log_file = (work / "gateway.log").open("wb")  # noqa: SIM115 - a real file, as a served gateway's stdout
    root = logging.getLogger()
    root.handlers[:] = [JsonLineHandler(log_file)]
    root.setLevel(logging.INFO)
    runtime = build_runtime(_config(work, keys=False))
    keyed = build_runtime(_config(work, keys=True))
    await runtime.start()
    await keyed.start()
    rows: list[tuple[str, float, str]] = []
    try:
        telemetry = runtime.telemetry
        quiet = TelemetryMiddleware(_inner, telemetry)
        quiet.access_enabled = False
        logged = TelemetryMiddleware(_inner, telemetry)
        logged.access_enabled = True
        middleware = await paired_us(lambda: quiet(_scope(), _receive, _sink), lambda: _inner(_scope(), _receive, _sink), rounds)
        access = await paired_us(lambda: logged(_scope(), _receive, _sink), lambda: quiet(_scope(), _receive, _sink), rounds)
        rows.append(("telemetry middleware", middleware, "request id, in-flight gauge, request counter + duration histogram, TTFB"))
        rows.append(("access log", access, "one JSON line per request, buffered into a file"))

        auth_on = best_us(lambda: admit(keyed, "Bearer " + KEY, "127.0.0.1"), rounds) - best_us(
            lambda: admit(runtime, None, "127.0.0.1"), rounds)
        rows.append(("API key check", max(0.0, auth_on), "one key configured: constant-time compare against each key"))

        raw = b'{"model":"bench-off","messages":[{"role":"user","content":"' + CLEAN.encode() + b'"}]}'
        reply = (200, {"x-mpr-target": "bench-off"}, b"{}", "application/json")

        async def serve() -> Any:
            return reply

        tenant = admit(keyed, "Bearer " + KEY, "127.0.0.1")
        gate_off = await paired_us(lambda: metered(runtime, None, raw, _scope(), serve), serve, rounds)
        gate_key = await paired_us(lambda: metered(keyed, tenant, raw, _scope(), serve), serve, rounds)
        rows.append(("tenant gate + usage accounting, auth off", gate_off, "meter opened, request counted (key `-`), usage bucket"))
        rows.append(("tenant gate + usage accounting, a key without limits", gate_key, "as above, for the key's name; tenant headers filtered"))

        chat = ChatCompletions(runtime)
        header = {}.get
        payload_off = {"model": "bench-off", "messages": [{"role": "user", "content": CLEAN}]}
        payload_on = {"model": "bench-refine", "messages": [{"role": "user", "content": CLEAN}]}
        controls = parse_controls(header, None)
        off_cfg, on_cfg = runtime.targets["bench-off"].config, runtime.targets["bench-refine"].config
        rows.append(("refinement off: the decision", await best_async_us(
            lambda: chat._refinement(payload_off, payload_off["messages"], "bench-off", controls, off_cfg), rounds),
            "the target's and the key's policy say no: no user turn is read"))
        await chat._refinement(payload_on, payload_on["messages"], "bench-refine", controls, on_cfg)  # the verdict memoised
        rows.append(("skip gate, a prompt seen before", await best_async_us(
            lambda: chat._refinement(payload_on, payload_on["messages"], "bench-refine", controls, on_cfg), rounds),
            "memoised verdict, skip metrics, the audit entry, headers (conversation lookup: none for one turn)"))
        refiner = runtime.refiner
        assert refiner is not None
        rows.append(("skip gate, a new prompt (the gate itself)", best_us(
            lambda: decide(CLEAN, refiner.vocabulary, refiner.config.skip_gate), rounds // 4),
            f"scan, dictionary, language-model context check of {len(CLEAN.split())} words"))
        rows.append(("affinity routing", best_us(lambda: chat_affinity(payload_off), rounds) + best_us(
            lambda: runtime.target_pools["bench-off"].pick(affinity=1234567), rounds), "routing key of the conversation + replica choice"))

        stream = fake_upstream._sse_parts("bench-model", True)
        whole = stream[0] + stream[1]

        def filtered() -> None:
            meter, usage = StreamUsage(), UsageFilter()
            meter.feed(whole)
            usage.feed(whole)
            meter.close()

        rows.append(("stream usage meter + filter", best_us(filtered, rounds), "a 20-chunk stream read in one piece: usage found, its chunk dropped"))
    finally:
        await keyed.stop()
        await runtime.stop()
    return rows


def report(rows: list[tuple[str, float, str]]) -> str:
    lines = ["| default-on feature | µs per request | what runs |", "|---|---|---|"]
    lines += [f"| {name} | {us:.1f} | {what} |" for name, us, what in rows]
    return "\n".join(lines)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20_000)
    args = ap.parse_args()
    print(report(asyncio.run(measure(args.rounds))))


if __name__ == "__main__":
    main()

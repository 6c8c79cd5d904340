"""The routing decision's cost on the hot path (cache-aware routing, ``balance: affinity``):
``python bench/routing.py [--replicas 4] [--rounds 200000]``.

Per request, measured in-process: the affinity key of a chat request (a 10-turn conversation with a
system prompt: the key reads the system text and the first user message) plus the pool's choice of
replica (ring lookup and the load bound), against the least-outstanding choice of the same pool
(the baseline, measured in the same run). ``bench/run.py`` prints these figures with its table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.endpoints.routing_keys import chat_affinity  # noqa: E402
from gateway.upstream.pool import Endpoint, EndpointPool  # noqa: E402


def conversation(turns: int = 10) -> dict[str, object]:
    messages: list[dict[str, str]] = [{"role": "system", "content": "You are a helpful assistant for a travel agency. " * 8}]
    for t in range(turns):
        messages.append({"role": "user", "content": f"Question {t}: what should I see in Lisbon on day {t}?"})
        messages.append({"role": "assistant", "content": "Belém, the Alfama, and the river front at sunset. " * 4})
    return {"model": "llama", "messages": messages[:-1]}


def per_call_us(fn, rounds: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - start) / rounds * 1e6)
    return best


def measure(replicas: int = 4, rounds: int = 200_000) -> dict[str, float]:
    """µs per call (best of 5 passes): key, affine pick, key + pick, least-outstanding pick."""
    urls = [f"http://replica-{i}:8000/v1" for i in range(replicas)]
    affine = EndpointPool("target:bench", [Endpoint(u) for u in urls], balance="affinity")
    plain = EndpointPool("target:bench", [Endpoint(u) for u in urls])
    payload = conversation()
    key = chat_affinity(payload)
    affine.pick(affinity=key)  # builds the ring once (at the first request after start or reload)
    return {
        "key": per_call_us(lambda: chat_affinity(payload), rounds),
        "affine pick": per_call_us(lambda: affine.pick(affinity=key), rounds),
        "key + affine pick": per_call_us(lambda: affine.pick(affinity=chat_affinity(payload)), rounds),
        "least-outstanding pick (baseline)": per_call_us(lambda: plain.pick(), rounds),
    }


def report(figures: dict[str, float], replicas: int) -> str:
    lines = [f"| routing decision ({replicas} replicas) | µs per request |", "|---|---|"]
    lines += [f"| {name} | {value:.2f} |" for name, value in figures.items()]
    added = figures["key + affine pick"] - figures["least-outstanding pick (baseline)"]
    lines.append(f"\nAffinity adds {added:.2f} µs per request over least outstanding "
                 f"({figures['key + affine pick'] / figures['least-outstanding pick (baseline)']:.1f}x its pick).")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=200_000)
    args = ap.parse_args()
    print(report(measure(args.replicas, args.rounds), args.replicas))


if __name__ == "__main__":
    main()

"""Refinement latency with and without the refinement cache, in process; prints p50s and a ratio.

    .venv/bin/python bench/cache.py [--prompts 200] [--stage-ms 20]

An in-process :class:`Refiner` with the three stages, each a backend that answers after
``--stage-ms`` (the fan-out runs them at once), over ``--prompts`` distinct prompts the skip gate
sends to refinement. Measured per ``Refiner.refine`` call (gate, stages, merge, metrics; the
cache's key, lookup and store when on): uncached (cache off), miss (first sight: lookup, refine,
store) and hit (second sight) against the in-process state.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.config.models import RefinementConfig, Role  # noqa: E402
from gateway.refinement.lexicon import lexicon  # noqa: E402
from gateway.refinement.outcome_cache import OutcomeCache  # noqa: E402
from gateway.refinement.pipeline import Refiner  # noqa: E402
from gateway.refinement.results import StageResult  # noqa: E402
from gateway.state.local import LocalState  # noqa: E402
from gateway.telemetry import Metrics, Telemetry  # noqa: E402

DIRTY = "whats the captial of frane and how big is it, explained in {n} short sentences"
FIXES = {"captial": "capital", "frane": "France"}
DESCRIPTION = "France is a country in Western Europe. Its capital city is Paris."


class SlowStage:
    """A stage that answers after ``delay_s``: the cleaner and paraphraser fix the typos, the describer describes."""

    def __init__(self, role: Role, delay_s: float) -> None:
        self.role = role
        self.delay_s = delay_s
        self.fingerprint = f"bench:{role.value}"

    async def run(self, text: str, headers: dict[str, str] | None = None) -> StageResult:
        await asyncio.sleep(self.delay_s)
        if self.role is Role.DESCRIBER:
            return StageResult(self.role, output=DESCRIPTION, latency_ms=self.delay_s * 1000)
        fixed = " ".join(FIXES.get(word, word) for word in text.split(" "))
        return StageResult(self.role, output=fixed, latency_ms=self.delay_s * 1000)


async def timed(refiner: Refiner, prompts: list[str], cache: bool) -> tuple[list[float], list[str]]:
    samples, headers = [], []
    for prompt in prompts:
        started = time.perf_counter()
        outcome = await refiner.refine(prompt, cache=cache)
        samples.append((time.perf_counter() - started) * 1000)
        headers.append(outcome.header)
    return samples, headers


async def main(count: int, stage_ms: float) -> None:
    vocabulary = lexicon()
    config = RefinementConfig()
    backends = {role: SlowStage(role, stage_ms / 1000) for role in (Role.CLEANER, Role.DESCRIBER, Role.PARAPHRASER)}
    telemetry = Telemetry(metrics=Metrics(process=False))
    cache = OutcomeCache(LocalState(count * 2), config.cache.ttl_s, telemetry.metrics)
    refiner = Refiner(config, backends, vocabulary, telemetry, cache)
    prompts = [DIRTY.format(n=n) for n in range(count)]
    await timed(refiner, prompts[:5], cache=False)  # warm-up: the lexicon's memo, the loop
    uncached, _ = await timed(refiner, prompts, cache=False)
    missed, first = await timed(refiner, prompts, cache=True)
    hits, second = await timed(refiner, prompts, cache=True)
    assert all(not h.endswith(";cache=hit") for h in first) and all(h.endswith(";cache=hit") for h in second), (first[0], second[0])
    p50 = {name: statistics.median(samples) for name, samples in (("uncached", uncached), ("miss", missed), ("hit", hits))}
    print(f"refinement cache: {count} prompts, 3 stages at {stage_ms:g} ms each, in-process state; header {first[0]!r}")
    print(f"{'run':<10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, samples in (("uncached", uncached), ("miss", missed), ("hit", hits)):
        ordered = sorted(samples)
        print(f"{name:<10}{p50[name]:>10.3f}{ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]:>10.3f}")
    print(f"hit / uncached p50: {p50['hit'] / p50['uncached']:.4f} ({p50['uncached'] / p50['hit']:.0f}x faster); "
          f"miss overhead: {p50['miss'] - p50['uncached']:+.3f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--stage-ms", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(main(args.prompts, args.stage_ms))

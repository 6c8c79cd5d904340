"""Skip-gate and built-in cleaner speed on 25-word prompts; prints a table of figures.

    .venv/bin/python bench/gate.py [--prompts eval/prompts] [--words 25] [--rounds 5]

Each English prompt of the eval set with at least ``--words`` words is cut to its first ``--words`` (clean, and with 10%
typos). Reported per call: p50 / p99 of ``gate.decide`` on a first sight of each prompt (its words
not yet in the lexicon's memo) and in steady state (later rounds), and of the built-in cleaner.
The baseline, measured in the same run, is the cheapest possible gate: a regex word split and one
``set`` lookup per word against the same vocabulary size — the ratio says what the gate's classes
(names, units, code, context, language) cost on top of a bare dictionary check.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.config.models import SkipGateConfig  # noqa: E402
from gateway.eval.noise import noisy_version  # noqa: E402
from gateway.eval.prompts import load_prompts  # noqa: E402
from gateway.refinement.dictionary import english_words  # noqa: E402
from gateway.refinement.gate import decide  # noqa: E402
from gateway.refinement.lexicon import lexicon  # noqa: E402
from gateway.refinement.spelling import SpellingCleaner  # noqa: E402

_WORD = re.compile(r"[A-Za-z]+")


def cut(text: str, words: int) -> str:
    return " ".join(text.split()[:words])


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e6, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6


def timed(fn, texts: list[str]) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for text in texts:
        started = time.perf_counter()
        fn(text)
        out.append(time.perf_counter() - started)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", default=str(ROOT / "eval" / "prompts"))
    parser.add_argument("--words", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    lex = lexicon()
    config = SkipGateConfig()
    prompts = [p for p in load_prompts([args.prompts]) if p.english and len(p.text.split()) >= args.words]
    clean = [cut(p.text, args.words) for p in prompts]
    noisy = [noisy_version(text, p.id, 0.1, 1, english_words()).text for text, p in zip(clean, prompts)]
    texts = clean + noisy
    plain = {w.lower() for w in _WORD.findall(" ".join(texts))} | {f"w{i}" for i in range(len(lex.table))}

    def baseline(text: str) -> bool:
        return any(w.lower() not in plain for w in _WORD.findall(text))

    def gate(text: str) -> object:
        return decide(text, lex, config)

    cleaner = SpellingCleaner()
    first = timed(gate, texts)
    steady: list[float] = []
    base: list[float] = []
    for _ in range(args.rounds):
        steady += timed(gate, texts)
        base += timed(baseline, texts)
    clean_ms = timed(cleaner.correct, noisy)

    rows = [
        ("gate, first sight", *percentiles(first)),
        ("gate, steady state", *percentiles(steady)),
        ("baseline: split + set lookup", *percentiles(base)),
        ("built-in cleaner (10% typos)", *percentiles(clean_ms)),
    ]
    words = statistics.mean(len(t.split()) for t in texts)
    print(f"{len(texts)} prompts of {words:.0f} words; µs per call")
    print(f"{'':32} {'p50':>8} {'p99':>8}")
    for name, p50, p99 in rows:
        print(f"{name:32} {p50:8.1f} {p99:8.1f}")
    ratio = rows[1][1] / rows[2][1]
    print(f"gate steady p50 / baseline p50: {ratio:.1f}x · target p50 ≤ 100 µs: {'met' if rows[1][1] <= 100 else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

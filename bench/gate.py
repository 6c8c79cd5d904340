"""Skip-gate and built-in cleaner speed on 25-word prompts; prints a table of figures.

    .venv/bin/python bench/gate.py [--prompts eval/prompts] [--words 25] [--rounds 5]

Each English prompt of the eval set with at least ``--words`` words is cut to its first ``--words`` (clean, and with 10%
typos). Reported per call: p50 / p99 of ``gate.decide`` on a first sight of each prompt (its words
not yet in the lexicon's memo) and in steady state (later rounds), for the clean prompts alone (the
target: p50 ≤ 100 µs, p99 ≤ 500 µs) and for all, and of the built-in cleaner. Then the trigram
model's cost: load time and memory (in a fresh process), and one lookup.
The collector is settled first, as a serving process does after start-up (``gateway/serving/heap.py``;
``--default-gc`` keeps CPython's settings). The baseline, measured in the same run, is the cheapest possible gate: a regex word split and one
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
from gateway.serving.heap import settle  # noqa: E402

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
    parser.add_argument("--default-gc", action="store_true", help="keep CPython's collector settings (not a serving process's)")
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
    if not args.default_gc:
        settle()  # as a serving process does after start-up (gateway/serving/heap.py)
    first = timed(gate, texts)
    first_clean = first[: len(clean)]
    steady: list[float] = []
    steady_clean: list[float] = []
    base: list[float] = []
    for _ in range(args.rounds):
        steady_clean += timed(gate, clean)
        steady += steady_clean[-len(clean) :] + timed(gate, noisy)
        base += timed(baseline, texts)
    clean_ms = timed(cleaner.correct, noisy)

    rows = [
        ("gate, clean, first sight", *percentiles(first_clean)),
        ("gate, clean, steady state", *percentiles(steady_clean)),
        ("gate, all, first sight", *percentiles(first)),
        ("gate, all, steady state", *percentiles(steady)),
        ("baseline: split + set lookup", *percentiles(base)),
        ("built-in cleaner (10% typos)", *percentiles(clean_ms)),
    ]
    words = statistics.mean(len(t.split()) for t in texts)
    print(f"{len(texts)} prompts of {words:.0f} words; µs per call")
    print(f"{'':32} {'p50':>8} {'p99':>8}")
    for name, p50, p99 in rows:
        print(f"{name:32} {p50:8.1f} {p99:8.1f}")
    p50, p99 = rows[1][1], rows[1][2]
    print(f"gate steady p50 / baseline p50: {p50 / rows[4][1]:.1f}x · clean 25 words: p50 ≤ 100 µs "
          f"{'met' if p50 <= 100 else 'missed'}, p99 ≤ 500 µs {'met' if p99 <= 500 else 'missed'}")
    print(model_cost())
    return 0


_MODEL_COST = """
import json, os, resource, time
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
from gateway.refinement.ngram import model_path
from pocketsphinx import NGramModel
before = rss(); t = time.perf_counter()
lm = NGramModel.readfile(model_path())
load = time.perf_counter() - t
print(json.dumps({"load_ms": load * 1000, "rss_mb": rss() - before}))
"""


def model_cost() -> str:
    """The trigram model's load time and memory (measured in a fresh process) and lookup cost."""
    import json
    import subprocess

    from gateway.refinement.ngram import trigram_model

    out = subprocess.run([sys.executable, "-c", _MODEL_COST], capture_output=True, text=True, check=True, cwd=ROOT)
    cost = json.loads(out.stdout)
    model = trigram_model()
    triples = [("the", "of", "capital"), ("than", "smaller", "much"), ("mouse", "the", "chased")] * 1000
    started = time.perf_counter()
    for word, prev, prev2 in triples:
        model.logprob(word, prev, prev2)
    lookup = (time.perf_counter() - started) / len(triples) * 1e6
    return (f"trigram model: load {cost['load_ms']:.0f} ms, +{cost['rss_mb']:.0f} MB RSS (fresh process); "
            f"one trigram lookup {lookup:.2f} µs")


if __name__ == "__main__":
    sys.exit(main())

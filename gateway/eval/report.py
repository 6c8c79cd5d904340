"""The evaluation's figures from its samples (pure). ``--json`` prints this object.

Keys (rates are shares in [0, 1], ``null`` when nothing was measured; noise levels are keyed by
``f"{rate:g}"``, e.g. ``"0.05"``; latencies in milliseconds)::

    backend           "builtin" | "config:<path>" | "url:<url>"
    stages            ["cleaner", ...]
    seed              int
    noise_levels      [0.0, 0.05, ...]            (0 = the clean text, always first)
    prompts           int                          prompts evaluated
    english_prompts   int                          prompts that get noise
    refinements       int                          backend calls made
    elapsed_s         float
    clean             {n, skipped, skip_rate, reasons: {reason: n}, tokens: {token: n}}
                      gate on the clean texts; ``tokens``: what made the gate refine clean texts
    noise             {level: {n, no_eligible, typos, refined, refine_rate, clean_skipped,
                               refined_clean_skipped, refine_rate_clean_skipped, typo_prompts,
                               refined_typo_prompts, refine_rate_typo_prompts, reasons}}
                      gate on the noisy texts (levels > 0); ``n`` English prompts with >= 1 typo;
                      ``typo_prompts``: those of ``clean_skipped`` with a typo other than a deleted
                      word (a prompt that only lost a word often reads as fluent English: the
                      deleted class counts those)
    restoration       {all|non_word|real_word|deleted: {n, restored, rate},
                       by_noise: {level: {all|non_word|real_word|deleted: {n, restored, rate}}}}
                      typos restored with the gate bypassed
    changed           {words, changed, rate, by_noise: {level: {words, changed, rate}}}
                      correct (non-injected) clean words the refinement changed, gate bypassed
    latency_ms        {gate: {n, p50, p99} | null, refine: {n, p50, p99},
                       stages: {stage: {n, p50, p99, errors}}}
                      ``gate`` is the gate alone, in-process only (null over --url)
    sources           [{source, n, english, clean_skip_rate, refine_rate: {level: rate},
                        restored_rate, changed_rate}]
    classes           {capitalised|real_word|deleted|non_word: {typos, restored, restored_rate,
                       prompts, refined, refine_rate, skipped: [{id, noise, typos, text}],
                       not_restored: [{id, noise, word, typo, output}]}}
                      typo classes (:func:`typo_class`): the cleaner's restoration, and the gate's
                      refine rate on noisy prompts whose typos are all of the class and whose
                      clean text it skips; with the worst examples of each
    worst             {clean_refined: [{id, source, reason, tokens, text}],
                       noisy_skipped: [{id, source, noise, typos: [{word, typo, kind, category}], text}],
                       typos_not_restored: [{id, source, noise, word, typo, kind, category, output}],
                       words_changed: [{id, source, noise, word, output}]}
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

from gateway.eval.backends import EvalOutcome
from gateway.eval.noise import WORD_DELETION, Typo
from gateway.eval.prompts import Prompt
from gateway.eval.runner import Sample
from gateway.eval.score import CATEGORIES, DELETED, NON_WORD, REAL_WORD, Score, category, score

ALL = "all"
TOKENS_SHOWN = 20


def level_key(rate: float) -> str:
    """The JSON key of a noise level: ``0``, ``0.05``, ``0.1`` ..."""
    return f"{rate:g}"


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), linear between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def latency(values: Sequence[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99)}


def counted(part: int, whole: int) -> dict[str, Any]:
    return {"n": whole, "restored": part, "rate": share(part, whole)}


def build_report(
    samples: Sequence[Sample],
    prompts: Sequence[Prompt],
    *,
    backend: str,
    stages: Sequence[str],
    seed: int,
    rates: Sequence[float],
    elapsed_s: float,
    worst: int = 5,
) -> dict[str, Any]:
    """All figures of one evaluation run (see the module docstring for the keys)."""
    levels = [0.0, *sorted({r for r in rates if r > 0})]
    # keyed by id(sample): samples are frozen dataclasses holding dicts (unhashable), alive throughout
    scores = {id(s): score(s.prompt.text, s.bypassed.refined, s.typos) for s in samples if s.bypassed is not None}
    english = sum(1 for p in prompts if p.english)
    return {
        "backend": backend,
        "stages": list(stages),
        "seed": seed,
        "noise_levels": levels,
        "prompts": len(prompts),
        "english_prompts": english,
        "refinements": sum(len(distinct_outcomes(s)) for s in samples),
        "elapsed_s": round(elapsed_s, 3),
        "clean": clean_figures(samples),
        "noise": {level_key(r): noise_figures(samples, r, english) for r in levels[1:]},
        "restoration": restoration(samples, scores, levels),
        "changed": changed(samples, scores, levels),
        "latency_ms": latencies(samples),
        "sources": source_table(samples, scores, levels),
        "classes": class_figures(samples, scores, worst),
        "worst": worst_examples(samples, scores, worst),
    }


CAPITALISED = "capitalised"
CLASSES = (CAPITALISED, REAL_WORD, DELETED, NON_WORD)


def typo_class(typo: Typo) -> str:
    """``deleted`` (a whole word dropped), ``capitalised`` (a typo in a capitalised word: a sentence
    start, a title, a name), else the typo's category (``real_word`` / ``non_word``)."""
    if typo.kind == WORD_DELETION:
        return DELETED
    return CAPITALISED if typo.word[:1].isupper() else category(typo)


def class_figures(samples: Sequence[Sample], scores: dict[int, Score], worst: int) -> dict[str, Any]:
    """Per typo class: restored by the cleaner, caught by the gate, and the worst examples of both."""
    clean_skipped = {s.prompt.id for s in at(samples, 0.0) if not s.gated.refine}
    out: dict[str, Any] = {}
    for cls in CLASSES:
        typos = [(s, t) for s in samples if id(s) in scores for t in scores[id(s)].typos if typo_class(t.typo) == cls]
        restored = sum(t.restored for _, t in typos)
        only = [s for s in samples if s.rate > 0 and s.prompt.id in clean_skipped and s.typos
                and all(typo_class(t) == cls for t in s.typos)]  # fmt: skip
        refined = sum(1 for s in only if s.gated.refine)
        missed = sorted((st for st in typos if not st[1].restored), key=lambda st: (st[0].rate, -len(st[1].typo.word), st[0].prompt.id))
        out[cls] = {
            "typos": len(typos),
            "restored": restored,
            "restored_rate": share(restored, len(typos)),
            "prompts": len(only),
            "refined": refined,
            "refine_rate": share(refined, len(only)),
            "skipped": [
                {"id": s.prompt.id, "noise": s.rate, "typos": [f"{t.word}→{t.typo}" for t in s.typos], "text": s.text}
                for s in _first_distinct((s for s in only if not s.gated.refine), lambda s: s.prompt.id, worst)
            ],
            "not_restored": [
                {"id": s.prompt.id, "noise": s.rate, "word": t.typo.word, "typo": t.typo.typo, "output": t.output}
                for s, t in _first_distinct(missed, lambda st: st[1].typo.word.lower(), worst)
            ],
        }
    return out


def distinct_outcomes(sample: Sample) -> list[EvalOutcome]:
    """The backend calls a sample made (the bypassed run may be the gated one, reused)."""
    if sample.bypassed is None or sample.bypassed is sample.gated:
        return [sample.gated]
    return [sample.gated, sample.bypassed]


def at(samples: Iterable[Sample], rate: float) -> list[Sample]:
    return [s for s in samples if s.rate == rate]


def clean_figures(samples: Sequence[Sample]) -> dict[str, Any]:
    clean = at(samples, 0.0)
    skipped = sum(1 for s in clean if not s.gated.refine)
    tokens = Counter(t for s in clean if s.gated.refine for t in dict.fromkeys(s.gated.tokens))
    return {
        "n": len(clean),
        "skipped": skipped,
        "skip_rate": share(skipped, len(clean)),
        "reasons": dict(Counter(s.gated.reason for s in clean).most_common()),
        "tokens": dict(tokens.most_common(TOKENS_SHOWN)),
    }


def noise_figures(samples: Sequence[Sample], rate: float, english: int) -> dict[str, Any]:
    noisy = at(samples, rate)
    clean_skipped = {s.prompt.id for s in at(samples, 0.0) if not s.gated.refine}
    among = [s for s in noisy if s.prompt.id in clean_skipped]
    refined = sum(1 for s in noisy if s.gated.refine)
    refined_among = sum(1 for s in among if s.gated.refine)
    typo_prompts = [s for s in among if any(t.kind != WORD_DELETION for t in s.typos)]
    refined_typo = sum(1 for s in typo_prompts if s.gated.refine)
    return {
        "n": len(noisy),
        "no_eligible": english - len(noisy),
        "typos": sum(len(s.typos) for s in noisy),
        "refined": refined,
        "refine_rate": share(refined, len(noisy)),
        "clean_skipped": len(among),
        "refined_clean_skipped": refined_among,
        "refine_rate_clean_skipped": share(refined_among, len(among)),
        "typo_prompts": len(typo_prompts),
        "refined_typo_prompts": refined_typo,
        "refine_rate_typo_prompts": share(refined_typo, len(typo_prompts)),
        "reasons": dict(Counter(s.gated.reason for s in noisy).most_common()),
    }


def _restoration_of(found: Sequence[Score]) -> dict[str, Any]:
    typos = [t for sc in found for t in sc.typos]
    figures = {ALL: counted(sum(t.restored for t in typos), len(typos))}
    for cat in CATEGORIES:
        these = [t for t in typos if t.category == cat]
        figures[cat] = counted(sum(t.restored for t in these), len(these))
    return figures


def restoration(samples: Sequence[Sample], scores: dict[int, Score], levels: Sequence[float]) -> dict[str, Any]:
    noisy = [scores[id(s)] for s in samples if s.rate > 0 and id(s) in scores]
    figures = _restoration_of(noisy)
    figures["by_noise"] = {
        level_key(r): _restoration_of([scores[id(s)] for s in at(samples, r) if id(s) in scores]) for r in levels[1:]
    }
    return figures


def _changed_of(found: Sequence[Score]) -> dict[str, Any]:
    words = sum(sc.correct_words for sc in found)
    changed_words = sum(len(sc.changed) for sc in found)
    return {"words": words, "changed": changed_words, "rate": share(changed_words, words)}


def changed(samples: Sequence[Sample], scores: dict[int, Score], levels: Sequence[float]) -> dict[str, Any]:
    figures = _changed_of(list(scores.values()))
    figures["by_noise"] = {level_key(r): _changed_of([scores[id(s)] for s in at(samples, r) if id(s) in scores]) for r in levels}
    return figures


def latencies(samples: Sequence[Sample]) -> dict[str, Any]:
    gate = [s.gated.gate_ms for s in samples if s.gated.gate_ms is not None]
    outcomes = [o for s in samples for o in distinct_outcomes(s) if o.stage_ms]
    stage_ms: dict[str, list[float]] = {}
    errors: Counter[str] = Counter()
    for outcome in outcomes:
        for stage, ms in outcome.stage_ms.items():
            stage_ms.setdefault(stage, []).append(ms)
        errors.update(outcome.stage_errors.keys())
    return {
        "gate": latency(gate) if gate else None,
        "refine": latency([o.refine_ms for o in outcomes if o.refine_ms is not None]),
        "stages": {stage: {**latency(values), "errors": errors[stage]} for stage, values in sorted(stage_ms.items())},
    }


def source_table(samples: Sequence[Sample], scores: dict[int, Score], levels: Sequence[float]) -> list[dict[str, Any]]:
    rows = []
    for source in sorted({s.prompt.source for s in samples}):
        mine = [s for s in samples if s.prompt.source == source]
        clean = at(mine, 0.0)
        refine_rate = {}
        for r in levels[1:]:
            noisy = at(mine, r)
            refine_rate[level_key(r)] = share(sum(1 for s in noisy if s.gated.refine), len(noisy))
        found = [scores[id(s)] for s in mine if id(s) in scores]
        restored = [t.restored for sc in found for t in sc.typos]
        words = _changed_of(found)
        rows.append(
            {
                "source": source,
                "n": len(clean),
                "english": sum(1 for s in clean if s.prompt.english),
                "clean_skip_rate": share(sum(1 for s in clean if not s.gated.refine), len(clean)),
                "refine_rate": refine_rate,
                "restored_rate": share(sum(restored), len(restored)),
                "changed_rate": words["rate"],
            }
        )
    return rows


def _first_distinct(items: Iterable[Any], key: Callable[[Any], Hashable], limit: int) -> list[Any]:
    """The first ``limit`` items with distinct ``key``."""
    seen: set[Hashable] = set()
    picked = []
    for item in items:
        k = key(item)
        if k in seen:
            continue
        seen.add(k)
        picked.append(item)
        if len(picked) >= limit:
            break
    return picked


def worst_examples(samples: Sequence[Sample], scores: dict[int, Score], limit: int) -> dict[str, list[dict[str, Any]]]:
    """Examples of each error kind, the most telling first, without repeats.

    Clean prompts refined: those whose gate tokens are the most frequent causes first. Noisy
    prompts skipped: the most non-word typos (which the gate should see) first, then the most typos. Typos not restored: non-word typos first (the easiest
    to fix), longer words first. Correct words changed: the clean text first, longer words first.
    """
    clean_refined = [s for s in at(samples, 0.0) if s.gated.refine]
    frequency = Counter(t for s in clean_refined for t in dict.fromkeys(s.gated.tokens))
    clean_refined.sort(key=lambda s: (-max((frequency[t] for t in s.gated.tokens), default=0), s.prompt.id))
    noisy_skipped = sorted(
        (s for s in samples if s.rate > 0 and not s.gated.refine),
        key=lambda s: (-sum(category(t) == NON_WORD for t in s.typos), -len(s.typos), -s.rate, s.prompt.id),
    )
    rank = {NON_WORD: 0, REAL_WORD: 1, DELETED: 2}
    missed = [(s, t) for s in samples if s.rate > 0 and id(s) in scores for t in scores[id(s)].typos if not t.restored]
    missed.sort(key=lambda st: (rank[st[1].category], -len(st[1].typo.word), st[0].rate, st[0].prompt.id, st[1].typo.index))
    changes = [(s, c) for s in samples if id(s) in scores for c in scores[id(s)].changed]
    changes.sort(key=lambda sc: (sc[0].rate, -len(sc[1].word), sc[0].prompt.id, sc[1].index))
    return {
        "clean_refined": [
            {"id": s.prompt.id, "source": s.prompt.source, "reason": s.gated.reason, "tokens": list(s.gated.tokens), "text": s.text}
            for s in _first_distinct(clean_refined, lambda s: (s.gated.reason, s.gated.tokens[:1]), limit)
        ],
        "noisy_skipped": [
            {
                "id": s.prompt.id,
                "source": s.prompt.source,
                "noise": s.rate,
                "typos": [{"word": t.word, "typo": t.typo, "kind": t.kind, "category": category(t)} for t in s.typos],
                "text": s.text,
            }
            for s in _first_distinct(noisy_skipped, lambda s: s.prompt.id, limit)
        ],
        "typos_not_restored": [
            {
                "id": s.prompt.id,
                "source": s.prompt.source,
                "noise": s.rate,
                "word": t.typo.word,
                "typo": t.typo.typo,
                "kind": t.typo.kind,
                "category": t.category,
                "output": t.output,
            }
            for s, t in _first_distinct(missed, lambda st: st[1].typo.word.lower(), limit)
        ],
        "words_changed": [
            {"id": s.prompt.id, "source": s.prompt.source, "noise": s.rate, "word": c.word, "output": c.output}
            for s, c in _first_distinct(changes, lambda sc: (sc[1].word.lower(), sc[1].output.lower()), limit)
        ],
    }

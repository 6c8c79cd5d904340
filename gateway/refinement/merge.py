"""Merge stage outputs with drift control (a pure function).

Rules: a cleaner or paraphraser rewrite is accepted only when its drift and length ratio against
the original are within bounds; the paraphrase wins over the cleaned text when both pass; the
description, cut to ``max_facts`` sentences and ``max_tokens`` tokens, is added as context when
it reads as language (share of dictionary words) and is not an echo of the prompt.
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping
from dataclasses import replace as _with

from gateway.config.models import RefinementConfig, Role
from gateway.refinement.drift import drift, length_ratio, normalise
from gateway.refinement.results import MergeResult, StageResult, StageVerdict
from gateway.refinement.text import known_ratio, sentences, truncate_tokens

_LABEL_RE = re.compile(
    r"^\s*(?:corrected|cleaned|paraphrased?|rewritten|rephrased|output|answer|description|context)"
    r"(?:\s+(?:text|prompt|version|question))?\s*:\s*",
    re.IGNORECASE,
)
_QUOTES = "\"'“”‘’`"


def clean_output(text: str) -> str:
    """Strip a leading label (``Corrected:``) and wrapping quotes that models like to add."""
    text = _LABEL_RE.sub("", text.strip(), count=1).strip()
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text


def judge_rewrite(original: str, result: StageResult, config: RefinementConfig) -> StageVerdict:
    """Accept or reject a cleaner/paraphraser rewrite against the original."""
    base = StageVerdict(
        result.role, result.output, False, latency_ms=result.latency_ms, error=result.error, fallback_from=result.fallback_from
    )
    if result.error is not None:
        return _with(base, reason="error")
    text = clean_output(result.output or "")
    if not text:
        return _with(base, output=text, reason="empty")
    d, ratio = drift(original, text), length_ratio(original, text)
    verdict = _with(base, output=text, drift=d, length_ratio=ratio)
    if normalise(text) == normalise(original) and text == original.strip():
        return _with(verdict, reason="unchanged")
    if d > config.drift.max_drift:
        return _with(verdict, reason="drift")
    if ratio > config.drift.max_length_ratio:
        return _with(verdict, reason="length")
    return _with(verdict, accepted=True)


def trim_description(text: str, max_facts: int, max_tokens: int) -> str:
    """At most ``max_facts`` sentences and ``max_tokens`` whitespace tokens."""
    kept = " ".join(sentences(clean_output(text))[:max_facts])
    return truncate_tokens(kept, max_tokens)


def judge_description(
    original: str, result: StageResult, config: RefinementConfig, vocabulary: Container[str]
) -> StageVerdict:
    """Accept a description that is language, not empty and not the prompt echoed back."""
    base = StageVerdict(
        result.role, result.output, False, latency_ms=result.latency_ms, error=result.error, fallback_from=result.fallback_from
    )
    if result.error is not None:
        return _with(base, reason="error")
    text = trim_description(result.output or "", config.describer.max_facts, config.describer.max_tokens)
    if not text:
        return _with(base, output=text, reason="empty")
    d = drift(original, text)
    verdict = _with(base, output=text, drift=d)
    if d < 0.1:
        return _with(verdict, reason="echo")
    if known_ratio(text, vocabulary) < config.describer.min_known_word_ratio:
        return _with(verdict, reason="gibberish")
    return _with(verdict, accepted=True)


def merge(
    original: str,
    results: Mapping[Role, StageResult],
    config: RefinementConfig,
    vocabulary: Container[str],
) -> MergeResult:
    """Combine stage results into the refined prompt (see module docstring for the rules)."""
    verdicts: dict[Role, StageVerdict] = {}
    for role, result in results.items():
        if role is Role.DESCRIBER:
            verdicts[role] = judge_description(original, result, config, vocabulary)
        else:
            verdicts[role] = judge_rewrite(original, result, config)

    refined, applied = original, []
    for role in (Role.PARAPHRASER, Role.CLEANER):
        verdict = verdicts.get(role)
        if verdict is not None and verdict.accepted and verdict.output:
            refined = verdict.output
            applied.append(role)
            break
    description = None
    described = verdicts.get(Role.DESCRIBER)
    if described is not None and described.accepted:
        description = described.output
        applied.append(Role.DESCRIBER)
    applied.sort(key=lambda r: list(Role).index(r))
    return MergeResult(refined, description, tuple(applied), verdicts)

"""The skip gate: a CPU check (microseconds) that lets a clean, fluent prompt skip refinement."""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass

from gateway.config.models import SkipGateConfig
from gateway.refinement.text import WORD_RE, is_known

_CODE_RE = re.compile(r"```|^\s{4,}\S|[{};]\s*$|\b(def|class|import|return|function|SELECT|FROM)\b.*[(:=]", re.MULTILINE)
_IDENTIFIER_RE = re.compile(r"[A-Za-z]*[_0-9][A-Za-z0-9_]*|[A-Za-z]+[A-Z][A-Za-z]*|[A-Z]{2,}[a-z]?s?")
_URLISH_RE = re.compile(r"\S+://\S+|\S+@\S+\.\S+|`[^`]*`")


@dataclass(frozen=True, slots=True)
class GateDecision:
    """``refine`` says whether to run the stages; ``reason`` is shown in ``x-mpr-refinement``."""

    refine: bool
    reason: str
    unknown_words: tuple[str, ...] = ()


def decide(text: str, vocabulary: Container[str], config: SkipGateConfig) -> GateDecision:
    """Decide whether ``text`` needs refinement.

    Skips (``refine=False``): empty text, text over ``max_prompt_chars`` (forwarded unrefined),
    code (rewriting it would break it), and clean text: every word known to the dictionary (within
    ``max_unknown_words``) and no doubled word. Identifiers, acronyms, URLs and inline code are
    not counted as words.
    """
    if not text.strip():
        return GateDecision(False, "no_text")
    if len(text) > config.max_prompt_chars:
        return GateDecision(False, "too_long")
    if not config.enabled:
        return GateDecision(True, "gate_off")
    if _CODE_RE.search(text):
        return GateDecision(False, "code")
    prose = _URLISH_RE.sub(" ", text)
    unknown: list[str] = []
    previous = ""
    doubled = False
    for token in prose.split():
        if _IDENTIFIER_RE.fullmatch(token.strip(".,;:!?\"'()[]")):
            previous = ""
            continue
        for word in WORD_RE.findall(token):
            lowered = word.lower()
            if lowered == previous and len(lowered) > 1 and lowered not in ("that", "had", "is"):
                doubled = True
            previous = lowered
            if not is_known(word, vocabulary):
                unknown.append(word)
    if len(unknown) > config.max_unknown_words:
        return GateDecision(True, "unknown_words", tuple(unknown))
    if doubled:
        return GateDecision(True, "doubled_word")
    return GateDecision(False, "clean")

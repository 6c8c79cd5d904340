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
_CODE_CHARS = frozenset("`{};(:=")
# A text whose every whitespace-separated token is a plain word ("word", "Word": ASCII letters, a
# capital only first) with at most sentence punctuation around it, no newline and no leading
# space. Such a text cannot match _CODE_RE (no code character, newline or indent) nor _URLISH_RE
# (no ':', '@', '`'); no token is an identifier; each token's WORD_RE words are exactly its letters.
_WORD = r"[.,!?\"')\][]*(?:[a-z]+|[A-Z][a-z]+)[.,!?\"')\][]*"
_PLAIN_RE = re.compile(rf"{_WORD}(?:[^\S\n]+{_WORD})*[^\S\n]*")
_LETTERS_RE = re.compile(r"[A-Za-z]+")
_STRIP = ".,;:!?\"'()[]"


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
        return _NO_TEXT
    if len(text) > config.max_prompt_chars:
        return _TOO_LONG
    if not config.enabled:
        return _GATE_OFF
    if _PLAIN_RE.fullmatch(text):  # the usual prompt: plain words only; one pass over the text
        return _plain_decision(_LETTERS_RE.findall(text), vocabulary, config)
    # Every branch of _CODE_RE needs one of _CODE_CHARS, a newline or leading whitespace: most
    # prompts have none, and the regex (tried at every position) is the gate's dearest step.
    if not (_CODE_CHARS.isdisjoint(text) and "\n" not in text and not text[0].isspace()) and _CODE_RE.search(text):
        return _CODE
    # URLs, e-mails and inline code need ':', '@' or '`': without them the substitution is a no-op
    prose = _URLISH_RE.sub(" ", text) if (":" in text or "@" in text or "`" in text) else text
    words: list[str] = []
    for token in prose.split():
        stripped = token.strip(_STRIP)
        if stripped.isalpha() and stripped.isascii() and (stripped.islower() or (stripped[0].isupper() and stripped[1:].islower())):
            # A plain word (the usual token): no identifier pattern can match it (they need a
            # digit, '_' or an upper-case letter after the first), and WORD_RE finds exactly it.
            words.append(stripped)
        elif _IDENTIFIER_RE.fullmatch(stripped):
            words.append("")  # not a word, and it separates its neighbours (no doubled word across it)
        else:
            words.extend(WORD_RE.findall(token))
    return _plain_decision(words, vocabulary, config)


# The decisions that carry no words (frozen: one shared instance each).
_NO_TEXT = GateDecision(False, "no_text")
_TOO_LONG = GateDecision(False, "too_long")
_GATE_OFF = GateDecision(True, "gate_off")
_CODE = GateDecision(False, "code")
_DOUBLED = GateDecision(True, "doubled_word")
_CLEAN = GateDecision(False, "clean")


def _plain_decision(words: list[str], vocabulary: Container[str], config: SkipGateConfig) -> GateDecision:
    """:func:`decide`'s word checks: unknown words and doubled words (``""`` separates words)."""
    unknown: list[str] = []
    previous = ""
    doubled = False
    for word in words:
        if not word:
            previous = ""
            continue
        lowered = word.lower()
        if lowered == previous and len(lowered) > 1 and lowered not in ("that", "had", "is"):
            doubled = True
        previous = lowered
        if lowered not in vocabulary and not is_known(word, vocabulary):
            unknown.append(word)
    if len(unknown) > config.max_unknown_words:
        return GateDecision(True, "unknown_words", tuple(unknown))
    if doubled:
        return _DOUBLED
    return _CLEAN

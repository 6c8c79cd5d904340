"""Split a prompt into the words that refinement may judge and the spans it must leave alone (pure).

One regular-expression pass. Left alone (never a word to check or fix): fenced and inline code,
lines that look like code, LaTeX, URLs and e-mail addresses, short quoted spans (a word a prompt
is *about*: ``Is "recieve" right?``), identifiers (``my_var``, ``useEffect``, ``df.groupby``),
tokens with digits (``5kg``, ``3rd``, ``B12``), acronyms (``NASA``, ``SVG``) and single letters
(option labels, variables; a lone key next to ``a`` right after a word is noted apart, as a possible
mistyped ``a``: ``Tell me s bio``). Words are Unicode-aware (``Schrödinger``, ``Kraków``), keep inner
apostrophes, typographic or not (``she’s``), and split at hyphens (``bike-lane``).

Each word records whether it starts a sentence, so that a capitalised word inside a sentence can
be taken for a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

_QUOTE_MAX_WORDS = 3
"""A quoted span of at most this many words is a mention (left alone); a longer one is prose."""

_TOKEN_RE = re.compile(
    r"""
    [ \t]*  # the spaces before a token are part of its match: far fewer positions tried
    (?:
    # a plain word followed by a space or plain punctuation (most tokens): tried first, cheaply
    (?P<plain>(?!(?:def|function|func|fn)\s)[^\W\d_][^\W\d_A-Z]*(?:['’][^\W\d_A-Z]+)*(?=[\s,;!?)\]}"”]|['’](?![^\W\d_])|\.(?=[\s"'”’)\]]|\Z)|:(?=\s|\Z)|\Z))
  | (?P<fence>```.*?(?:```|\Z))
  | (?P<code>`[^`\n]+`|\b(?:def|function|func|fn)\s+\w+\s*\([^)\n]*\)|\b[A-Za-z_][\w.]*\([^()\n]*\))
  | (?P<math>\$(?=\S)[^$\n]{1,80}?(?<=\S)\$(?!\d)|\\[A-Za-z]+)
  | (?P<url>(?:https?://|www\.)\S+|[\w.+-]+@[\w-]+\.[\w.]+)
  | (?P<quote>"[^"\n]{1,60}"|“[^”\n]{1,60}”|‘[^’\n]{1,40}’|(?<![\w'’])'[^'\n]{1,40}'(?![\w'’]))
  | (?P<ident>[^\W\d_]*\d\w*|\w*_\w*|[^\W\d_]+(?:\.[^\W\d_]+)+\.?(?:\(\))?|[a-z]+[A-Z]\w*|[A-Z]{2,}[a-z]?[A-Z]*\w*(?:['’]s)?)
  | (?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)
  | (?P<end>[.!?:;]+(?=[\s"'”’)\]]|\Z)|\n|[(\[{•*–—-]\s)
    )
    """,
    re.VERBOSE | re.DOTALL,
)
_PLAIN, _WORD, _END, _QUOTE, _FENCE, _CODE, _IDENT = (
    _TOKEN_RE.groupindex[name] for name in ("plain", "word", "end", "quote", "fence", "code", "ident")
)
_CODE_LINE_RE = re.compile(
    r"""^(?:[ ]{4,}|\t)\S(?!.*[.?!]$)
      | [{};]\s*$ | \):\s*$
      | ==|!=|=>|->|::|&&|\|\||\+=|</|\#include
      | ^\s*(?:def|class|import|from\s+\w+\s+import|return|elif|for|while|if|else|try|except|with|SELECT|INSERT|UPDATE|CREATE|DELETE|function|const|let|var|fn|func|pub|package|public|private|\#!)\b.*[(=:{;*]
    """,
    re.VERBOSE,
)


ABBREVIATIONS = frozenset(
    "mr mrs ms dr st prof sr jr vs etc no fig vol approx inc ltd co mt ft gen gov sen rep lt col capt sgt ave dept est jan feb mar apr aug sep sept oct nov dec".split()
)
"""Words whose full stop does not end the sentence (``Dr. Benni``)."""

A_SLIPS = frozenset("qwszi")
"""The keys around ``a``: a lone one of them between words is likely ``a`` mistyped."""

_INLINE_CODE_RE = re.compile(r"`[^`\n]*`")
_PROSE_RUN_RE = re.compile(r"(?:\b[A-Za-z][a-z]*[,;]? ){4}[a-z]+\b")
"""Four plain words in a row: a line with this is prose, whatever code-like marks it has."""


class Word(NamedTuple):
    """A word to judge: as written, lower-cased, and whether it starts a sentence (a tuple: the
    gate builds one per word, and a tuple is the cheapest object to build)."""

    text: str
    lower: str
    sentence_start: bool
    after_break: bool
    """No word right before it (start, after punctuation, code or a mention): no left context."""
    start: int = 0
    """Offset of the word in the scanned text."""


_tuple_new = tuple.__new__
"""``_tuple_new(Word, fields)`` builds a ``Word`` without the argument handling of ``Word(...)``
(half the cost; the scanner builds one per word)."""


@dataclass(frozen=True, slots=True)
class Scan:
    """The words of a prompt, and whether it holds code."""

    words: tuple[Word, ...]
    has_code: bool
    letters: tuple[tuple[int, Word], ...] = ()
    """Lone lower-case letters right after a word that may be a mistyped ``a`` (:data:`A_SLIPS`:
    ``Tell me s bio``), each with the index in ``words`` of the word after it."""


def _code_lines(text: str) -> tuple[str, bool]:
    """``text`` with the lines that look like code blanked, and whether there were any."""
    if "\n" not in text and not any(c in text for c in "{};=<>|&#:"):
        return text, False
    kept: list[str] = []
    found = False
    for line in text.split("\n"):
        bare = _INLINE_CODE_RE.sub(" ", line) if "`" in line else line  # `a == b` inside prose is not a code line
        if bare.strip() and _CODE_LINE_RE.search(bare) and not _PROSE_RUN_RE.search(bare):
            found = True
            kept.append(" " * len(line))  # blanked, so that offsets stay those of the prompt
        else:
            kept.append(line)
    return "\n".join(kept), found


def scan(text: str) -> Scan:
    """The words of ``text`` outside code, mentions, URLs and identifiers."""
    words: list[Word] = []
    letters: list[tuple[int, Word]] = []
    prose, code_lines = _code_lines(text)
    has_code = _scan_into(prose, words, letters)
    return Scan(tuple(words), code_lines or has_code, tuple(letters))


def _end_of(word: Word, text: str, at: int) -> int:
    """Where ``word`` would end if it stood right before offset ``at`` (to tell ``Dr.`` from ``dr .``)."""
    start = at - len(word.text)
    return at if start >= 0 and text[start:at] == word.text else -1


def _scan_into(text: str, words: list[Word], letters: list[tuple[int, Word]], base: int = 0) -> bool:
    """Append the words of ``text`` (at offset ``base`` in the prompt) to ``words`` (and its lone
    letters that may be a mistyped ``a`` to ``letters``); True when it held fenced or inline code."""
    start = True  # the next word starts a sentence
    brk = True  # the next word has no word right before it
    has_code = False
    after_number = False  # the previous token was a number (the next short word is its unit)
    last = 0  # where the previous token ended
    append = words.append
    for match in _TOKEN_RE.finditer(text):
        kind = match.lastindex  # the token's group (an int: cheaper than its name)
        at, end = match.span(kind)
        if match.start() != last:  # more than spaces since the last token
            gap = text[last:at]
            if not gap.isspace() and gap.strip("-'’"):
                brk = True  # punctuation between two tokens (a comma, ×, /): no pair across it
                if gap[-1].isspace():  # ``in 2023, iin trillions``: not a unit (``2*pi``, ``2.5.0.txt``: maybe)
                    after_number = False
        last = end
        if kind == _PLAIN or kind == _WORD:
            token = text[at:end]
            if end - at > 1 and not (after_number and end - at <= 3):  # 9 ft, 2 hrs, 500 nm: units
                if at and text[at - 1] == "-" and words and words[-1].text[0].isupper() and words[-1].start == base + at - 1 - len(words[-1].text):
                    token = token[0].upper() + token[1:]  # the rest of a hyphenated name: Ra Jong-yil, Ahn Cheol-soo
                append(_tuple_new(Word, (token, token.lower(), start, brk, base + at)))
                brk = False
            else:
                if token in A_SLIPS and not brk and not after_number:  # me s bio: not a unit, not after punctuation
                    letters.append((len(words), _tuple_new(Word, (token, token, False, False, base + at))))
                brk = True
            start = after_number = False
            continue
        after_number = False
        if kind == _END:
            if not (text[at:end] == "." and words and words[-1].lower in ABBREVIATIONS and at == _end_of(words[-1], text, at)):
                start = True
            brk = True
        elif kind == _QUOTE:
            inner = text[at + 1 : end - 1]
            if len(inner.split()) > _QUOTE_MAX_WORDS:
                has_code |= _scan_into(inner, words, letters, base + at + 1)
            else:
                start = False
            brk = True
        else:
            brk = True
            if kind == _FENCE or kind == _CODE:
                has_code = True
            elif kind == _IDENT:
                start = False
                after_number = text[at].isdigit()
    return has_code

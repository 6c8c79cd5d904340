"""Missing words (pure): a function word left out leaves a pattern that written English never has.

A deleted word seldom leaves a trace a trigram model of speech can see (``Did Aristotle use laptop``
reads well to it), and a part-of-speech tagger's context rules smooth the gap over (measured: no
signal at 1% false alarms). Three closed-class patterns do show it, read off the words the gate has
scanned in one pass:

* a determiner or possessive, then a conjunction (``an that sparked``), or a preposition or
  ``and``/``or`` followed by the start of a noun phrase (a determiner, a capitalised word; after
  ``of`` also a number): ``What is the of Japan?``, ``his with the painter``, ``Tell me a of Rahul
  Dravid`` — the noun between them is missing. Compounds
  written without their hyphens (``an in depth guide``, ``the after party``, ``my to do list``) and
  wh-words used as nouns (``the why``) have no noun phrase there. A lone ``a`` counts only after an
  object pronoun or a form of *be*/*have* (``Tell me a of``, ``has a of 500 nm``): after a verb or a
  noun it is a variable or a label (``replace a with b``, ``part a of``, ``vitamin a from``). Left
  alone: a hyphenated word (``the so-called``), a function word named as code or grammar
  (``the with statement``, ``the for each loop``: :data:`MENTION_NOUNS` within three words),
  coordinated words (``his or her``, ``my and your code``, ``the before and after photos``, ``a, an
  and the?``);
* a determiner right before the end of a sentence: ``Who invented the?`` — not after ``or``/``and``
  or ``use`` (``a or an?``, ``when should I use my?``: the word is named), not before an ellipsis,
  and not at the end of a text with a colon (``Complete this sentence: The cat sat on the``);
* a direct question whose wh-word (``how``, ``what``, ``why``, ``which``, ``whose``; after ``how
  many``/``how much``, or ``what``/``which``/``whose`` and up to two content words) runs into a
  subject pronoun with no auxiliary between, the pronoun followed by at least two words and the
  question mark, all in one clause: ``How I squash my last commits?``, ``What it evaluate to?`` —
  not before a modal or auxiliary (``Why you should learn Rust?``), not a clause before a comma
  (``When I run pip install, why…?``, ``What I want is a regex, can you…?``), not ``How you
  doing?``.

Measured, on the eval set over six noise seeds: of the 313 noisy prompts whose only typos are
deleted words (the clean text skipped), 2 → 22 refined; of the 241 others the gate let through, 4;
no clean prompt of the set; on 91,755 sentences of clean prose, 2, both real slips (``the current
values of the for the autorepeat delay``, ``the colormap is a of a static visual type``); of 105
clean prompts a review wrote to trip it (variables, labels, compounds, code and grammar questions,
subordinate clauses, headline questions), 2: a list's last item cut short (``2. Who invented the``)
and Perl's ``my`` named unquoted at a sentence's end.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gateway.refinement.tokens import Word

DETERMINERS = frozenset("the an my your our their his its".split())
"""Determiners and possessives that a preposition or conjunction never follows (a lone ``a`` is
found in the gap before a word: the scanner leaves single letters out)."""
A_FOLLOWERS = frozenset("of with from about than".split())
"""What a lone article ``a`` is never followed by (``a to b``, ``a by b``, ``a in``: variables)."""
A_AFTER = frozenset("me us him them you is are was were be been has have had".split())
"""The words after which a lone ``a`` is the article (``Tell me a``, ``has a``), not a variable or a label."""
PREPOSITIONS = frozenset(
    """of in on at by for with from to into about between through during without within under over after before
    than via among against toward towards upon onto across behind beyond""".split()
)
CONJUNCTIONS = frozenset("and or but nor that whom whose because although though whether".split())
"""Conjunctions that never follow a determiner (``who``, ``when``, ``why``… do as nouns: ``the why``)."""
FOLLOWERS = PREPOSITIONS | CONJUNCTIONS
LONE_CONJUNCTIONS = CONJUNCTIONS - {"and", "or"}
"""Conjunctions that show a gap after a determiner whatever follows (``an that sparked``); after
``and``/``or`` and a preposition a noun phrase must start (``the before and after``, ``an in depth``)."""
NOUN_PHRASE_STARTS = DETERMINERS | frozenset("her this that these those some any every each no another".split())
"""Words that start a noun phrase (so does a capitalised word, and a lone ``a``)."""
MENTION_NOUNS = frozenset(
    """statement statements keyword keywords operator operators clause clauses loop loops block blocks expression
    expressions construct constructs form function method command option flag field tag attribute directive argument
    parameter variable value branch case part condition test word words type modifier suffix prefix syntax pattern
    idiom gate gates preposition prepositions conjunction article""".split()
)
"""A function word named as code or grammar (``the with statement``, ``the and gate``), not one left out."""
MENTION_REACH = 3
"""Words after the function word in which a mention noun is looked for (``the for each loop``)."""
COORDINATED = frozenset("my your our their his her its".split())
"""After ``his and``, ``my or``: two possessives share one noun (``his and her towels``, ``my or your
code``; articles do not: ``the and the heap``)."""
PAIRED = FOLLOWERS | frozenset({"out", "off", "up", "down"})
"""After ``before and``, ``for or``: a pair of function words used as one noun or adjective (``the before
and after photos``, ``the for and against arguments``, ``the with and without runs``)."""


END_DETERMINERS = frozenset("the an my your our their its every".split())
"""Determiners that never end a sentence (``his``, ``her``, ``this`` may: pronouns)."""
NAMING = frozenset("or and use vs versus say write spell mean means".split())
"""Before a sentence-final determiner: the determiner is named (``a or an?``, ``should I use my?``)."""
WH_WORDS = frozenset("what which whose why how".split())
"""Wh-words that start a direct question (``when``, ``where``, ``who`` also start clauses: ``When I run it, …``)."""
SUBJECTS = frozenset("you he she it we they".split())
"""Subject pronouns (``I`` is a single letter: found in the gap)."""
NOT_CONTENT = frozenset(
    """the a an of in on at by for with from to is are was were be been am has have had do does did can could will
    would should may might must shall not many much long far often old big this that these those if and or but when
    where while because as than so then""".split()
)
"""Words that end the wh-phrase's run of content words (``What time is it``, ``How long have you``)."""
AUXILIARIES = frozenset(
    """can could will would should shall may might must need do does did is are was were am have has had ought
    cannot""".split()
)
"""After the subject, the question is an embedded one (``Why you should…``), not one missing its auxiliary."""
THIRD_PERSON = frozenset({"he", "she", "it"})
MIN_AFTER_SUBJECT = 2
"""Words between the subject and the question mark (``How you doing?``, ``Where you at?``: chat, not a gap)."""
_TRIGGERS = FOLLOWERS | END_DETERMINERS | WH_WORDS
_SENTENCE_END = re.compile(r"[.?!]+(?=[\s\"'”’)\]]|\Z)")
_CLAUSE_END = re.compile(_SENTENCE_END.pattern + r"|[,;:](?=\s)")  # a sentence's end, or a comma, semicolon or colon


def missing_words(text: str, words: Sequence[Word]) -> list[str]:
    """What shows a word missing in ``text`` (``the of``, ``the<end>``, ``How I…?``), in order; empty
    when nothing does. ``words`` are ``text``'s scanned words (:func:`gateway.refinement.tokens.scan`)."""
    found: list[str] = []
    n = len(words)
    for i, word in enumerate(words):
        lower = word.lower
        if lower not in _TRIGGERS:
            continue
        if lower in FOLLOWERS:
            # most followers come after no determiner: that is looked at first, cheaply
            if word.after_break:
                determiner = "a" if lower in A_FOLLOWERS and _lone_article_before(text, words, i) else None
            else:
                before = words[i - 1]
                determiner = before.text if before.lower in DETERMINERS and text[word.start - 1].isspace() else None
            if (
                determiner is not None and word.text == lower and not _hyphen_after(text, word)
                and (lower in LONE_CONJUNCTIONS or _noun_phrase_after(text, words, i))
                and not _named(words, i) and not _coordinated(text, words, i)
            ):  # fmt: skip
                found.append(f"{determiner} {word.text}")
        elif lower in END_DETERMINERS and i and not word.after_break and words[i - 1].lower not in NAMING:
            if _ends_sentence(text, word, i + 1 == n):
                found.append(f"{word.text}<end>")
        if word.sentence_start and lower in WH_WORDS:
            question = _question_without_auxiliary(text, words, i)
            if question:
                found.append(question)
    return found


def _lone_article_before(text: str, words: Sequence[Word], i: int) -> bool:
    """Whether a lone ``a`` stands right before ``words[i]``, after a word of :data:`A_AFTER`."""
    start = words[i].start
    if text[start - 3 : start] != " a " or i == 0:
        return False
    before = words[i - 1]
    return before.start + len(before.text) == start - 3 and before.lower in A_AFTER


def _hyphen_after(text: str, word: Word) -> bool:
    end = word.start + len(word.text)
    return text[end : end + 1] in ("-", "‐")


def _noun_phrase_after(text: str, words: Sequence[Word], i: int) -> bool:
    """Whether a noun phrase starts right after the function word at ``i``: a determiner, a
    capitalised word or a lone ``a`` (after ``of``, also a number or a formula: ``a of 500 nm``)."""
    word = words[i]
    end = word.start + len(word.text)
    after = text[end : end + 3]
    if after == " a ":
        return True
    if word.lower == "of" and len(after) > 1 and after[0] == " " and (after[1].isdigit() or after[1] == "$"):
        return True
    if i + 1 >= len(words) or words[i + 1].after_break:
        return False
    following = words[i + 1]
    if "'" in following.text or "’" in following.text:
        return False  # a contraction: ``your and you're``
    if following.lower == "the" and i and words[i - 1].lower == "an":
        return False  # a compound written without its hyphens: ``an over the counter drug``, ``an on the fly fix``
    return following.lower in NOUN_PHRASE_STARTS or following.text[0].isupper()


def _named(words: Sequence[Word], i: int) -> bool:
    """Whether the function word at ``i`` is named, not used: a code or grammar noun follows within
    :data:`MENTION_REACH` words (``the with statement``, ``the for each loop``, ``the and gate's``)."""
    for j in range(i + 1, min(len(words), i + 1 + MENTION_REACH)):
        if words[j].after_break:
            return False
        lower = words[j].lower
        if lower in MENTION_NOUNS or (lower.endswith(("'s", "’s")) and lower[:-2] in MENTION_NOUNS):
            return True
    return False


def _coordinated(text: str, words: Sequence[Word], i: int) -> bool:
    """Whether the function word at ``i`` is one of a coordinated pair: ``his and her``, ``the before
    and after``, or a list of named words (``a, an and the?``)."""
    if i + 1 >= len(words) or words[i + 1].after_break:
        return False
    following = words[i + 1]
    if words[i].lower in ("and", "or"):
        if following.lower in COORDINATED:
            return True
        return following.lower in DETERMINERS and _ends_sentence(text, following, i + 2 == len(words))
    return (
        following.lower in ("and", "or") and i + 2 < len(words) and not words[i + 2].after_break
        and words[i + 2].lower in PAIRED
    )  # fmt: skip


def _ends_sentence(text: str, word: Word, last: bool) -> bool:
    """Whether a sentence's end mark (not an ellipsis) comes right after ``word``, or the end of a text
    that holds no colon (``Complete this: The cat sat on the`` asks for the rest)."""
    end = word.start + len(word.text)
    after = text[end : end + 1]
    if after in ".?!":
        if not after:  # the end of the text
            return ":" not in text
        mark = _SENTENCE_END.match(text, end)
        return mark is not None and not mark.group().startswith("..")
    return last and not text[end:].strip() and ":" not in text


def _question_without_auxiliary(text: str, words: Sequence[Word], i: int) -> str:
    """``How I…?`` when the wh-word at ``i`` runs into a subject pronoun with no auxiliary between,
    the pronoun is not followed by an auxiliary, and its clause ends the question; else ``""``."""
    n = len(words)
    lower = words[i].lower
    j = i + 1
    budget = 2 if lower in ("what", "which", "whose") else 0
    if lower == "how" and j < n and words[j].lower in ("many", "much") and not words[j].after_break:
        j += 1
        budget = 2
    while budget and j < n and not words[j].after_break and _content(words[j]):
        j += 1
        budget -= 1
    if j >= n:
        return ""
    word = words[j]
    previous = words[j - 1]
    gap = text[previous.start + len(previous.text) : word.start]
    if gap == " I ":
        subject_at, first_after = previous.start + len(previous.text) + 1, j  # ``How I squash``: the lone I before words[j]
    elif not word.after_break and word.text in SUBJECTS:
        subject_at, first_after = word.start, j + 1
    else:
        return ""
    if first_after >= n or (first_after > j and words[first_after].after_break):
        return ""
    after = words[first_after]
    if after.lower in AUXILIARIES or "'" in after.text or "’" in after.text:
        return ""
    if word.lower in THIRD_PERSON and after.lower.endswith("s"):
        return ""  # the verb agrees: a headline's question (``How it works under the hood?``, ``What it takes…?``)
    line_end = text.find("\n", subject_at)
    mark = _CLAUSE_END.search(text, subject_at, line_end if line_end >= 0 else len(text))  # this clause's end
    if mark is None or not mark.group().startswith("?"):
        return ""
    last = first_after + MIN_AFTER_SUBJECT - 1  # the words needed before the mark
    if last >= n or words[last].start > mark.start():
        return ""
    return f"{text[words[i].start : subject_at].strip()} {text[subject_at:].split(maxsplit=1)[0]}…?"


def _content(word: Word) -> bool:
    """A lower-case content word that may stand in a wh-phrase (``What time``, ``How many times``)."""
    lower = word.lower
    return (
        word.text == lower and lower not in NOT_CONTENT and lower not in PREPOSITIONS and lower not in SUBJECTS
        and "'" not in lower and "’" not in lower
    )  # fmt: skip

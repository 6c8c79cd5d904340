"""Number agreement (pure): ``a wavelengths of``, ``of 30 student,`` — a noun in the number its determiner rules out.

A typo that adds or drops a final ``s`` makes another real word, and the trigram model
(:mod:`gateway.refinement.ngram`, trained on speech) finds both numbers plausible, so the context
check lets it through. Grammar does not. Three patterns, read off the words the gate has scanned:

* a singular determiner (``a``, ``an``, ``every``, ``each``, ``another``), then a plural noun,
  directly or after an adjective (``an exceptions to``, ``a quick overviews of``, ``a 300-word
  profiles``) — not after a noun, where an -s word may be the verb (``a car travels at``);
* a plural quantifier (a count from 2 in digits or words, ``many``, ``few``, ``several``, ``these``,
  ``those``, ``various``, ``multiple``, ``numerous``), up to :data:`MAX_MODIFIERS` modifiers, then a
  singular noun whose plural is common (``of 30 student,``, ``how many member state does``);
* a question's plural subject before ``is``/``was``/``has`` (``Which Russian chemists is credited``).

The noun must head its phrase: what follows it is punctuation, the end of the text or a function
word (``of``, ``to``, ``is``, ``does``…), not another noun (``a sales team``, ``a two hour drive``:
noun adjuncts), not ``and``/``or`` (``a customers and orders schema``), not a hyphen. Quantity
phrases (``a few``, ``a lot``), -s singulars (``a series of``), labels (``the 404 error``, ``package A
depends``) and compounds (``a five minute talk``) are left alone. Then the trigram model has the
last word: the other number must read about as well (``*_GAIN``) — which rules out most verbs read as
nouns (``each consists of``, ``many believe that``).

Measured: on the eval set over six noise seeds (no deleted words), noisy prompts refined 94.69 ->
94.90% (10 more), no clean prompt lost; on 92,476 sentences of clean prose (the repo's docs,
docstrings of the standard library and the venv's packages, /usr/share/doc) it fires on 45, of
which 43 are real slips (``each others``, ``These package are``) and 2 name the Python type
(``will be a bytes``). It costs ≈4 µs a 25-word prompt (the model is asked only where a pattern matched).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gateway.refinement.language import FUNCTION_WORDS
from gateway.refinement.lexicon import Lexicon
from gateway.refinement.ngram import TrigramModel
from gateway.refinement.tokens import Word

MAX_MODIFIERS = 2
"""Words allowed between the determiner and the noun (``a short quick overviews``)."""
STEM_ZIPF = 3.0
"""The other number must be at least this common (wordfreq Zipf) to be a noun worth suggesting."""

SINGULAR_DETERMINERS = frozenset({"an", "every", "each", "another"})
"""Singular determiners that are words (``a`` is a single letter, found in the gap before a word)."""
NUMBER_WORDS = frozenset(
    """two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen
    eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety""".split()
)
"""Counts from two: the counted noun is plural (``five minutes``)."""
ADJECTIVE_QUANTIFIERS = frozenset({"various", "multiple", "numerous"})
"""Plural quantifiers that are only adjectives: the next word is their noun."""
PRONOUN_QUANTIFIERS = frozenset({"many", "few", "several", "these", "those"})
"""Plural quantifiers that are also pronouns (``these include``, ``many believe``): their noun is
trusted only before :data:`PRONOUN_FOLLOWERS`. ``both`` is left out: it also floats after its noun
(``are both equal``)."""
_DEMONSTRATIVES = frozenset({"these", "those"})
_KINDS = frozenset({"kind", "sort", "type"})
PLURAL_QUANTIFIERS = NUMBER_WORDS | ADJECTIVE_QUANTIFIERS | PRONOUN_QUANTIFIERS
_TRIGGERS = SINGULAR_DETERMINERS | PLURAL_QUANTIFIERS | {"which"}
COUNTED = frozenset("hundred thousand million billion trillion dozen score".split())
"""Counted themselves (``2 million.``): never the noun judged after a number."""
QUANTITY_WORDS = PLURAL_QUANTIFIERS | COUNTED | frozenset(
    """lot lots couple number great good total handful bunch pair series set range variety majority minority plenty
    percentage fraction host myriad multitude whole further additional extra other mere""".split()
)
"""Between ``a`` and a plural noun these make a quantity phrase (``a few examples``, ``a lot``): no modifier."""
DETERMINERS = frozenset("the a an this that these those its his her their our your my each every no any some".split())
"""Before a number, these make it a label (``the 400 error``, ``the two refer``): not a count."""
SINGULAR_S = frozenset(
    """means news series species lens gas chaos canvas alias bias atlas pros cons thanks headquarters crossroads
    barracks whereabouts odds kudos ethos pathos yes thus plus always perhaps towards afterwards besides sometimes
    nowadays whereas diabetes measles mumps herpes rabies billiards darts summons gallows innings bellows
    molasses mews physics ethics""".split()
)
"""Singular nouns (and other words) ending in ``s`` whose stem is a common word."""
HEAD_FOLLOWERS = frozenset(
    """of to for in on at with from by about that which who whom whose where when is was are were has have had
    does do did can could will would should may might must but than as into like between over under after
    before during without within through per vs versus using via""".split()
)
"""Words that follow the head noun of a phrase (a noun adjunct is followed by its noun). Not ``and``
and ``or``: nouns joined as adjuncts (``a simple customers and orders schema``)."""
PRONOUN_FOLLOWERS = frozenset("of is are was were does do did has have".split())
"""After a pronoun quantifier, the words that show the next word is its noun, not a verb
(``how many hour did``, ``these package are``; not ``these date from``), and punctuation only where
a preposition governs the quantifier (:data:`PREPOSITIONS`); after it and a modifier, these words
are the only ones (``these include data type,``: a verb may be the modifier)."""
PRONOUNS = frozenset({"each", "another"})
"""Singular determiners that are also pronouns (``each corresponds to``, ``by another results in``,
``explain how each works.``): the next word is their noun only before punctuation or the end, and
only where a preposition governs them (``to each others,``)."""
PREPOSITIONS = frozenset(
    """of to for from in on at by with about into onto between among than like over under after before
    without within through per via against across toward towards""".split()
)
"""Words that govern a pronoun quantifier as their object (``of these number:``), where the word
after it before punctuation is its noun, not its verb (``I know these work.``, ``few remain.``)."""
ADJECTIVES = frozenset(
    """good new old big small large little short long great high low full empty quick fast slow simple basic easy
    hard real whole young early late free main open common general specific different same similar single double
    best better worst major minor final last next recent modern ancient average typical normal standard random
    certain clear complete correct proper true false strong weak deep wide broad narrow rich poor cheap expensive
    nice fine bad safe secure private public local global social personal national international natural huge tiny
    brief detailed everyday daily weekly monthly annual yearly funny concise formal informal friendly polite quiet
    loud bright dark hot cold warm cool dry wet clean dirty heavy entire particular rough fair fresh gentle
    red blue green black white yellow sweet sharp smart wise wrong valid invalid""".split()
)
"""Common adjectives: a modifier that is one of them makes the next word a noun, not a verb."""
_ADJECTIVE_ENDINGS = ("ous", "ful", "less", "ish", "ical")
"""Adjectives' endings that nouns rarely have (not ``-able``: ``variable``, ``table``; not ``-al``, ``-ive``, ``-ent``)."""
_HEAD_PUNCT = frozenset(".,;:!?)")
"""Punctuation after a noun that ends its phrase (not an apostrophe: ``a users' guide``)."""
_NONE: frozenset[str] = frozenset()
_A_GAP = re.compile(r"\s*a[ \t]+(?:\d+(?:\.\d+)?\s?-)?")
"""The gap before a word that ends in ``a`` (a single letter: not a word), maybe with a number
compound (``a 300-word``). ``A`` inside a sentence is a label (``package A depends``)."""
_START_A_GAP = re.compile(r"\s*[aA][ \t]+(?:\d+(?:\.\d+)?\s?-)?")
"""The same at the start of the text..."""
_NEW_SENTENCE_A_GAP = re.compile(r"(?:.*[.!?:][\"'”’)\]]*\s+|.*\n\s*)[aA][ \t]+(?:\d+(?:\.\d+)?\s?-)?")
"""...and after a sentence's end."""
_GAP_ENDS = frozenset("aA0123456789")
"""The character before the space (or hyphen) before a word that may follow ``a`` or a number."""
_AFTER_A = re.compile(r"(?:^|[^\w'’])[aA]\s+$")
"""A text that ends with the word ``a``."""
_NUMBER_GAP = re.compile(r"\s*(\d{1,3}(?:,\d{3})+|\d{1,2})\s+")
"""A plain count before a word (``of 30 student``): up to 99 or with thousands separators (not
years, versions, decimals, nor three-digit codes: ``with 404 response``)."""
_COMPOUND_GAP = re.compile(r"\s*\d+(?:\.\d+)?\s?-")
"""A number joined to the next word (``8-hour``): a compound modifier."""
S_GAIN = 0.0
"""log10: with no modifier, the singular must read at least as well as the plural (``each consists
of``: -0.3, a pronoun and its verb; errors found in prose scored 0.4-4.4)."""
P_GAIN = 0.0
"""log10: the plural must read at least as well as the singular right after a plural quantifier."""
MODIFIED_GAIN = -1.0
"""After an adjective, the plural may even read up to 10x better than the singular (``a 300-word
profiles of``: -0.9): the speech model knows few written noun phrases, and an adjective leaves no
verb reading..."""
MODIFIED_P_GAIN = -0.5
"""...and after a plural quantifier and a modifier, the singular up to 10^0.5 better (``many Olympic
gold medal did``: -0.3; compounds of a count and a unit scored -0.6 to -0.8 in prose: ``in its
minimum four byte form``)."""
SUBJECT_VERBS = frozenset({"is", "was", "has"})
"""A question's singular verbs: ``Which Russian chemists is credited`` (the subject is plural)."""

_SINGULAR: dict[str, str] = {}
_PLURAL: dict[str, str] = {}
_MEMO_SIZE = 20_000


def singular_of(lower: str, lexicon: Lexicon) -> str:
    """The singular of a plural-form word whose stem is common (``overviews`` → ``overview``), else ``""``."""
    found = _SINGULAR.get(lower)
    if found is None:
        found = ""
        if lower.endswith("s") and len(lower) > 3 and lower.isalpha() and lower not in SINGULAR_S and lower not in FUNCTION_WORDS:
            if lower.endswith("ies"):
                stem = lower[:-3] + "y"
            elif lower.endswith("es") and lower[:-2].endswith(("s", "x", "z", "ch", "sh")):
                stem = lower[:-2]
            elif lower.endswith(("ss", "us", "is", "ics", "'s")):
                stem = ""
            else:
                stem = lower[:-1]
            if stem and lexicon.table.zipf(stem) >= STEM_ZIPF:
                found = stem
        if len(_SINGULAR) >= _MEMO_SIZE:
            _SINGULAR.clear()
        _SINGULAR[lower] = found
    return found


def plural_of(lower: str, lexicon: Lexicon) -> str:
    """The plural of a word, if that is common (``student`` → ``students``), else ``""``."""
    found = _PLURAL.get(lower)
    if found is None:
        found = ""
        if len(lower) > 2 and lower.isalpha() and not lower.endswith("s") and lower not in FUNCTION_WORDS and lower not in COUNTED:
            if lower.endswith(("x", "z", "ch", "sh")):
                plural = lower + "es"
            elif lower.endswith("y") and lower[-2] not in "aeiou":
                plural = lower[:-1] + "ies"
            else:
                plural = lower + "s"
            if plural not in SINGULAR_S and lexicon.table.zipf(plural) >= STEM_ZIPF:
                found = plural
        if len(_PLURAL) >= _MEMO_SIZE:
            _PLURAL.clear()
        _PLURAL[lower] = found
    return found


def _end(word: Word) -> int:
    return word.start + len(word.text)


def _spaced(text: str, end: int, start: int) -> bool:
    """Whether only spaces lie between two words (not a hyphen: ``five-day``, ``bytes-like``)."""
    return text[end:start].isspace()


def _heads(
    text: str, words: Sequence[Word], h: int, followers: frozenset[str], punctuation: bool = True
) -> tuple[bool, str | None, str | None]:
    """Whether ``words[h]`` heads its phrase (what follows it is one of ``followers``, or, with
    ``punctuation``, punctuation or the end), and the next two words for the language model
    (``</s>`` after a sentence's end)."""
    n = len(words)
    end = _end(words[h])
    if h + 1 < n and not words[h + 1].after_break:
        nxt = words[h + 1].lower
        if nxt not in followers or not _spaced(text, end, words[h + 1].start):
            return False, None, None  # a noun adjunct (``a sales team``), a compound (``bytes-like``)
        nxt2 = words[h + 2].lower if h + 2 < n and not words[h + 2].after_break else None
        return True, nxt, nxt2
    if not punctuation:
        return False, None, None
    rest = text[end : words[h + 1].start if h + 1 < n else len(text)].lstrip()
    if not rest:
        return True, "</s>", None
    if rest[0] not in _HEAD_PUNCT:
        return False, None, None  # a possessive (``users'``), a hyphen, a quote, a number, code
    return True, ("</s>" if rest[0] in ".!?" else None), None


def _score(model: TrigramModel, word: str, prev: str | None, prev2: str | None, nxt: str | None, nxt2: str | None) -> float:
    """log10 P of ``word`` and the two words after it, given the two before it."""
    logprob = model.logprob
    score = logprob(word, prev, prev2)
    if nxt is not None:
        score += logprob(nxt, word, prev)
        if nxt2 is not None:
            score += logprob(nxt2, nxt, word)
    return score


def _adjectival(text: str, words: Sequence[Word], i: int) -> bool:
    """Whether the modifier ``words[i]`` reads as an adjective (so the word after it is a noun, not a
    verb: ``a quick overviews``, not ``a car travels``): a common one, an adjective's ending, a
    participle (``detailed``), a number compound (``300-word``)."""
    lower = words[i].lower
    if lower in ADJECTIVES or lower.endswith(_ADJECTIVE_ENDINGS) or (len(lower) > 5 and lower.endswith("ed") and not lower.endswith("eed")):
        return True
    return words[i].after_break and _COMPOUND_GAP.search(text, max(0, words[i].start - 8), words[i].start) is not None


def agreement_errors(text: str, words: Sequence[Word], lexicon: Lexicon, model: TrigramModel) -> list[tuple[int, str]]:
    """``(index, the noun in the other number)`` for each noun whose number contradicts its determiner
    (one pass over the scanned words; the model is asked only where a pattern matched)."""
    found: list[tuple[int, str]] = []
    n = len(words)
    for k, word in enumerate(words):
        lower = word.lower
        if lower in _TRIGGERS:
            if lower == "which":
                if word.sentence_start:
                    _subject(words, k + 1, lexicon, model, found)
                continue
            if k + 1 >= n:
                continue
            following = words[k + 1]
            plural = lower in PLURAL_QUANTIFIERS
            compound = following.after_break
            if compound:
                if plural or not _COMPOUND_GAP.fullmatch(text, _end(word), following.start):
                    continue  # punctuation after the determiner
            elif not _spaced(text, _end(word), following.start):
                continue  # ``four-node``: a compound
            if plural:
                before = words[k - 1].lower if k and not word.after_break else None
                if before in DETERMINERS or (before is None and _AFTER_A.search(text, max(0, word.start - 4), word.start)):
                    continue  # ``the two refer``, ``a five minute talk``: a label, a pronoun, a compound
            before_trigger = words[k - 1] if k > 0 and not word.after_break else None
            governed = before_trigger is not None and (
                before_trigger.lower in PREPOSITIONS  # of these number:, with each others.
                or (lower in PRONOUNS and before_trigger.lower not in FUNCTION_WORDS)  # Add another columns.
            )
            _check(text, words, k + 1, plural, lower, lexicon, model, found, compound, governed)
        elif word.after_break:
            start = word.start
            if start < 2 or text[start - 2] not in _GAP_ENDS:
                continue  # no ``a`` and no number right before the word
            gap_start = _end(words[k - 1]) if k else 0
            if start - gap_start > 16:
                continue
            if (_A_GAP if k else _START_A_GAP).fullmatch(text, gap_start, start) or (k and _NEW_SENTENCE_A_GAP.fullmatch(text, gap_start, start)):
                _check(text, words, k, False, "a", lexicon, model, found, text[start - 1] == "-")
            elif k:
                count = _NUMBER_GAP.fullmatch(text, gap_start, start)
                before = words[k - 1].lower
                if count and int(count.group(1).replace(",", "")) >= 2 and before in FUNCTION_WORDS and before not in DETERMINERS:
                    _check(text, words, k, True, "two", lexicon, model, found)  # the model spells numbers out
    return found


def _check(
    text: str, words: Sequence[Word], first: int, plural: bool, trigger: str, lexicon: Lexicon, model: TrigramModel,
    found: list[tuple[int, str]], compound: bool = False, governed: bool = False,
) -> None:  # fmt: skip
    """Walk from ``words[first]`` over up to :data:`MAX_MODIFIERS` modifiers to the noun, and judge it
    (``compound``: ``words[first]`` is joined to a number before it, ``a 300-word``: a modifier;
    ``governed``: a preposition governs the trigger, or a verb ``each``/``another``, so a pronoun
    trigger's next word before punctuation is its noun, ``of these number:``, ``Add another
    columns.``, not its verb, ``how each works.``, ``I know these work.``)."""
    n = len(words)
    seq: list[str] = [trigger]
    for h in range(first, min(n, first + MAX_MODIFIERS + 1)):
        word = words[h]
        if h > first and (word.after_break or not _spaced(text, _end(words[h - 1]), word.start)):
            return  # punctuation or a hyphen between the words
        lower = word.lower
        if lower in FUNCTION_WORDS or not lower.isalpha() or (plural and lower.endswith("ly")):
            return  # ``these usually occur``: an adverb, then a verb
        capital = word.text[0].isupper() and not word.sentence_start
        other = "" if capital else (plural_of(lower, lexicon) if plural else singular_of(lower, lexicon))
        if other:
            mods = h - first
            if compound and mods == 0:
                return  # ``every 24-hours``: a compound noun
            if trigger in PRONOUN_QUANTIFIERS:
                if mods == 0 and lower in _KINDS and trigger in _DEMONSTRATIVES:
                    return  # ``these kind of``: informal, but common in clean prompts
                heads, nxt, nxt2 = _heads(text, words, h, PRONOUN_FOLLOWERS, mods == 0 and governed)
            elif trigger in PRONOUNS and mods == 0:
                heads, nxt, nxt2 = _heads(text, words, h, _NONE, governed)
            else:
                heads, nxt, nxt2 = _heads(text, words, h, HEAD_FOLLOWERS)
            if heads:
                if plural:
                    bar = P_GAIN if mods == 0 else MODIFIED_P_GAIN
                elif mods == 0:
                    bar = S_GAIN
                elif _adjectival(text, words, h - 1):
                    bar = MODIFIED_GAIN
                else:
                    return  # after a noun, an -s word may be the verb: ``a car travels at``
                prev, prev2 = seq[-1], seq[-2] if len(seq) > 1 else None
                gain = _score(model, other, prev, prev2, nxt, nxt2) - _score(model, lower, prev, prev2, nxt, nxt2)
                if gain >= bar:
                    found.append((h, other))
                return
        if lower in QUANTITY_WORDS or (plural and lower.endswith("s")):
            return  # ``a few``, ``a lot``; a plural already
        seq.append(lower)


def _subject(words: Sequence[Word], first: int, lexicon: Lexicon, model: TrigramModel, found: list[tuple[int, str]]) -> None:
    """A question's plural subject before a singular verb: ``Which Russian chemists is credited``. Not
    an object question, where the subject follows the verb (``Which novels is the author known
    for``, ``Which films is Zoë Saldaña known for``): the word after the verb must be a lower-case
    content word (a participle, an adjective)."""
    n = len(words)
    for h in range(first, min(n - 2, first + MAX_MODIFIERS + 1)):
        word = words[h]
        lower = word.lower
        if word.after_break or lower in FUNCTION_WORDS or not lower.isalpha() or lower.endswith("ly"):
            return
        verb, after = words[h + 1], words[h + 2]
        if verb.lower in SUBJECT_VERBS and not verb.after_break and not after.after_break:
            other = "" if word.text[0].isupper() else singular_of(lower, lexicon)
            if other and after.lower not in FUNCTION_WORDS and not after.text[0].isupper():
                prev = words[h - 1].lower
                if _score(model, other, prev, None, verb.lower, after.lower) - _score(model, lower, prev, None, verb.lower, after.lower) >= P_GAIN:
                    found.append((h, other))
            return

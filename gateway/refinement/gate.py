"""The skip gate: a CPU check (about a tenth of a millisecond) that lets a clean, fluent prompt skip refinement.

Decisions, in order (``reason`` is shown in ``x-mpr-refinement`` and counted in metrics):

* ``no_text`` / ``too_long`` skip; ``gate_off`` refines;
* ``code``: a prompt that is code with hardly any prose (rewriting it would break it) is skipped;
  code inside prose (fences, backticks, code-like lines) is left out and the prose is judged;
* ``non_english``: another language is skipped (an English cleaner would damage it);
* ``unknown_words``: words not in the lexicon (typos) refine. Not counted as unknown: names (a
  capitalised word, unless it is one keyboard slip from a common word or a known name —
  ``Frnace``, ``Odl``, ``Nikloa`` — or, starting a sentence, from a word that reads better there
  than a name: ``Teh``, ``Wrtie``), technical vocabulary (``pytest``), words with non-English
  letters, and everything :mod:`gateway.refinement.tokens` leaves alone (code, mentions, URLs,
  acronyms, numbers);
* ``real_word``: a known word that the trigram model says is another word mistyped (``bigger tan
  the``, ``Hell me``), or a lone letter that is ``a`` mistyped (``Tell me s bio``;
  :mod:`gateway.refinement.context`);
* ``agreement``: a noun in the number its determiner rules out (``a wavelengths of``, ``of 30
  student,``), which the trigram model finds plausible either way (:mod:`gateway.refinement.agreement`);
* ``missing_word``: a function word left out where written English never leaves one out (``What
  is the of Japan?``, ``Who invented the?``, ``How I squash my commits?``;
  :mod:`gateway.refinement.missing`);
* ``doubled_word`` (``the the``) refines; otherwise ``clean`` skips.

``tokens`` lists what drove a refine decision (``/v1/refine`` shows them).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config.models import SkipGateConfig
from gateway.refinement.agreement import agreement_errors
from gateway.refinement.context import TITLE_GAIN, TITLE_NAME_ZIPF, continues_as_word, mistyped_letters, reads_as_word, real_word_errors
from gateway.refinement.keyboard import QWERTY_NEIGHBOURS, is_slip
from gateway.refinement.language import FUNCTION_WORDS, looks_non_english
from gateway.refinement.lexicon import NEAR_MISS_GAP, Lexicon
from gateway.refinement.missing import missing_words
from gateway.refinement.ngram import TrigramModel, trigram_model
from gateway.refinement.technical import TECHNICAL_WORDS
from gateway.refinement.tokens import ABBREVIATIONS, Word, scan

NAME_NEAR_MISS_ZIPF = 3.5
"""A capitalised unknown word inside a sentence is a typo only one keyboard slip from a word this common."""
SOFT_NAME_GAP = 3.5
"""A capitalised word wordfreq knows as a likely misspelling (``Odl``, but also ``Ibn``, ``Ahn``) is a
typo inside a sentence only one slip from a word this much (log10) more frequent (``old``, 5.8)."""
KNOWN_NAME_ZIPF = 2.0
"""...or one slip from a word or name this frequent (``Nikloa``: ``Nikola``, 3.0; ``Millicnet``:
``Millicent``, 2.7; ``Kareinna``: ``Karenina``, 2.4), which an unknown name almost never is (2.0:
no clean prompt of the eval set lost, five mistyped names more caught over six noise seeds, against 2.5)."""
SOFT_NAME_CONTEXT_GAP = 2.5
"""...or, right after a determiner, one slip from a word this much (log10) more frequent that reads
better there than a name (``the Klone Star State``; six noise seeds: four more mistyped title words
caught, no clean prompt lost; on 91,755 sentences of clean prose it fires on one, ``The Readline
display``). After anything else a capitalised word may be a name: allowed there (any place but
after a determiner), it caught three more and fired on 14 prose sentences and on clean prompts
such as ``Rahul Dravid is a cricketer.`` and ``Write a poem for Assia.``"""
TITLE_DETERMINERS = frozenset("the this that these those what which whose my your his her its our their".split())
"""The words after which a capitalised word is read as a title's word or a common noun mistyped."""
SENTENCE_START_SLIP_ZIPF = 3.5
"""A capitalised unknown word starting a sentence is a typo one keyboard slip from a word this common
(``Wrtie``, ``Explian``) that reads better there than a name: sentences start with common words
far more often than with names."""
SOFT_WORD_ZIPF = 2.5
"""A word wordfreq knows that looks like a misspelling counts as a word from this frequency on,
unless a common word it resembles fits its context; below it, it is a typo (``boks``, ``dafa``)."""
SOFT_WORD_GAP = 2.0
"""...and it is a typo, whatever its context, next to a word this much (log10) more frequent (``explane``)."""
UNMODELLED_MAX_ZIPF = 3.3
"""A lower-case word rarer than this that the language model lacks (``wheres``, ``hows``, ``anu``)..."""
UNMODELLED_SLIP_ZIPF = 4.5
UNMODELLED_GAP = 1.5
"""...is a typo one keyboard slip from a word at least this frequent, and this much (log10) more frequent than it."""
GATE_CONTEXT: dict[str, float] = {"title_gain": TITLE_GAIN, "slip_bonus": 0.75, "capital_slip_bonus": 0.0, "number_margin": 1.0}
"""The context check's settings in the gate (:func:`gateway.refinement.context.real_word_errors`):
a known capitalised word inside a sentence (``The Cour Seasons``, ``League of Rations``) is judged
at a bar of 3.5; a candidate one keyboard slip from a lower-case word needs 0.75 less (a slip is
likelier than any other edit: ``tittle``, ``inn``, ``off``; not for a capitalised word, which may be a
name starting a sentence: ``Wen``, ``Elanor``); the same word in the other number
needs 1.0 more (``a 300-word profiles``; ``journeys``/``journey`` both read well). Measured on the
eval set over six noise seeds: noisy prompts refined (typos of every kind but deleted words) 93.1 -> 94.7%, no clean prompt lost."""
NAME_PARTICLES = frozenset(
    "al bin ibn da das de dei del della der di do dos du el la las le les los op ten ter van von wa y zu".split()
)
"""Lower-case words that join the parts of names in many languages."""
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
MIN_PROSE_WORDS = 3
"""A prompt with code and fewer prose words than this is code."""
_DOUBLE_OK = frozenset({"that", "had", "is", "bye", "very", "no", "not", "so", "ha", "knock", "bla", "blah"})


@dataclass(frozen=True, slots=True)
class GateDecision:
    """``refine`` says whether to run the stages; ``reason`` is shown in ``x-mpr-refinement``."""

    refine: bool
    reason: str
    unknown_words: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()
    """What drove the decision: unknown words, ``word→likely`` real-word suspects, a doubled word."""

    def as_dict(self) -> dict[str, object]:
        """The ``gate`` object of ``/v1/refine`` and ``return_details``."""
        return {"refine": self.refine, "reason": self.reason, "tokens": list(self.tokens)}


# The decisions that carry no words (frozen: one shared instance each).
_NO_TEXT = GateDecision(False, "no_text")
_TOO_LONG = GateDecision(False, "too_long")
_GATE_OFF = GateDecision(True, "gate_off")
_CODE = GateDecision(False, "code")
_NON_ENGLISH = GateDecision(False, "non_english")
_CLEAN = GateDecision(False, "clean")


def uses_language_model(config: SkipGateConfig, has_stages: bool) -> bool:
    """Whether the gate consults the trigram model: it is on, its context check too, and there is
    a refinement stage to send a prompt to (the runtime loads the model at start then)."""
    return has_stages and config.enabled and config.context_check


def decide(text: str, lexicon: Lexicon, config: SkipGateConfig) -> GateDecision:
    """Decide whether ``text`` needs refinement (see the module docstring for the rules)."""
    if not text.strip():
        return _NO_TEXT
    if len(text) > config.max_prompt_chars:
        return _TOO_LONG
    if not config.enabled:
        return _GATE_OFF
    found = scan(text)
    words = found.words
    if found.has_code and len(words) < MIN_PROSE_WORDS:
        return _CODE
    unknown = unknown_words(words, lexicon, trigram_model() if config.context_check else None)
    if len(unknown) > config.max_unknown_words:
        if looks_non_english(words, lexicon):
            return _NON_ENGLISH
        tokens = tuple(w.text for w in unknown)
        return GateDecision(True, "unknown_words", tokens, tokens)
    if config.context_check:
        suspects = [(words[i], c) for i, c in real_word_errors(words, lexicon, **GATE_CONTEXT)] + mistyped_letters(text, found)
        if suspects:
            return GateDecision(True, "real_word", (), tuple(f"{w.text}→{c}" for w, c in suspects))
        disagreeing = agreement_errors(text, words, lexicon, trigram_model())
        if disagreeing:
            return GateDecision(True, "agreement", (), tuple(f"{words[i].text}→{c}" for i, c in disagreeing))
    missing = missing_words(text, words)
    if missing:
        return GateDecision(True, "missing_word", (), tuple(missing))
    doubled = doubled_word(words)
    if doubled is not None:
        return GateDecision(True, "doubled_word", (), (f"{doubled} {doubled}",))
    return _CLEAN


def _unmodelled_slip(lower: str, own: float, lexicon: Lexicon, model: TrigramModel) -> bool:
    """Whether a rare word the language model lacks is one keyboard slip from a far more common word."""
    if lower in TECHNICAL_WORDS or model.knows(lower):
        return False
    return _slip_of_common(lower, lexicon, max(UNMODELLED_SLIP_ZIPF, own + UNMODELLED_GAP))


def unknown_words(words: tuple[Word, ...], lexicon: Lexicon, model: TrigramModel | None = None) -> list[Word]:
    """The words that look like typos (names and non-English words excluded)."""
    zipf = lexicon.table.zipf
    unknown: list[Word] = []
    for i, word in enumerate(words):
        lower = word.lower
        own = zipf(lower)
        if own and model is not None and own < UNMODELLED_MAX_ZIPF and not word.text[0].isupper() and _unmodelled_slip(lower, own, lexicon, model):
            unknown.append(word)  # ``wheres``, ``anu``: rare, unknown to the language model, one slip from a common word
            continue
        if own or not lower.isascii() or lower in lexicon:
            continue  # known (also possessives, contractions, typographic apostrophes); Kraków: not English
        soft = lexicon.near_misses.zipf(lower)
        if word.text[0].isupper():
            if lower in ABBREVIATIONS or (len(lower) <= 2 and not _slip_of(lower, lexicon, FUNCTION_WORDS)):
                continue  # Dr, Sb, Fe: abbreviations and symbols (but Fi, Ym: If, My mistyped)
            if not word.sentence_start:
                if not (_slip_of_common(lower, lexicon, soft + SOFT_NAME_GAP if soft else NAME_NEAR_MISS_ZIPF)
                        or (not soft and slip_of_known(lower, lexicon))
                        or (soft and _reads_as_slip(lower, soft, words, i, lexicon))):  # fmt: skip
                    continue  # a name inside a sentence (Benni, Sadio), unless one slip from a common word or a known name (Frnace, Nikloa)
            elif not _starts_as_common(lower, words, i, lexicon) and (
                (soft or not lexicon.neighbours(lower)) and not _fits_as_common(lower, words, i, lexicon)
            ):
                continue  # a name starting a sentence: Noor (wordfreq knows it; "door" does not fit), Oluwaseun, Dev
        elif _name_particle(words, i):
            continue  # de la Cruz, van Rossum, Ngũgĩ wa Thiong'o
        elif soft >= SOFT_WORD_ZIPF and not _fits_as_common(lower, words, i, lexicon, SOFT_WORD_GAP):
            continue  # wordfreq knows it well (backend), and no far more common word it resembles fits here
        elif len(lower) > 5 and not lexicon.neighbours(lower) and lexicon.composed(lower):
            continue  # microtask, subscriptable: parts of common words, and no common word one edit away
        unknown.append(word)
    return unknown


def _reads_as_slip(lower: str, soft: float, words: tuple[Word, ...], i: int, lexicon: Lexicon) -> bool:
    """Whether a capitalised word wordfreq knows only as a rare token (``Klone``, ``Katin``,
    ``Cour``), right after a determiner inside a sentence (where a title's word or a common noun
    stands, seldom a person's name: ``the Klone Star State``, ``What Katin phrase``, ``The Cour
    Seasons``) and not before another part of a name, is a slip of a word
    :data:`SOFT_NAME_CONTEXT_GAP` more frequent that reads better there than a name would. Not
    after anything else (``Rahul Dravid``, ``Dr. Cour``, ``for Assia``, ``Email Dravid``), nor
    before a rare capitalised word (``the Ahn Cheol-soo``)."""
    if len(lower) <= 2 or words[i].after_break or i == 0 or words[i - 1].lower not in TITLE_DETERMINERS:
        return False
    zipf = lexicon.table.zipf
    if i + 1 < len(words) and not words[i + 1].after_break:
        after = words[i + 1]
        if after.text[0].isupper() and zipf(after.lower) < TITLE_NAME_ZIPF:
            return False  # a name's first part
    candidate = _common_slip(lower, lexicon, soft + SOFT_NAME_CONTEXT_GAP)
    return candidate is not None and reads_as_word(candidate, words, i)


def _fits_as_common(lower: str, words: tuple[Word, ...], i: int, lexicon: Lexicon, certain_gap: float = 99.0) -> bool:
    """Whether a common word one edit from ``lower`` fits here: it forms a frequent pair with a
    neighbour (``Teh capital``; not ``Noor bought``), it is a function word (``Hwo``, ``fo``), or it is
    ``certain_gap`` more frequent."""
    prev = words[i - 1].lower if i > 0 and not words[i].after_break else None
    nxt = words[i + 1].lower if i + 1 < len(words) and not words[i + 1].after_break else None
    own = lexicon.table.zipf(lower) or lexicon.near_misses.zipf(lower)
    for candidate in lexicon.neighbours(lower):
        z = lexicon.table.zipf(candidate)
        if z - own < NEAR_MISS_GAP:
            break  # sorted by frequency
        if candidate in FUNCTION_WORDS or z - own >= certain_gap:
            return True  # ``fo``, ``nad``, ``Whiich``: a mistyped function word; ``explane``
        if (prev is not None and lexicon.bigram(prev, candidate)) or (nxt is not None and lexicon.bigram(candidate, nxt)):
            return True
    return False


def _name_particle(words: tuple[Word, ...], i: int) -> bool:
    """A name particle (``de``, ``van``, ``wa``) inside a name: between a capitalised word (or
    another particle) and a capitalised word that does not start a sentence."""
    if words[i].lower not in NAME_PARTICLES or i + 1 >= len(words) or i == 0:
        return False
    following, before = words[i + 1], words[i - 1]
    if following.after_break or following.sentence_start or not following.text[0].isupper():
        return False
    if before.text[0].isupper():
        return True
    return before.lower in NAME_PARTICLES and i >= 2 and words[i - 2].text[0].isupper()


def _starts_as_common(lower: str, words: tuple[Word, ...], i: int, lexicon: Lexicon) -> bool:
    """Whether an unknown capitalised word starting a sentence is a common word mistyped: one keyboard
    slip from it, and that word reads better there than a name would (``Wrtie a``, ``Wiman who``;
    not ``Dev has``)."""
    for candidate in lexicon.neighbours(lower):
        if lexicon.table.zipf(candidate) < SENTENCE_START_SLIP_ZIPF:
            break
        if is_slip(lower, candidate) and reads_as_word(candidate, words, i):
            return True
    known = slip_of_known(lower, lexicon)  # a rarer word (zipf 2.0–3.5) or a known name
    if known is None:
        return False
    if reads_as_word(known, words, i):
        return True
    # A word wordfreq has never seen (no name it knows), neither a compound nor a CamelCase
    # identifier, is judged by how the words after it read: the speech-trained model seldom starts
    # a sentence with an instruction verb (``Summsrize the``, ``Summarizze this``).
    text = words[i].text
    return (
        not lexicon.near_misses.zipf(lower) and text[1:].islower() and not lexicon.composed(lower)
        and continues_as_word(known, words, i)
    )  # fmt: skip


def _slip_of_common(lower: str, lexicon: Lexicon, min_zipf: float = NAME_NEAR_MISS_ZIPF) -> bool:
    """Whether ``lower`` is one keyboard slip (:mod:`gateway.refinement.keyboard`) from a far more
    common word: ``frnace`` (France, two letters swapped), not ``sadio`` (radio: r and s are far apart)."""
    return _common_slip(lower, lexicon, min_zipf) is not None


def _common_slip(lower: str, lexicon: Lexicon, min_zipf: float) -> str | None:
    """The most frequent word at least ``min_zipf`` common that ``lower`` is one keyboard slip from, or None."""
    for candidate in lexicon.neighbours(lower):
        if lexicon.table.zipf(candidate) < min_zipf:
            break
        if is_slip(lower, candidate):
            return candidate
    return None


_KNOWN: dict[tuple[str, float], str | None] = {}
_KNOWN_SIZE = 10_000
_known_owner: list[Lexicon] = []  # the lexicon _KNOWN's answers come from


def slip_of_known(lower: str, lexicon: Lexicon, min_zipf: float = KNOWN_NAME_ZIPF) -> str | None:
    """The word (or name) at least ``min_zipf`` frequent of which ``lower`` is one keyboard slip
    (:func:`gateway.refinement.keyboard.slips`, inverted): ``nikloa`` → ``nikola``; ``None`` if none.
    Memoised per process: each answer costs a few hundred lookups (every slip put right)."""
    if len(lower) < 4:
        return None
    if not _known_owner or _known_owner[0] is not lexicon:
        _KNOWN.clear()
        _known_owner[:] = [lexicon]
    key = (lower, min_zipf)
    if key not in _KNOWN:
        if len(_KNOWN) >= _KNOWN_SIZE:
            _KNOWN.clear()
        _KNOWN[key] = _slip_of_known(lower, lexicon, min_zipf)
    return _KNOWN[key]


def _slip_of_known(lower: str, lexicon: Lexicon, min_zipf: float) -> str | None:
    zipf = lexicon.table.zipf
    n = len(lower)
    tried: list[str] = [lower[:i] + lower[i + 1] + lower[i] + lower[i + 2 :] for i in range(n - 1)]  # swapped back
    tried += [lower[:i] + lower[i + 1 :] for i in range(n)]  # a doubled or extra key taken out
    for i in range(n):
        near = QWERTY_NEIGHBOURS.get(lower[i], "")
        tried += [lower[:i] + key + lower[i + 1 :] for key in near]  # a neighbouring key put right
        if i:
            tried += [lower[:i] + c + lower[i:] for c in _LETTERS]  # a dropped letter put back
    for candidate in tried:
        if candidate != lower and zipf(candidate) >= min_zipf and is_slip(lower, candidate):
            return candidate
    return None


def _slip_of(lower: str, lexicon: Lexicon, among: frozenset[str]) -> bool:
    """Whether ``lower`` is one keyboard slip from a word in ``among``."""
    return any(candidate in among and is_slip(lower, candidate) for candidate in lexicon.neighbours(lower))


def doubled_word(words: tuple[Word, ...]) -> str | None:
    """The first word written twice in a row (``the the``), if any."""
    previous = ""
    for word in words:
        lower = word.lower
        if lower == previous and not word.after_break and lower not in _DOUBLE_OK:
            return word.text
        previous = lower
    return None

"""The English lexicon behind the skip gate and the built-in cleaner.

Two well-kept resources, merged once per process:

* symspellpy's bundled frequency dictionary (82,765 words, Google Books counts) and its bigram
  dictionary (242,342 word pairs) — the base vocabulary and the context signal;
* ``wordfreq``'s large English list (321k words from Wikipedia, subtitles, news, books, web and
  social text) — US and UK spellings, inflections, units, abbreviations and common names that the
  symspellpy list lacks (``neighborhood``, ``liters``, ``kg``, ``Mr``, ``Nikola``).

A wordfreq word joins the vocabulary when it is frequent enough (``zipf ≥ MIN_ZIPF``) and is not
a *near miss*: one edit away from a word far more frequent than itself — that is how common
misspellings look in web text (``recieve`` 2.8 next to ``receive`` 4.9, ``teh`` next to ``the``).

Storage is compact: sorted CRC-32 hashes with a parallel byte array of Zipf frequencies (≈1.5 MB
for ≈100k words); a lookup is one C-level bisect, memoised for recent words. The near-miss index
(every common word's one-deletion variants, ≈110k keys) is flat arrays too (:class:`DeletesIndex`,
≈4.4 MB where a dict of strings and tuples took ≈15 MB): few objects, so pages a ``--workers N``
supervisor loaded stay shared with its forked workers.
"""

from __future__ import annotations

import math
import re
import unicodedata
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib import resources

from gateway.refinement import technical
from gateway.refinement.cache import cache_key, cached

UNIGRAM_FILE = "frequency_dictionary_en_82_765.txt"
BIGRAM_FILE = "frequency_bigramdictionary_en_243_342.txt"

MIN_ZIPF = 1.0
"""wordfreq words below this Zipf frequency (≈3 per billion words) are not taken."""
NEAR_MISS_GAP = 1.3
"""A word is a near miss when an edit-1 neighbour is this much more frequent (log10: 20x)."""
COMMON_ZIPF = 3.5
"""Words at least this frequent (≈15k) are the candidates of near-miss and real-word checks."""
_SYMSPELL_ZIPF_OFFSET = 9.0 - math.log10(1.0e12)  # Google Books counts ≈ 1e12 tokens → Zipf scale

TWO_LETTER_WORDS = frozenset(
    """of to in is it on as be at by he my an if me or so we do no up us go am pm mr re oh dr st tv
    id ok uk hi ex vs eu kg pa ha ma ye ah eh uh um hm ox ax lo yo ms mm cm km ft lb oz hr co ad ai pc cd""".split()
)
"""Two-letter words English prose uses. wordfreq also ranks many that are other languages' words
or typos (``ni``, ``si``, ``te``), which a typo of ``in``, ``is``, ``the`` lands on."""
VERY_COMMON_ZIPF = 5.5
"""Words this common (``was``, ``the``) are mistyped so often that a technical word one slip from them
(``aws``) is taken for the typo."""
PART_ZIPF = 3.0
"""Each part of a compound (``back``+``end``) or an affixed stem must be at least this frequent."""
FOREIGN_LANGUAGES = ("fr", "es", "de", "it", "pt", "nl", "pl", "sv", "tr", "id", "vi", "ro", "cs", "da", "nb", "fi",
                     "hu", "ca", "sk", "sl", "lt", "lv", "ms", "fil", "is", "sh")  # fmt: skip
"""Latin-script languages whose common words the language check knows (others show in their letters)."""
FOREIGN_ZIPF = 4.0
"""A word this frequent in one of them is one of its common words."""
COMPOUND_ZIPF = 3.5
"""Each word of a closed compound must be at least this frequent."""
_PREFIXES = ("anti", "auto", "co", "de", "hyper", "inter", "meta", "micro", "mis", "mono", "multi", "non",
             "over", "post", "pre", "pro", "re", "semi", "sub", "super", "un", "under")  # fmt: skip
_SUFFIXES = ("able", "ible", "ize", "ise", "izes", "ized", "izing", "ness", "less", "ful", "ish", "wise", "like")
_WORD_OK = re.compile(r"^[^\W\d_]+(?:'[^\W\d_]+)*$")
ALPHABET = "abcdefghijklmnopqrstuvwxyz'"


_crc32 = zlib.crc32


def _hash(word: str) -> int:
    return _crc32(word.encode())


def fold(word: str) -> str:
    """Lower case, typographic apostrophes made plain, accents removed (``Schrödinger`` → ``schrodinger``)."""
    word = word.lower().replace("’", "'")
    if word.isascii():
        return word
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def deletes(word: str) -> Iterator[str]:
    """The strings one deletion away from ``word``."""
    for i in range(len(word)):
        yield word[:i] + word[i + 1 :]


class FrequencyTable:
    """Membership and Zipf frequency (0-8, one decimal) of lower-case words, stored compactly."""

    __slots__ = ("_hashes", "_zipf", "_memo")

    MEMO_SIZE = 16384

    def __init__(self, entries: dict[str, float]) -> None:
        by_hash: dict[int, float] = {}
        for word, zipf in entries.items():
            h = _hash(word)
            by_hash[h] = max(zipf, by_hash.get(h, 0.0))
        ordered = sorted(by_hash)
        self._hashes = array("I", ordered)
        self._zipf = bytes([min(255, max(1, round(by_hash[h] * 10))) for h in ordered])
        self._memo: dict[str, float] = {}

    def zipf(self, word: str) -> float:
        """Zipf frequency of a lower-case word; 0.0 when unknown."""
        memo = self._memo
        found = memo.get(word)
        if found is None:
            h = _hash(word)
            i = bisect_left(self._hashes, h)
            found = self._zipf[i] / 10 if i < len(self._hashes) and self._hashes[i] == h else 0.0
            if len(memo) >= self.MEMO_SIZE:
                memo.clear()
            memo[word] = found
        return found

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self.zipf(word) > 0.0

    def __len__(self) -> int:
        return len(self._hashes)


class DeletesIndex:
    """A read-only ``dict[str, tuple[str, ...]]`` (``get`` only) in flat arrays: an open-addressing
    table of CRC-32 hashes (linear probing, at most half full), the keys in one string compared in
    full, each key's values as ids into one tuple of words. A lookup costs about twice a dict's."""

    __slots__ = ("_slots", "_mask", "_hashes", "_keys", "_key_ends", "_value_ends", "_ids", "_words")

    def __init__(self, index: dict[str, tuple[str, ...]]) -> None:
        words = sorted({w for values in index.values() for w in values})
        number = {w: i for i, w in enumerate(words)}
        keys = sorted(index)
        size = 8
        while size < 2 * len(keys):
            size *= 2
        self._mask = size - 1
        slots = [0] * size
        hashes = [_hash(k) for k in keys]
        for k, h in enumerate(hashes):
            i = h & self._mask
            while slots[i]:
                i = (i + 1) & self._mask
            slots[i] = k + 1  # 0: an empty slot
        self._slots = array("I", slots)
        self._hashes = array("I", hashes)
        self._keys = "".join(keys)
        self._key_ends = array("I", _running_ends(len(k) for k in keys))
        self._value_ends = array("I", _running_ends(len(index[k]) for k in keys))
        self._ids = array("H" if len(words) < 2**16 else "I", [number[w] for k in keys for w in index[k]])
        self._words = tuple(words)

    def get(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        """The words ``key`` comes from; ``default`` when it is not a key."""
        h = _crc32(key.encode())
        slots, hashes, mask = self._slots, self._hashes, self._mask
        i = h & mask
        k = slots[i]
        while k:
            k -= 1
            if hashes[k] == h:
                ends = self._key_ends
                if self._keys[ends[k] : ends[k + 1]] == key:
                    values, words, ids = self._value_ends, self._words, self._ids
                    a, b = values[k], values[k + 1]
                    if b - a == 1:  # nine keys in ten
                        return (words[ids[a]],)
                    return tuple([words[j] for j in ids[a:b]])
            i = (i + 1) & mask
            k = slots[i]
        return default

    def __len__(self) -> int:
        return len(self._hashes)


def _running_ends(lengths: Iterable[int]) -> list[int]:
    """``[0, l0, l0 + l1, ...]``: item ``k`` spans ``ends[k]:ends[k + 1]``."""
    ends, total = [0], 0
    for length in lengths:
        total += length
        ends.append(total)
    return ends


class Lexicon:
    """Vocabulary, frequencies, near-miss neighbours and bigram counts (one per process).

    ``word in lexicon`` accepts any case, possessives and contractions (the merge and the
    describer check use it as a plain vocabulary).
    """

    def __init__(
        self,
        table: FrequencyTable,
        index: dict[str, tuple[str, ...]] | DeletesIndex,
        bigrams: FrequencyTable,
        near_misses: FrequencyTable | None = None,
        foreign: FrequencyTable | None = None,
    ) -> None:
        self.table = table
        self.foreign = foreign or FrequencyTable({})
        """Common words of other Latin-script languages (``est``, ``und``, ``entre``), by their
        highest Zipf frequency in any of them: the language check's evidence."""
        self.near_misses = near_misses or FrequencyTable({})
        """Words wordfreq knows that look like misspellings of common words (``backend``, ``recieve``):
        only context tells which."""
        self._neighbours: dict[str, tuple[str, ...]] = {}
        self._index = index if isinstance(index, DeletesIndex) else DeletesIndex(index)
        self._bigrams = bigrams

    @staticmethod
    def deletes_index(common: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Each common word and its one-deletion variants, mapped to the words they come from."""
        index: dict[str, list[str]] = {}
        for word in common:
            for key in (word, *deletes(word)):
                index.setdefault(key, []).append(word)
        return {k: tuple(v) for k, v in index.items()}

    # -- words ------------------------------------------------------------------------------
    def zipf(self, word: str) -> float:
        """Zipf frequency of ``word`` (case-folded); 0.0 when not in the vocabulary."""
        return self.table.zipf(fold(word))

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str):
            return False
        lowered = fold(word)
        if self.table.zipf(lowered):
            return True
        if "'" in lowered:  # possessives and contractions: France's, don't, we'll
            base = lowered.rsplit("'", 1)[0]
            return bool(self.table.zipf(base) or self.table.zipf(lowered.replace("'", "")))
        return False

    def composed(self, word: str) -> bool:
        """A compound or affixed form of common words (``backend``, ``memoize``, ``microtask``)."""
        zipf = self.table.zipf
        for prefix in _PREFIXES:
            if word.startswith(prefix) and len(word) - len(prefix) >= 3 and zipf(word[len(prefix) :]) >= PART_ZIPF:
                return True
        for suffix in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                stem = word[: -len(suffix)]
                if zipf(stem) >= PART_ZIPF or zipf(stem + "e") >= PART_ZIPF:
                    return True
        for cut in range(4, len(word) - 3):  # two words of four letters or more: ``workspace``
            if zipf(word[:cut]) >= COMPOUND_ZIPF and zipf(word[cut:]) >= COMPOUND_ZIPF:
                return True
        return False

    # -- neighbours -------------------------------------------------------------------------
    def neighbours(self, word: str) -> tuple[str, ...]:
        """Common words one edit (Damerau) away from the lower-case ``word``, most frequent first."""
        cached = self._neighbours.get(word)
        if cached is not None:
            return cached
        index = self._index
        found: set[str] = set(index.get(word, ()))  # word is a deletion of them (a letter dropped)
        for key in deletes(word):  # a letter added, swapped or replaced
            for candidate in index.get(key, ()):
                if candidate != word and _one_edit(word, candidate):
                    found.add(candidate)
        found.discard(word)
        zipf = self.table.zipf
        # ties in frequency (one decimal) broken by spelling: the same order in every process
        result = tuple(sorted(found, key=lambda candidate: (-zipf(candidate), candidate)))
        if len(self._neighbours) > 50_000:
            self._neighbours.clear()
        self._neighbours[word] = result
        return result

    def near_miss(self, word: str, gap: float = NEAR_MISS_GAP) -> str | None:
        """The common word ``word`` most likely misspells: one edit away and ``gap`` (log10) more frequent."""
        lowered = fold(word)
        own = self.table.zipf(lowered)
        for candidate in self.neighbours(lowered):
            if self.table.zipf(candidate) - own >= gap:
                return candidate
            break  # sorted by frequency: the first one decides
        return None

    # -- context ----------------------------------------------------------------------------
    def bigram(self, first: str, second: str) -> float:
        """Zipf-scaled frequency of the word pair (lower case); 0.0 when unseen."""
        return self._bigrams.zipf(first + " " + second)


def _one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by one insertion, deletion, substitution or adjacent swap."""
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]


def _symspell_file(name: str) -> str:
    return str(resources.files("symspellpy") / name)


def _read_counts(path: str, key_words: int) -> Iterator[tuple[str, float]]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == key_words + 1:
                yield " ".join(parts[:key_words]), math.log10(float(parts[key_words])) + _SYMSPELL_ZIPF_OFFSET


def vocabulary() -> tuple[dict[str, float], dict[str, float]]:
    """``(words, near_misses)``: the merged vocabulary with Zipf frequencies, and the wordfreq
    words left out as likely misspellings (see the module docstring). Built anew (≈1 s)."""
    from wordfreq import get_frequency_dict

    words: dict[str, float] = {w: max(z, 1.0) for w, z in _read_counts(_symspell_file(UNIGRAM_FILE), 1)}
    extra: dict[str, float] = {}
    for word, share in get_frequency_dict("en", "large").items():
        zipf = math.log10(share) + 9.0
        if not _WORD_OK.match(word):
            continue
        word = word.replace("’", "'")
        if word in words:
            words[word] = max(words[word], zipf)  # web frequency keeps modern words ranked right
        elif zipf >= MIN_ZIPF:
            extra[word] = zipf
    get_frequency_dict.cache_clear()  # wordfreq keeps its dict otherwise (≈40 MB)
    everything = {**words, **extra}
    index = _common_index(everything)
    near_misses: dict[str, float] = {}
    for word, zipf in extra.items():
        if zipf >= COMMON_ZIPF + NEAR_MISS_GAP or not word.isascii() or not _has_frequent_neighbour(word, zipf, index, everything):
            words[word] = zipf
        else:
            near_misses[word] = zipf
    for word in [w for w in words if len(w) == 2 and w not in TWO_LETTER_WORDS]:
        near_misses[word] = words.pop(word)
    for word in list(words):
        if not word.isascii():
            words.setdefault(fold(word), words[word])
    for word in technical.TECHNICAL_WORDS:  # pytest, kubectl, rebase: words, whatever web text says
        if word in words or not _slip_of_very_common(word, index, everything):
            words[word] = max(words.get(word, 0.0), technical.TECHNICAL_ZIPF)
            near_misses.pop(word, None)
    return words, near_misses


def _slip_of_very_common(word: str, index: dict[str, tuple[str, ...]], freq: dict[str, float]) -> bool:
    """Whether ``word`` is one keyboard slip from a very common word (``aws``: ``was``): as a typo it
    is far likelier than as the name it also is, so it is not taken as a word."""
    from gateway.refinement.keyboard import slips

    near = set(index.get(word, ())) | {c for key in deletes(word) for c in index.get(key, ())}
    return any(freq.get(c, 0.0) >= VERY_COMMON_ZIPF and word in slips(c) for c in near if c != word)


def _has_frequent_neighbour(word: str, zipf: float, index: dict[str, tuple[str, ...]], freq: dict[str, float]) -> bool:
    """Whether a word one edit from ``word`` is ``NEAR_MISS_GAP`` more frequent (the build's hot loop)."""
    bar = zipf + NEAR_MISS_GAP
    for candidate in index.get(word, ()):
        if freq[candidate] >= bar:
            return True
    for key in deletes(word):
        for candidate in index.get(key, ()):
            if freq[candidate] >= bar and candidate != word and _one_edit(word, candidate):
                return True
    return False


def _common_index(words: dict[str, float]) -> dict[str, tuple[str, ...]]:
    return Lexicon.deletes_index(w for w, z in words.items() if z >= COMMON_ZIPF and w.isalpha() and w.isascii())


def foreign_words() -> dict[str, float]:
    """Words common (``zipf ≥ FOREIGN_ZIPF``) in another Latin-script language, from wordfreq."""
    from wordfreq import get_frequency_dict

    found: dict[str, float] = {}
    for language in FOREIGN_LANGUAGES:
        for word, share in get_frequency_dict(language, "small").items():
            zipf = math.log10(share) + 9.0
            if zipf >= FOREIGN_ZIPF and _WORD_OK.match(word):
                found[word] = max(zipf, found.get(word, 0.0))
    get_frequency_dict.cache_clear()
    return found


def build_lexicon() -> Lexicon:
    """Build the lexicon from its sources (≈3 s)."""
    words, near_misses = vocabulary()
    bigrams = FrequencyTable(dict(_read_counts(_symspell_file(BIGRAM_FILE), 2)))
    return Lexicon(
        FrequencyTable(words), _common_index(words), bigrams, FrequencyTable(near_misses), FrequencyTable(foreign_words())
    )


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    """The process's lexicon: from the on-disk cache (≈0.1 s), else built (≈2.5 s) and cached."""
    key = cache_key(("wordfreq", "symspellpy"), (__file__, technical.__file__))
    return cached("lexicon", key, build_lexicon, Lexicon)

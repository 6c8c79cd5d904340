"""The English word list behind the skip gate, from symspellpy's bundled frequency dictionary.

Stored as a sorted ``array`` of CRC-32 hashes (~330 KB instead of ~12 MB for a ``set`` of
strings); a lookup is one C-level bisect. A false positive needs a CRC collision with one of
82,765 words (p ≈ 2e-5 per unknown word), harmless for a skip decision.
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Iterable
from bisect import bisect_left
from functools import lru_cache
from importlib import resources

DICTIONARY_FILE = "frequency_dictionary_en_82_765.txt"


def dictionary_path() -> str:
    """Filesystem path of the bundled frequency dictionary."""
    return str(resources.files("symspellpy") / DICTIONARY_FILE)


class WordList:
    """Membership test for lower-case English words."""

    __slots__ = ("_hashes", "_memo")

    MEMO_SIZE = 8192  # answers kept for the most recent words (cleared when full): ~1 MB at most

    def __init__(self, words: Iterable[str]) -> None:
        self._hashes = array("I", sorted({zlib.crc32(w.lower().encode()) for w in words}))
        self._memo: dict[str, bool] = {}

    def __contains__(self, word: object) -> bool:
        if type(word) is not str:
            return self._lookup(word)
        memo = self._memo
        found = memo.get(word)
        if found is None:  # a crc32 and a bisect over ~80k ints cost 3-4x a dict hit (the skip gate asks per word)
            found = self._lookup(word)
            if len(memo) >= self.MEMO_SIZE:
                memo.clear()
            memo[word] = found
        return found

    def _lookup(self, word: object) -> bool:
        if not isinstance(word, str):
            return False
        h = zlib.crc32(word.lower().encode())
        i = bisect_left(self._hashes, h)
        return i < len(self._hashes) and self._hashes[i] == h

    def __len__(self) -> int:
        return len(self._hashes)


@lru_cache(maxsize=1)
def english_words() -> WordList:
    """The bundled dictionary, loaded once per process (~0.3 s)."""
    with open(dictionary_path(), encoding="utf-8") as handle:
        return WordList(line.split(" ", 1)[0] for line in handle if line.strip())

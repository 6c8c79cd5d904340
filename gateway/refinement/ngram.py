"""CMU's US-English trigram language model, read by pocketsphinx (the gate's and cleaner's context).

The model is ``en-us.lm.bin`` from the ``pocketsphinx`` package (BSD-2-Clause; CMU Sphinx's
generic US-English model: 72k lower-case words, 2.05M bigrams, 1.67M trigrams, Katz back-off).
pocketsphinx's own reader (:class:`pocketsphinx.NGramModel`, C) loads it in ≈30 ms into ≈35 MB
and answers a back-off lookup in ≈0.4 µs. It is loaded once per process, on first use.

Scores are log10 probabilities. A word the model does not know gets :data:`OOV_LOG10`, and as
history it is simply forgotten (the model backs off to the shorter history).
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from typing import Any

MODEL_FILE = os.path.join("en-us", "en-us.lm.bin")
LOG10_PER_UNIT = math.log10(1.0001)
"""pocketsphinx reports probabilities as integer logs in base 1.0001."""
OOV_LOG10 = -7.0
"""log10 P of a word the model does not know (its rarest words score ≈ -6.6)."""
START = "<s>"
"""The history of a sentence's first word."""
UNKNOWN = -(2**28)
"""What pocketsphinx's raw lookup answers for a word it does not know (and below): a known word
in an unlikely place can score under :data:`OOV_LOG10`, never this low."""


class TrigramModel:
    """log10 probabilities of lower-case words given up to two words before them."""

    __slots__ = ("raw",)

    def __init__(self, model: Any) -> None:
        self.raw = model.prob
        """pocketsphinx's own lookup: ``raw([word, prev, prev2])`` in units of :data:`LOG10_PER_UNIT`
        (an unknown word: below ``-2**28``), for loops that compare many scores."""

    def logprob(self, word: str, prev: str | None = None, prev2: str | None = None) -> float:
        """log10 P(``word`` | ``prev2`` ``prev``); ``None`` history is left out (back-off)."""
        if prev is None:
            raw = self.raw([word])
        elif prev2 is None:
            raw = self.raw([word, prev])
        else:
            raw = self.raw([word, prev, prev2])
        return OOV_LOG10 if raw <= UNKNOWN else raw * LOG10_PER_UNIT

    def knows(self, word: str) -> bool:
        """Whether ``word`` (lower case) is in the model's vocabulary."""
        return self.raw([word]) > UNKNOWN


def model_path() -> str:
    """Where pocketsphinx keeps ``en-us.lm.bin``."""
    from pocketsphinx import get_model_path

    return os.path.join(get_model_path(), MODEL_FILE)


@lru_cache(maxsize=1)
def trigram_model() -> TrigramModel:
    """The process's model, loaded on first use (≈30 ms, ≈35 MB)."""
    from pocketsphinx import NGramModel

    return TrigramModel(NGramModel.readfile(model_path()))

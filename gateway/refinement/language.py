"""Is a prompt English? A cheap test on function words and other languages' common words (pure).

English prose of any subject is dense in a few hundred function words (``the``, ``of``, ``is``,
``what``…). Other languages that share the Latin alphabet are dense in their own common words
(wordfreq's lists for 26 of them), which English uses far less (``est``, ``und``, ``entre``), and
often in letters English does not use. Typos are neither, so a prompt full of them stays English.
Names say nothing of the language: capitalised words inside a sentence are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.refinement.keyboard import slips
from gateway.refinement.lexicon import Lexicon
from gateway.refinement.tokens import Word

FUNCTION_WORDS = frozenset(
    """the of and to in is that for it was on with as be at by this are or from an but not have
    has had what which who whom whose when where why how do does did can could will would should
    may might must shall if then than so its it's there their they them these those we you your
    he she his her him our us me my i'm i've you're we're they're isn't aren't don't doesn't didn't
    been being were about into over after before between through during without within under
    above each every all any some no more most other such only also very just both either neither
    one two three first many much few less least same own again ever never here well because while
    although though whether until since up out off down let please give write explain describe
    tell list find make use following answer question""".split()
)

MIN_WORDS = 4
ENGLISH_FUNCTION_SHARE = 0.25
"""At least this share of English function words: English, however many typos."""
MAX_FUNCTION_SHARE = 0.2
MIN_FOREIGN_SHARE = 0.25
FOREIGN_MARGIN = 1.0
"""A word is foreign when another language uses it this much (log10) more than English does..."""
TYPO_OF_ZIPF = 4.5
"""...and it is not one keyboard slip from an English word this common (``teh`` is Malay for tea)."""
FOREIGN_SHARE_ALONE = 0.4


def looks_non_english(words: Sequence[Word], lexicon: Lexicon) -> bool:
    """True for a prompt in another language (refining it as English would damage it)."""
    common = [w for w in words if w.sentence_start or not w.text[0].isupper()]  # names say nothing
    if len(common) < MIN_WORDS:
        return False
    function = sum(1 for w in common if w.lower in FUNCTION_WORDS) / len(common)
    if function >= ENGLISH_FUNCTION_SHARE:
        return False
    foreign = sum(1 for w in common if _foreign(w.lower, lexicon)) / len(common)
    if foreign >= FOREIGN_SHARE_ALONE:
        return True
    return foreign >= MIN_FOREIGN_SHARE and function <= MAX_FUNCTION_SHARE


def _foreign(lower: str, lexicon: Lexicon) -> bool:
    """Letters English does not use, or a common word of another language that English uses far
    less (``est``, ``la``, ``und``; not ``was`` or ``in``)."""
    if not lower.isascii():
        return True
    elsewhere = lexicon.foreign.zipf(lower)
    if not elsewhere or elsewhere - lexicon.table.zipf(lower) < FOREIGN_MARGIN:
        return False
    return not any(lower in slips(c) for c in lexicon.neighbours(lower) if lexicon.table.zipf(c) >= TYPO_OF_ZIPF)

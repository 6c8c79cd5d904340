"""The garbage collector's settings for a serving process (pure CPython ``gc`` calls, no I/O).

A request allocates a few hundred container objects that reference counting frees; the cyclic
collector still runs a young-generation pass every 700 net allocations, and every so often a full
pass over everything start-up built (routes, config models, the lexicon's tables, the imported
modules: 100k+ objects). Measured under load (`bench/run.py`'s fake upstream, refinement off)
that was ≈56 µs of CPU per request, a fifth of the gateway's cost. Two standard remedies:

* :func:`settle` after start-up: one collection, then :func:`gc.freeze` moves the survivors to
  the permanent generation, which no later pass scans;
* a higher young-generation threshold (:data:`GEN0_THRESHOLD`): a pass costs about the objects of
  the requests in flight, whatever the threshold, so fewer passes cost less in all. A request
  leaves no cyclic garbage behind (checked with ``gc.DEBUG_SAVEALL`` after a load run), so memory
  does not grow for it.

Together: ≈1 µs of collector time per request instead of ≈56. A reload builds a new runtime and
retires the old one; :func:`resettle` then lets the collector see the frozen objects again, so an
old runtime's reference cycles are freed, and freezes what is left.

A serving process preloads what it will only read — imports, the lexicon, the language model, the
speller — and :func:`freeze_preloaded` freezes it *before* the app is built: in ``serve --workers
N`` the supervisor does it before forking, so every worker shares those pages copy-on-write, and
no later pass writes to them. What start-up builds after that (a runtime: a few thousand objects)
stays collectable, so a reload frees an old runtime with a plain collection of those few objects
(:func:`resettle`), without the ~250 ms full pass that unfreezing everything costs.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 10_000
"""Net container allocations between young-generation passes (CPython's default: 700)."""

_preloaded = False  # freeze_preloaded ran: the frozen objects are read-only resources, maybe shared


def freeze_preloaded() -> None:
    """After preloading, before the app is built (and before forking workers)."""
    global _preloaded
    gc.collect()
    gc.freeze()
    _preloaded = True


def preloaded() -> bool:
    """Whether this process (or the supervisor it was forked from) froze its preloaded resources."""
    return _preloaded


def settle() -> None:
    """Once start-up is done: collect, freeze it when nothing was preloaded (an app built by other
    code), and raise the young generation's threshold."""
    gc.collect()
    if not _preloaded:
        gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


def resettle() -> None:
    """After a reload retired a runtime: collect its cycles. With preloaded resources frozen the
    runtime never was, so a collection suffices; else unfreeze, collect and freeze again."""
    if _preloaded:
        gc.collect()
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()

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

A worker forked by ``serve --workers N`` (:func:`forked`) inherits what the supervisor preloaded
and froze before the fork, shared copy-on-write: it never unfreezes those (a collection over them
would write to every page and copy them), and does not freeze its own objects either (a few
thousand: its runtime, which a reload must be able to free), so its collections stay small.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 10_000
"""Net container allocations between young-generation passes (CPython's default: 700)."""

_inherited = False  # a forked worker: the frozen objects are the supervisor's, shared


def forked() -> None:
    """In a worker forked from a preloading supervisor (see the module docstring)."""
    global _inherited
    _inherited = True


def settle() -> None:
    """Freeze what start-up built and raise the young generation's threshold (once it is built)."""
    gc.collect()
    if not _inherited:
        gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


def resettle() -> None:
    """After a reload retired a runtime: collect everything again (its cycles), then freeze (a
    forked worker: collect its own objects; the shared ones stay frozen)."""
    if _inherited:
        gc.collect()
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()

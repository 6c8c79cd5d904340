"""A bounded memo of the skip gate's verdicts, by tenant partition and prompt text.

The gate (:func:`gateway.refinement.gate.decide`) is a pure function of the text, the lexicon and
the gate's settings, all fixed for one :class:`~gateway.refinement.pipeline.Refiner` (a reload
builds a new one, with an empty memo). A prompt sent again — a retry, a templated prompt, many
users asking the same question, a load test — gets its verdict for a dictionary lookup instead of
a scan with language-model lookups (≈0.3 µs against tens of µs; ``bench/features.py``).

Bounded: at most :data:`MAX_ENTRIES` verdicts of prompts up to :data:`MAX_CHARS` characters
(longer ones are judged every time: they rarely repeat), so at most ≈2 MB of ASCII text (≈8 MB
of 4-byte characters); the oldest
verdict goes first. Keyed by the tenant's partition as the refinement cache is, so how fast one
tenant's prompt is judged says nothing about another tenant's prompts.
"""

from __future__ import annotations

from gateway.refinement.gate import GateDecision

MAX_ENTRIES = 2048
MAX_CHARS = 1000


class GateMemo:
    """``get``/``put`` of :class:`GateDecision` by (partition, text); first in, first out."""

    __slots__ = ("_verdicts", "max_entries")

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._verdicts: dict[tuple[str, str], GateDecision] = {}
        self.max_entries = max_entries

    def get(self, partition: str, text: str) -> GateDecision | None:
        return self._verdicts.get((partition, text))

    def put(self, partition: str, text: str, decision: GateDecision) -> None:
        if len(text) > MAX_CHARS or self.max_entries <= 0:
            return
        verdicts = self._verdicts
        if len(verdicts) >= self.max_entries:
            del verdicts[next(iter(verdicts))]  # the oldest
        verdicts[(partition, text)] = decision

    def __len__(self) -> int:
        return len(self._verdicts)

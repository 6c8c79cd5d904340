"""Recent refinement outcomes for the operator (``GET /admin/status``): verdicts and counts only.

A bounded ring of the last refinements plus counters since the process started. An entry holds
the model, the mode, the ``x-mpr-refinement`` value, the elapsed time, each stage's verdict kind
and the HTTP status the request was answered with — never prompt text, never a stage's output.

An entry is recorded when its refinement finishes, before the target is called; the telemetry
middleware :meth:`~RecentRefinements.settle`\ s it with the response's status once the request is
over (the entry of this request travels in a context variable). A request answered 4xx/5xx (the
target failed, or the client left) counts as ``failed``, whatever its refinement did.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from contextvars import ContextVar
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from gateway.refinement.results import RefinementOutcome, StageVerdict

RESULTS = ("applied", "rejected", "skipped", "fallback", "failed")
VERDICTS = ("accepted", "rejected", "failed")
WINDOW_S = 300.0  # the "recent" figures: the last five minutes (at most :data:`RING` refinements)
RING = 512
SHOWN = 50  # entries ``snapshot`` lists


def settled_result(result: str, status: int) -> str:
    """A refinement's result once its request is answered: ``failed`` for a 4xx/5xx answer."""
    return "failed" if status >= 400 else result


def outcome_result(outcome: RefinementOutcome) -> str:
    """``applied`` (a stage's rewrite went out), ``rejected`` (stages answered, none accepted),
    ``skipped`` (the gate, a control or no text) or ``fallback`` (refinement failed: original sent)."""
    header = outcome.header
    if header.startswith("skipped"):
        return "skipped"
    if header.startswith("fallback"):
        return "fallback"
    if outcome.merged is not None:
        return "applied" if outcome.merged.applied else "rejected"
    return "fallback"


def verdict_kind(verdict: StageVerdict) -> str:
    """``accepted``, ``failed`` (error or timeout) or ``rejected`` (drift, length, echo…)."""
    if verdict.accepted:
        return "accepted"
    return "failed" if verdict.error is not None else "rejected"


RecentOutcome: TypeAlias = "list[Any]"
"""One finished refinement, as the operator sees it: a list indexed by :data:`AT` … :data:`STATUS`
(made by a C call; a dataclass's ``__init__`` runs Python code on every request: issue 24).
``STATUS`` (and ``RESULT``) change once, when its request is answered (None: still in flight, or a
shadow run)."""
AT, MODEL, MODE, HEADER, RESULT, ELAPSED_MS, CACHE, STAGES, STATUS = range(9)
# STAGES: role → accepted | rejected | failed


def entry_dict(entry: RecentOutcome) -> dict[str, Any]:
    """An entry as ``GET /admin/status`` lists it."""
    return {
        "at": round(entry[AT], 3),
        "model": entry[MODEL],
        "mode": entry[MODE],
        "refinement": entry[HEADER],
        "result": entry[RESULT],
        "status": entry[STATUS],
        "elapsed_ms": round(entry[ELAPSED_MS], 2),
        "cache": entry[CACHE],
        "stages": dict(entry[STAGES]),
    }


_NO_VERDICTS: dict[str, str] = {}
"""The stage verdicts of a refinement that ran no stage (read only)."""

# The entry this request recorded, for :meth:`RecentRefinements.settle` (the telemetry middleware
# opens a fresh slot per request; a refinement in the request's task fills it).
PENDING: ContextVar[list[RecentOutcome] | None] = ContextVar("mpr_recent_pending", default=None)


def tally(entries: Iterable[RecentOutcome]) -> tuple[Counter[str], dict[str, Counter[str]]]:
    """Counts by result, and by stage then verdict kind."""
    results: Counter[str] = Counter()
    stages: dict[str, Counter[str]] = {}
    for entry in entries:
        results[entry[RESULT]] += 1
        for role, kind in entry[STAGES].items():
            stages.setdefault(role, Counter())[kind] += 1
    return results, stages


def rates(counts: Counter[str]) -> dict[str, Any]:
    """``{accepted, rejected, failed, acceptance_rate}`` (rate None before any verdict)."""
    total = sum(counts[k] for k in VERDICTS)
    body: dict[str, Any] = {k: counts[k] for k in VERDICTS}
    body["acceptance_rate"] = round(counts["accepted"] / total, 4) if total else None
    return body


class RecentRefinements:
    """The ring and the since-start counters (one per process, kept across reloads)."""

    def __init__(self, size: int = RING, clock: Callable[[], float] = time.time) -> None:
        self.ring: deque[RecentOutcome] = deque(maxlen=size)
        self.clock = clock
        self.results: dict[str, int] = dict.fromkeys(RESULTS, 0)
        self.stages: dict[str, Counter[str]] = {}
        self.cache_hits = 0

    def record(self, outcome: RefinementOutcome, model: str, mode: str, header: str) -> None:
        """A finished refinement; a cache hit ran no stage, so it adds no verdicts."""
        verdicts = _NO_VERDICTS  # shared, never changed: a skip (most traffic) allocates no dict
        hit = outcome.cache == "hit"
        if outcome.merged is not None and not hit:
            verdicts = {role.value: verdict_kind(v) for role, v in outcome.merged.verdicts.items()}
        result = outcome_result(outcome)
        entry = [self.clock(), model, mode, header, result, outcome.elapsed_ms, outcome.cache, verdicts, None]
        if mode != "shadow":  # a shadow run ends on its own, after the answer
            slot = PENDING.get()
            if slot is not None:
                slot.append(entry)
        self.ring.append(entry)
        self.results[result] += 1  # a plain dict (every result a key): its `+= 1` is specialised, a Counter's is not
        if hit:
            self.cache_hits += 1
        elif verdicts:
            for role, kind in verdicts.items():
                self.stages.setdefault(role, Counter())[kind] += 1

    def settle(self, entries: list[RecentOutcome], status: int) -> None:
        """The request these ``entries`` belong to was answered ``status``: a 4xx/5xx makes them ``failed``."""
        if status < 400:  # most answers: every result stands
            for entry in entries:
                if entry[STATUS] is None:
                    entry[STATUS] = status
            return
        for entry in entries:
            if entry[STATUS] is not None:
                continue
            entry[STATUS] = status
            result = settled_result(entry[RESULT], status)
            if result != entry[RESULT]:
                self.results[entry[RESULT]] -= 1
                self.results[result] += 1
                entry[RESULT] = result

    def snapshot(self, window_s: float = WINDOW_S, shown: int = SHOWN) -> dict[str, Any]:
        """Counts since start and over the last ``window_s``, per-stage rates, the newest entries."""
        since = self.clock() - window_s
        recent = [e for e in self.ring if e[AT] >= since]
        w_results, w_stages = tally(recent)
        roles = sorted({*self.stages, *w_stages})
        return {
            "since_start": {"total": sum(self.results.values()), "results": {r: self.results[r] for r in RESULTS}, "cache_hits": self.cache_hits},
            "window": {"seconds": window_s, "total": len(recent), "results": {r: w_results[r] for r in RESULTS}},
            "stages": {
                role: {"since_start": rates(self.stages.get(role, Counter())), "window": rates(w_stages.get(role, Counter()))}
                for role in roles
            },
            "recent": [entry_dict(e) for e in list(self.ring)[-shown:][::-1]],
        }

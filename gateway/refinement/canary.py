"""Trying a new adapter version on live traffic: a canary for one refinement stage.

``adapters.<role>.canary: {model, share, min_requests, alpha}`` sends ``share`` of the stage's calls
to the candidate LoRA ``model`` instead of the stable one. Which prompts go there is **sticky**: a
prompt's BLAKE2b hash decides (:func:`routes_to_candidate`), so the same text always meets the same
version and the refinement cache and conversation history stay consistent.

Every verdict of the merge is counted per arm (accepted, rejected by drift control or as noise,
failed; ``unchanged`` — the stage rightly left the text alone — is counted but not judged). Once both arms have ``min_requests`` verdicts, :func:`judge` runs a one-sided
two-proportion z-test on the share of verdicts that were *not* accepted: when the candidate's is
higher with p < ``alpha`` the canary **rolls back** by itself (every call goes to the stable model
again) and says so on ``/admin/events`` (``canary.rolled_back``). An operator promotes or rolls
back by hand (``POST /admin/canary/{role}/promote|rollback``, ``mpr-gateway canary``). The test
runs after every verdict once the minimum is reached (repeated looks inflate the false-alarm rate,
hence the strict default ``alpha`` of 0.001).

Each gateway process judges its own share of the traffic. A verdict — the test's or an operator's —
is kept in the shared state (Redis, or the server's directory under ``serve --workers N``): every
process of the server (every replica, with Redis) adopts it within a second, and a reload keeps it
(the counts start afresh).
"""

from __future__ import annotations

import hashlib
import math

import msgspec
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

State = Literal["active", "rolled_back", "promoted"]
Arm = Literal["stable", "candidate"]
Outcome = Literal["accepted", "rejected", "failed", "unchanged"]
OUTCOMES: tuple[Outcome, ...] = ("accepted", "rejected", "failed", "unchanged")


def verdict_outcome(failed: bool, accepted: bool, reason: str | None) -> Outcome:
    """A merge verdict as a canary outcome (pure): ``unchanged`` — the stage rightly left the text
    as it was — is neutral, neither success nor failure, and stays out of the test."""
    if failed:
        return "failed"
    if accepted:
        return "accepted"
    return "unchanged" if reason == "unchanged" else "rejected"


def routes_to_candidate(text: str, share: float) -> bool:
    """Whether ``text`` goes to the candidate: its hash, as a fraction of 2**64, is below ``share``
    (pure and sticky: the same text, the same answer, in every process)."""
    if share <= 0.0:
        return False
    if share >= 1.0:
        return True
    fraction = int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big") / 2**64
    return fraction < share


@dataclass(slots=True)
class ArmCounts:
    """One arm's verdicts and the latency and drift of its calls."""

    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    unchanged: int = 0  # neutral: not judged
    latency_ms: float = 0.0
    drift_sum: float = 0.0
    drift_n: int = 0

    @property
    def total(self) -> int:
        """The judged verdicts (``unchanged`` ones are not)."""
        return self.accepted + self.rejected + self.failed

    @property
    def not_accepted(self) -> int:
        return self.rejected + self.failed

    def as_dict(self) -> dict[str, Any]:
        total = self.total
        return {
            "verdicts": total,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "failed": self.failed,
            "unchanged": self.unchanged,
            "acceptance_rate": round(self.accepted / total, 4) if total else None,
            "mean_latency_ms": round(self.latency_ms / (total + self.unchanged), 2) if total + self.unchanged else None,
            "mean_drift": round(self.drift_sum / self.drift_n, 4) if self.drift_n else None,
        }


@dataclass(frozen=True, slots=True)
class Judgement:
    """:func:`judge`'s answer: ``worse`` (roll back), the z statistic and one-sided p-value (None
    before both arms have the minimum)."""

    worse: bool
    z: float | None = None
    p_value: float | None = None


def judge(stable: ArmCounts, candidate: ArmCounts, min_requests: int, alpha: float) -> Judgement:
    """Is the candidate worse? One-sided two-proportion z-test (pooled) on the share of verdicts not
    accepted, once each arm has ``min_requests`` (pure)."""
    n1, n2 = candidate.total, stable.total
    if n1 < min_requests or n2 < min_requests:
        return Judgement(False)
    p1, p2 = candidate.not_accepted / n1, stable.not_accepted / n2
    pooled = (candidate.not_accepted + stable.not_accepted) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        worse = p1 > p2
        return Judgement(worse, None, 0.0 if worse else 1.0)
    z = (p1 - p2) / math.sqrt(variance)
    p_value = 0.5 * math.erfc(z / math.sqrt(2))  # P(Z >= z)
    return Judgement(p_value < alpha, round(z, 3), p_value)


@dataclass(slots=True)
class Canary:
    """One stage's canary in this process: which model a call uses, what each arm did, the state."""

    role: str
    stable_model: str
    model: str
    share: float
    min_requests: int = 200
    alpha: float = 0.001
    auto_rollback: bool = True
    state: State = "active"
    arms: dict[str, ArmCounts] = field(default_factory=lambda: {"stable": ArmCounts(), "candidate": ArmCounts()})
    last: Judgement = field(default_factory=lambda: Judgement(False))
    changed_at: float = field(default_factory=time.time)
    reason: str | None = None
    on_change: Callable[[Canary, str, bool], None] | None = None  # (canary, event kind, adopted from another process)

    @property
    def fingerprint(self) -> str:
        """What the refinement cache's key must know of the canary (a rollback or promotion changes
        which version answers a prompt)."""
        return f"canary:{self.model}:{self.share:g}:{self.state}"

    def arm(self, text: str) -> Arm:
        """The arm of a call for ``text``."""
        if self.state == "promoted":
            return "candidate"
        if self.state == "rolled_back":
            return "stable"
        return "candidate" if routes_to_candidate(text, self.share) else "stable"

    def record(self, arm: Arm, outcome: Outcome, latency_ms: float, drift: float | None) -> None:
        """Count one verdict; an active canary whose candidate is now worse rolls back."""
        counts = self.arms[arm]
        if outcome == "accepted":
            counts.accepted += 1
        elif outcome == "rejected":
            counts.rejected += 1
        elif outcome == "unchanged":
            counts.unchanged += 1
        else:
            counts.failed += 1
        counts.latency_ms += latency_ms
        if drift is not None:
            counts.drift_sum += drift
            counts.drift_n += 1
        if self.state != "active":
            return
        self.last = judge(self.arms["stable"], self.arms["candidate"], self.min_requests, self.alpha)
        if self.last.worse and self.auto_rollback:
            self.set_state("rolled_back", f"candidate worse: p={self.last.p_value:.2g} < alpha {self.alpha:g}")

    def set_state(self, state: State, reason: str, adopted: bool = False) -> bool:
        """Promote or roll back (False: already so); ``adopted``: another process's verdict, read
        from the shared state (it is not written back)."""
        if self.state == state:
            return False
        self.state, self.reason, self.changed_at = state, reason, time.time()
        if self.on_change is not None:
            self.on_change(self, f"canary.{state}", adopted)
        return True

    @property
    def record_key(self) -> str:
        """Where the verdict lives in the shared state (per stage and candidate)."""
        return f"canary:{self.role}:{self.model}"

    def verdict(self) -> bytes:
        """The verdict as stored for the other processes (and the next runtime after a reload)."""
        return msgspec.json.encode({"state": self.state, "reason": self.reason})

    def adopt(self, raw: bytes | None) -> bool:
        """Take a stored verdict (from another process, or before a reload); False: nothing new."""
        if raw is None:
            return False
        try:
            stored = msgspec.json.decode(raw)
            state, reason = stored["state"], stored.get("reason")
        except (msgspec.DecodeError, KeyError, TypeError):
            return False
        if state not in ("active", "rolled_back", "promoted"):
            return False
        return self.set_state(state, str(reason or "shared verdict"), adopted=True)

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "stable": self.stable_model,
            "candidate": self.model,
            "share": self.share,
            "state": self.state,
            "reason": self.reason,
            "changed_at": round(self.changed_at, 3),
            "min_requests": self.min_requests,
            "alpha": self.alpha,
            "arms": {name: counts.as_dict() for name, counts in self.arms.items()},
            "test": {"z": self.last.z, "p_value": self.last.p_value, "worse": self.last.worse},
        }

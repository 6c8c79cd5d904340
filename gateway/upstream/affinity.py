"""Cache-aware choice of a target replica (pure): consistent hashing with bounded loads.

A target with several endpoints (replicas) and ``balance: affinity`` sends every request with an
affinity key (a conversation, an agent loop, a client's ``prompt_cache_key``) to the key's *home*
replica — the first endpoint clockwise from the key's hash on a ring of virtual nodes — so that
turn N+1 lands where turn N left its prefix in the KV cache. Two guards keep that from hurting:

* **bounded loads** (Mirrokni, Thorup, Zadimoghaddam 2018): a replica takes the request only while
  its requests in flight stay under ``ceil((1 + ε) × (total in flight + 1) / ready replicas)``;
  past it the request *spills* to the next replica on the ring, so one hot conversation cannot
  sink a replica and the spread stays within ``(1 + ε)`` of the mean;
* **health**: a replica cooling down is passed over; its keys *move* to the next on the ring (the
  same next replica for all of them, every gateway agreeing) and come back when it returns.

A request without a key is balanced by least outstanding requests, as with
``balance: least_outstanding``. Keys hash with BLAKE2b, stable across processes and gateway
replicas (Python's ``hash()`` is salted per process).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Sequence
from typing import Literal, Protocol, TypeVar

VNODES = 64
"""Ring points per endpoint: enough for an even split of keys between a handful of replicas."""

Result = Literal["hit", "spill", "moved", "none"]
"""How a request was placed: on its home replica, past it (overloaded), past it (cooling down),
or without an affinity key (least outstanding)."""
RESULTS: tuple[Result, ...] = ("hit", "spill", "moved", "none")


class Replica(Protocol):
    """What the choice reads of an endpoint."""

    url: str
    outstanding: int
    cooldown_until: float


R = TypeVar("R", bound=Replica)


def key_hash(*parts: str) -> int:
    """A stable 64-bit hash of ``parts`` (an affinity key's ingredients)."""
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    return int.from_bytes(digest.digest(), "big")


class Ring:
    """The ring of one set of endpoint URLs: for any key hash, the endpoints in ring order."""

    __slots__ = ("urls", "_points", "_owners", "_orders")

    def __init__(self, urls: Sequence[str], vnodes: int = VNODES) -> None:
        self.urls = tuple(urls)
        points = sorted((key_hash(url, str(v)), index) for index, url in enumerate(self.urls) for v in range(vnodes))
        self._points = [p for p, _ in points]
        self._owners = [i for _, i in points]
        self._orders: dict[int, tuple[int, ...]] = {}  # ring point → its order, walked once when first needed

    def order(self, hashed: int) -> tuple[int, ...]:
        """Endpoint indices (into :attr:`urls`) from the key's home clockwise, each once."""
        points = self._points
        if not points:
            return ()
        start = bisect.bisect_left(points, hashed)
        if start == len(points):
            start = 0
        order = self._orders.get(start)
        if order is None:
            order = self._orders[start] = self._walk(start)
        return order

    def _walk(self, start: int) -> tuple[int, ...]:
        owners, count = self._owners, len(self.urls)
        seen: list[int] = []
        found: set[int] = set()
        at = start
        while len(seen) < count:
            owner = owners[at]
            if owner not in found:
                found.add(owner)
                seen.append(owner)
            at = at + 1 if at + 1 < len(owners) else 0
        return tuple(seen)


def load_bound(total_in_flight: int, ready: int, epsilon: float) -> int:
    """The most requests in flight a replica may hold after taking one more: ``ceil((1 + ε) ×
    (total + 1) / ready)`` (at least 1)."""
    return max(1, math.ceil((1.0 + epsilon) * (total_in_flight + 1) / max(1, ready)))


def choose_affine(endpoints: Sequence[R], order: Sequence[int], now: float, epsilon: float) -> tuple[R | None, Result]:
    """The replica for a request whose key's ring ``order`` is given (indices into ``endpoints``):
    the first ready one in that order whose load stays within :func:`load_bound`. None when no
    replica is ready (the caller falls back to its usual choice)."""
    ready = total = 0
    for endpoint in endpoints:
        if endpoint.cooldown_until <= now:
            ready += 1
            total += endpoint.outstanding
    if not ready or not order:
        return None, "moved"
    bound = load_bound(total, ready, epsilon)
    home_ready = True
    for rank, index in enumerate(order):
        endpoint = endpoints[index]
        if endpoint.cooldown_until > now:
            if rank == 0:
                home_ready = False
            continue
        if endpoint.outstanding + 1 <= bound:
            if rank == 0:
                return endpoint, "hit"
            return endpoint, "spill" if home_ready else "moved"
    return None, "moved"  # unreachable: the least loaded ready replica is always within the bound

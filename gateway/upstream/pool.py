"""Endpoint pools: least-outstanding-requests balancing with cool-down of failed endpoints, or
(``balance: affinity``, targets) a request's affinity key's home replica with bounded loads
(:mod:`gateway.upstream.affinity`).

Pure state plus a clock; no I/O (``on_failure`` hands verdicts to whoever shares them). One :class:`EndpointPool` per target and per adapter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gateway.upstream.affinity import RESULTS, Ring, choose_affine
from gateway.upstream.latency import LatencyWindow
from gateway.upstream.tiers import choose


@dataclass(slots=True)
class Endpoint:
    """One OpenAI-compatible base URL and what the gateway knows of it."""

    url: str
    outstanding: int = 0
    cooldown_until: float = 0.0
    up: bool = True
    last_probe_at: float | None = None
    last_probe_ms: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    model: str | None = None  # the model name stages send to this endpoint (a registered worker's LoRA); None: the adapter's
    tier: str | None = None  # gpu | cpu (declared in the config, or announced by a registered worker)
    source: str = "config"  # config | registered
    latency: LatencyWindow = field(default_factory=LatencyWindow)  # recent completed calls (ms)

    @property
    def node(self) -> str:
        """The host part of the URL (the machine serving it)."""
        return urlsplit(self.url).hostname or self.url

    def status(self, now_wall: float, now_mono: float) -> dict[str, object]:
        """JSON-ready view for ``/ready``."""
        age = None if self.last_probe_at is None else round(now_mono - self.last_probe_at, 3)
        return {
            "url": self.url,
            "up": self.up,
            "outstanding": self.outstanding,
            "cooling_down": self.cooldown_until > now_mono,
            "last_probe_age_s": age,
            "last_probe_ms": self.last_probe_ms,
            "last_error": self.last_error,
            "tier": self.tier,
            "source": self.source,
        }


@dataclass(slots=True)
class EndpointPool:
    """Pick the endpoint with the fewest requests in flight, skipping ones cooling down."""

    name: str
    endpoints: list[Endpoint]
    cooldown_s: float = 5.0
    clock: Callable[[], float] = field(default=time.monotonic)
    on_failure: Callable[[EndpointPool, Endpoint, str], None] | None = None  # publishes the verdict (shared state)
    on_change: Callable[[EndpointPool, Endpoint], None] | None = None  # an endpoint went up or down (operator events)
    prefer: str = "none"  # gpu | cpu | none: the tier that takes traffic first (:mod:`gateway.upstream.tiers`)
    max_inflight: int = 4  # requests in flight at which an endpoint counts as saturated
    balance: str = "least_outstanding"  # or affinity: a keyed request goes to its home replica (bounded loads)
    epsilon: float = 0.25  # affinity: no replica above (1 + epsilon) x the mean in flight
    placed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESULTS, 0))  # affinity results (metrics)
    _ring: Ring | None = field(default=None, repr=False)
    _ring_of: list[Endpoint] | None = field(default=None, repr=False)  # the endpoints list the ring was built for

    @classmethod
    def of(cls, name: str, urls: Iterable[str], cooldown_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> EndpointPool:
        return cls(name, [Endpoint(u) for u in urls], cooldown_s, clock)

    def pick(self, exclude: Iterable[Endpoint] = (), affinity: int | None = None) -> Endpoint | None:
        """Best endpoint not in ``exclude``; when all are cooling down, the one that recovers first.
        With ``balance: affinity`` and an ``affinity`` key hash, the key's replica (bounded loads)."""
        if self.balance == "affinity" and len(self.endpoints) > 1:
            return self._pick_affine(exclude, affinity)
        if not exclude:
            return choose(self.endpoints, self.clock(), self.prefer, self.max_inflight)
        excluded = set(id(e) for e in exclude)
        candidates = [e for e in self.endpoints if id(e) not in excluded]
        return choose(candidates, self.clock(), self.prefer, self.max_inflight)

    def _pick_affine(self, exclude: Iterable[Endpoint], affinity: int | None) -> Endpoint | None:
        endpoints = self.endpoints
        excluded = {id(e) for e in exclude} if exclude else None
        if affinity is None:
            candidates = endpoints if excluded is None else [e for e in endpoints if id(e) not in excluded]
            self.placed["none"] += 1
            return choose(candidates, self.clock(), self.prefer, self.max_inflight)
        ring = self._ring
        if ring is None or self._ring_of is not endpoints:  # add() and remove() replace the list
            ring = self._ring = Ring([e.url for e in endpoints])
            self._ring_of = endpoints
        order = ring.order(affinity)
        if excluded is not None:
            order = tuple(i for i in order if id(endpoints[i]) not in excluded)
        now = self.clock()
        chosen, result = choose_affine(endpoints, order, now, self.epsilon)
        if chosen is None:  # nothing ready: the one that recovers first, as without affinity
            chosen = choose([endpoints[i] for i in order], now, self.prefer, self.max_inflight)
        self.placed[result if excluded is None else "moved"] += 1
        return chosen

    def pinned(self, url: str) -> Endpoint | None:
        """The endpoint with ``url`` (a response's replica), or None when it left the pool."""
        for endpoint in self.endpoints:
            if endpoint.url == url:
                return endpoint
        return None

    def add(self, endpoint: Endpoint) -> bool:
        """Put ``endpoint`` into rotation (a registered worker); False when its URL is already here."""
        if any(e.url == endpoint.url for e in self.endpoints):
            return False
        self.endpoints = [*self.endpoints, endpoint]  # a new list: a running probe round keeps its own
        return True

    def remove(self, url: str, source: str = "registered") -> Endpoint | None:
        """Take the ``source`` endpoint with ``url`` out of the pool (configured ones stay unless asked)."""
        for endpoint in self.endpoints:
            if endpoint.url == url and endpoint.source == source:
                self.endpoints = [e for e in self.endpoints if e is not endpoint]
                return endpoint
        return None

    def acquire(self, endpoint: Endpoint) -> None:
        endpoint.outstanding += 1

    def release(self, endpoint: Endpoint, elapsed_s: float | None = None) -> None:
        """The call is over; ``elapsed_s`` (a completed call's latency) joins the recent window."""
        endpoint.outstanding -= 1
        if elapsed_s is not None:
            endpoint.latency.record(elapsed_s * 1000.0)

    def observe(self, endpoint: Endpoint, elapsed_s: float) -> None:
        """A latency recorded apart from the release (a stream: the time to its response headers)."""
        endpoint.latency.record(elapsed_s * 1000.0)

    def _flipped(self, endpoint: Endpoint) -> None:
        if self.on_change is not None:
            self.on_change(self, endpoint)

    def mark_failure(self, endpoint: Endpoint, error: str) -> None:
        """Take the endpoint out of rotation for ``cooldown_s``."""
        was_up = endpoint.up
        endpoint.consecutive_failures += 1
        endpoint.cooldown_until = self.clock() + self.cooldown_s
        endpoint.up = False
        endpoint.last_error = error
        if self.on_failure is not None:
            self.on_failure(self, endpoint, error)
        if was_up:
            self._flipped(endpoint)

    def apply_verdict(self, url: str, seconds: float, error: str) -> bool:
        """Another process's verdict: ``url`` out of rotation for ``seconds`` (not published again).
        False when no endpoint of this pool has that URL."""
        for endpoint in self.endpoints:
            if endpoint.url == url:
                was_up = endpoint.up
                endpoint.cooldown_until = max(endpoint.cooldown_until, self.clock() + seconds)
                endpoint.up = False
                endpoint.last_error = f"shared: {error}"
                if was_up:
                    self._flipped(endpoint)
                return True
        return False

    def mark_success(self, endpoint: Endpoint) -> None:
        if endpoint.consecutive_failures or not endpoint.up:
            was_up = endpoint.up
            endpoint.consecutive_failures = 0
            endpoint.cooldown_until = 0.0
            endpoint.up = True
            endpoint.last_error = None
            if not was_up:
                self._flipped(endpoint)

    def record_probe(self, endpoint: Endpoint, ok: bool, latency_ms: float, error: str | None) -> None:
        """A health probe result: up endpoints leave cool-down at once, down ones enter it."""
        endpoint.last_probe_at = self.clock()
        endpoint.last_probe_ms = round(latency_ms, 2)
        if ok:
            self.mark_success(endpoint)
            endpoint.last_error = error  # e.g. http_429: up, but /ready shows the endpoint sheds load
        else:
            self.mark_failure(endpoint, error or "probe failed")

    @property
    def any_up(self) -> bool:
        return any(e.up for e in self.endpoints)

    def status(self) -> list[dict[str, object]]:
        now_mono = self.clock()
        return [e.status(time.time(), now_mono) for e in self.endpoints]

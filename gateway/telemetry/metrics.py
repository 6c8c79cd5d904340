"""Prometheus metrics (``GET /metrics``), in a registry of the app's own (no process globals).

Labels are bounded: ``route`` is the matched route template, ``model`` a configured target name
(or ``-``), ``status`` the HTTP status, ``stage`` one of the three roles, ``mode`` ``apply`` or
``shadow``, ``outcome``/``reason``/``result`` small fixed sets.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.process_collector import ProcessCollector

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Request latency: from sub-millisecond pass-through to multi-minute generations.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Refinement and stage latency: bounded by the refinement deadline (seconds).
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
TTFB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

# Drift of a stage's output against the original (0 = same text, 1 = nothing in common); 0.18 is
# the default rewrite bound, so the buckets are dense around it.
DRIFT_BUCKETS = (0.02, 0.05, 0.1, 0.15, 0.18, 0.25, 0.35, 0.5, 0.75, 1.0)
# Refinement's share of the time to the first response byte (0..1).
SHARE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)

STAGE_OUTCOMES = ("accepted", "rejected_drift", "rejected_other", "error", "timeout", "skipped")

PoolSource = Callable[[], Iterable[Any]]
"""Returns the live :class:`EndpointPool` objects (read at scrape time)."""


class _PoolCollector:
    """``mpr_upstream_endpoint_up`` / ``..._outstanding`` from the endpoint pools, at scrape time."""

    def __init__(self) -> None:
        self.sources: list[PoolSource] = []

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily(
            "mpr_upstream_endpoint_up",
            "1 when the upstream endpoint is considered up (last probe or call succeeded), else 0",
            labels=["kind", "pool", "endpoint"],
        )
        outstanding = GaugeMetricFamily(
            "mpr_upstream_endpoint_outstanding_requests",
            "Requests the gateway has in flight to the upstream endpoint",
            labels=["kind", "pool", "endpoint"],
        )
        for source in self.sources:
            for pool in source():
                kind, _, name = pool.name.partition(":")
                for endpoint in pool.endpoints:
                    labels = [kind, name or kind, endpoint.url]
                    up.add_metric(labels, 1.0 if endpoint.up else 0.0)
                    outstanding.add_metric(labels, float(endpoint.outstanding))
        yield up
        yield outstanding


class _AffinityCollector:
    """``mpr_target_affinity_total`` from the target pools placed by affinity, at scrape time (a
    counter of its own collector: ``serve --workers N`` sums it like any other)."""

    def __init__(self, pools: _PoolCollector) -> None:
        self.pools = pools

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        placed = CounterMetricFamily(
            "mpr_target_affinity",
            "Requests placed on a target's replicas by affinity (balance: affinity, several endpoints): hit (the key's "
            "home replica), spill (home over its load bound), moved (home cooling down, or a retry), none (no key)",
            labels=["target", "result"],
        )
        for source in self.pools.sources:
            for pool in source():
                kind, _, name = pool.name.partition(":")
                if kind == "target" and getattr(pool, "balance", None) == "affinity" and len(pool.endpoints) > 1:
                    for result, count in pool.placed.items():
                        placed.add_metric([name, result], float(count))
        yield placed


class _Histogram:
    """Cumulative-bucket histogram per label tuple; plain Python, no locks (one event loop)."""

    __slots__ = ("name", "help", "labelnames", "bounds", "series")

    def __init__(self, name: str, help: str, labelnames: tuple[str, ...], bounds: tuple[float, ...]) -> None:
        self.name, self.help, self.labelnames, self.bounds = name, help, labelnames, bounds
        self.series: dict[tuple[str, ...], list[float]] = {}  # [count per bucket..., +Inf count, sum]

    def child(self, labels: tuple[str, ...]) -> list[float]:
        values = self.series.get(labels)
        if values is None:
            values = self.series[labels] = [0.0] * (len(self.bounds) + 2)
        return values

    def observe(self, values: list[float], seconds: float) -> None:
        values[bisect_left(self.bounds, seconds)] += 1
        values[-1] += seconds

    def family(self) -> HistogramMetricFamily:
        fam = HistogramMetricFamily(self.name, self.help, labels=list(self.labelnames))
        for labels, values in self.series.items():
            cumulative, buckets = 0.0, []
            for bound, count in zip((*self.bounds, float("inf")), values[:-1]):
                cumulative += count
                buckets.append((floatToGoString(bound), cumulative))
            fam.add_metric(list(labels), buckets, values[-1])
        return fam


class _Counter:
    __slots__ = ("name", "help", "labelnames", "series")

    def __init__(self, name: str, help: str, labelnames: tuple[str, ...]) -> None:
        self.name, self.help, self.labelnames = name, help, labelnames
        self.series: dict[tuple[str, ...], float] = {}

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        self.series[labels] = self.series.get(labels, 0.0) + amount

    def family(self) -> CounterMetricFamily:
        fam = CounterMetricFamily(self.name, self.help, labels=list(self.labelnames))
        for labels, value in self.series.items():
            fam.add_metric(list(labels), value)
        return fam


class _Tally:
    """Stage-less refinements of one (gate decision, roles) since the last :meth:`Metrics.fold`:
    the counter series and labels each adds one to, and the duration histogram's child."""

    __slots__ = ("roles", "counts", "duration", "pending")

    def __init__(self, roles: Sequence[Any], counts: tuple[tuple[dict[Any, float], tuple[str, str]], ...], duration: list[float]) -> None:
        self.roles, self.counts, self.duration = roles, counts, duration
        self.pending = 0


class _InFlight:
    """A gauge child with ``inc``/``dec`` (the middleware's interface)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1


class Metrics:
    """Every gateway metric; one instance per app.

    The per-request metrics are plain counters and histograms updated without locks (the gateway
    is one event loop) and turned into Prometheus families only at scrape time: prometheus_client's
    locked values cost ~5% of a pass-through request's CPU.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        if process:
            ProcessCollector(registry=r)
        self.requests = _Counter("mpr_requests", "HTTP requests answered, by route template, model and status", ("route", "model", "status"))
        self.request_duration = _Histogram(
            "mpr_request_duration_seconds",
            "Time from request start to the last response byte (streams included), by route and model",
            ("route", "model"),
            REQUEST_BUCKETS,
        )
        self.stream_ttfb = _Histogram(
            "mpr_stream_time_to_first_byte_seconds",
            "Streaming responses: time from request start to the first body byte sent to the client",
            ("model",),
            TTFB_BUCKETS,
        )
        self.refinement_duration = _Histogram(
            "mpr_refinement_duration_seconds",
            "Wall time of the refinement step (gate, concurrent stages, merge), by result",
            ("result",),
            STAGE_BUCKETS,
        )
        self.stage_duration = _Histogram(
            "mpr_stage_duration_seconds",
            "Latency of one refinement stage call (errors and timeouts included), by stage",
            ("stage",),
            STAGE_BUCKETS,
        )
        self.stage_outcomes = _Counter(
            "mpr_stage_outcomes",
            "Refinement stage outcomes: accepted, rejected_drift, rejected_other, error, timeout, skipped",
            ("stage", "outcome"),
        )
        self.gate_decisions = _Counter(
            "mpr_skip_gate_decisions", "Skip-gate decisions: decision=skip|refine with the gate's reason", ("decision", "reason")
        )
        self.stage_drift = _Histogram(
            "mpr_stage_drift",
            "Drift of a stage's output against the original prompt (0 = same text, 1 = nothing in common), by stage and mode",
            ("stage", "mode"),
            DRIFT_BUCKETS,
        )
        self.description_outcomes = _Counter(
            "mpr_description_outcomes",
            "What became of the describer's output: accepted, echo, gibberish, empty, error; by mode",
            ("outcome", "mode"),
        )
        self.refinement_ttfb_share = _Histogram(
            "mpr_refinement_ttfb_share",
            "Apply-mode chat requests with refinement on: refinement wall time / time to the first response byte",
            ("model",),
            SHARE_BUCKETS,
        )
        self.shadow_refinements = _Counter(
            "mpr_shadow_refinements",
            "Shadow-mode refinements, by what applying them would have done: changed, unchanged, skipped, failed",
            ("result",),
        )
        self.refinement_cache_results = _Counter(
            "mpr_refinement_cache",
            "Refinement cache lookups: hit, miss, bypass (x-mpr-cache: off / mpr.cache: false), error (lookup or store failed)",
            ("result",),
        )
        self.target_attempts = _Counter(
            "mpr_target_attempts",
            "Target call attempts, by target tried and outcome: ok, retried_status, retried_error, failed_over, exhausted",
            ("target", "outcome"),
        )
        self.canary_verdicts = _Counter(
            "mpr_canary_verdicts",
            "Merge verdicts of a canaried stage, by stage, arm (stable, candidate) and outcome (accepted, rejected, failed)",
            ("stage", "arm", "outcome"),
        )
        self.canary_duration = _Histogram(
            "mpr_canary_stage_duration_seconds",
            "Latency of a canaried stage's calls, by stage and arm (stable, candidate)",
            ("stage", "arm"),
            STAGE_BUCKETS,
        )
        self.canary_drift = _Histogram(
            "mpr_canary_drift",
            "Drift of a canaried stage's outputs against the prompt, by stage and arm (stable, candidate)",
            ("stage", "arm"),
            DRIFT_BUCKETS,
        )
        self.tenant_tokens = _Counter(
            "mpr_tenant_tokens",
            "Tokens used, by key name (never the key), model, kind (prompt, completion) and stage (target or a refinement stage)",
            ("key", "model", "kind", "stage"),
        )
        self.tenant_requests = _Counter(
            "mpr_tenant_requests", "Requests answered, by key name, model and status class (2xx, 4xx, 5xx)", ("key", "model", "status")
        )
        self.tenant_refusals = _Counter(
            "mpr_tenant_refusals",
            "Requests refused by a key's limits: model_not_allowed, tokens_per_minute_exceeded, budget_exceeded",
            ("key", "reason"),
        )
        self._in_flight: dict[str, _InFlight] = {}
        self._pools = _PoolCollector()
        r.register(self._pools)  # type: ignore[arg-type]
        r.register(_AffinityCollector(self._pools))  # type: ignore[arg-type]
        r.register(self)  # type: ignore[arg-type]
        self.exposition = r  # what render() exposes: this registry, or the whole server's (workers)
        self._request_children: dict[tuple[str, str, int], tuple[tuple[str, str, str], list[float]]] = {}
        self._unstaged: dict[tuple[Any, int, bool], _Tally] = {}

    # -- collector ------------------------------------------------------------------------
    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        self.fold()
        yield self.requests.family()
        yield self.request_duration.family()
        in_flight = GaugeMetricFamily("mpr_requests_in_flight", "Requests being served now, by route template", labels=["route"])
        for route, gauge in self._in_flight.items():
            in_flight.add_metric([route], float(gauge.value))
        yield in_flight
        yield self.stream_ttfb.family()
        yield self.refinement_duration.family()
        yield self.stage_duration.family()
        yield self.stage_outcomes.family()
        yield self.gate_decisions.family()
        yield self.stage_drift.family()
        yield self.description_outcomes.family()
        yield self.refinement_ttfb_share.family()
        yield self.shadow_refinements.family()
        yield self.target_attempts.family()
        yield self.refinement_cache_results.family()
        yield self.canary_verdicts.family()
        yield self.canary_duration.family()
        yield self.canary_drift.family()
        yield self.tenant_tokens.family()
        yield self.tenant_requests.family()
        yield self.tenant_refusals.family()

    # -- sources --------------------------------------------------------------------------
    def watch_pools(self, source: PoolSource) -> None:
        self._pools.sources.append(source)

    # -- hot path -------------------------------------------------------------------------
    def in_flight_for(self, route: str) -> _InFlight:
        gauge = self._in_flight.get(route)
        if gauge is None:
            gauge = self._in_flight[route] = _InFlight()
        return gauge

    def observe_request(self, route: str, model: str, status: int, seconds: float) -> None:
        key = (route, model, status)
        pair = self._request_children.get(key)
        if pair is None:
            pair = self._request_children[key] = ((route, model, str(status)), self.request_duration.child((route, model)))
        self.requests.inc(pair[0])
        self.request_duration.observe(pair[1], seconds)

    def observe_ttfb(self, model: str, seconds: float) -> None:
        self.stream_ttfb.observe(self.stream_ttfb.child((model,)), seconds)

    # -- refinement -----------------------------------------------------------------------
    def stage_outcome(self, stage: str, outcome: str) -> None:
        self.stage_outcomes.inc((stage, outcome))

    def unstaged(self, gate: tuple[bool, str] | None, roles: Sequence[Any], skipped: bool, seconds: float) -> None:
        """A refinement that ran no stage (the skip path: every stage ``skipped``; or one that
        failed before its stages: ``error``): the gate's decision (``(refine, reason)``, None: not
        consulted), one stage outcome per role, and the duration as ``skipped`` or ``fallback``.
        The counters move at scrape time (:meth:`fold`): a skip adds one to its tally of this
        (decision, roles sequence), keyed by identity (the refiner's default stages are one tuple,
        and hashing an Enum runs Python code), and observes its duration."""
        key = (gate, id(roles), skipped)
        tally = self._unstaged.get(key)
        if tally is None or tally.roles is not roles:
            if len(self._unstaged) >= 64:  # requested stage lists are new sequences each time
                self.fold()
                self._unstaged.clear()
            tally = self._unstaged[key] = self._tally(gate, roles, skipped)
        tally.pending += 1
        duration = tally.duration  # _Histogram.observe, inline: the skip path's budget (issue 24)
        duration[bisect_left(self.refinement_duration.bounds, seconds)] += 1
        duration[-1] += seconds

    def _tally(self, gate: tuple[bool, str] | None, roles: Sequence[Any], skipped: bool) -> _Tally:
        outcome = "skipped" if skipped else "error"
        counts = [(self.stage_outcomes.series, (role._value_, outcome)) for role in roles]  # _value_: Enum.value is a Python property
        if gate is not None:
            counts.append((self.gate_decisions.series, ("refine" if gate[0] else "skip", gate[1])))
        return _Tally(roles, tuple(counts), self.refinement_duration.child(("skipped" if skipped else "fallback",)))

    def fold(self) -> None:
        """Move the stage-less refinements tallied since the last fold into their counters
        (before anything reads ``stage_outcomes`` or ``gate_decisions``: a scrape, a snapshot)."""
        for tally in self._unstaged.values():
            n = tally.pending
            if n:
                tally.pending = 0
                for series, labels in tally.counts:
                    series[labels] = series.get(labels, 0.0) + n

    def stage_latency(self, stage: str, seconds: float) -> None:
        self.stage_duration.observe(self.stage_duration.child((stage,)), seconds)

    def gate_decision(self, refine: bool, reason: str) -> None:
        self.gate_decisions.inc(("refine" if refine else "skip", reason))

    def refinement(self, result: str, seconds: float) -> None:
        self.refinement_duration.observe(self.refinement_duration.child((result,)), seconds)

    def stage_drift_value(self, stage: str, mode: str, drift: float) -> None:
        self.stage_drift.observe(self.stage_drift.child((stage, mode)), drift)

    def description_outcome(self, outcome: str, mode: str) -> None:
        self.description_outcomes.inc((outcome, mode))

    def refinement_share(self, model: str, share: float) -> None:
        """``refine_s / ttfb_s`` of one request, clamped to [0, 1]."""
        histogram = self.refinement_ttfb_share
        values = histogram.series.get((model,)) or histogram.child((model,))
        share = 1.0 if share > 1.0 else share if share > 0.0 else 0.0
        values[bisect_left(histogram.bounds, share)] += 1  # _Histogram.observe, inline: every refined request (issue 24)
        values[-1] += share

    def shadow_refinement(self, result: str) -> None:
        self.shadow_refinements.inc((result,))

    def refinement_cache(self, result: str) -> None:
        """One refinement cache lookup's result: ``hit``, ``miss``, ``bypass`` or ``error``."""
        self.refinement_cache_results.inc((result,))

    # -- target calls ---------------------------------------------------------------------
    def target_attempt(self, target: str, outcome: str) -> None:
        """One target call attempt and what followed it (see :mod:`gateway.upstream.retry`)."""
        self.target_attempts.inc((target, outcome))

    def canary_verdict(self, stage: str, arm: str, outcome: str, latency_s: float, drift: float | None) -> None:
        """One merge verdict of a canaried stage (:mod:`gateway.refinement.canary`), its call's
        latency and its output's drift (None: no output)."""
        self.canary_verdicts.inc((stage, arm, outcome))
        self.canary_duration.observe(self.canary_duration.child((stage, arm)), latency_s)
        if drift is not None:
            self.canary_drift.observe(self.canary_drift.child((stage, arm)), drift)

    # -- exposition -----------------------------------------------------------------------
    def render(self) -> bytes:
        return generate_latest(self.exposition)

    def expose_through(self, registry: CollectorRegistry) -> None:
        """Render ``registry`` instead of this one (a worker's merged view of the whole server)."""
        self.exposition = registry


def pools_of(target_pools: Mapping[Any, Any], adapter_pools: Mapping[Any, Any]) -> list[Any]:
    return [*target_pools.values(), *adapter_pools.values()]

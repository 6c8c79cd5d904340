"""``GET /admin/status``: this process's view of the fleet, as JSON (admin key required).

Every target and refinement stage with its endpoints (node, tier, health, requests in flight,
p50/p99 latency of recent calls), refinement outcome counts and per-stage acceptance rates (since
start and over the last five minutes), the last refinements' verdicts, cache, rate-limit and
shared-state figures, and how many runtimes an earlier reload replaced still finish their requests.
Counts, verdicts and HTTP statuses only: never prompt text. With ``serve --workers N``
each worker answers for itself (``pid`` says which one answered).
"""

from __future__ import annotations

import os
import time
from importlib import metadata
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import MediaType, Request, Response, get
from litestar.types import ControllerRouterHandler

from gateway.config.models import ALL_ROLES
from gateway.serving.worker import WORKERS_ENV  # set by the ``--workers N`` supervisor

if TYPE_CHECKING:
    from gateway.reload.live import Live, RuntimeRef
    from gateway.reload.reloader import Reloader
    from gateway.runtime import Runtime
    from gateway.telemetry.metrics import Metrics
    from gateway.upstream.pool import Endpoint, EndpointPool

STARTED_MONO = time.monotonic()
STARTED_WALL = time.time()


def _started_now() -> None:
    """A forked worker started now, not when the supervisor imported this module."""
    global STARTED_MONO, STARTED_WALL
    STARTED_MONO, STARTED_WALL = time.monotonic(), time.time()


os.register_at_fork(after_in_child=_started_now)


def version() -> str:
    try:
        return metadata.version("mpr-gateway")
    except metadata.PackageNotFoundError:
        return "unknown"


def endpoint_view(endpoint: Endpoint, now_mono: float) -> dict[str, Any]:
    """One endpoint: where it runs, its health, its load and its recent latency."""
    age = None if endpoint.last_probe_at is None else round(now_mono - endpoint.last_probe_at, 3)
    return {
        "url": endpoint.url,
        "node": endpoint.node,
        "tier": endpoint.tier,
        "source": endpoint.source,
        "up": endpoint.up,
        "cooling_down": endpoint.cooldown_until > now_mono,
        "consecutive_failures": endpoint.consecutive_failures,
        "last_error": endpoint.last_error,
        "in_flight": endpoint.outstanding,
        "latency_ms": endpoint.latency.summary(),
        "last_probe_ms": endpoint.last_probe_ms,
        "last_probe_age_s": age,
    }


def pool_endpoints(pool: EndpointPool) -> list[dict[str, Any]]:
    now = pool.clock()
    return [endpoint_view(e, now) for e in pool.endpoints]


def routing_view(pool: EndpointPool) -> dict[str, Any]:
    """How a target's requests spread over its replicas: the balance, and with affinity the
    placements since the runtime started (hit, spill, moved, none) and the load factor."""
    view: dict[str, Any] = {"balance": pool.balance}
    if pool.balance == "affinity" and len(pool.endpoints) > 1:
        view["epsilon"] = pool.epsilon
        view["placed"] = dict(pool.placed)
    return view


def stage_views(runtime: Runtime, acceptance: dict[str, Any]) -> list[dict[str, Any]]:
    """Each configured stage: its adapter endpoints (``kind: vllm``) or the built-in (``builtin``)."""
    views = []
    canaries = runtime.canaries
    for role in ALL_ROLES:
        pool = runtime.adapter_pools.get(role)
        if pool is not None:
            kind, endpoints = "vllm", pool_endpoints(pool)
        elif role in runtime.builtin_stages:
            kind, endpoints = "builtin", []
        else:
            continue
        empty = {"accepted": 0, "rejected": 0, "failed": 0, "acceptance_rate": None}
        rates = acceptance.get(role.value, {"since_start": empty, "window": empty})
        views.append(
            {
                "role": role.value,
                "kind": kind,
                "prefer": getattr(pool, "prefer", None) if pool is not None else None,
                "endpoints": endpoints,
                "acceptance": rates,
                "canary": canaries[role.value].as_dict() if role.value in canaries else None,
            }
        )
    return views


def cache_view(runtime: Runtime, metrics: Metrics) -> dict[str, Any]:
    """The refinement cache's lookups by result (this process, since start) and hit rate."""
    counts = {labels[0]: int(value) for labels, value in metrics.refinement_cache_results.series.items()}
    hits, misses = counts.get("hit", 0), counts.get("miss", 0)
    return {
        "enabled": runtime.config.refinement.cache.enabled,
        "hits": hits,
        "misses": misses,
        "bypass": counts.get("bypass", 0),
        "errors": counts.get("error", 0),
        "hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
    }


def rate_limit_view(runtime: Runtime, metrics: Metrics) -> dict[str, Any]:
    """The configured limit and how many answers were 429 (the limit's, or a target's relayed)."""
    limit = runtime.config.server.rate_limit
    answered_429 = sum(int(v) for labels, v in metrics.requests.series.items() if labels[2] == "429")
    return {"enabled": limit.requests_per_s > 0, "requests_per_s": limit.requests_per_s, "burst": limit.burst, "answered_429": answered_429}


def status_body(live: Live, now_mono: float | None = None, retiring: int = 0) -> dict[str, Any]:
    """The whole ``/admin/status`` answer for the current :class:`Live`; ``retiring``: old runtimes
    a reload swapped out that still finish requests (their health probes run until they stop)."""
    runtime = live.runtime
    telemetry = runtime.telemetry
    refinement = telemetry.recent.snapshot()
    acceptance = refinement.pop("stages")
    now = time.monotonic() if now_mono is None else now_mono
    bus = runtime.events
    return {
        "object": "mpr.status",
        "version": version(),
        "pid": os.getpid(),
        "workers": int(os.environ.get(WORKERS_ENV, "1") or 1),
        "started_at": round(STARTED_WALL, 3),
        "uptime_s": round(now - STARTED_MONO, 3),
        "draining": runtime.draining,
        "config": live.source.as_dict(),
        "runtimes": {"serving": 1, "retiring": retiring},
        "targets": [
            {"name": name, "pool": pool.name, "endpoints": pool_endpoints(pool), "routing": routing_view(pool)}
            for name, pool in runtime.target_pools.items()
        ],
        "stages": stage_views(runtime, acceptance),
        "refinement": refinement,
        "cache": cache_view(runtime, telemetry.metrics),
        "rate_limit": rate_limit_view(runtime, telemetry.metrics),
        "state": runtime.state.status(),
        "events": {"subscribers": bus.subscribers, "last_seq": bus.recent[-1].seq if bus.recent else 0},
    }


def status_route(ref: RuntimeRef, reloader: Reloader | None = None) -> ControllerRouterHandler:
    @get("/admin/status")
    async def admin_status(request: Request[Any, Any, Any]) -> Response[bytes]:
        live = ref.current
        live.runtime.admin.check(request.headers.get("authorization"))
        body = status_body(live, retiring=reloader.retiring if reloader is not None else 0)
        return Response(msgspec.json.encode(body), media_type=MediaType.JSON, headers={"cache-control": "no-store"})

    return admin_status

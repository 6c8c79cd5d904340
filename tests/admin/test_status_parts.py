"""The pure parts behind ``/admin/status`` and ``/admin/events``: latency windows, health flips,
refinement verdict counts, SSE frames."""

from __future__ import annotations

import asyncio

from gateway.admin.events import EventBus, endpoint_announcer
from gateway.admin.stream import event_frames, replay_count, sse_frame
from gateway.config.models import Role
from gateway.refinement.results import MergeResult, RefinementOutcome, StageVerdict
from gateway.telemetry.recent import RecentRefinements, outcome_result, verdict_kind
from gateway.upstream.latency import LatencyWindow, percentile
from gateway.upstream.pool import Endpoint, EndpointPool


def test_percentiles_by_nearest_rank_over_a_bounded_window() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.99) == 5.0
    ordered = [float(i) for i in range(1, 101)]
    assert percentile(ordered, 0.5) == 50.0 and percentile(ordered, 0.99) == 99.0 and percentile(ordered, 1.0) == 100.0
    window = LatencyWindow(size=4)
    assert window.summary() == {"p50": None, "p99": None, "samples": 0}
    for ms in (1000.0, 1.0, 2.0, 3.0, 4.0):  # the oldest (1000) falls out
        window.record(ms)
    assert window.summary() == {"p50": 2.0, "p99": 4.0, "samples": 4}


def test_a_pool_reports_each_health_flip_once_and_records_latencies() -> None:
    now = [100.0]
    pool = EndpointPool("adapter:cleaner", [Endpoint("http://gpu-1:8002/v1", tier="gpu")], 5.0, clock=lambda: now[0])
    flips: list[tuple[str, bool]] = []
    pool.on_change = lambda p, e: flips.append((e.url, e.up))
    (endpoint,) = pool.endpoints
    assert endpoint.node == "gpu-1"
    pool.mark_failure(endpoint, "connection failed")
    pool.mark_failure(endpoint, "connection failed")  # already down: no second event
    pool.record_probe(endpoint, False, 3.0, "ClientConnectorError")
    assert flips == [("http://gpu-1:8002/v1", False)]
    pool.record_probe(endpoint, True, 2.0, None)
    pool.mark_success(endpoint)  # already up
    assert flips == [("http://gpu-1:8002/v1", False), ("http://gpu-1:8002/v1", True)]
    assert pool.apply_verdict(endpoint.url, 5.0, "refused") and flips[-1] == (endpoint.url, False)
    pool.acquire(endpoint)
    pool.release(endpoint, 0.012)
    pool.acquire(endpoint)
    pool.release(endpoint)  # no latency given: nothing recorded
    pool.observe(endpoint, 0.030)
    assert endpoint.outstanding == 0 and list(endpoint.latency.samples) == [12.0, 30.0]


def test_the_announcer_publishes_endpoint_facts_without_the_pool_knowing_the_bus() -> None:
    bus = EventBus()
    pool = EndpointPool.of("target:gpt", ["http://10.0.0.5:9000/v1"])
    pool.on_change = endpoint_announcer(bus)
    pool.mark_failure(pool.endpoints[0], "http_503")
    pool.mark_success(pool.endpoints[0])
    down, up = bus.recent
    assert (down.kind, up.kind) == ("endpoint.down", "endpoint.up")
    assert down.data == {
        "pool": "target:gpt", "kind": "target", "name": "gpt", "url": "http://10.0.0.5:9000/v1",
        "node": "10.0.0.5", "tier": None, "source": "config", "error": "http_503",
    }
    assert up.data["error"] is None and up.seq == down.seq + 1


def _outcome(header: str, verdicts: dict[Role, StageVerdict] | None = None, cache: str = "off") -> RefinementOutcome:
    merged = None
    if verdicts is not None:
        applied = tuple(role for role, v in verdicts.items() if v.accepted)
        merged = MergeResult("refined text", None, applied, verdicts)
    return RefinementOutcome("secret prompt", "refined text", None, header, 12.5, merged=merged, cache=cache)  # type: ignore[arg-type]


def test_outcomes_are_counted_by_result_and_stage_verdict_without_prompt_text() -> None:
    accepted = StageVerdict(Role.CLEANER, "x", True)
    drift = StageVerdict(Role.PARAPHRASER, "y", False, reason="drift", drift=0.4)
    failed = StageVerdict(Role.DESCRIBER, None, False, reason="error", error="timeout")
    assert (verdict_kind(accepted), verdict_kind(drift), verdict_kind(failed)) == ("accepted", "rejected", "failed")
    applied = _outcome("cleaner", {Role.CLEANER: accepted, Role.PARAPHRASER: drift, Role.DESCRIBER: failed})
    rejected = _outcome("none", {Role.PARAPHRASER: drift})
    assert outcome_result(applied) == "applied" and outcome_result(rejected) == "rejected"
    assert outcome_result(_outcome("skipped;reason=clean")) == "skipped"
    assert outcome_result(_outcome("fallback;reason=deadline")) == "fallback"

    now = [1000.0]
    recent = RecentRefinements(size=3, clock=lambda: now[0])
    recent.record(applied, "m", "apply", "cleaner")
    now[0] += 400  # the first one leaves the 5-minute window, not the since-start counts
    recent.record(rejected, "m", "apply", "none")
    recent.record(_outcome("cleaner", {Role.CLEANER: accepted}, cache="hit"), "m", "apply", "cleaner")  # no stage ran
    recent.record(_outcome("skipped;reason=clean"), "m2", "shadow", "shadow;skipped;reason=clean")
    snap = recent.snapshot(window_s=300)
    assert snap["since_start"] == {"total": 4, "results": {"applied": 2, "rejected": 1, "skipped": 1, "fallback": 0, "failed": 0}, "cache_hits": 1}
    assert snap["window"]["total"] == 3 and snap["window"]["results"]["applied"] == 1
    assert snap["stages"]["cleaner"]["since_start"] == {"accepted": 1, "rejected": 0, "failed": 0, "acceptance_rate": 1.0}
    assert snap["stages"]["cleaner"]["window"]["acceptance_rate"] is None  # the cache hit added no verdict
    assert snap["stages"]["paraphraser"]["since_start"] == {"accepted": 0, "rejected": 2, "failed": 0, "acceptance_rate": 0.0}
    assert [e["refinement"] for e in snap["recent"]] == ["shadow;skipped;reason=clean", "cleaner", "none"]  # newest first, ring of 3
    assert snap["recent"][0] == {
        "at": 1400.0, "model": "m2", "mode": "shadow", "refinement": "shadow;skipped;reason=clean",
        "result": "skipped", "status": None, "elapsed_ms": 12.5, "cache": "off", "stages": {},
    }
    assert "secret" not in repr(snap) and "refined text" not in repr(snap)


def test_sse_frames_and_the_replay_parameter() -> None:
    bus = EventBus()
    event = bus.publish("config.reloaded", {"hash": "abc"})
    assert sse_frame(event) == b'id: 1\nevent: config.reloaded\ndata: {"seq":1,"kind":"config.reloaded","at":%s,"data":{"hash":"abc"}}\n\n' % (
        repr(event.at).encode()
    )
    assert [replay_count(v) for v in (None, "", "5", "-3", "x", "100000")] == [0, 0, 5, 0, 0, 200]


async def test_the_frames_stop_when_the_gateway_drains_and_unsubscribe() -> None:
    bus = EventBus()
    bus.publish("endpoint.down", {"url": "u"})
    draining = [False]
    frames = event_frames(bus, lambda: draining[0], replay=1, ping_s=0.05, check_s=0.01)
    assert (await anext(frames)).startswith(b"retry: ")
    assert b"event: endpoint.down" in await anext(frames)
    assert bus.subscribers == 1
    assert await anext(frames) == b": ping\n\n"
    bus.publish("endpoint.up", {"url": "u"})
    assert b"event: endpoint.up" in await anext(frames)
    draining[0] = True
    rest = [frame async for frame in frames]
    assert all(frame == b": ping\n\n" for frame in rest)
    assert bus.subscribers == 0


async def test_a_cancelled_stream_unsubscribes() -> None:
    bus = EventBus()
    frames = event_frames(bus, lambda: False, ping_s=60, check_s=60)
    await anext(frames)
    task = asyncio.ensure_future(anext(frames))
    await asyncio.sleep(0.01)
    assert bus.subscribers == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await frames.aclose()
    assert bus.subscribers == 0

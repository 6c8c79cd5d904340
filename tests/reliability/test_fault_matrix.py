"""Fault matrix: every peer (three adapter stages and the target) × every fault, N requests per cell.

One gateway (in-process, so its asyncio tasks can be counted) and four :class:`FaultyPeer`s. Per
cell: inject the fault, fire N requests (half streaming), check each answer, check ``/ready``
reflects the fault, clear it, time the recovery, then check nothing leaked (tasks back to the
baseline set, no accepted client socket left, no CLOSE_WAIT, peers' in-flight 0, outstanding 0).

Expectations
* stage faults: every client request succeeds (the stage is dropped, the others still apply);
  ``/ready`` stays 200 and shows the adapter endpoint down, or ``last_error`` ``http_429``.
* target faults: the error the issue names, in OpenAI's shape — unreachable/reset/malformed/
  wrong content type/cut body → 502, slow → 504, 500 and 429 pass through (429 with
  ``retry-after``); a stream cut after it started ends with an SSE error event and ``[DONE]``.
  ``/ready`` turns 503 (429: stays 200 with ``last_error`` ``http_429``: the target is alive).
  Client-facing errors never carry the target's address (``/ready`` does, for operators).
* recovery: ``/ready`` clean again within one probe interval plus the probe in flight
  (``probe_interval_s`` + probe timeout 0.5 s), and the next request uses the peer again.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.reliability.helpers import InProcessGateway, figures, gateway_sockets, routes_for, sse_events, wait_for
from tests.reliability.peers import FAULTS, PROMPT, FaultyPeer, stage_reply

N = 6  # requests per cell: 3 non-streaming, 3 streaming
PROBE_INTERVAL_S = 0.3
PROBE_TIMEOUT_S = 0.5  # Prober: max(0.5, min(2.0, 0.8 * interval))
DEADLINE_S = 0.8  # refinement deadline; adapter timeout 1.0 s; slow peers sleep 2.0 s
TARGET_TIMEOUT_S = 1.0
RECOVERY_BOUND_S = PROBE_INTERVAL_S + PROBE_TIMEOUT_S + 0.3
PEERS = ("cleaner", "describer", "paraphraser", "target")

# target fault → (status non-streaming, status streaming, error code)
TARGET_EXPECT: dict[str, tuple[int, int, str | None]] = {
    "down": (502, 502, "upstream_unreachable"),
    "refuse": (502, 502, "upstream_unreachable"),
    "slow": (504, 504, "upstream_timeout"),
    "500": (500, 500, None),
    "429": (429, 429, None),
    "malformed": (502, 502, "upstream_unreachable"),
    "reset": (502, 502, "upstream_unreachable"),
    "cut": (502, 200, "upstream_unreachable"),
    "wrong_type": (502, 502, "upstream_unreachable"),
}


@dataclass
class Env:
    gw: InProcessGateway
    peers: dict[str, FaultyPeer]
    baseline_tasks: Counter[str]
    totals: Counter[str] = field(default_factory=Counter)
    max_upstream_sockets: int = 0


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    peers = {role: FaultyPeer(stage_reply(role)).start() for role in PEERS[:3]}
    peers["target"] = FaultyPeer().start()
    tree = routes_for(
        peers["target"].base_url,
        {role: peers[role].base_url for role in PEERS[:3]},
        probe_interval_s=PROBE_INTERVAL_S,
        adapter_timeout_s=1.0,
        deadline_s=DEADLINE_S,
        target_timeout_s=TARGET_TIMEOUT_S,
    )
    gw = InProcessGateway(tree, tmp_path_factory.mktemp("matrix")).start()
    try:
        wait_for(lambda: httpx.get(gw.url + "/ready").status_code == 200, 5)
        _, _ = asyncio.run(_fire(gw.url, 2)), None  # warm the pools
        time.sleep(0.2)
        e = Env(gw, peers, Counter(_stable(gw.tasks())))
        yield e
        figures(
            "fault_matrix_total",
            cells=e.totals["cells"],
            requests=e.totals["requests"],
            failed_where_fallback=e.totals["stage_failures"],
            wrong_target_errors=e.totals["target_mismatches"],
            max_upstream_sockets=e.max_upstream_sockets,
        )
    finally:
        gw.stop()
        for peer in peers.values():
            peer.stop()


def _stable(names: list[str]) -> list[str]:
    """Task names minus the prober's short-lived per-endpoint probes."""
    return [n for n in names if "probe_all" not in n]


def _body(stream: bool) -> dict[str, Any]:
    return {"model": "test-model", "stream": stream, "messages": [{"role": "user", "content": PROMPT}]}


@dataclass
class Answer:
    stream: bool
    status: int
    headers: httpx.Headers
    raw: bytes
    seconds: float
    error: str | None = None  # a transport error on the client side


async def _one(client: httpx.AsyncClient, url: str, stream: bool) -> Answer:
    started = time.perf_counter()
    try:
        async with client.stream("POST", url + "/v1/chat/completions", json=_body(stream)) as r:
            raw = await r.aread()
            return Answer(stream, r.status_code, r.headers, raw, time.perf_counter() - started)
    except httpx.HTTPError as exc:
        return Answer(stream, 0, httpx.Headers(), b"", time.perf_counter() - started, type(exc).__name__)


async def _fire(url: str, n: int) -> list[Answer]:
    async with httpx.AsyncClient(timeout=15) as client:
        return list(await asyncio.gather(*(_one(client, url, i % 2 == 1) for i in range(n))))


def _complete(a: Answer) -> bool:
    """A successful, whole answer: a chat completion, or an SSE stream ending in [DONE] without error."""
    if a.status != 200:
        return False
    if not a.stream:
        data = msgspec.json.decode(a.raw)
        return isinstance(data.get("choices", [{}])[0].get("message", {}).get("content"), str)
    events = sse_events(a.raw)
    return bool(events) and events[-1] == b"[DONE]" and not any(e.startswith(b'{"error"') for e in events)


def _openai_error(raw: bytes) -> dict[str, Any] | None:
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str) and isinstance(err.get("type"), str) and {"param", "code"} <= set(err):
        return err
    return None


def _target_ok(a: Answer, fault: str) -> bool:
    status_plain, status_stream, code = TARGET_EXPECT[fault]
    expected = status_stream if a.stream else status_plain
    if a.status != expected:
        return False
    if a.stream and expected == 200:  # broken after the stream started: error event, then [DONE]
        events = sse_events(a.raw)
        return len(events) >= 2 and events[-1] == b"[DONE]" and _openai_error(events[-2]) is not None
    err = _openai_error(a.raw)
    if err is None or (code is not None and err["code"] != code):
        return False
    if fault == "429" and a.headers.get("retry-after") != "2":
        return False
    return "x-mpr-refinement" in a.headers


def _endpoint(ready: dict[str, Any], peer: str) -> dict[str, Any]:
    group = ready["targets"]["test-model"] if peer == "target" else ready["adapters"][peer]
    return group[0]


def _ready(url: str) -> tuple[int, dict[str, Any]]:
    r = httpx.get(url + "/ready", timeout=5)
    return r.status_code, r.json()


def _reflects(url: str, peer: str, fault: str) -> bool:
    status, body = _ready(url)
    ep = _endpoint(body, peer)
    if fault == "429":
        return ep["up"] and ep["last_error"] == "http_429" and status == 200
    if not ep["up"] is False:
        return False
    return status == (503 if peer == "target" else 200)


def _recovered(url: str, peer: str) -> bool:
    status, body = _ready(url)
    ep = _endpoint(body, peer)
    return status == 200 and ep["up"] is True and ep["last_error"] is None


def _uses_peer_again(url: str, peer: str) -> bool:
    if peer == "target":
        return all(_complete(a) for a in asyncio.run(_fire(url, 2)))
    r = httpx.post(url + "/v1/refine", json={"prompt": PROMPT}, timeout=10)
    stage = r.json()["stages"][peer]
    return r.status_code == 200 and stage["error"] is None and stage["accepted"] is True


def _settled(env: Env) -> dict[str, Any] | None:
    """None when nothing is left over from the cell; else what is."""
    tasks = Counter(_stable(env.gw.tasks()))
    socks = gateway_sockets(env.gw.port, [p.port for p in env.peers.values()])
    env.max_upstream_sockets = max(env.max_upstream_sockets, socks["upstream"])
    in_flight = {name: p.in_flight for name, p in env.peers.items() if p.in_flight}
    _, ready = _ready(env.gw.url)
    outstanding = [e["outstanding"] for g in (*ready["targets"].values(), *ready["adapters"].values()) for e in g if e["outstanding"]]
    extra_tasks = tasks - env.baseline_tasks
    if extra_tasks or socks["client"] or socks["close_wait"] or in_flight or outstanding:
        return {"tasks": dict(extra_tasks), "sockets": socks, "in_flight": in_flight, "outstanding": outstanding}
    return None


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("peer", PEERS)
def test_fault_cell(env: Env, peer: str, fault: str) -> None:
    url = env.gw.url
    faulty = env.peers[peer]
    faulty.inject(fault)
    try:
        answers = asyncio.run(_fire(url, N))
        reflected, t_reflect = wait_for(lambda: _reflects(url, peer, fault), PROBE_INTERVAL_S + PROBE_TIMEOUT_S + 1.0)
        ready_during = _ready(url)
    finally:
        faulty.clear()
    recovered, t_recover = wait_for(lambda: _recovered(url, peer), RECOVERY_BOUND_S + 1.0)
    again = _uses_peer_again(url, peer)
    leftover, t_settle = wait_for(lambda: _settled(env) is None, 3.0)
    leftover = _settled(env)

    if peer == "target":
        # the right error, and one that does not tell the caller where the target lives
        bad = [a for a in answers if not _target_ok(a, fault) or str(faulty.port).encode() in a.raw]
    else:
        bad = [a for a in answers if not _complete(a)]
    env.totals.update(cells=1, requests=N)
    env.totals["stage_failures" if peer != "target" else "target_mismatches"] += len(bad)
    figures(
        f"fault_matrix[{peer}-{fault}]",
        requests=N,
        failed=len(bad),
        statuses=dict(Counter(a.status for a in answers)),
        refinement=sorted({a.headers.get("x-mpr-refinement", "-") for a in answers}),
        max_latency_s=round(max(a.seconds for a in answers), 3),
        ready_reflected_s=round(t_reflect, 3) if reflected else "never",
        recovered_s=round(t_recover, 3) if recovered else "never",
        leftover=leftover,
    )
    assert not bad, [(a.stream, a.status, a.error, a.raw[:300]) for a in bad]
    if peer != "target":
        # the fallback must not wait longer than the refinement deadline (plus the target call)
        assert max(a.seconds for a in answers) < DEADLINE_S + 1.0
    assert reflected, f"/ready did not reflect {fault} on {peer}: {ready_during}"
    assert recovered and t_recover <= RECOVERY_BOUND_S, f"recovery took {t_recover:.2f}s (bound {RECOVERY_BOUND_S}s)"
    assert again, f"{peer} not used again after {fault} cleared"
    assert leftover is None, leftover


# -- fallbacks ------------------------------------------------------------------------------------
# The same target faults, now with ``fallbacks: [backup]`` (a healthy peer, upstream model
# ``backup-model``), in a gateway of its own (a subprocess: its sockets are not this process's).
# Every request the fallback can serve is served by it; a stream that began is never resent.

FALLBACK_SERVES = {"down", "refuse", "slow", "500", "429", "reset"}  # plain and streaming
# cut: a plain body cut mid-way fails over; a stream cut after its first byte ends with an SSE
# error event. malformed / wrong_type: the target answered 200, not retried: 502 as before.


@dataclass
class FallbackEnv:
    gw: Any
    primary: FaultyPeer
    backup: FaultyPeer


@pytest.fixture(scope="module")
def fallback_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FallbackEnv]:
    from tests.support.gateway_proc import GatewayProcess

    primary, backup = FaultyPeer().start(), FaultyPeer().start()
    tree = routes_for(primary.base_url, None, probe_interval_s=30, target_timeout_s=TARGET_TIMEOUT_S, target={"fallbacks": ["backup"]})
    tree["targets"].append({"name": "backup", "endpoints": [backup.base_url], "upstream_model": "backup-model", "cooldown_s": 0})
    gw = GatewayProcess(tree, tmp_path_factory.mktemp("fallback")).start()
    try:
        yield FallbackEnv(gw, primary, backup)
    finally:
        gw.stop()
        primary.stop()
        backup.stop()


def _served_by_backup(a: Answer) -> bool:
    return _complete(a) and a.headers.get("x-mpr-target") == "backup" and a.headers.get("x-mpr-attempts") == "2"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("fault", FAULTS)
def test_fallback_cell(fallback_env: FallbackEnv, fault: str) -> None:
    env = fallback_env
    env.backup.requests.clear()
    env.primary.inject(fault)
    try:
        answers = asyncio.run(_fire(env.gw.url, N))
    finally:
        env.primary.clear()
    to_backup = [r for r in env.backup.requests if r.path.endswith("/chat/completions")]
    if fault in FALLBACK_SERVES:
        bad = [a for a in answers if not _served_by_backup(a)]
        expected_backup = N
    elif fault == "cut":
        bad = [a for a in answers if not (_target_ok(a, fault) if a.stream else _served_by_backup(a))]
        expected_backup = N // 2  # the plain ones; a stream that began is committed
    else:
        bad = [a for a in answers if not _target_ok(a, fault) or a.headers.get("x-mpr-target") != "test-model"]
        expected_backup = 0
    figures(
        f"fault_matrix_fallback[{fault}]",
        requests=N,
        failed=len(bad),
        statuses=dict(Counter(a.status for a in answers)),
        served_by=dict(Counter(a.headers.get("x-mpr-target", "-") for a in answers)),
        backup_calls=len(to_backup),
        max_latency_s=round(max(a.seconds for a in answers), 3),
    )
    assert not bad, [(a.stream, a.status, dict(a.headers), a.raw[:200]) for a in bad]
    assert len(to_backup) == expected_backup  # each request sent once to the fallback, at most
    assert all(r.body["model"] == "backup-model" for r in to_backup)
    if fault == "slow":
        assert max(a.seconds for a in answers) < TARGET_TIMEOUT_S + 1.0
    wait_for(lambda: env.primary.in_flight == 0 and env.backup.in_flight == 0, 3.0)
    assert env.primary.in_flight == 0 and env.backup.in_flight == 0

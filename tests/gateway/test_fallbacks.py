"""Retries and fallbacks of target calls (``retry``, ``targets[].retry``, ``targets[].fallbacks``).

Two fake peers: ``primary`` (per-model faults: 429, 500, 400, hang, a stream cut after it began)
and ``backup`` (healthy, upstream model ``backup-model``). Each scenario is its own target in one
gateway; a ``down`` target points at a closed port. The peers record every request, so the tests
see how often each target was called and with which body.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import CLEAN, dead_url, start_gateway
from tests.reliability.helpers import sse_events
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes

USER = [{"role": "user", "content": CLEAN}]
SLOW_TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def primary() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def backup() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def _faults(primary: FakeOpenAI) -> None:
    error = {"error": {"message": "busy", "type": "rate_limit", "param": None, "code": "rate_limit_exceeded"}}
    primary.behave("p429", Behaviour(mode="status", status=429, body=error, headers={"retry-after": "2"}))
    primary.behave("p500", Behaviour(mode="status", status=500))
    primary.behave("p400", Behaviour(mode="status", status=400))
    primary.behave("pslow", Behaviour(mode="hang"))
    primary.behave("pcut", Behaviour(mode="cut_stream", chunks=6))
    primary.behave("retry429", Behaviour(mode="status", status=429, headers={"retry-after": "1"}))
    primary.behave("late429", Behaviour(mode="status", status=429, headers={"retry-after": "30"}))


@pytest.fixture(autouse=True)
def _fresh(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    for fake in (primary, backup):
        fake.reset()
    _faults(primary)


def _target(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "endpoints": [url], "upstream_model": name, "timeout_s": 10, "cooldown_s": 0, "refine": False, **extra}


@pytest.fixture(scope="module")
def gateway(primary: FakeOpenAI, backup: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = routes(backup.base_url, server={"probe_interval_s": 30})
    fb = {"fallbacks": ["backup"]}
    config["targets"] = [
        {**_target("backup", backup.base_url), "upstream_model": "backup-model"},
        _target("p429", primary.base_url, **fb),
        _target("p500", primary.base_url, **fb),
        _target("p400", primary.base_url, **fb),
        _target("pdown", dead_url(), **fb),
        _target("pslow", primary.base_url, timeout_s=SLOW_TIMEOUT_S, **fb),
        _target("pcut", primary.base_url, **fb),
        _target("only429", primary.base_url, upstream_model="p429"),
        _target("retry429", primary.base_url, retry={"attempts": 2}, **fb),
        _target("late429", primary.base_url, retry={"attempts": 3, "deadline_s": 5}),
        _target("alldown", dead_url(), fallbacks=["down2"]),
        _target("down2", dead_url()),
    ]
    config["retry"] = {"backoff_s": 0.05}
    gw = start_gateway(tmp_path_factory, config)
    yield gw
    gw.stop()


def chat(gw: GatewayProcess, model: str, stream: bool = False) -> httpx.Response:
    return httpx.post(gw.base_url + "/chat/completions", json={"model": model, "messages": USER, "stream": stream}, timeout=15)


def _served(r: httpx.Response, stream: bool) -> None:
    assert r.status_code == 200, r.text
    if stream:
        events = sse_events(r.content)
        assert events[-1] == b"[DONE]" and not any(e.startswith(b'{"error"') for e in events), r.content
    else:
        assert r.json()["choices"][0]["message"]["content"].startswith("echo: ")


def attempts_metric(gw: GatewayProcess) -> dict[tuple[str, str], float]:
    text = httpx.get(gw.url + "/metrics", timeout=5).text
    out: dict[tuple[str, str], float] = {}
    for m in re.finditer(r'^mpr_target_attempts_total\{([^}]*)\} (\S+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        out[(labels["target"], labels["outcome"])] = float(m.group(2))
    return out


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("model", ["p429", "p500", "pdown", "pslow"])
def test_the_fallback_serves_when_the_target_fails(gateway: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI, model: str, stream: bool) -> None:
    started = time.monotonic()
    r = chat(gateway, model, stream)
    elapsed = time.monotonic() - started
    _served(r, stream)
    assert r.headers["x-mpr-target"] == "backup"
    assert r.headers["x-mpr-attempts"] == "2"
    # the fallback got the same request once, with its own upstream model, and nothing was resent
    (sent,) = backup.requests
    assert sent.body["model"] == "backup-model" and sent.body["messages"] == USER and sent.body["stream"] is stream
    assert len(primary.requests_for(model)) == (0 if model == "pdown" else 1)
    if model == "p429":
        assert elapsed < 1.5, "with attempts 1 a retry-after is no reason to wait before failing over"
    if model == "pslow":
        assert SLOW_TIMEOUT_S <= elapsed < SLOW_TIMEOUT_S + 2


def test_a_400_is_neither_retried_nor_failed_over(gateway: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    r = chat(gateway, "p400")
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "fake 400"
    assert (r.headers["x-mpr-target"], r.headers["x-mpr-attempts"]) == ("p400", "1")
    assert len(primary.requests_for("p400")) == 1 and not backup.requests


def test_a_stream_that_began_is_committed_never_resent(gateway: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    r = chat(gateway, "pcut", stream=True)
    assert r.status_code == 200
    events = sse_events(r.content)
    assert events[-1] == b"[DONE]" and events[-2].startswith(b'{"error"')  # broken after its first byte
    assert (r.headers["x-mpr-target"], r.headers["x-mpr-attempts"]) == ("pcut", "1")
    assert len(primary.requests_for("pcut")) == 1 and not backup.requests


def test_retry_after_is_honoured_between_attempts_then_the_fallback_serves(
    gateway: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    r = chat(gateway, "retry429")
    _served(r, False)
    assert (r.headers["x-mpr-target"], r.headers["x-mpr-attempts"]) == ("backup", "3")
    first, second = primary.requests_for("retry429")
    gap = second.at - first.at
    assert 1.0 <= gap < 1.5, f"retry-after: 1 but the retry came after {gap:.3f}s"
    assert first.raw == second.raw  # the same bytes: refined once, sent as they were
    assert len(backup.requests) == 1


def test_a_retry_after_past_the_deadline_is_not_waited_for(gateway: GatewayProcess, primary: FakeOpenAI) -> None:
    started = time.monotonic()
    r = chat(gateway, "late429")
    assert time.monotonic() - started < 1.0
    assert r.status_code == 429 and r.headers["retry-after"] == "30"
    assert (r.headers["x-mpr-target"], r.headers["x-mpr-attempts"]) == ("late429", "1")
    assert len(primary.requests_for("late429")) == 1


def test_when_all_fail_the_client_gets_the_last_target_error(gateway: GatewayProcess, primary: FakeOpenAI) -> None:
    r = chat(gateway, "only429")
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert (r.headers["x-mpr-target"], r.headers["x-mpr-attempts"]) == ("only429", "1")
    for stream in (False, True):
        r = chat(gateway, "alldown", stream)
        assert r.status_code == 502, r.text
        error = r.json()["error"]
        assert error["code"] == "upstream_unreachable" and set(error) == {"message", "type", "param", "code"}
        assert (r.headers["x-mpr-target"], r.headers["x-mpr-attempts"]) == ("down2", "2")
        assert "x-mpr-refinement" in r.headers


def test_every_proxied_answer_says_its_target_and_attempts(gateway: GatewayProcess) -> None:
    for stream in (False, True):
        r = chat(gateway, "backup", stream)
        _served(r, stream)
        assert (r.headers["x-mpr-target"], r.headers["x-mpr-attempts"]) == ("backup", "1")


def test_attempts_are_counted_in_metrics(gateway: GatewayProcess) -> None:
    before = attempts_metric(gateway)
    chat(gateway, "p500")
    chat(gateway, "retry429")
    chat(gateway, "only429")
    after = attempts_metric(gateway)
    delta = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    assert delta == {
        ("p500", "failed_over"): 1,
        ("backup", "ok"): 2,
        ("retry429", "retried_status"): 1,
        ("retry429", "failed_over"): 1,
        ("only429", "exhausted"): 1,
    }

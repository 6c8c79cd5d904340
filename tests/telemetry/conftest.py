"""Fixtures for the observability tests: a fake vLLM/target peer, real OTLP receivers, gateways.

Each gateway is a real ``python -m gateway serve`` subprocess exporting to a receiver inside the
test process (``OTEL_BSP_SCHEDULE_DELAY`` = 50 ms, so spans arrive quickly).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes
from tests.support.otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver, ReceivedSpan

# A prompt the skip gate sends to refinement, the stage outputs the merge accepts, a clean prompt.
DIRTY = "whats the captial of frane and how big is it"
CLEANED = "whats the capital of france and how big is it"
PARAPHRASED = "What is the capital of France, and how large is it?"
DESCRIBED = "France is a country in Western Europe. Its capital city is Paris."
CLEAN = "What is the capital of France and how big is it?"
ROLES = ("cleaner", "describer", "paraphraser")

FAST_BATCH = {"OTEL_BSP_SCHEDULE_DELAY": "50"}
# Keep the caller's environment from switching exporters on in the tracing-off gateways.
NO_OTEL_ENV = {"OTEL_TRACES_EXPORTER": "none"}


def reply(text: str) -> Callable[[str, dict[str, Any]], str]:
    return lambda _model, _body: text


def refining(fake: FakeOpenAI, delay_s: float = 0.1) -> None:
    """Every stage answers something the merge accepts, after ``delay_s`` (so the three overlap)."""
    for role, text in (("cleaner", CLEANED), ("paraphraser", PARAPHRASED), ("describer", DESCRIBED)):
        fake.behave(role, Behaviour(reply=reply(text), delay_s=delay_s))


def chat(gw: GatewayProcess, content: str = DIRTY, headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
    payload = {"model": "test-model", "messages": [{"role": "user", "content": content}], **body}
    return httpx.post(gw.base_url + "/chat/completions", json=payload, headers=headers or {}, timeout=15)


def header(recorded_headers: dict[str, str], name: str) -> str | None:
    for key, value in recorded_headers.items():
        if key.lower() == name:
            return value
    return None


def trace_of(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == trace_id]


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"expected one {name!r} span, got {len(found)}: {sorted(s.name for s in spans)}"
    return found[0]


def complete_trace(names: tuple[str, ...]) -> Callable[[list[ReceivedSpan]], str | None]:
    """Predicate: some trace holds every span name in ``names``; returns that trace id."""

    def check(spans: list[ReceivedSpan]) -> str | None:
        by_trace: dict[str, set[str]] = {}
        for s in spans:
            by_trace.setdefault(s.trace_id, set()).add(s.name)
        for trace_id, seen in by_trace.items():
            if set(names) <= seen:
                return trace_id
        return None

    return check


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as peer:
        yield peer


@pytest.fixture(autouse=True)
def _reset(request: pytest.FixtureRequest) -> None:
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").reset()


@pytest.fixture(scope="module")
def http_receiver() -> Iterator[OtlpHttpReceiver]:
    with OtlpHttpReceiver() as rx:
        yield rx


@pytest.fixture(scope="module")
def grpc_receiver() -> Iterator[OtlpGrpcReceiver]:
    with OtlpGrpcReceiver() as rx:
        yield rx


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("telemetry")


def start_gateway(config: dict[str, Any], workdir: Path, env: dict[str, str] | None = None) -> GatewayProcess:
    return GatewayProcess(config, workdir, env=env).start()


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


@pytest.fixture(scope="module")
def traced_gateway(fake: FakeOpenAI, http_receiver: OtlpHttpReceiver, workdir: Path) -> Iterator[GatewayProcess]:
    """Tracing to the HTTP receiver through the config (``otlp_http`` + ``otlp_endpoint``)."""
    config = routes(
        fake.base_url,
        fake.base_url,
        telemetry={"traces_exporter": "otlp_http", "otlp_endpoint": http_receiver.endpoint},
    )
    gw = start_gateway(config, workdir, env={**FAST_BATCH})
    try:
        yield gw
    finally:
        gw.stop()

"""``GET /metrics`` scraped and parsed with prometheus_client's parser after known traffic."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes
from tests.telemetry.conftest import CLEAN, NO_OTEL_ENV, ROLES, chat, header, refining, start_gateway, wait_until

CHAT = "/v1/chat/completions"


def scrape(gw: GatewayProcess, key: str | None = None) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(gw.url + "/metrics", headers=headers, timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, workdir: Path) -> Iterator[GatewayProcess]:
    """Tracing off (the default): metrics only."""
    gw = start_gateway(routes(fake.base_url, fake.base_url), workdir, env=NO_OTEL_ENV)
    try:
        yield gw
    finally:
        gw.stop()


def test_counters_and_histograms_after_known_traffic(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    before = scrape(gateway)
    refining(fake, delay_s=0.0)
    for _ in range(3):  # refined: every stage accepted or rejected, never skipped
        assert chat(gateway).status_code == 200
    for _ in range(2):  # skip gate: clean
        assert chat(gateway, content=CLEAN).status_code == 200
    assert chat(gateway, model="no-such-model").status_code == 404
    fake.behave("cleaner", Behaviour(mode="status", status=500))
    assert chat(gateway).status_code == 200  # cleaner errors, the others apply
    with httpx.stream("POST", gateway.base_url + "/chat/completions", timeout=10, headers={"x-mpr-refine": "off"},
                      json={"model": "test-model", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as r:
        assert b"[DONE]" in b"".join(r.iter_bytes())
    after = scrape(gateway)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("mpr_requests_total", route=CHAT, model="test-model", status="200") == 7
    assert delta("mpr_requests_total", route=CHAT, model="-", status="404") == 1
    assert delta("mpr_request_duration_seconds_count", route=CHAT, model="test-model") == 7
    assert delta("mpr_request_duration_seconds_bucket", route=CHAT, model="test-model", le="+Inf") == 7
    assert delta("mpr_request_duration_seconds_sum", route=CHAT, model="test-model") > 0
    assert value(after, "mpr_requests_in_flight", route=CHAT) == 0
    assert delta("mpr_stream_time_to_first_byte_seconds_count", model="test-model") == 1
    # gate: 4 dirty prompts refined, 2 clean ones skipped (the streamed one had refinement off)
    assert delta("mpr_skip_gate_decisions_total", decision="refine", reason="unknown_words") == 4
    assert delta("mpr_skip_gate_decisions_total", decision="skip", reason="clean") == 2
    for role in ROLES:
        assert delta("mpr_stage_outcomes_total", stage=role, outcome="skipped") == 2
        assert delta("mpr_stage_duration_seconds_count", stage=role) == 4
    assert delta("mpr_stage_outcomes_total", stage="paraphraser", outcome="accepted") == 4
    assert delta("mpr_stage_outcomes_total", stage="describer", outcome="accepted") == 4
    assert delta("mpr_stage_outcomes_total", stage="cleaner", outcome="accepted") == 3
    assert delta("mpr_stage_outcomes_total", stage="cleaner", outcome="error") == 1
    assert delta("mpr_refinement_duration_seconds_count", result="refined") == 4
    assert delta("mpr_refinement_duration_seconds_count", result="skipped") == 2
    # tracing off: no traceparent goes upstream
    assert all(header(r.headers, "traceparent") is None for r in fake.requests)


def test_stage_outcomes_drift_and_timeout(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    before = scrape(gateway)
    fake.behave("cleaner", Behaviour(reply=lambda m, b: "Completely unrelated words about zebras in the savanna at noon"))
    fake.behave("paraphraser", Behaviour(mode="hang"))  # adapter timeout 1 s
    fake.behave("describer", Behaviour(reply=lambda m, b: "whats the captial of frane and how big is it"))  # echo
    assert chat(gateway).headers["x-mpr-refinement"].startswith("none;rejected=")
    after = scrape(gateway)
    d = lambda stage, outcome: value(after, "mpr_stage_outcomes_total", stage=stage, outcome=outcome) - value(  # noqa: E731
        before, "mpr_stage_outcomes_total", stage=stage, outcome=outcome
    )
    assert d("cleaner", "rejected_drift") == 1
    assert d("paraphraser", "timeout") == 1
    assert d("describer", "rejected_other") == 1
    assert value(after, "mpr_refinement_duration_seconds_count", result="unchanged") - value(
        before, "mpr_refinement_duration_seconds_count", result="unchanged"
    ) == 1


def test_in_flight_gauge_during_a_slow_request(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    fake.behave("target-model", Behaviour(delay_s=1.0))
    thread = threading.Thread(target=chat, args=(gateway, CLEAN))
    thread.start()
    try:
        wait_until(lambda: value(scrape(gateway), "mpr_requests_in_flight", route=CHAT) == 1, timeout=3)
        ups = scrape(gateway)
        assert value(ups, "mpr_upstream_endpoint_outstanding_requests", kind="target", pool="test-model", endpoint=fake.base_url) == 1
    finally:
        thread.join(10)
    assert value(scrape(gateway), "mpr_requests_in_flight", route=CHAT) == 0


def test_upstream_health_gauge_follows_probes(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    samples = scrape(gateway)
    labels = [("target", "test-model")] + [("adapter", r) for r in ROLES]
    for kind, pool in labels:
        assert value(samples, "mpr_upstream_endpoint_up", kind=kind, pool=pool, endpoint=fake.base_url) == 1
    fake.down = True  # /v1/models answers 503: the prober (every 0.5 s) marks every endpoint down
    try:
        wait_until(lambda: all(
            value(scrape(gateway), "mpr_upstream_endpoint_up", kind=k, pool=p, endpoint=fake.base_url) == 0 for k, p in labels
        ), timeout=5)
    finally:
        fake.down = False
    wait_until(lambda: value(scrape(gateway), "mpr_upstream_endpoint_up", kind="target", pool="test-model", endpoint=fake.base_url) == 1, timeout=5)


def test_metrics_key_protection(fake: FakeOpenAI, workdir: Path) -> None:
    config = routes(fake.base_url, server={"api_keys": ["sk-metrics-test"], "protect_ops_endpoints": True})
    with GatewayProcess(config, workdir, env=NO_OTEL_ENV) as gw:
        denied = httpx.get(gw.url + "/metrics", timeout=5)
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"
        assert value(scrape(gw, key="sk-metrics-test"), "mpr_requests_total", route="/metrics", model="-", status="401") == 1
    open_config = routes(fake.base_url, server={"api_keys": ["sk-metrics-test"]})
    with GatewayProcess(open_config, workdir, env=NO_OTEL_ENV) as gw:
        assert httpx.get(gw.url + "/metrics", timeout=5).status_code == 200


def test_metric_names_are_documented(gateway: GatewayProcess) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text()
    response = httpx.get(gateway.url + "/metrics", timeout=5)
    families = {f.name for f in text_string_to_metric_families(response.text) if f.name.startswith("mpr_") and not f.name.endswith("_created")}
    assert families
    missing = [name for name in sorted(families) if name not in doc]
    assert not missing, f"undocumented metrics: {missing}"

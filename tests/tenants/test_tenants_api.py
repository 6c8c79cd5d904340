"""Tenant keys against a real gateway process: model scope (404, /v1/models), tokens/min and
budgets on plain and streamed requests (429 + retry-after), usage counted exactly as the target
reported it (streams included, the usage chunk stripped for clients that did not ask), per-key
refinement policies, the usage log, metrics, /admin/usage and `mpr-gateway usage`, live reload,
and no raw key in any log line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import CLEAN, CLEANED, DIRTY, PARAPHRASED, refining
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import REPO, GatewayProcess, clean_env
from tests.tenants.conftest import ADMIN, BARE, KEYS, away_from_minute_edge, tenant_routes

MESSAGES = [{"role": "user", "content": CLEAN}]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tenants")


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, workdir: Path) -> Iterator[GatewayProcess]:
    config = tenant_routes(fake, workdir)
    config["telemetry"].update(capture_prompts=True, audit_sample_rate=1.0, audit_path=str(workdir / "audit.jsonl"))
    with GatewayProcess(config, workdir, env={"ALPHA_KEY": KEYS["alpha"]}) as gw:
        yield gw


def post(gw: GatewayProcess, key: str, path: str = "/chat/completions", **body: Any) -> httpx.Response:
    body.setdefault("model", "test-model")
    if path == "/chat/completions":
        body.setdefault("messages", MESSAGES)
    return httpx.post(gw.base_url + path, json=body, headers={"authorization": f"Bearer {key}"}, timeout=10)


def usage_lines(workdir: Path, key: str) -> list[dict[str, Any]]:
    path = workdir / "usage.jsonl"
    if not path.exists():
        return []
    return [line for line in map(json.loads, path.read_text().splitlines()) if line["key"] == key]


def wait_lines(workdir: Path, key: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while len(lines := usage_lines(workdir, key)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return lines


def sse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip() != "[DONE]"]


def test_a_scoped_key_is_refused_on_another_model(gateway: GatewayProcess) -> None:
    refused = post(gateway, KEYS["alpha"], model="other-model")
    assert refused.status_code == 404
    assert refused.json() == {
        "error": {
            "message": "The model `other-model` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    assert post(gateway, KEYS["alpha"]).status_code == 200
    assert post(gateway, KEYS["beta"], model="other-model").status_code == 200
    assert post(gateway, KEYS["beta"], "/embeddings", input="x").status_code == 404  # every route is scoped
    assert post(gateway, BARE, model="other-model").status_code == 200  # a bare server.api_keys key: every model


def test_models_lists_only_the_models_of_the_key(gateway: GatewayProcess) -> None:
    def models(key: str) -> list[str]:
        answer = httpx.get(gateway.base_url + "/models", headers={"authorization": f"Bearer {key}"}, timeout=5)
        return [m["id"] for m in answer.json()["data"]]

    assert models(KEYS["alpha"]) == ["test-model"]
    assert models(KEYS["beta"]) == ["other-model"]
    assert models(BARE) == ["test-model", "other-model"]
    one = httpx.get(gateway.base_url + "/models/other-model", headers={"authorization": f"Bearer {KEYS['alpha']}"}, timeout=5)
    assert one.status_code == 404 and one.json()["error"]["code"] == "model_not_found"


def _until_refused(gw: GatewayProcess, key: str, stream: bool) -> tuple[int, httpx.Response]:
    for sent in range(1, 20):
        if stream:
            with httpx.stream("POST", gw.base_url + "/chat/completions", json={"model": "test-model", "messages": MESSAGES, "stream": True},
                              headers={"authorization": f"Bearer {key}"}, timeout=10) as answer:
                answer.read()
        else:
            answer = post(gw, key)
        if answer.status_code != 200:
            return sent, answer
        time.sleep(0.05)  # the settle of the actual usage is a background task
    raise AssertionError("never refused")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_tokens_per_minute_is_enforced(gateway: GatewayProcess, workdir: Path, stream: bool) -> None:
    name = "tpm-stream" if stream else "tpm-plain"
    away_from_minute_edge()
    sent, refused = _until_refused(gateway, KEYS[name], stream)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "tokens_per_minute_exceeded" and error["param"] is None
    assert "120 tokens per minute" in error["message"] and name in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    lines = wait_lines(workdir, name, sent)
    assert lines[-1]["status"] == 429 and lines[-1]["prompt_tokens"] == 0  # a refused request has its line too
    used = sum(line["prompt_tokens"] + line["completion_tokens"] for line in lines if line["status"] == 200)
    assert sent >= 3 and used <= 120  # the actual usage counted, within the limit
    big = post(gateway, KEYS[name], max_tokens=500)  # the estimate alone passes the limit
    assert big.status_code == 429 and big.json()["error"]["code"] == "tokens_per_minute_exceeded"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_budget_is_enforced(gateway: GatewayProcess, stream: bool) -> None:
    name = "budget-stream" if stream else "budget-plain"
    sent, refused = _until_refused(gateway, KEYS[name], stream)
    assert refused.status_code == 429 and sent >= 3
    error = refused.json()["error"]
    assert error["code"] == "budget_exceeded"
    assert "budget of 100 tokens per " + ("month" if stream else "day") in error["message"]
    assert int(refused.headers["retry-after"]) >= 1


def test_streamed_usage_is_counted_as_reported_and_stripped_unless_asked(gateway: GatewayProcess, workdir: Path, fake: FakeOpenAI) -> None:
    key = KEYS["meter"]
    headers = {"authorization": f"Bearer {key}"}
    body = {"model": "test-model", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, headers=headers, timeout=10) as plain:
        silent = plain.read().decode()
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json={**body, "stream_options": {"include_usage": True}},
                      headers=headers, timeout=10) as asked:
        told = asked.read().decode()
    assert '"usage"' not in silent  # the client that did not ask gets no usage chunk
    reported = [e["usage"] for e in sse_events(told) if e.get("usage")]
    assert len(reported) == 1 and reported[0]["prompt_tokens"] == 7
    assert all(r.body["stream_options"] == {"include_usage": True} for r in fake.requests_for("target-model"))
    lines = wait_lines(workdir, "meter", 2)
    assert [(line["prompt_tokens"], line["completion_tokens"]) for line in lines[-2:]] == [
        (reported[0]["prompt_tokens"], reported[0]["completion_tokens"])
    ] * 2
    line = lines[-1]
    assert line["model"] == "test-model" and line["target"] == "test-model" and line["status"] == 200 and line["team"] == "billing"
    assert isinstance(line["request_id"], str) and line["request_id"] and line["time"] > 0


def test_usage_of_other_routes(gateway: GatewayProcess, workdir: Path) -> None:
    key = KEYS["meter"]
    before = len(usage_lines(workdir, "meter"))
    plain = post(gateway, key).json()["usage"]
    embedded = post(gateway, key, "/embeddings", input=["a", "b"]).json()["usage"]
    response = post(gateway, key, "/responses", input="What is the capital of France?").json()["usage"]
    with httpx.stream("POST", gateway.base_url + "/responses", json={"model": "test-model", "input": "Hello there", "stream": True},
                      headers={"authorization": f"Bearer {key}"}, timeout=10) as streamed:
        events = sse_events(streamed.read().decode())
    completed = next(e for e in events if e.get("type") == "response.completed")["response"]["usage"]
    lines = wait_lines(workdir, "meter", before + 4)[before:]
    assert [(line["prompt_tokens"], line["completion_tokens"]) for line in lines] == [
        (plain["prompt_tokens"], plain["completion_tokens"]),
        (embedded["prompt_tokens"], 0),
        (response["input_tokens"], response["output_tokens"]),
        (completed["input_tokens"], completed["output_tokens"]),
    ]


def test_per_key_refinement_policy(gateway: GatewayProcess, workdir: Path, fake: FakeOpenAI) -> None:
    refining(fake)
    dirty = [{"role": "user", "content": DIRTY}]
    shadowed = post(gateway, KEYS["shadow"], messages=dirty, mpr={"mode": "apply"})  # the request cannot widen it
    assert shadowed.status_code == 200 and shadowed.headers["x-mpr-refinement"].startswith("shadow")
    assert fake.requests_for("target-model")[-1].body["messages"][-1]["content"] == DIRTY
    applied = post(gateway, KEYS["apply"], messages=dirty)  # capture: false — no audit line for it
    assert applied.status_code == 200 and "paraphraser" in applied.headers["x-mpr-refinement"]
    assert fake.requests_for("target-model")[-1].body["messages"][-1]["content"] == PARAPHRASED
    strict = post(gateway, KEYS["strict"], messages=dirty)  # drift bound 0.05: the paraphrase (0.14) is rejected
    assert strict.headers["x-mpr-refinement"] == "cleaner"
    assert fake.requests_for("target-model")[-1].body["messages"] == [{"role": "user", "content": CLEANED}]  # no describer either

    def audited() -> set[str]:
        path = workdir / "audit.jsonl"
        return {json.loads(line)["request_id"] for line in path.read_text().splitlines()} if path.exists() else set()

    deadline = time.monotonic() + 5
    while strict.headers["x-request-id"] not in audited() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert strict.headers["x-request-id"] in audited()  # another key's refinement is audited (capture_prompts on)
    assert applied.headers["x-request-id"] not in audited()
    line = wait_lines(workdir, "apply", 1)[-1]
    assert line["stage_tokens"] and all(s["prompt_tokens"] == 7 for s in line["stage_tokens"].values())  # the stages' own usage


def test_metrics_admin_usage_and_cli(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    post(gateway, KEYS["meter"])
    post(gateway, KEYS["alpha"], model="other-model")
    refining(fake)
    post(gateway, KEYS["apply"], messages=[{"role": "user", "content": DIRTY}])
    time.sleep(1.3)  # the usage buckets are written once a second
    metrics = httpx.get(gateway.url + "/metrics", timeout=5).text
    assert 'mpr_tenant_tokens_total{key="meter",kind="prompt",model="test-model",stage="target"}' in metrics
    assert 'mpr_tenant_requests_total{key="meter",model="test-model",status="2xx"}' in metrics
    assert 'mpr_tenant_refusals_total{key="alpha",reason="model_not_allowed"}' in metrics
    assert 'stage="paraphraser"' in metrics
    refused = httpx.get(gateway.url + "/admin/usage", timeout=5)
    assert refused.status_code in (401, 403)
    answer = httpx.get(gateway.url + "/admin/usage", params={"window": "1h"}, headers={"authorization": f"Bearer {ADMIN}"}, timeout=5)
    assert answer.status_code == 200
    rows = {(r["key"], r["model"]): r for r in answer.json()["data"]}
    assert rows[("meter", "test-model")]["requests"] >= 1 and rows[("meter", "test-model")]["prompt_tokens"] >= 7
    assert rows[("apply", "test-model")]["stage_tokens"] > 0
    bad = httpx.get(gateway.url + "/admin/usage", params={"window": "forever"}, headers={"authorization": f"Bearer {ADMIN}"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "window"
    cli = subprocess.run([sys.executable, "-m", "gateway", "usage", "--url", gateway.url, "--window", "24h"], capture_output=True, text=True,
                         env={**clean_env(), "MPR_ADMIN_KEY": ADMIN}, cwd=REPO, timeout=30)
    assert cli.returncode == 0, cli.stderr
    assert "meter" in cli.stdout and "test-model" in cli.stdout and "TOTAL" in cli.stdout


def test_keys_change_live_with_a_reload(gateway: GatewayProcess, fake: FakeOpenAI, workdir: Path) -> None:
    assert post(gateway, KEYS["meter"]).status_code == 200
    time.sleep(1.3)
    config = tenant_routes(fake, workdir)
    config["server"]["keys"][0]["models"] = ["test-model", "other-model"]
    gateway.rewrite(config)
    reloaded = httpx.post(gateway.url + "/admin/reload", headers={"authorization": f"Bearer {ADMIN}"}, timeout=10)
    assert reloaded.status_code == 200, reloaded.text
    assert post(gateway, KEYS["alpha"], model="other-model").status_code == 200
    after = httpx.get(gateway.url + "/admin/usage", headers={"authorization": f"Bearer {ADMIN}"}, timeout=5).json()
    assert any(r["key"] == "meter" for r in after["data"])  # the usage buckets survive the reload (in-process state)


def test_no_raw_key_in_any_log_line(gateway: GatewayProcess, workdir: Path) -> None:
    post(gateway, "sk-wrong-raw-key-0123456789")  # a refused key is not logged either
    time.sleep(0.2)
    logs = gateway.logs() + (workdir / "usage.jsonl").read_text()
    assert "Authorization" not in logs or "Bearer sk-" not in logs
    for raw in [*KEYS.values(), BARE, "sk-wrong-raw-key-0123456789", ADMIN]:
        assert raw not in logs
    assert len(logs) > 0 and '"key":"meter"' in logs

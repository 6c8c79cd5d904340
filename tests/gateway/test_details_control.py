"""The ``details`` control (``x-mpr-details: 1``, ``mpr.details``): the refinement details go to
the caller only when asked — a top-level ``mpr`` object in a JSON answer, or a first chunk with
``choices: []`` and ``mpr`` in a stream — and the openai SDK still parses both."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.gateway.conftest import CLEANED, DESCRIBED, DIRTY, PARAPHRASED, refining, start_gateway
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes

DETAILS = {"x-mpr-details": "1"}


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gw = start_gateway(tmp_path_factory, routes(fake.base_url, fake.base_url))
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0, timeout=10) as c:
        yield c


def events(gateway: GatewayProcess, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> list[str]:
    """The ``data:`` payloads of a streamed answer."""
    with httpx.stream("POST", gateway.base_url + path, json={"stream": True, **body}, headers=headers or {}, timeout=10) as r:
        assert r.status_code == 200, r.read()
        raw = r.read().decode()
    return [line[5:].strip() for line in raw.splitlines() if line.startswith("data:")]


def check_details(mpr: dict[str, Any]) -> None:
    assert mpr["original"] == DIRTY and mpr["refined"] == PARAPHRASED and mpr["description"] == DESCRIBED
    assert mpr["refinement"] == "describer,paraphraser" and mpr["mode"] == "apply"
    assert set(mpr["stages"]) == {"cleaner", "describer", "paraphraser"}
    assert mpr["stages"]["cleaner"]["output"] == CLEANED and mpr["stages"]["paraphraser"]["accepted"] is True
    assert isinstance(mpr["refine_ms"], float | int)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_no_details_unless_asked(gateway: GatewayProcess, client: openai.OpenAI, fake: FakeOpenAI, stream: bool) -> None:
    refining(fake)
    body = {"model": "test-model", "messages": [{"role": "user", "content": DIRTY}]}
    if stream:
        assert not any('"mpr"' in e for e in events(gateway, "/chat/completions", body))
        assert not any('"mpr"' in e for e in events(gateway, "/completions", {"model": "test-model", "prompt": DIRTY}))
    else:
        assert "mpr" not in httpx.post(gateway.base_url + "/chat/completions", json=body, timeout=10).json()
        assert "mpr" not in httpx.post(gateway.base_url + "/completions", json={"model": "test-model", "prompt": DIRTY}, timeout=10).json()
    assert all("x-mpr-details" not in r.headers for r in fake.requests)


def test_sdk_parses_the_details_of_a_json_answer(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    raw = client.chat.completions.with_raw_response.create(
        model="test-model", messages=[{"role": "user", "content": DIRTY}], extra_headers=DETAILS
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == f"echo: {PARAPHRASED}"
    check_details((completion.model_extra or {})["mpr"])
    assert json.loads(raw.text)["mpr"] == completion.model_extra["mpr"]  # type: ignore[index]
    assert "mpr" not in fake.requests_for("target-model")[0].body


def test_sdk_parses_the_details_chunk_of_a_stream(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    chunks = list(
        client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": DIRTY}], stream=True, extra_body={"mpr": {"details": True}}
        )
    )
    first = chunks[0]
    assert first.choices == [] and first.object == "chat.completion.chunk" and first.model == "test-model"
    check_details((first.model_extra or {})["mpr"])
    assert all("mpr" not in (c.model_extra or {}) for c in chunks[1:]), "only the first chunk"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == f"echo: {PARAPHRASED}"
    assert "mpr" not in fake.requests_for("target-model")[0].body


def test_a_text_completion_stream_gets_a_text_completion_chunk(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    refining(fake)
    data = events(gateway, "/completions", {"model": "test-model", "prompt": DIRTY}, DETAILS)
    first = json.loads(data[0])
    assert first["object"] == "text_completion" and first["choices"] == []
    assert first["mpr"]["original"] == DIRTY and "describer" not in first["mpr"]["stages"]
    assert data[-1] == "[DONE]" and not any('"mpr"' in e for e in data[1:])


def test_details_of_a_skipped_prompt_in_a_stream(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    clean = "What is the capital of France and how big is it?"
    data = events(gateway, "/chat/completions", {"model": "test-model", "messages": [{"role": "user", "content": clean}]}, DETAILS)
    mpr = json.loads(data[0])["mpr"]
    assert mpr["refinement"] == "skipped;reason=clean" and mpr["refined"] == clean and mpr["stages"] == {}


def test_refinement_off_sends_no_details(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    body = {"model": "test-model", "messages": [{"role": "user", "content": DIRTY}]}
    data = events(gateway, "/chat/completions", body, {**DETAILS, "x-mpr-refine": "off"})
    assert not any('"mpr"' in e for e in data)


@pytest.mark.parametrize(
    ("headers", "mpr", "param"),
    [({"x-mpr-details": "maybe"}, None, "x-mpr-details"), ({}, {"details": "maybe"}, "mpr.details")],
    ids=["header", "body"],
)
def test_a_bad_details_flag_is_a_400(gateway: GatewayProcess, headers: dict[str, str], mpr: Any, param: str) -> None:
    body: dict[str, Any] = {"model": "test-model", "messages": [{"role": "user", "content": DIRTY}]}
    if mpr is not None:
        body["mpr"] = mpr
    response = httpx.post(gateway.base_url + "/chat/completions", json=body, headers=headers, timeout=10)
    assert response.status_code == 400 and response.json()["error"]["param"] == param

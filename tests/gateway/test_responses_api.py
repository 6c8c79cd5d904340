"""``/v1/responses`` through the real OpenAI SDK: the last user input refined, the description in
``instructions``, controls and headers, streaming relayed and ended with ``response.failed`` when
the target breaks off, shapes checked against the OpenAI spec, by-id routes sent to the target
that served the response."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.gateway.conftest import CLEAN, DESCRIBED, DIRTY, PARAPHRASED, OpenAPISchemas, refining, start_gateway
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes

IMAGE = {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk", "detail": "low"}


@pytest.fixture(scope="module")
def other() -> Iterator[FakeOpenAI]:
    """A second target peer, to check by-id routing."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_other(request: pytest.FixtureRequest) -> None:
    if "other" in request.fixturenames:
        request.getfixturevalue("other").reset()


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, other: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = routes(fake.base_url, fake.base_url)
    config["targets"].append({"name": "other-model", "endpoints": [other.base_url], "upstream_model": "target-model", "timeout_s": 10})
    config["targets"].append({"name": "chat-model", "endpoints": [fake.base_url], "upstream_model": "target-model", "api": "chat", "timeout_s": 10})
    gw = start_gateway(tmp_path_factory, config)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0, timeout=10) as c:
        yield c


def target_body(fake: FakeOpenAI) -> dict[str, Any]:
    bodies = [r for r in fake.requests_for("target-model")]
    assert len(bodies) == 1, bodies
    assert bodies[0].path == "/v1/responses"
    return bodies[0].body


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    events = []
    for block in raw.decode().split("\n\n"):
        lines = [ln[len("data:") :].strip() for ln in block.splitlines() if ln.startswith("data:")]
        if lines:
            events.append(json.loads("\n".join(lines)))
    return events


def post_stream(gateway: GatewayProcess, body: dict[str, Any], **headers: str) -> tuple[httpx.Response, bytes]:
    with httpx.stream("POST", gateway.base_url + "/responses", json={"stream": True, **body}, headers=headers, timeout=10) as r:
        return r, r.read()


# -- non-streaming ---------------------------------------------------------------------------------


def test_string_input_is_refined_and_the_description_goes_right_before_it(
    client: openai.OpenAI, fake: FakeOpenAI, openapi: OpenAPISchemas
) -> None:
    refining(fake)
    raw = client.responses.with_raw_response.create(
        model="test-model", input=DIRTY, instructions="Be brief.", temperature=0.5, extra_body={"mpr": {"return_details": True}}
    )
    assert raw.headers["x-mpr-refinement"] == "describer,paraphraser"
    assert float(raw.headers["x-mpr-refine-ms"]) > 0
    body = target_body(fake)
    assert body["input"] == [{"role": "system", "content": f"Context: {DESCRIBED}"}, {"role": "user", "content": PARAPHRASED}]
    assert body["instructions"] == "Be brief."  # never touched: not carried over by previous_response_id
    assert body["model"] == "target-model"
    assert body["temperature"] == 0.5
    assert "mpr" not in body
    openapi.validate(body, "CreateResponse")
    data = raw.http_response.json()
    openapi.validate({k: v for k, v in data.items() if k != "mpr"}, "Response")
    assert data["mpr"]["original"] == DIRTY and data["mpr"]["refined"] == PARAPHRASED and data["mpr"]["mode"] == "apply"
    assert raw.parse().output_text == f"echo: {PARAPHRASED}"


def test_last_user_message_item_is_refined_parts_stay(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    earlier = {"role": "user", "content": "an earlier qestion"}
    answer = {"role": "assistant", "content": "an earlier answer"}
    last = {"role": "user", "content": [{"type": "input_text", "text": DIRTY}, IMAGE]}
    response = client.responses.create(model="test-model", input=[earlier, answer, last])  # type: ignore[list-item]
    assert response.output_text == f"echo: {PARAPHRASED}"
    body = target_body(fake)
    assert body["input"][:2] == [earlier, answer]
    assert body["input"][2] == {"role": "system", "content": f"Context: {DESCRIBED}"}
    assert body["input"][3] == {"role": "user", "content": [{"type": "input_text", "text": PARAPHRASED}, IMAGE]}
    assert "instructions" not in body


def test_clean_input_is_forwarded_as_it_is(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    raw = client.responses.with_raw_response.create(model="test-model", input=CLEAN)
    assert raw.headers["x-mpr-refinement"] == "skipped;reason=clean"
    body = target_body(fake)
    assert body["input"] == CLEAN and "instructions" not in body


def test_no_user_text_is_skipped(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    raw = client.responses.with_raw_response.create(model="test-model", input=[{"role": "user", "content": [IMAGE]}])  # type: ignore[list-item]
    assert raw.headers["x-mpr-refinement"] == "skipped;reason=no_text"


def test_controls_refine_off_and_stages(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    raw = client.responses.with_raw_response.create(model="test-model", input=DIRTY, extra_headers={"x-mpr-refine": "off"})
    assert raw.headers["x-mpr-refinement"] == "off"
    assert target_body(fake)["input"] == DIRTY
    fake.reset()
    refining(fake)
    raw = client.responses.with_raw_response.create(model="test-model", input=DIRTY, extra_headers={"x-mpr-stages": "cleaner"})
    assert raw.headers["x-mpr-refinement"] == "cleaner"
    assert len(fake.requests_for("paraphraser")) == 0


def test_shadow_mode_forwards_the_original(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    raw = client.responses.with_raw_response.create(model="test-model", input=DIRTY, extra_headers={"x-mpr-mode": "shadow"})
    assert raw.headers["x-mpr-refinement"] == "shadow;describer,paraphraser"
    body = target_body(fake)
    assert body["input"] == DIRTY and "instructions" not in body


def test_errors_have_the_openai_shape(gateway: GatewayProcess, fake: FakeOpenAI, assert_openai_error: Any) -> None:
    url = gateway.base_url + "/responses"
    assert_openai_error(httpx.post(url, json={"model": "nope", "input": "hi"}), 404, "model_not_found")
    assert assert_openai_error(httpx.post(url, json={"model": "test-model", "input": 3}), 400)["param"] == "input"
    assert assert_openai_error(httpx.post(url, json={"model": "test-model", "input": "hi", "mpr": {"x": 1}}), 400)["param"] == "mpr"
    fake.behave("target-model", Behaviour(mode="status", status=400))
    response = httpx.post(url, json={"model": "test-model", "input": CLEAN})
    assert_openai_error(response, 400)
    assert response.headers["x-mpr-refinement"] == "skipped;reason=clean"


# -- streaming ----------------------------------------------------------------------------------


def test_sdk_stream_relays_the_events(client: openai.OpenAI, fake: FakeOpenAI, openapi: OpenAPISchemas) -> None:
    refining(fake)
    raw = client.responses.with_raw_response.create(model="test-model", input=DIRTY, stream=True)
    assert raw.headers["x-mpr-refinement"] == "describer,paraphraser"
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = list(raw.parse())
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == f"echo: {PARAPHRASED}"
    for event in events:
        openapi.validate(event.model_dump(mode="json", exclude_unset=True), "ResponseStreamEvent")
    assert target_body(fake)["input"] == [{"role": "system", "content": f"Context: {DESCRIBED}"}, {"role": "user", "content": PARAPHRASED}]


def test_broken_stream_ends_with_response_failed(gateway: GatewayProcess, fake: FakeOpenAI, openapi: OpenAPISchemas) -> None:
    fake.behave("target-model", Behaviour(mode="cut_stream", chunks=6))
    response, raw = post_stream(gateway, {"model": "test-model", "input": "one two three four five six seven eight"})
    assert response.status_code == 200
    events = sse_events(raw)
    assert any(e["type"] == "response.output_text.delta" for e in events)
    last = events[-1]
    openapi.validate(last, "ResponseFailedEvent")
    assert last["type"] == "response.failed" and last["response"]["status"] == "failed"
    assert last["response"]["id"] == events[0]["response"]["id"]
    assert last["sequence_number"] == events[-2]["sequence_number"] + 1
    assert "broke" in last["response"]["error"]["message"]


def test_stream_without_completed_ends_with_response_failed(client: openai.OpenAI, fake: FakeOpenAI, openapi: OpenAPISchemas) -> None:
    fake.behave("target-model", Behaviour(mode="no_done"))
    events = list(client.responses.create(model="test-model", input=CLEAN, stream=True))
    assert events[-2].type == "response.output_item.done"
    assert events[-1].type == "response.failed"
    openapi.validate(events[-1].model_dump(mode="json", exclude_unset=True), "ResponseFailedEvent")


# -- by id ----------------------------------------------------------------------------------------


def test_get_cancel_delete_go_to_the_target_that_served_it(client: openai.OpenAI, fake: FakeOpenAI, other: FakeOpenAI) -> None:
    created = client.responses.create(model="other-model", input=CLEAN)
    assert created.id in other.responses
    fetched = client.responses.with_raw_response.retrieve(created.id)
    assert fetched.headers["x-mpr-target"] == "other-model"
    assert fetched.parse().id == created.id and fetched.parse().output_text == created.output_text
    assert client.responses.cancel(created.id).status == "cancelled"
    client.responses.delete(created.id)
    assert created.id not in other.responses
    assert [r.body["method"] for r in other.requests if r.path.startswith(f"/v1/responses/{created.id}")] == ["GET", "POST", "DELETE"]
    assert not [r for r in fake.requests if r.path.startswith("/v1/responses/")]  # the other target was never asked


def test_streamed_response_id_is_remembered(client: openai.OpenAI, other: FakeOpenAI) -> None:
    events = list(client.responses.create(model="other-model", input=CLEAN, stream=True))
    rid = events[0].response.id  # type: ignore[union-attr]
    assert client.responses.retrieve(rid).id == rid


def test_unknown_id_asks_every_target_then_404(gateway: GatewayProcess, fake: FakeOpenAI, other: FakeOpenAI, assert_openai_error: Any) -> None:
    assert_openai_error(httpx.get(gateway.base_url + "/responses/resp_nowhere"), 404)
    assert [r.path for r in fake.requests] == ["/v1/responses/resp_nowhere"]
    assert [r.path for r in other.requests] == ["/v1/responses/resp_nowhere"]
    # served by another replica (or before a restart): found by asking the targets in order
    other.responses["resp_elsewhere"] = {"id": "resp_elsewhere", "object": "response", "status": "completed"}
    response = httpx.get(gateway.base_url + "/responses/resp_elsewhere")
    assert response.status_code == 200 and response.json()["id"] == "resp_elsewhere"


# -- the chat completions bridge (targets[].api: chat) ----------------------------------------------


def chat_body(fake: FakeOpenAI) -> dict[str, Any]:
    calls = fake.requests_for("target-model")
    assert len(calls) == 1 and calls[0].path == "/v1/chat/completions", calls
    return calls[0].body


def test_bridge_non_streaming(client: openai.OpenAI, fake: FakeOpenAI, openapi: OpenAPISchemas) -> None:
    refining(fake)
    raw = client.responses.with_raw_response.create(model="chat-model", input=DIRTY, instructions="Be brief.", max_output_tokens=40)
    assert raw.headers["x-mpr-refinement"] == "describer,paraphraser"
    body = chat_body(fake)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": f"Context: {DESCRIBED}"},
        {"role": "user", "content": PARAPHRASED},
    ]
    assert body["model"] == "target-model" and body["max_completion_tokens"] == 40 and "mpr" not in body
    data = raw.http_response.json()
    openapi.validate(data, "Response")
    assert data["status"] == "completed" and data["store"] is False
    assert data["instructions"] == "Be brief."  # as a native target echoes it: the context went in as an input item
    assert raw.parse().output_text == f"echo: {PARAPHRASED}"
    assert data["usage"]["input_tokens"] == 7


def test_bridge_streaming(client: openai.OpenAI, fake: FakeOpenAI, openapi: OpenAPISchemas) -> None:
    refining(fake)
    events = list(client.responses.create(model="chat-model", input=[{"role": "user", "content": DIRTY}], stream=True))
    for event in events:
        openapi.validate(event.model_dump(mode="json", exclude_unset=True), "ResponseStreamEvent")
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"]
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == f"echo: {PARAPHRASED}"
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == f"echo: {PARAPHRASED}" and final.usage is not None and final.usage.total_tokens > 0
    body = chat_body(fake)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_bridge_broken_stream_ends_with_response_failed(gateway: GatewayProcess, fake: FakeOpenAI, openapi: OpenAPISchemas) -> None:
    fake.behave("target-model", Behaviour(mode="cut_stream", chunks=6))
    response, raw = post_stream(gateway, {"model": "chat-model", "input": "one two three four five six seven eight"})
    events = sse_events(raw)
    assert any(e["type"] == "response.output_text.delta" for e in events)
    openapi.validate(events[-1], "ResponseFailedEvent")
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_bridge_rejects_what_it_cannot_translate(gateway: GatewayProcess, fake: FakeOpenAI, assert_openai_error: Any) -> None:
    refining(fake)
    url = gateway.base_url + "/responses"
    for extra, param in (
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": [{"role": "user", "content": [{"type": "input_text", "text": DIRTY}, IMAGE]}]}, "input[0].content[1]"),
    ):
        error = assert_openai_error(httpx.post(url, json={"model": "chat-model", "input": DIRTY, **extra}), 400)
        assert error["param"] == param and "chat completions" in error["message"]
    assert fake.requests == []  # neither refined nor forwarded

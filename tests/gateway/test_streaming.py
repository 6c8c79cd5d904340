"""Streaming: SSE relayed as it arrives with ``[DONE]``, usage only when asked, a failure after
the stream started ends with an SSE error event then ``[DONE]``; SDK sync and async."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.gateway.conftest import CLEAN, DIRTY, PARAPHRASED, OpenAPISchemas, refining, start_gateway
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gw = start_gateway(tmp_path_factory, routes(fake.base_url, fake.base_url))
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0, timeout=10) as c:
        yield c


def sse_events(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    events = []
    for block in raw.decode().split("\n\n"):
        lines = [ln[len("data:") :].strip() for ln in block.splitlines() if ln.startswith("data:")]
        if lines:
            events.append("\n".join(lines))
    return events


def post_stream(gateway: GatewayProcess, body: dict[str, Any], **headers: str) -> tuple[httpx.Response, bytes]:
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json={"stream": True, **body}, headers=headers, timeout=10) as r:
        return r, r.read()


def test_sdk_stream_relays_the_target_answer(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    raw = client.chat.completions.with_raw_response.create(model="test-model", messages=[{"role": "user", "content": DIRTY}], stream=True)
    assert raw.headers["x-mpr-refinement"] == "describer,paraphraser"
    assert float(raw.headers["x-mpr-refine-ms"]) >= 0
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"echo: {PARAPHRASED}"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    (call,) = fake.requests_for("target-model")
    assert call.body["stream"] is True
    assert call.body["messages"][-1]["content"] == PARAPHRASED


async def test_async_sdk_stream(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    refining(fake)
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key="k", max_retries=0, timeout=10) as client:
        stream = await client.chat.completions.create(model="test-model", messages=[{"role": "user", "content": DIRTY}], stream=True)
        pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(pieces) == f"echo: {PARAPHRASED}"


def test_done_is_relayed_and_the_bytes_are_the_targets(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    response, raw = post_stream(gateway, {"model": "test-model", "messages": [{"role": "user", "content": CLEAN}]})
    assert response.status_code == 200
    assert response.headers["x-mpr-refinement"] == "skipped;reason=clean"
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    assert events.count("[DONE]") == 1
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "target-model" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == f"echo: {CLEAN}"
    assert raw.endswith(b"data: [DONE]\n\n")


def test_usage_chunk_only_when_asked(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    messages = [{"role": "user", "content": CLEAN}]
    with_usage = list(client.chat.completions.create(model="test-model", messages=messages, stream=True, stream_options={"include_usage": True}))  # type: ignore[arg-type]
    assert with_usage[-1].choices == []
    assert with_usage[-1].usage is not None and with_usage[-1].usage.total_tokens > 0
    assert all(c.usage is None for c in with_usage[:-1])
    without = list(client.chat.completions.create(model="test-model", messages=messages, stream=True))  # type: ignore[arg-type]
    assert all(c.usage is None for c in without)
    first, second = fake.requests_for("target-model")
    assert first.body["stream_options"] == {"include_usage": True}
    assert second.body["stream_options"] == {"include_usage": True}  # asked for the tenant accounting (docs/tenants.md), then stripped


def test_stream_is_relayed_as_it_arrives_not_buffered(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    gap = 0.15
    fake.behave("target-model", Behaviour(chunks=6, chunk_delay_s=gap))
    arrivals: list[float] = []
    started = time.monotonic()
    body = {"model": "test-model", "stream": True, "messages": [{"role": "user", "content": "one two three four five six seven eight nine ten eleven twelve"}]}
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, timeout=10) as response:
        buffer = b""
        for piece in response.iter_raw():
            buffer += piece
            while b"\n\n" in buffer:
                _, buffer = buffer.split(b"\n\n", 1)
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) >= 7
    total = arrivals[-1]
    assert total >= 5 * gap
    assert arrivals[0] < total - 3 * gap, arrivals  # the first event came long before the last
    # events keep arriving spaced by the target's pauses, not in one burst at the end
    assert arrivals[3] < total - gap, arrivals


def test_failure_after_the_stream_started_ends_with_an_error_event(
    gateway: GatewayProcess, fake: FakeOpenAI, openapi: OpenAPISchemas
) -> None:
    fake.behave("target-model", Behaviour(mode="cut_stream", chunks=6))
    response, raw = post_stream(gateway, {"model": "test-model", "messages": [{"role": "user", "content": "one two three four five six seven eight"}]})
    assert response.status_code == 200
    assert "x-mpr-refinement" in response.headers
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])
    openapi.validate(error, "ErrorResponse")
    assert error["error"]["code"] == "upstream_unreachable"
    assert len(events) >= 3  # some content made it before the failure
    assert json.loads(events[0])["object"] == "chat.completion.chunk"


def test_stream_closed_without_done_ends_with_an_error_event(gateway: GatewayProcess, fake: FakeOpenAI, openapi: OpenAPISchemas) -> None:
    fake.behave("target-model", Behaviour(mode="no_done"))
    response, raw = post_stream(gateway, {"model": "test-model", "messages": [{"role": "user", "content": CLEAN}]})
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    openapi.validate(json.loads(events[-2]), "ErrorResponse")


def test_sdk_raises_on_the_error_event(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.behave("target-model", Behaviour(mode="cut_stream", chunks=6))
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "one two three four five six seven eight"}], stream=True
        ):
            received.append(chunk)
    assert received, "content before the failure reached the client"
    assert "target" in str(info.value.message)


def test_stream_with_return_details_still_streams(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    stream = client.chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": DIRTY}], stream=True, extra_body={"mpr": {"return_details": True}}
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == f"echo: {PARAPHRASED}"
    assert "mpr" not in fake.requests_for("target-model")[0].body


def test_usage_chunk_forced_by_target_is_dropped_when_not_asked(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    """A target that always sends usage (vLLM --enable-force-include-usage) does not leak it."""
    fake.behave("target-model", Behaviour(force_usage=True))
    messages = [{"role": "user", "content": CLEAN}]
    without = list(client.chat.completions.create(model="test-model", messages=messages, stream=True))  # type: ignore[arg-type]
    assert without and all(c.choices for c in without) and all(c.usage is None for c in without)
    with_usage = list(client.chat.completions.create(model="test-model", messages=messages, stream=True, stream_options={"include_usage": True}))  # type: ignore[arg-type]
    assert with_usage[-1].choices == [] and with_usage[-1].usage is not None

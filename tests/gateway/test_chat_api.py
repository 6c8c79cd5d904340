"""``POST /v1/chat/completions`` through the real OpenAI SDK: pass-through, content parts, which
message is refined, the skip gate, description placement, per-request controls, headers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.gateway.conftest import (
    CLEAN,
    CLEANED,
    DESCRIBED,
    DIRTY,
    PARAPHRASED,
    refining,
    start_gateways,
    stop_gateways,
)
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk", "detail": "low"}}


@pytest.fixture(scope="module")
def gateways(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[GatewayProcess]]:
    """The default routes, and the same peers with the description appended to the user message."""
    default = routes(fake.base_url, fake.base_url)
    default["targets"].append({"name": "plain-model", "endpoints": [fake.base_url]})  # sent upstream as is
    default["targets"].append({"name": "raw-model", "endpoints": [fake.base_url], "refine": False})
    append = routes(fake.base_url, fake.base_url)
    append["refinement"]["describer"] = {"placement": "append"}
    gws = start_gateways(tmp_path_factory, default, append)
    yield gws
    stop_gateways(gws)


@pytest.fixture(scope="module")
def gateway(gateways: list[GatewayProcess]) -> GatewayProcess:
    return gateways[0]


@pytest.fixture(scope="module")
def append_gateway(gateways: list[GatewayProcess]) -> GatewayProcess:
    return gateways[1]


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key="client-key", max_retries=0, timeout=10) as c:
        yield c


def target_body(fake: FakeOpenAI) -> dict[str, Any]:
    bodies = [r.body for r in fake.requests_for("target-model")]
    assert len(bodies) == 1, bodies
    return bodies[0]


def stage_calls(fake: FakeOpenAI) -> dict[str, int]:
    return {role: len(fake.requests_for(role)) for role in ("cleaner", "describer", "paraphraser")}


def assert_mpr_headers(headers: Any, refinement: str | None = None) -> None:
    assert "x-mpr-refinement" in headers
    assert float(headers["x-mpr-refine-ms"]) >= 0.0
    if refinement is not None:
        assert headers["x-mpr-refinement"] == refinement


# -- pass-through --------------------------------------------------------------------------------


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_population",
            "description": "Population of a country",
            "parameters": {"type": "object", "properties": {"country": {"type": "string"}}, "required": ["country"]},
        },
    }
]
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": True},
}


@pytest.mark.parametrize("prompt", [DIRTY, CLEAN], ids=["refined", "skipped"])
def test_untouched_fields_reach_the_target_unchanged(client: openai.OpenAI, fake: FakeOpenAI, prompt: str) -> None:
    refining(fake)
    vendor = {"top_k": 20, "repetition_penalty": 1.05, "vendor_x": {"nested": [1, 2.5, None, "ü"]}}
    raw = client.chat.completions.with_raw_response.create(
        model="test-model",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}],
        tools=TOOLS,
        tool_choice="auto",
        response_format=RESPONSE_FORMAT,  # type: ignore[arg-type]
        n=2,
        seed=1234,
        logprobs=True,
        top_logprobs=3,
        temperature=0.25,
        max_tokens=77,
        user="end-user-1",
        extra_body=vendor,
    )
    assert raw.http_response.status_code == 200
    assert raw.parse().choices[0].message.content.startswith("echo: ")
    body = target_body(fake)
    expected = {
        "tools": TOOLS,
        "tool_choice": "auto",
        "response_format": RESPONSE_FORMAT,
        "n": 2,
        "seed": 1234,
        "logprobs": True,
        "top_logprobs": 3,
        "temperature": 0.25,
        "max_tokens": 77,
        "user": "end-user-1",
        **vendor,
    }
    for key, value in expected.items():
        assert body[key] == value, key
    assert set(body) == {*expected, "model", "messages"}
    assert body["model"] == "target-model"
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}  # the client's own, untouched
    if prompt != CLEAN:  # the context sits right before its turn
        assert body["messages"][1] == {"role": "system", "content": f"Context: {DESCRIBED}"}
    assert body["messages"][-1] == {"role": "user", "content": PARAPHRASED if prompt == DIRTY else CLEAN}
    assert_mpr_headers(raw.headers, "describer,paraphraser" if prompt == DIRTY else "skipped;reason=clean")


def test_stream_options_and_unknown_fields_pass_through_raw(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    """Raw JSON: field order, odd values and fields the SDK does not know all reach the target."""
    refining(fake)
    sent = {
        "messages": [{"role": "user", "content": DIRTY, "name": "alice"}],
        "stream_options": {"include_usage": True},
        "metadata": {"team": "search"},
        "logit_bias": {"50256": -100},
        "stop": ["\n\n", "END"],
        "guided_json": {"type": "object"},
        "chat_template_kwargs": {"enable_thinking": False},
        "model": "test-model",
    }
    response = httpx.post(gateway.base_url + "/chat/completions", json=sent, timeout=10)
    assert response.status_code == 200, response.text
    body = target_body(fake)
    for key in ("stream_options", "metadata", "logit_bias", "stop", "guided_json", "chat_template_kwargs"):
        assert body[key] == sent[key], key
    assert body["messages"][-1] == {"role": "user", "content": PARAPHRASED, "name": "alice"}
    assert "mpr" not in body


# -- which text is refined -------------------------------------------------------------------------


@pytest.mark.parametrize("image_first", [False, True])
def test_content_parts_refine_text_and_keep_image_in_place(client: openai.OpenAI, fake: FakeOpenAI, image_first: bool) -> None:
    refining(fake)
    text = {"type": "text", "text": DIRTY}
    parts = [IMAGE, text] if image_first else [text, IMAGE]
    raw = client.chat.completions.with_raw_response.create(model="test-model", messages=[{"role": "user", "content": parts}])
    assert_mpr_headers(raw.headers, "describer,paraphraser")
    forwarded = target_body(fake)["messages"][-1]["content"]
    refined = {"type": "text", "text": PARAPHRASED}
    assert forwarded == ([IMAGE, refined] if image_first else [refined, IMAGE])
    # the stages saw the text only, never the image
    for role in ("cleaner", "describer", "paraphraser"):
        (call,) = fake.requests_for(role)
        assert call.body["messages"][-1]["content"] == DIRTY


def test_only_the_last_user_message_is_refined(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    history = [
        {"role": "user", "content": "tel me abot teh weathr"},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": [{"type": "text", "text": "and waht about itss neighbours"}]},
        {"role": "assistant", "content": "Which country?"},
    ]
    raw = client.chat.completions.with_raw_response.create(model="test-model", messages=[*history, {"role": "user", "content": DIRTY}])
    assert_mpr_headers(raw.headers, "describer,paraphraser")
    for role in ("cleaner", "describer", "paraphraser"):
        (call,) = fake.requests_for(role)
        assert call.body["messages"][-1]["content"] == DIRTY
    assert target_body(fake)["messages"] == [
        *history,  # never refined through this gateway: nothing remembered, so as sent
        {"role": "system", "content": f"Context: {DESCRIBED}"},
        {"role": "user", "content": PARAPHRASED},
    ]


def test_last_user_message_rewrite_leaves_history_untouched(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake, described="")
    history = [
        {"role": "system", "content": "You answer geography questions."},
        {"role": "user", "content": "tel me abot teh weathr"},
        {"role": "assistant", "content": "It is sunny."},
    ]
    raw = client.chat.completions.with_raw_response.create(model="test-model", messages=[*history, {"role": "user", "content": DIRTY}])
    assert_mpr_headers(raw.headers, "paraphraser")
    assert target_body(fake)["messages"] == [*history, {"role": "user", "content": PARAPHRASED}]


def test_conversation_not_ending_in_user_text_is_forwarded_as_is(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    messages = [{"role": "user", "content": "waht is teh wether in Lyon"}, {"role": "assistant", "content": "Sunny."}, {"role": "user", "content": [IMAGE]}]
    raw = client.chat.completions.with_raw_response.create(model="test-model", messages=messages)  # type: ignore[arg-type]
    assert raw.headers["x-mpr-refinement"].startswith("skipped")
    assert stage_calls(fake) == {"cleaner": 0, "describer": 0, "paraphraser": 0}
    assert target_body(fake)["messages"] == messages


def test_skip_gate_lets_a_clean_prompt_through(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    raw = client.chat.completions.with_raw_response.create(model="test-model", messages=[{"role": "user", "content": CLEAN}])
    assert_mpr_headers(raw.headers, "skipped;reason=clean")
    assert float(raw.headers["x-mpr-refine-ms"]) < 20.0  # no stage call: the gate alone
    assert stage_calls(fake) == {"cleaner": 0, "describer": 0, "paraphraser": 0}
    assert target_body(fake)["messages"] == [{"role": "user", "content": CLEAN}]


# -- description placement -------------------------------------------------------------------------


def test_description_goes_into_a_new_system_message(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    client.chat.completions.create(model="test-model", messages=[{"role": "user", "content": DIRTY}])
    assert target_body(fake)["messages"] == [
        {"role": "system", "content": f"Context: {DESCRIBED}"},
        {"role": "user", "content": PARAPHRASED},
    ]


def test_description_is_appended_to_the_user_message(append_gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    refining(fake)
    with openai.OpenAI(base_url=append_gateway.base_url, api_key="k", max_retries=0, timeout=10) as c:
        raw = c.chat.completions.with_raw_response.create(
            model="test-model", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": DIRTY}]
        )
    assert_mpr_headers(raw.headers, "describer,paraphraser")
    assert target_body(fake)["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"{PARAPHRASED}\n\nContext: {DESCRIBED}"},
    ]


# -- per-request controls --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["off", "OFF", "false", "0"])
def test_header_x_mpr_refine_off(client: openai.OpenAI, fake: FakeOpenAI, value: str) -> None:
    refining(fake)
    raw = client.chat.completions.with_raw_response.create(
        model="test-model", messages=[{"role": "user", "content": DIRTY}], extra_headers={"x-mpr-refine": value}
    )
    assert raw.http_response.status_code == 200
    assert_mpr_headers(raw.headers)
    assert raw.headers["x-mpr-refinement"] == "off"
    assert stage_calls(fake) == {"cleaner": 0, "describer": 0, "paraphraser": 0}
    assert target_body(fake)["messages"] == [{"role": "user", "content": DIRTY}]


def test_target_with_refinement_off_and_the_header_turning_it_on(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    raw = client.chat.completions.with_raw_response.create(model="raw-model", messages=[{"role": "user", "content": DIRTY}])
    assert_mpr_headers(raw.headers, "off")
    assert stage_calls(fake) == {"cleaner": 0, "describer": 0, "paraphraser": 0}
    assert fake.requests_for("raw-model")[0].body["messages"] == [{"role": "user", "content": DIRTY}]
    raw = client.chat.completions.with_raw_response.create(
        model="raw-model", messages=[{"role": "user", "content": DIRTY}], extra_headers={"x-mpr-refine": "on"}
    )
    assert_mpr_headers(raw.headers, "describer,paraphraser")
    assert fake.requests_for("raw-model")[1].body["messages"][-1] == {"role": "user", "content": PARAPHRASED}


def test_header_x_mpr_stages_picks_the_stages(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    raw = client.chat.completions.with_raw_response.create(
        model="test-model", messages=[{"role": "user", "content": DIRTY}], extra_headers={"x-mpr-stages": "cleaner"}
    )
    assert_mpr_headers(raw.headers, "cleaner")
    assert stage_calls(fake) == {"cleaner": 1, "describer": 0, "paraphraser": 0}
    assert target_body(fake)["messages"] == [{"role": "user", "content": CLEANED}]


def test_header_x_mpr_stages_two_stages(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    raw = client.chat.completions.with_raw_response.create(
        model="test-model", messages=[{"role": "user", "content": DIRTY}], extra_headers={"x-mpr-stages": "cleaner, paraphraser"}
    )
    assert_mpr_headers(raw.headers, "paraphraser")
    assert stage_calls(fake) == {"cleaner": 1, "describer": 0, "paraphraser": 1}
    assert target_body(fake)["messages"] == [{"role": "user", "content": PARAPHRASED}]


def test_body_mpr_refine_false_is_removed_before_forwarding(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    raw = client.chat.completions.with_raw_response.create(
        model="test-model", messages=[{"role": "user", "content": DIRTY}], extra_body={"mpr": {"refine": False}}
    )
    assert raw.headers["x-mpr-refinement"] == "off"
    body = target_body(fake)
    assert "mpr" not in body
    assert body["messages"] == [{"role": "user", "content": DIRTY}]
    assert stage_calls(fake) == {"cleaner": 0, "describer": 0, "paraphraser": 0}


@pytest.mark.parametrize("mpr", [None, {}, {"refine": True}, {"return_details": False}], ids=["null", "empty", "refine", "no_details"])
@pytest.mark.parametrize("prompt", [CLEAN, DIRTY], ids=["clean", "dirty"])
def test_body_mpr_is_never_forwarded(gateway: GatewayProcess, fake: FakeOpenAI, mpr: Any, prompt: str) -> None:
    """Also when nothing else changes the body (same model name upstream, prompt skipped)."""
    refining(fake)
    for model in ("plain-model", "test-model"):
        response = httpx.post(
            gateway.base_url + "/chat/completions", json={"model": model, "messages": [{"role": "user", "content": prompt}], "mpr": mpr}, timeout=10
        )
        assert response.status_code == 200, response.text
    for call in fake.requests_for("plain-model") + fake.requests_for("target-model"):
        assert "mpr" not in call.body, call.body


def test_body_mpr_wins_over_headers(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    raw = client.chat.completions.with_raw_response.create(
        model="test-model",
        messages=[{"role": "user", "content": DIRTY}],
        extra_headers={"x-mpr-refine": "off", "x-mpr-stages": "paraphraser"},
        extra_body={"mpr": {"refine": True, "stages": ["cleaner"]}},
    )
    assert_mpr_headers(raw.headers, "cleaner")
    assert stage_calls(fake) == {"cleaner": 1, "describer": 0, "paraphraser": 0}
    assert "mpr" not in target_body(fake)


def test_return_details_reports_every_stage(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    refining(fake)
    raw = client.chat.completions.with_raw_response.create(
        model="test-model", messages=[{"role": "user", "content": DIRTY}], extra_body={"mpr": {"return_details": True}}
    )
    assert_mpr_headers(raw.headers, "describer,paraphraser")
    data = raw.http_response.json()
    assert data["choices"][0]["message"]["content"] == f"echo: {PARAPHRASED}"
    mpr = data["mpr"]
    assert mpr["original"] == DIRTY
    assert mpr["refined"] == PARAPHRASED
    assert mpr["description"] == DESCRIBED
    assert mpr["refinement"] == "describer,paraphraser"
    assert set(mpr["stages"]) == {"cleaner", "describer", "paraphraser"}
    for role, output in (("cleaner", CLEANED), ("describer", DESCRIBED), ("paraphraser", PARAPHRASED)):
        stage = mpr["stages"][role]
        assert stage["output"] == output
        assert stage["accepted"] is True
        assert stage["error"] is None
        assert stage["latency_ms"] > 0
        assert {"drift", "latency_ms", "error", "accepted", "output"} <= set(stage)
    assert 0 < mpr["stages"]["paraphraser"]["drift"] <= 0.18
    assert "mpr" not in target_body(fake)
    # the SDK still parses the completion
    assert raw.parse().choices[0].message.content == f"echo: {PARAPHRASED}"


def test_return_details_on_a_skipped_prompt(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="test-model", messages=[{"role": "user", "content": CLEAN}], extra_body={"mpr": {"return_details": True}}
    )
    mpr = raw.http_response.json()["mpr"]
    assert mpr["original"] == mpr["refined"] == CLEAN
    assert mpr["refinement"] == "skipped;reason=clean"
    assert mpr["stages"] == {}


@pytest.mark.parametrize(
    ("headers", "extra_body", "param"),
    [
        ({"x-mpr-stages": "cleaner,bogus"}, None, "x-mpr-stages"),
        ({"x-mpr-refine": "maybe"}, None, "x-mpr-refine"),
        ({}, {"mpr": {"stages": ["spellcheck"]}}, "mpr.stages"),
        ({}, {"mpr": "yes"}, "mpr"),
        ({}, {"mpr": {"explain": True}}, "mpr"),
    ],
)
def test_bad_controls_are_a_400(
    client: openai.OpenAI, fake: FakeOpenAI, headers: dict[str, str], extra_body: dict[str, Any] | None, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": DIRTY}], extra_headers=headers, extra_body=extra_body
        )
    assert info.value.status_code == 400
    assert info.value.param == param
    assert fake.requests == []


# -- the SDK flavours ----------------------------------------------------------------------------


async def test_async_client_concurrent_requests(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    refining(fake)
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key="k", max_retries=0, timeout=10) as client:
        raws = await asyncio.gather(
            *(
                client.chat.completions.with_raw_response.create(model="test-model", messages=[{"role": "user", "content": DIRTY}])
                for _ in range(8)
            )
        )
    for raw in raws:
        assert_mpr_headers(raw.headers, "describer,paraphraser")
        assert raw.parse().choices[0].message.content == f"echo: {PARAPHRASED}"
    assert len(fake.requests_for("target-model")) == 8
    assert stage_calls(fake) == {"cleaner": 8, "describer": 8, "paraphraser": 8}


def test_target_response_body_and_headers_are_relayed(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    from tests.support.fake_openai import Behaviour

    fake.behave("target-model", Behaviour(headers={"x-request-id": "req-123", "openai-processing-ms": "42", "x-vendor-trace": "abc"}))
    raw = client.chat.completions.with_raw_response.create(model="test-model", messages=[{"role": "user", "content": CLEAN}])
    assert raw.headers["openai-processing-ms"] == "42"
    assert raw.headers["x-vendor-trace"] == "abc"
    # one request id, not the target's and the gateway's side by side ("req-123, 7b6b...")
    assert len(raw.http_response.headers.get_list("x-request-id")) == 1, raw.http_response.headers.get_list("x-request-id")
    completion = raw.parse()
    assert completion.id == "chatcmpl-fake"
    assert completion.model == "target-model"
    assert completion.usage is not None and completion.usage.prompt_tokens == 7

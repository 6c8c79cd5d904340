"""Conversations and agent loops through a real gateway process (fake stage and target peers):
only a new last user turn is refined; every earlier turn reaches the target exactly as it did
when it was new (``history: refined``) or exactly as the client sent it (``raw``); a conversation
that ends with a tool result or an assistant message causes no stage call; each description sits
right before its own turn, so what the target saw before stays a byte-identical prefix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import start_gateway, start_gateways, stop_gateways
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes
from tests.support.redis_server import RedisServer

SYSTEM = {"role": "system", "content": "You answer geography questions."}
# (what the user typed, the cleaner's answer, the paraphraser's, the describer's)
TURNS = [
    ("whats the captial of frane and how big is it", "whats the capital of france and how big is it",
     "What is the capital of France, and how large is it?", "France is a country in Western Europe. Its capital city is Paris."),
    ("and waht about germny, how big is that", "and what about germany, how big is that",
     "And what about Germany, how big is that?", "Germany is a country in Central Europe. Its capital city is Berlin."),
    ("whcih of thsee two has more peple", "which of these two has more people",
     "Which of these two has more people?", "France and Germany are the two most populous countries of the European Union."),
]
BY_TEXT = {typed: (cleaned, paraphrased, described) for typed, cleaned, paraphrased, described in TURNS}
ROLE_INDEX = {"cleaner": 0, "paraphraser": 1, "describer": 2}


def _stage_reply(model: str, body: dict[str, Any]) -> str:
    """Each stage answers for the text it was sent (the last message of its request)."""
    return BY_TEXT[body["messages"][-1]["content"]][ROLE_INDEX[model]]


def _answer(model: str, body: dict[str, Any]) -> str:
    turns = body.get("messages", body.get("input"))
    if isinstance(turns, str):
        return "answer 1"
    return f"answer {sum(isinstance(m, dict) and m.get('role') == 'user' for m in turns)}"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(autouse=True)
def _peers(fake: FakeOpenAI) -> None:
    fake.reset()
    for role in ROLE_INDEX:
        fake.behave(role, Behaviour(reply=_stage_reply))
    fake.behave("target-model", Behaviour(reply=_answer))


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = routes(fake.base_url, fake.base_url)
    config["targets"].append({"name": "raw-history", "endpoints": [fake.base_url], "upstream_model": "target-model", "conversation_history": "raw"})
    config["targets"].append({"name": "shadowed", "endpoints": [fake.base_url], "upstream_model": "target-model", "refinement_mode": "shadow"})
    gw = start_gateway(tmp_path_factory, config)
    yield gw
    stop_gateways([gw])


def _chat(gw: GatewayProcess, messages: list[dict[str, Any]], model: str = "test-model", **extra: Any) -> httpx.Response:
    response = httpx.post(
        f"{gw.base_url}/chat/completions", json={"model": model, "messages": messages, **extra}, headers={"authorization": "Bearer k"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response


def _sent(fake: FakeOpenAI) -> list[list[dict[str, Any]]]:
    """The messages of every target request so far, in order."""
    return [r.body["messages"] for r in fake.requests_for("target-model")]


def _stage_calls(fake: FakeOpenAI) -> int:
    return sum(len(fake.requests_for(role)) for role in ROLE_INDEX)


def _converse(gw: GatewayProcess, fake: FakeOpenAI, turns: int, model: str = "test-model") -> tuple[list[dict[str, Any]], list[httpx.Response]]:
    """A client that keeps its own history (raw, as typed) and talks ``turns`` turns."""
    history: list[dict[str, Any]] = [SYSTEM]
    replies = []
    for typed, *_ in TURNS[:turns]:
        history.append({"role": "user", "content": typed})
        reply = _chat(gw, history, model)
        replies.append(reply)
        history.append({"role": "assistant", "content": reply.json()["choices"][0]["message"]["content"]})
    return history, replies


def test_every_earlier_turn_is_a_byte_identical_prefix(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    _, replies = _converse(gateway, fake, 3)
    sent = _sent(fake)
    assert len(sent) == 3
    for before, after in zip(sent, sent[1:]):
        assert after[: len(before)] == before  # what the target saw last turn, unchanged
    # each turn as it was refined, its context right before it; the client's system prompt untouched
    assert sent[2] == [
        SYSTEM,
        {"role": "system", "content": f"Context: {TURNS[0][3]}"},
        {"role": "user", "content": TURNS[0][2]},
        {"role": "assistant", "content": "answer 1"},
        {"role": "system", "content": f"Context: {TURNS[1][3]}"},
        {"role": "user", "content": TURNS[1][2]},
        {"role": "assistant", "content": "answer 2"},
        {"role": "system", "content": f"Context: {TURNS[2][3]}"},
        {"role": "user", "content": TURNS[2][2]},
    ]
    assert _stage_calls(fake) == 3 * 3  # each turn refined once: three stages per turn
    assert "x-mpr-history" not in replies[0].headers
    assert replies[1].headers["x-mpr-history"] == "refined;turns=1;reapplied=1"
    assert replies[2].headers["x-mpr-history"] == "refined;turns=2;reapplied=2"


def test_tool_loop_calls_no_stage_and_keeps_the_turn_as_refined(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    typed, _, paraphrased, described = TURNS[1]
    messages: list[dict[str, Any]] = [SYSTEM, {"role": "user", "content": typed}]
    first = _chat(gateway, messages)
    assert first.headers["x-mpr-refinement"] == "describer,paraphraser"
    calls = _stage_calls(fake)
    for step in range(3):  # the agent's tool steps: assistant tool call, tool result, again
        call_id = f"call_{step}"
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "population", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": call_id, "content": f"{80 + step} million"},
        ]
        reply = _chat(gateway, messages)
        assert reply.headers["x-mpr-refinement"] == "skipped;reason=no_new_turn"
        assert reply.headers["x-mpr-history"] == "refined;turns=1;reapplied=1"
    assert _stage_calls(fake) == calls  # not one stage call for a tool step
    sent = _sent(fake)
    presented = [SYSTEM, {"role": "system", "content": f"Context: {described}"}, {"role": "user", "content": paraphrased}]
    for before, after in zip(sent, sent[1:]):
        assert after[: len(before)] == before
    assert sent[-1][:3] == presented
    assert sum(m["role"] == "system" for m in sent[-1]) == 2  # no context message was added again


def test_conversation_ending_with_assistant_goes_without_refinement(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    typed = TURNS[2][0]
    _chat(gateway, [{"role": "user", "content": typed}])
    calls = _stage_calls(fake)
    reply = _chat(gateway, [{"role": "user", "content": typed}, {"role": "assistant", "content": "Which of"}])  # a prefill
    assert reply.headers["x-mpr-refinement"] == "skipped;reason=no_new_turn"
    assert _stage_calls(fake) == calls
    assert _sent(fake)[-1][:2] == _sent(fake)[0]


def test_raw_history_sends_every_earlier_turn_as_the_client_did(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    history, replies = _converse(gateway, fake, 3, model="raw-history")
    sent = _sent(fake)
    # earlier turns as typed, the new one refined with its context right before it
    assert sent[2][:5] == history[:5]
    assert sent[2][5:] == [{"role": "system", "content": f"Context: {TURNS[2][3]}"}, {"role": "user", "content": TURNS[2][2]}]
    assert replies[2].headers["x-mpr-history"] == "raw;turns=2"
    assert _stage_calls(fake) == 3 * 3


def test_shadow_mode_sends_the_conversation_as_the_client_did(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    history, _ = _converse(gateway, fake, 2, model="shadowed")
    assert _sent(fake)[1] == history[:4]


def test_responses_input_items_keep_earlier_turns_as_presented(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    items: list[dict[str, Any]] = []
    sent = []
    for typed, *_ in TURNS[:2]:
        items.append({"role": "user", "content": typed})
        response = httpx.post(f"{gateway.base_url}/responses", json={"model": "test-model", "input": items}, headers={"authorization": "Bearer k"}, timeout=10)
        assert response.status_code == 200, response.text
        sent.append(fake.requests_for("target-model")[-1].body["input"])
        items.append({"role": "assistant", "content": response.json()["output"][0]["content"][0]["text"]})
    assert sent[1][: len(sent[0])] == sent[0]
    assert sent[0] == [{"role": "system", "content": f"Context: {TURNS[0][3]}"}, {"role": "user", "content": TURNS[0][2]}]
    # a function-call output ends the input: no stage call, the first turn as presented
    calls = _stage_calls(fake)
    items += [{"type": "function_call", "call_id": "c1", "name": "population", "arguments": "{}"}, {"type": "function_call_output", "call_id": "c1", "output": "83 million"}]
    response = httpx.post(f"{gateway.base_url}/responses", json={"model": "test-model", "input": items}, headers={"authorization": "Bearer k"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["x-mpr-refinement"] == "skipped;reason=no_new_turn"
    assert _stage_calls(fake) == calls
    assert fake.requests_for("target-model")[-1].body["input"][: len(sent[1])] == sent[1]


def test_previous_response_id_sends_only_the_new_turn_as_presented(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    first = httpx.post(f"{gateway.base_url}/responses", json={"model": "test-model", "input": TURNS[0][0]}, headers={"authorization": "Bearer k"}, timeout=10)
    assert first.status_code == 200, first.text
    second = httpx.post(
        f"{gateway.base_url}/responses",
        json={"model": "test-model", "input": TURNS[1][0], "previous_response_id": first.json()["id"]},
        headers={"authorization": "Bearer k"},
        timeout=10,
    )
    assert second.status_code == 200, second.text
    body = fake.requests_for("target-model")[-1].body
    assert body["previous_response_id"] == first.json()["id"]  # the target keeps turn 1 as it was sent
    assert body["input"] == [{"role": "system", "content": f"Context: {TURNS[1][3]}"}, {"role": "user", "content": TURNS[1][2]}]


def test_two_replicas_on_one_redis_present_the_same_history(fake: FakeOpenAI, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    redis = RedisServer(tmp_path).start()
    try:
        state = {"redis_url": redis.url, "key_prefix": "conv:", "op_timeout_s": 0.5}
        a, b = start_gateways(tmp_path_factory, routes(fake.base_url, fake.base_url, state=state), routes(fake.base_url, fake.base_url, state=state))
        try:
            history: list[dict[str, Any]] = [SYSTEM]
            for gw, (typed, *_) in zip((a, b, a), TURNS):  # a load balancer alternating replicas
                history.append({"role": "user", "content": typed})
                reply = _chat(gw, history)
                history.append({"role": "assistant", "content": reply.json()["choices"][0]["message"]["content"]})
            sent = _sent(fake)
            for before, after in zip(sent, sent[1:]):
                assert after[: len(before)] == before
            assert reply.headers["x-mpr-history"] == "refined;turns=2;reapplied=2"
        finally:
            stop_gateways([a, b])
    finally:
        redis.stop()

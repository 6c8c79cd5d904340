"""The pure Responses helpers: the input to refine, putting it back, following a relayed stream,
and the chat completions bridge (request, answer, stream), shapes checked against the OpenAI spec."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.endpoints.responses.bridge import ChatStreamTranslator, NotBridged, from_chat, to_chat
from gateway.endpoints.responses.protocol import InputSlot, StreamWatch, find_input, input_turns, present_input, validate_input
from gateway.refinement.history import Presentation
from gateway.errors import InvalidRequest
from tests.gateway.conftest import OpenAPISchemas, openapi  # noqa: F401  (the session fixture)

IMAGE = {"type": "input_image", "image_url": "https://example.com/a.png"}


def events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for block in raw.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))
    return out


# -- input extraction and rewrite ------------------------------------------------------------------


def test_find_input_string_and_items() -> None:
    assert find_input("hello") == InputSlot(None, "hello")
    assert find_input("   ") is None
    assert find_input(None) is None
    items = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}, IMAGE, {"type": "input_text", "text": "b"}]},
    ]
    assert find_input(items) == InputSlot(2, "a\n\nb")
    assert input_turns(items) == ([InputSlot(0, "first"), InputSlot(2, "a\n\nb")], True)
    tool_ended = [*items, {"type": "function_call_output", "call_id": "c", "output": "42"}]
    assert find_input(tool_ended) is None  # a tool result is no new user turn
    assert input_turns(tool_ended) == ([InputSlot(0, "first"), InputSlot(2, "a\n\nb")], False)
    assert find_input([{"role": "user", "content": [IMAGE]}]) is None
    assert find_input([{"role": "assistant", "content": "x"}]) is None


def test_present_input_string_and_instructions_untouched() -> None:
    payload: dict[str, Any] = {"input": "whats up", "instructions": "Be brief."}
    present_input(payload, [(InputSlot(None, "whats up"), Presentation("What is up?", "A greeting."))], "system")
    assert payload == {
        "input": [{"role": "system", "content": "Context: A greeting."}, {"role": "user", "content": "What is up?"}],
        "instructions": "Be brief.",
    }
    payload = {"input": "whats up"}
    present_input(payload, [(InputSlot(None, "whats up"), Presentation("What is up?"))], "system")
    assert payload == {"input": "What is up?"}  # a string stays a string
    payload = {"input": "whats up"}
    present_input(payload, [(InputSlot(None, "whats up"), Presentation("What is up?", "A greeting."))], "append")
    assert payload == {"input": "What is up?\n\nContext: A greeting."}


def test_present_input_keeps_other_parts_and_items() -> None:
    items = [{"role": "user", "content": "old"}, {"role": "user", "content": [{"type": "input_text", "text": "a"}, IMAGE, {"type": "input_text", "text": "b"}]}]
    payload: dict[str, Any] = {"input": items}
    present_input(payload, [(InputSlot(1, "a\n\nb"), Presentation("new"))], "system")
    assert payload["input"] == [items[0], {"role": "user", "content": [{"type": "input_text", "text": "new"}, IMAGE]}]
    assert items[1]["content"][0]["text"] == "a"  # the client's objects are not mutated
    assert "instructions" not in payload


def test_present_input_contexts_beside_their_turns() -> None:
    items = [{"role": "user", "content": "a"}, {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}, {"type": "function_call_output", "call_id": "c", "output": "1"}]
    payload: dict[str, Any] = {"input": items}
    present_input(payload, [(InputSlot(0, "a"), Presentation("A?", "ctx"))], "system")
    assert payload["input"] == [{"role": "system", "content": "Context: ctx"}, {"role": "user", "content": "A?"}, items[1], items[2]]


@pytest.mark.parametrize(
    "value,param",
    [(3, "input"), ([1], "input[0]"), ([{"role": "user", "content": 3}], "input[0].content"), ([{"role": "user", "content": [{"type": "input_text"}]}], "input[0].content[0].text")],
)
def test_validate_input(value: Any, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        validate_input(value, 10)
    assert info.value.param == param
    validate_input([{"type": "function_call_output", "call_id": "x", "output": "y"}], 10)


# -- following a relayed stream --------------------------------------------------------------------


def test_stream_watch(openapi: OpenAPISchemas) -> None:
    watch = StreamWatch("m")
    created = {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "model": "tm", "created_at": 7}}
    raw = f"event: response.created\r\ndata: {json.dumps(created)}\r\n\r\nevent: response.output_text.delta\ndata: {{\"type\": \"response.output".encode()
    for i in range(0, len(raw), 7):
        watch.feed(raw[i : i + 7])
    assert (watch.response_id, watch.model, watch.sequence, watch.terminal) == ("resp_1", "tm", 0, False)
    failure = watch.failure("broke")
    assert failure.startswith(b"\n\nevent: response.failed\n")  # after a fresh event boundary
    (event,) = events(failure)
    openapi.validate(event, "ResponseFailedEvent")
    assert event["sequence_number"] == 1 and event["response"]["id"] == "resp_1" and event["response"]["created_at"] == 7
    done = StreamWatch("m")
    done.feed(b'data: {"type": "response.completed", "sequence_number": 5, "response": {"id": "r"}}\n\n')
    assert done.terminal


# -- the chat completions bridge -----------------------------------------------------------------

TOOL = {"type": "function", "name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {}}}


def test_to_chat_translates_text_and_function_tools() -> None:
    payload = {
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": "weather?"},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "It is sunny."}]},
            {"role": "user", "content": [{"type": "input_text", "text": "thanks"}]},
        ],
        "tools": [TOOL],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "temperature": 0.2,
        "max_output_tokens": 50,
        "text": {"format": {"type": "json_schema", "name": "a", "schema": {"type": "object"}, "strict": True}},
        "stream": True,
        "store": False,
        "metadata": {"k": "v"},
    }
    chat = to_chat(payload, "upstream")
    assert chat == {
        "model": "upstream",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "assistant", "content": "It is sunny."},
            {"role": "user", "content": "thanks"},
        ],
        "temperature": 0.2,
        "max_completion_tokens": 50,
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}, "strict": True}},
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert to_chat({"model": "m", "input": "hi"}, "u") == {"model": "u", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    "extra,param",
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"background": True}, "background"),
        ({"store": True}, "store"),
        ({"reasoning": {"effort": "low"}}, "reasoning"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"role": "user", "content": [IMAGE]}]}, "input[0].content[0]"),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input[0].type"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"vendor_thing": 1}, "vendor_thing"),
    ],
)
def test_to_chat_rejects_what_it_cannot_bridge(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(NotBridged) as info:
        to_chat({"model": "m", "input": "hi", **extra}, "u")
    assert info.value.status_code == 400 and info.value.param == param
    assert "chat completions" in info.value.message


def test_from_chat_text_tool_calls_and_usage(openapi: OpenAPISchemas) -> None:
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 123,
        "model": "upstream",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello", "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"c\":1}"}}]},
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }
    response = from_chat(completion, {"model": "m", "input": "hi", "tools": [TOOL], "instructions": "x"})
    openapi.validate(response, "Response")
    assert response["status"] == "completed" and response["model"] == "upstream" and response["created_at"] == 123
    message, call = response["output"]
    assert message["content"][0]["text"] == "Hello"
    assert (call["type"], call["call_id"], call["name"], call["arguments"]) == ("function_call", "call_9", "get_weather", '{"c":1}')
    assert response["usage"]["input_tokens"] == 5 and response["usage"]["total_tokens"] == 8
    assert response["instructions"] == "x" and response["store"] is False
    cut = from_chat({**completion, "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hel"}, "finish_reason": "length"}]}, {"model": "m"})
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}
    openapi.validate(cut, "Response")


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "u", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def test_stream_translator_text_and_tool_call(openapi: OpenAPISchemas) -> None:
    translator = ChatStreamTranslator({"model": "m", "input": "hi", "tools": [TOOL]}, "u")
    raw = translator.start()
    stream = (
        _chunk({"role": "assistant", "content": "Hel"})
        + _chunk({"content": "lo"})
        + _chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"a\""}}]})
        + _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]})
        + _chunk({}, "tool_calls")
        + b'data: {"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}}\n\n'
        + b"data: [DONE]\n\n"
    )
    for i in range(0, len(stream), 11):  # split anywhere
        raw += translator.feed(stream[i : i + 11])
    assert translator.done
    got = events(raw)
    for event in got:
        openapi.validate(event, "ResponseStreamEvent")
    assert [e["sequence_number"] for e in got] == list(range(len(got)))
    assert [e["type"] for e in got] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = got[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "Hello"
    assert final["output"][1]["arguments"] == '{"a":1}' and final["output"][1]["status"] == "completed"
    assert final["usage"]["output_tokens"] == 4
    assert got[0]["response"]["id"] == final["id"]


def test_stream_translator_error_and_failure(openapi: OpenAPISchemas) -> None:
    translator = ChatStreamTranslator({"model": "m", "input": "hi"}, "u")
    translator.start()
    raw = translator.feed(_chunk({"content": "a"}) + b'data: {"error": {"message": "boom", "type": "x", "param": null, "code": null}}\n\n')
    last = events(raw)[-1]
    openapi.validate(last, "ResponseFailedEvent")
    assert last["response"]["error"]["message"] == "boom" and translator.done
    assert translator.feed(_chunk({"content": "late"})) == b""
    cut = ChatStreamTranslator({"model": "m", "input": "hi"}, "u")
    cut.start()
    cut.feed(_chunk({"content": "a"}))
    (event,) = events(cut.fail("the target stream broke"))
    openapi.validate(event, "ResponseFailedEvent")

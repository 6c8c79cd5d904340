"""The Responses ↔ chat completions bridge for targets with ``api: chat`` (pure, no I/O).

:func:`to_chat` turns a Responses request into a chat completions request: ``instructions`` → a
system message, input items → messages (text content, function calls and their outputs),
``function`` tools, ``tool_choice``, ``text.format`` → ``response_format``, sampling parameters.
Anything it cannot translate faithfully is a 400 OpenAI error that names it (:class:`NotBridged`):
built-in tools, non-text content (images, files, audio), ``previous_response_id``, ``conversation``,
``background``, ``store: true``, ``reasoning``, ``prompt`` templates, ``include``, unknown fields.

:func:`from_chat` turns a chat completion into a ``Response`` object; :class:`ChatStreamTranslator`
turns chat completion chunks into Responses stream events, ``response.created`` … ``response.completed``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.endpoints.responses.protocol import new_id, response_object, sse_event
from gateway.errors import InvalidRequest

_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_ROLES = frozenset({"user", "system", "developer", "assistant"})
_PASSED = ("temperature", "top_p", "parallel_tool_calls", "user", "service_tier", "top_logprobs")
_IGNORED = frozenset({"model", "input", "instructions", "stream", "stream_options", "metadata", "safety_identifier", "prompt_cache_key"})
_REJECTED = {
    "previous_response_id": "previous_response_id (the target has no stored responses)",
    "conversation": "conversation (the target has no stored conversations)",
    "background": "background (background responses need a Responses API target)",
    "reasoning": "reasoning parameters",
    "prompt": "prompt templates",
    "include": "include",
    "max_tool_calls": "max_tool_calls",
}


class NotBridged(InvalidRequest):
    """A Responses feature the chat completions bridge does not translate (400)."""

    code = "unsupported_parameter"


def _not_bridged(what: str, param: str) -> NotBridged:
    return NotBridged(
        f"{what} is not supported by this model: its target speaks chat completions (targets[].api: chat) and the "
        "gateway bridges only text input, function tools and sampling parameters",
        param=param,
    )


def _text(content: Any, param: str) -> str:
    """The text of a content string or array of text parts; any other part is a 400."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _not_bridged("this content", param)
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in _TEXT_PARTS or not isinstance(part.get("text"), str):
            raise _not_bridged(f"content of type {kind!r}", f"{param}[{j}]")
        texts.append(part["text"])
    return "\n\n".join(texts)


def _messages(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        param = f"input[{i}]"
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise _not_bridged(f"a message with role {role!r}", f"{param}.role")
            messages.append({"role": role, "content": _text(item.get("content"), f"{param}.content")})
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function", "function": {"name": item.get("name"), "arguments": item.get("arguments", "")}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": _text(output, f"{param}.output")})
        else:
            raise _not_bridged(f"input items of type {kind!r}", f"{param}.type")
    return messages


def _tools(value: Any) -> list[dict[str, Any]]:
    tools = []
    for i, tool in enumerate(value or []):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise _not_bridged(f"the built-in tool {kind!r}", f"tools[{i}].type")
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(value: Any) -> Any:
    if value is None or value in ("auto", "none", "required"):
        return value
    if isinstance(value, dict) and value.get("type") == "function" and isinstance(value.get("name"), str):
        return {"type": "function", "function": {"name": value["name"]}}
    raise _not_bridged("this tool_choice", "tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    if text is None:
        return None
    if not isinstance(text, dict) or set(text) - {"format", "verbosity"}:
        raise _not_bridged("these text options", "text")
    fmt = text.get("format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = {k: fmt[k] for k in ("name", "description", "schema", "strict") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise _not_bridged(f"text.format {kind!r}", "text.format")


def to_chat(payload: dict[str, Any], model: str) -> dict[str, Any]:
    """The chat completions request for the Responses request ``payload``, sent as ``model``."""
    for key, what in _REJECTED.items():
        if payload.get(key) not in (None, False, [], {}):
            raise _not_bridged(what, key)
    if payload.get("store") is True:
        raise _not_bridged("store: true (the bridge stores no responses; send store: false)", "store")
    if payload.get("truncation") not in (None, "disabled"):
        raise _not_bridged("truncation: auto", "truncation")
    known = _IGNORED | set(_PASSED) | set(_REJECTED) | {"store", "truncation", "tools", "tool_choice", "text", "max_output_tokens"}
    unknown = sorted(set(payload) - known)
    if unknown:
        raise _not_bridged(f"the parameter(s) {', '.join(unknown)}", unknown[0])
    instructions = payload.get("instructions")
    messages = []
    if instructions is not None:
        messages.append({"role": "system", "content": _text(instructions, "instructions")})
    messages.extend(_messages(payload.get("input")))
    if not messages:
        raise InvalidRequest("'input' is required for this model", param="input")
    chat: dict[str, Any] = {"model": model, "messages": messages}
    for key in _PASSED:
        if payload.get(key) is not None:
            chat[key] = payload[key]
    if payload.get("top_logprobs"):
        chat["logprobs"] = True
    if payload.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = payload["max_output_tokens"]
    if tools := _tools(payload.get("tools")):
        chat["tools"] = tools
    if (choice := _tool_choice(payload.get("tool_choice"))) is not None:
        chat["tool_choice"] = choice
    if (fmt := _response_format(payload.get("text"))) is not None:
        chat["response_format"] = fmt
    if payload.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


# -- answers back ---------------------------------------------------------------------------------


def echo_request(payload: dict[str, Any]) -> dict[str, Any]:
    """The request fields a Response echoes, with function tools in the schema's full shape."""
    tools = [
        {"type": "function", "name": t.get("name"), "description": t.get("description"), "parameters": t.get("parameters"), "strict": t.get("strict")}
        for t in payload.get("tools") or []
        if isinstance(t, dict)
    ]
    return {**payload, "tools": tools, "store": False}


def usage_of(usage: Any) -> dict[str, Any] | None:
    """Responses ``usage`` from chat ``usage``."""
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }


def _status(finish_reason: Any) -> tuple[str, dict[str, str] | None]:
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def _message_item(item_id: str, text: str | None, refusal: str | None, status: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": content}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments, "status": status}


def from_chat(completion: dict[str, Any], payload: dict[str, Any], response_id: str | None = None) -> dict[str, Any]:
    """The ``Response`` for a chat ``completion`` answering the Responses request ``payload``."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    content, refusal = message.get("content"), message.get("refusal")
    if content is not None or refusal:
        output.append(_message_item(new_id("msg"), content if isinstance(content, str) else None, refusal, "completed"))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(_call_item(new_id("fc"), call.get("id") or new_id("call"), function.get("name", ""), function.get("arguments", ""), "completed"))
    status, incomplete = _status(choice.get("finish_reason"))
    response = response_object(
        response_id or new_id(),
        str(completion.get("model") or payload.get("model") or ""),
        status=status,
        output=output,
        created_at=completion.get("created") if isinstance(completion.get("created"), int) else None,
        request=echo_request(payload),
        usage=usage_of(completion.get("usage")),
    )
    response["incomplete_details"] = incomplete
    return response


class ChatStreamTranslator:
    """Chat completion chunks (SSE bytes, as they arrive) → Responses stream events (SSE bytes).

    :meth:`start` gives ``response.created`` and ``response.in_progress``; :meth:`feed` the events
    for each complete chunk; after ``[DONE]`` the open items are closed and ``response.completed``
    (or ``response.incomplete``) follows and :attr:`done` is set. :meth:`fail` ends a stream that
    broke off (or carried an error) with ``response.failed``.
    """

    def __init__(self, payload: dict[str, Any], model: str, response_id: str | None = None) -> None:
        self.request = echo_request(payload)
        self.model = model
        self.response_id = response_id or new_id()
        self.sequence = 0
        self.done = False
        self._held = b""
        self._created = response_object(self.response_id, model, status="in_progress", request=self.request)
        self._created["completed_at"] = None
        self._items: list[dict[str, Any]] = []  # output items in output_index order, as they opened
        self._text: dict[str, Any] | None = None  # the open message item: {"item", "text", "refusal"}
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool call index → its open item state
        self._finish: Any = None
        self._usage: dict[str, Any] | None = None

    def _event(self, event: dict[str, Any]) -> bytes:
        event["sequence_number"] = self.sequence
        self.sequence += 1
        return sse_event(event)

    def start(self) -> bytes:
        return self._event({"type": "response.created", "response": self._created}) + self._event(
            {"type": "response.in_progress", "response": self._created}
        )

    def feed(self, chunk: bytes) -> bytes:
        data = self._held + chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        out: list[bytes] = []
        start = 0
        while not self.done:
            end = data.find(b"\n\n", start)
            if end < 0:
                break
            out.append(self._chunk(data[start:end]))
            start = end + 2
        self._held = data[start:] if not self.done else b""
        return b"".join(out)

    def _chunk(self, block: bytes) -> bytes:
        lines = [line[5:].strip() for line in block.split(b"\n") if line.startswith(b"data:")]
        if not lines:
            return b""
        data = b"\n".join(lines)
        if data == b"[DONE]":
            return self._complete()
        try:
            obj = msgspec.json.decode(data)
        except msgspec.DecodeError:
            return b""
        if not isinstance(obj, dict):
            return b""
        if isinstance(obj.get("error"), dict):
            message = obj["error"].get("message") or "the target reported an error"
            return self.fail(str(message))
        if isinstance(obj.get("usage"), dict):
            self._usage = usage_of(obj["usage"])
        out: list[bytes] = []
        for choice in obj.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str) and delta["content"]:
                out.append(self._text_delta(delta["content"]))
            if isinstance(delta.get("refusal"), str) and delta["refusal"]:
                self._open_text(out)
                assert self._text is not None
                self._text["refusal"] += delta["refusal"]
            for call in delta.get("tool_calls") or []:
                out.append(self._call_delta(call))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return b"".join(out)

    def _open_text(self, out: list[bytes]) -> None:
        if self._text is None:
            item = _message_item(new_id("msg"), None, None, "in_progress")
            self._text = {"item": item, "index": len(self._items), "text": "", "refusal": ""}
            self._items.append(item)
            out.append(self._event({"type": "response.output_item.added", "output_index": self._text["index"], "item": item}))

    def _text_delta(self, delta: str) -> bytes:
        out: list[bytes] = []
        self._open_text(out)
        state = self._text
        assert state is not None
        where = {"item_id": state["item"]["id"], "output_index": state["index"], "content_index": 0}
        if not state.get("part"):
            state["part"] = True
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out.append(self._event({"type": "response.content_part.added", **where, "part": part}))
        state["text"] += delta
        out.append(self._event({"type": "response.output_text.delta", **where, "delta": delta, "logprobs": []}))
        return b"".join(out)

    def _call_delta(self, call: Any) -> bytes:
        if not isinstance(call, dict):
            return b""
        index = call.get("index", 0)
        function = call.get("function") or {}
        state = self._calls.get(index)
        out: list[bytes] = []
        if state is None:
            item = _call_item(new_id("fc"), call.get("id") or new_id("call"), function.get("name") or "", "", "in_progress")
            state = self._calls[index] = {"item": item, "index": len(self._items)}
            self._items.append(item)
            out.append(self._event({"type": "response.output_item.added", "output_index": state["index"], "item": dict(item)}))
        item = state["item"]
        if function.get("name") and not item["name"]:
            item["name"] = function["name"]
        if arguments := function.get("arguments"):
            item["arguments"] += arguments
            out.append(
                self._event({"type": "response.function_call_arguments.delta", "item_id": item["id"], "output_index": state["index"], "delta": arguments})
            )
        return b"".join(out)

    def _close_items(self) -> bytes:
        out: list[bytes] = []
        if (state := self._text) is not None:
            item = state["item"]
            where = {"item_id": item["id"], "output_index": state["index"], "content_index": 0}
            final = _message_item(item["id"], state["text"] if state.get("part") else None, state["refusal"] or None, "completed")
            if state.get("part"):
                part = final["content"][0]
                out.append(self._event({"type": "response.output_text.done", **where, "text": state["text"], "logprobs": []}))
                out.append(self._event({"type": "response.content_part.done", **where, "part": part}))
            item.clear()
            item.update(final)
            out.append(self._event({"type": "response.output_item.done", "output_index": state["index"], "item": final}))
        for state in self._calls.values():
            item = state["item"]
            item["status"] = "completed"
            out.append(
                self._event(
                    {
                        "type": "response.function_call_arguments.done",
                        "item_id": item["id"],
                        "name": item["name"],
                        "output_index": state["index"],
                        "arguments": item["arguments"],
                    }
                )
            )
            out.append(self._event({"type": "response.output_item.done", "output_index": state["index"], "item": dict(item)}))
        return b"".join(out)

    def _complete(self) -> bytes:
        out = self._close_items()
        status, incomplete = _status(self._finish)
        response = response_object(
            self.response_id,
            self.model,
            status=status,
            output=self._items,
            created_at=self._created["created_at"],
            request=self.request,
            usage=self._usage,
        )
        response["incomplete_details"] = incomplete
        self.done = True
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._event({"type": kind, "response": response})

    def fail(self, message: str) -> bytes:
        """``response.failed`` (``error.code`` ``server_error``); the stream is over."""
        response = response_object(
            self.response_id,
            self.model,
            status="failed",
            output=self._items,
            created_at=self._created["created_at"],
            error={"code": "server_error", "message": message},
            request=self.request,
        )
        self.done = True
        return self._event({"type": "response.failed", "response": response})

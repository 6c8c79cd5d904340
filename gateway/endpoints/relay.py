"""The target call and its answer, shared by the proxied endpoints.

:func:`exchange` runs an endpoint's refine-and-send under the disconnect watch (shadow mode
waits for its refinement here); :func:`send` is the target call through the runtime's router (retries, fallbacks);
:func:`respond` turns an OpenAI answer (chat, text completion) into the client's reply, checking
its JSON/SSE and relaying the stream; :func:`respond_raw` relays any other answer as it is.
A target that does not serve the path (404/405 with a body not in OpenAI's shape) becomes an
OpenAI-shaped error (:func:`unserved_error`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec

from gateway.config.models import RefinementMode, TargetConfig
from gateway.disconnect import ClientDisconnected, DisconnectWatch
from gateway.endpoints.refinement_run import OFF, RefinementRun
from gateway.endpoints.shadow import ShadowRefinement
from gateway.errors import GatewayError, MethodNotAllowed, NotFound, UpstreamUnreachable, sse_error_event
from gateway.refinement.controls import RefineControls
from gateway.refinement.results import RefinementOutcome
from gateway.runtime import Runtime
from gateway.sse import UsageFilter
from gateway.telemetry import NULL_CALL
from gateway.tenants.meter import current_tenant, note_answer, note_body, stream_meter
from gateway.tenants.usage import NOT_JSON, decode_answer
from gateway.tenants.policy import may_use
from gateway.telemetry import genai as A, TargetCall
from gateway.upstream.errors import openai_error_body
from gateway.upstream.router import TARGET_HEADER, route_headers_of
from gateway.upstream.wire import WireError
from gateway.upstream.target import TargetReply

log = logging.getLogger("gateway.chat")

JSON = "application/json"
SSE = "text/event-stream"
_DONE = b"[DONE]"

# (status, headers, body or SSE byte iterator, media type)
Reply = tuple[int, dict[str, str], "bytes | AsyncIterator[bytes]", str]
Exchange = tuple[TargetReply, TargetCall, RefinementRun]


async def exchange(forward: Awaitable[Exchange], receive: Any, stream: bool) -> Exchange:
    """Await ``forward`` (refine, then send) while watching for the client leaving; a non-streaming
    shadow refinement is awaited too (it ran beside the target call: max(target, refinement))."""
    reply: TargetReply | None = None
    run = OFF
    try:
        async with DisconnectWatch(receive):
            reply, call, run = await forward
            if run.shadow is not None and not stream:
                run = RefinementRun("shadow", await run.shadow.outcome())
    except ClientDisconnected:
        if run.shadow is not None:
            run.shadow.cancel()
        if reply is not None:  # the client left just as the target answered
            reply.finish(abort=True)
        raise
    return reply, call, run


async def send(
    runtime: Runtime,
    model: str,
    body: bytes,
    payload: dict[str, Any],
    *,
    stream: bool,
    path: str,
    run: RefinementRun = OFF,
    operation: str = A.CHAT,
    affinity: int | None = None,
    pin: str | None = None,
    allow: Callable[[str], bool] | None = None,
) -> tuple[TargetReply, TargetCall]:
    """POST ``body`` to ``path`` on the target ``model`` with its retries and fallbacks (each try
    in its CLIENT span); errors carry the refinement headers, and a pending shadow refinement is
    cancelled when the request is."""
    telemetry = runtime.telemetry
    router = runtime.router
    assert router is not None, "the runtime is not started"

    def new_call(config: TargetConfig, attempt: int) -> TargetCall:
        call = telemetry.target_call(config, payload, stream, attempt)
        if operation != A.CHAT and call.span is not None:  # the span says what was called
            call.span.update_name(f"{operation} {config.model_for_upstream}")
            call.span.set_attribute(A.OPERATION, operation)
        return call

    if stream and path in USAGE_PATHS:
        body = with_stream_usage(body, payload)
    try:
        routed = await router.send(
            model, body, stream=stream, path=path, new_call=new_call, allow=both(scope_of_key(), allow), affinity=affinity, pin=pin
        )
    except GatewayError as exc:
        exc.headers.update(run.headers)  # a pending shadow run goes on and is recorded when it ends
        raise
    except BaseException:
        if run.shadow is not None:  # the client left (or the request was cancelled)
            run.shadow.cancel()
        raise
    return routed.reply, routed.call


def scope_of_key() -> Callable[[str], bool] | None:
    """The target names this request's key may use, as a predicate for the router's fallbacks
    (None: every target)."""
    tenant = current_tenant()
    if tenant is None or not tenant.models:
        return None
    return lambda name: may_use(tenant, name)


def both(first: Callable[[str], bool] | None, second: Callable[[str], bool] | None) -> Callable[[str], bool] | None:
    """A target predicate true where both are (None: no condition)."""
    if first is None or second is None:
        return first or second
    return lambda name: first(name) and second(name)


USAGE_PATHS = frozenset({"/chat/completions", "/completions"})
_ASK_USAGE = b',"stream_options":{"include_usage":true}'


def with_stream_usage(body: bytes, payload: dict[str, Any]) -> bytes:
    """The streamed request with ``stream_options.include_usage: true`` (the tenant accounting
    reads the usage chunk; :class:`~gateway.sse.UsageFilter` drops it for a client that did not
    ask); ``body`` itself when the client asked. ``payload`` (what ``body`` encodes) is not changed."""
    options = payload.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return body
    if options is None and "stream_options" not in payload:  # the usual case: the client's bytes, one field added
        end = body.rstrip().rfind(b"}")
        if end > 0:
            return body[:end] + _ASK_USAGE + body[end:]
    wanted = {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
    return msgspec.json.encode({**payload, "stream_options": wanted})


def require_sse(reply: TargetReply, call: TargetCall, headers: dict[str, str]) -> None:
    """An open streaming reply must be SSE; anything else is closed and answered as a 502."""
    if not reply.headers.get("content-type", "").startswith(SSE):
        bad_type = reply.headers.get("content-type", "none")
        reply.finish(abort=True)
        call.fail("wrong_content_type")
        raise UpstreamUnreachable(f"the target answered a stream with content-type {bad_type!r}", headers=headers)


def complete_body(reply: TargetReply, call: TargetCall, headers: dict[str, str]) -> tuple[bytes, Any]:
    """A complete reply's body (its call finished) and its JSON value (``NOT_JSON``: none) —
    decoded once, for the tenant's usage too; a target that does not serve the path is a clear error."""
    content = reply.body or b""
    call.finish(reply.status, content)
    answer = decode_answer(content)
    note_answer(answer)  # the tenant's usage (gateway.tenants.meter)
    if (unserved := unserved_error(reply.status, content)) is not None:
        unserved.headers.update(headers)
        raise unserved
    return content, answer


def require_json(status: int, media_type: str, is_json: bool, headers: dict[str, str]) -> None:
    """A 200 must be valid JSON (``is_json``: what :func:`complete_body` decoded) with a JSON
    content type; else a 502."""
    if status == 200 and not media_type.startswith(JSON):
        raise UpstreamUnreachable(f"the target answered with content-type {media_type!r}, not JSON", headers=headers)
    if status == 200 and not is_json:
        raise UpstreamUnreachable("the target answered 200 with a body that is not valid JSON", headers=headers)


def respond(
    reply: TargetReply,
    call: TargetCall,
    run: RefinementRun,
    controls: RefineControls,
    strip_usage: bool,
    chunk_object: str = "chat.completion.chunk",
) -> Reply:
    """An OpenAI completion's reply: the relayed SSE stream, or the target's status and JSON body.
    With ``return_details`` a finished refinement's details go with it: a top-level ``mpr`` object
    in a 200 JSON body, or a first SSE chunk (``chunk_object``, ``choices: []``, ``mpr``)."""
    headers = run.headers
    headers.update(route_headers_of(reply.headers))  # x-mpr-target/-attempts on our own errors too
    if reply.response is not None:
        require_sse(reply, call, headers)
        first = b""
        if controls.return_details and run.outcome is not None:
            first = details_event(run.outcome, run.mode, chunk_object, headers.get(TARGET_HEADER, ""))
        stream = relay(reply, call, UsageFilter() if strip_usage else None, run.shadow, first=first)
        return 200, {**reply.headers, **headers, "cache-control": "no-cache"}, stream, SSE
    content, answer = complete_body(reply, call, headers)
    if controls.return_details and run.outcome is not None and reply.status == 200:
        content = with_details(content, run.outcome, run.mode)
    media_type = reply.headers.pop("content-type", JSON)
    if reply.status >= 400 and (normal := openai_error_body(reply.status, content, media_type)) is not content:
        content, media_type = normal, JSON  # the target's error body in OpenAI's shape
    require_json(reply.status, media_type, answer is not NOT_JSON, headers)
    return reply.status, {**reply.headers, **headers}, content, media_type


def respond_raw(reply: TargetReply, call: TargetCall, headers: dict[str, str]) -> Reply:
    """Any other answer, relayed as it is (bytes and content-type), plus ``headers``."""
    headers = {**headers, **route_headers_of(reply.headers)}
    if reply.response is not None:
        media_type = reply.headers.get("content-type", "application/octet-stream")
        return 200, {**reply.headers, **headers}, relay(reply, call, expect_done=False), media_type
    content = reply.body or b""
    call.finish(reply.status, content)
    note_body(content)  # the tenant's usage (gateway.tenants.meter)
    if (unserved := unserved_error(reply.status, content)) is not None:
        unserved.headers.update(headers)
        raise unserved
    media_type = reply.headers.get("content-type", JSON)  # kept as a header: relayed exactly (no charset added)
    if reply.status >= 400 and (normal := openai_error_body(reply.status, content, media_type)) is not content:
        content, media_type = normal, JSON
        reply.headers["content-type"] = JSON
    return reply.status, {**reply.headers, **headers}, content, media_type


async def relay(
    reply: TargetReply,
    call: TargetCall = NULL_CALL,
    usage_filter: UsageFilter | None = None,
    shadow: ShadowRefinement | None = None,
    *,
    expect_done: bool = True,
    first: bytes = b"",
) -> AsyncIterator[bytes]:
    """Relay the target's bytes as they arrive.

    ``expect_done`` (an OpenAI SSE stream): a stream that breaks or ends without ``[DONE]`` ends
    with an SSE error event and ``[DONE]``; otherwise a broken stream just ends. With
    ``usage_filter`` (the client did not ask for usage) a usage-only chunk is dropped. A
    ``shadow`` refinement still running goes on after a finished stream (it records its own
    result) and is cancelled when the client leaves. ``first`` (the details event) goes ahead
    of the target's bytes.
    """
    response = reply.response
    assert response is not None
    saw_done = False
    aborted = True
    usage = stream_meter() if reply.headers.get("content-type", "").startswith(SSE) else None  # the tenant's usage, read before a usage chunk is dropped
    if usage is not None and usage_filter is not None:  # one reading of the stream for both
        usage_filter.on_usage, usage = usage.take, None
    try:
        if first:
            yield first
        tail = b""
        async for chunk in response.iter_any():
            if usage is not None:
                usage.feed(chunk)
            if expect_done and not saw_done and _DONE in tail + chunk:
                saw_done = True
            tail = chunk[-8:]
            if usage_filter is not None:
                chunk = usage_filter.feed(chunk)
                if not chunk:
                    continue
            yield chunk
        if usage_filter is not None and (rest := usage_filter.flush()):
            yield rest
        if expect_done and not saw_done:
            call.fail("stream_incomplete")
            yield sse_error_event(UpstreamUnreachable("the target closed the stream before [DONE]"))
        aborted = False
    except (WireError, TimeoutError, ConnectionError) as exc:
        log.warning("target stream broke: %s", type(exc).__name__)
        call.fail("stream_broken")
        if expect_done:
            yield sse_error_event(UpstreamUnreachable(f"the target stream broke ({type(exc).__name__})"))
        aborted = False
    finally:
        if usage_filter is not None:  # a stream that broke or was left: the meter still reads what was held
            usage_filter.flush()
        reply.finish(abort=aborted)
        call.finish_stream(aborted=aborted)
        if aborted and shadow is not None:
            shadow.cancel()


def unserved_error(status: int, body: bytes) -> GatewayError | None:
    """A 404/405 whose body is not an OpenAI error (a web server's "Not Found" page): the target
    does not serve this route. None for everything else, which is relayed as it is."""
    if status not in (404, 405) or _is_openai_error(body):
        return None
    if status == 404:
        return NotFound("The target for this model does not serve this endpoint (it answered 404).")
    return MethodNotAllowed("The target for this model does not accept POST on this endpoint (it answered 405).")


def _is_openai_error(body: bytes) -> bool:
    try:
        data = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and isinstance(data.get("error"), dict) and isinstance(data["error"].get("message"), str)


def with_details(content: bytes, outcome: RefinementOutcome, mode: RefinementMode | None) -> bytes:
    """The JSON body with the refinement's ``mpr`` details object added."""
    try:
        data = msgspec.json.decode(content)
    except msgspec.DecodeError:
        return content
    if isinstance(data, dict):
        data["mpr"] = {**outcome.details(), "mode": mode}
        return msgspec.json.encode(data)
    return content


def details_event(outcome: RefinementOutcome, mode: RefinementMode | None, chunk_object: str, model: str) -> bytes:
    """The SSE event that carries the refinement details ahead of a stream: a chunk with no
    choices (as OpenAI's usage chunk, which clients already skip) and an ``mpr`` field."""
    chunk = {
        "id": "mpr-details",
        "object": chunk_object,
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "mpr": {**outcome.details(), "mode": mode},
    }
    return b"data: " + msgspec.json.encode(chunk) + b"\n\n"

"""``POST /v1/chat/completions``: validate, refine the last user message, forward, relay."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import msgspec
from litestar import Request, Response
from litestar.response import Stream

from gateway.disconnect import ClientDisconnected, DisconnectWatch
from gateway.endpoints.common import authorize, decode_object
from gateway.errors import GatewayError, InvalidRequest, ModelNotFound, UpstreamUnreachable, error_body, sse_error_event
from gateway.messages import apply_refinement, find_prompt, validate_messages
from gateway.refinement.controls import RefineControls, parse_controls
from gateway.refinement.pipeline import RefinementOutcome
from gateway.runtime import Runtime
from gateway.sse import UsageFilter
from gateway.telemetry import NULL_CALL, TargetCall
from gateway.upstream.target import TargetReply

log = logging.getLogger("gateway.chat")

JSON = "application/json"
SSE = "text/event-stream"
_DONE = b"[DONE]"

# (status, headers, body or SSE byte iterator, media type)
Reply = tuple[int, dict[str, str], "bytes | AsyncIterator[bytes]", str]


def mpr_headers(refinement: str, refine_ms: float) -> dict[str, str]:
    return {"x-mpr-refinement": refinement, "x-mpr-refine-ms": f"{refine_ms:.1f}"}


class ChatCompletions:
    """Serving logic for chat completions, bound to one :class:`Runtime`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle(self, request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        """The Litestar route (the raw ASGI fast path in :mod:`gateway.endpoints.fast` serves the
        usual ``POST /v1/chat/completions``; both share :meth:`process`)."""
        authorize(self.runtime, request)
        raw = await request.body()
        status, headers, content, media_type = await self.process(raw, request.headers.get, request.scope, request.receive)
        if isinstance(content, bytes):
            return Response(content, status_code=status, headers=headers, media_type=media_type)
        return Stream(content, status_code=status, headers=headers, media_type=media_type)

    async def process(self, raw: bytes, header: Callable[[str], str | None], scope: Any, receive: Any) -> Reply:
        """Serve an authorized request whose body is ``raw``: (status, headers, body or byte
        iterator, media type). Errors raise :class:`GatewayError` / :class:`ClientDisconnected`."""
        runtime = self.runtime
        payload = decode_object(raw)
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("you must provide a model parameter", param="model")
        messages = validate_messages(payload.get("messages"), runtime.config.server.max_messages)
        target = runtime.target(model)
        if target is None:
            raise ModelNotFound(f"The model `{model}` does not exist or you do not have access to it.", param="model")
        scope["mpr_model"] = model  # metrics/access-log label
        had_mpr = "mpr" in payload  # even `"mpr": null` must not reach the target
        mpr_field = payload.pop("mpr", None)
        controls = parse_controls(header, mpr_field)
        stream = payload.get("stream") is True
        if payload.get("stream") not in (None, True, False):
            raise InvalidRequest("'stream' must be a boolean", param="stream")

        reply: TargetReply | None = None
        try:
            async with DisconnectWatch(receive):
                reply, call, headers, outcome = await self._forward(raw, payload, messages, model, controls, had_mpr, stream)
        except ClientDisconnected:
            if reply is not None:  # the client left just as the target answered
                reply.finish(abort=True)
            raise
        options = payload.get("stream_options")
        strip_usage = not (isinstance(options, dict) and options.get("include_usage") is True)
        return self._respond(reply, call, headers, outcome, controls, strip_usage)

    async def _forward(
        self,
        raw: bytes,
        payload: dict[str, Any],
        messages: list[dict[str, Any]],
        model: str,
        controls: RefineControls,
        had_mpr: bool,
        stream: bool,
    ) -> tuple[TargetReply, TargetCall, dict[str, str], RefinementOutcome | None]:
        """Refine, then send to the target; errors carry the refinement headers."""
        runtime = self.runtime
        target = runtime.targets[model]
        outcome = await self._refine(payload, messages, controls, target.config.refine)
        headers = mpr_headers(outcome.header if outcome else "off", outcome.elapsed_ms if outcome else 0.0)
        upstream_model = target.config.model_for_upstream
        if upstream_model != model:
            payload["model"] = upstream_model
        unchanged = not had_mpr and upstream_model == model and (outcome is None or not outcome.changed)
        body = raw if unchanged else msgspec.json.encode(payload)
        call = runtime.telemetry.target_call(target.config, payload, stream)  # CLIENT span when tracing
        try:
            with call:
                reply = await target.send(body, stream=stream, extra_headers=call.headers)
        except GatewayError as exc:
            exc.headers.update(headers)
            raise
        return reply, call, headers, outcome

    def _respond(
        self,
        reply: TargetReply,
        call: TargetCall,
        headers: dict[str, str],
        outcome: RefinementOutcome | None,
        controls: RefineControls,
        strip_usage: bool,
    ) -> Reply:
        """The client's response: the relayed stream, or the target's status and body."""
        if reply.response is not None:
            if not reply.headers.get("content-type", "").startswith(SSE):
                bad_type = reply.headers.get("content-type", "none")
                reply.finish(abort=True)
                call.fail("wrong_content_type")
                raise UpstreamUnreachable(f"the target answered a stream with content-type {bad_type!r}", headers=headers)
            relay = self._relay(reply, call, UsageFilter() if strip_usage else None)
            return 200, {**reply.headers, **headers, "cache-control": "no-cache"}, relay, SSE
        content = reply.body or b""
        call.finish(reply.status, content)
        if controls.return_details and outcome is not None and reply.status == 200:
            content = _with_details(content, outcome)
        media_type = reply.headers.pop("content-type", JSON)
        if reply.status == 200 and not media_type.startswith(JSON):
            raise UpstreamUnreachable(f"the target answered with content-type {media_type!r}, not JSON", headers=headers)
        if reply.status == 200 and not _valid_json(reply.body or b""):
            raise UpstreamUnreachable("the target answered 200 with a body that is not valid JSON", headers=headers)
        return reply.status, {**reply.headers, **headers}, content, media_type

    async def _refine(
        self,
        payload: dict[str, Any],
        messages: list[dict[str, Any]],
        controls: RefineControls,
        target_default: bool,
    ) -> RefinementOutcome | None:
        """Refine the last user message in place in ``payload``; None when refinement is off."""
        wants = controls.refine if controls.refine is not None else target_default
        refiner = self.runtime.refiner
        if not wants or refiner is None:
            return None
        slot = find_prompt(messages)
        if slot is None:
            return RefinementOutcome("", "", None, "skipped;reason=no_text", 0.0)
        outcome = await refiner.refine(slot.text, controls.stages, use_gate=controls.skip_gate)
        if outcome.changed:
            placement = self.runtime.config.refinement.describer.placement
            payload["messages"] = apply_refinement(messages, slot, outcome.refined, outcome.description, placement)
        return outcome

    @staticmethod
    async def _relay(reply: TargetReply, call: TargetCall = NULL_CALL, usage_filter: UsageFilter | None = None) -> AsyncIterator[bytes]:
        """Relay SSE bytes as they arrive; a broken stream ends with an error event and [DONE].

        With ``usage_filter`` (the client did not ask for usage) a usage-only chunk is dropped.
        """
        response = reply.response
        assert response is not None
        saw_done = False
        aborted = True
        try:
            tail = b""
            async for chunk in response.content.iter_any():
                if not saw_done and _DONE in tail + chunk:
                    saw_done = True
                tail = chunk[-8:]
                if usage_filter is not None:
                    chunk = usage_filter.feed(chunk)
                    if not chunk:
                        continue
                yield chunk
            if usage_filter is not None and (rest := usage_filter.flush()):
                yield rest
            if not saw_done:
                call.fail("stream_incomplete")
                yield sse_error_event(UpstreamUnreachable("the target closed the stream before [DONE]"))
            aborted = False
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
            log.warning("target stream broke: %s", type(exc).__name__)
            call.fail("stream_broken")
            yield sse_error_event(UpstreamUnreachable(f"the target stream broke ({type(exc).__name__})"))
            aborted = False
        finally:
            reply.finish(abort=aborted)
            call.finish_stream(aborted=aborted)


def _valid_json(content: bytes) -> bool:
    try:
        msgspec.json.decode(content)
    except (msgspec.DecodeError, RecursionError):
        return False
    return True


def _with_details(content: bytes, outcome: RefinementOutcome) -> bytes:
    try:
        data = msgspec.json.decode(content)
    except msgspec.DecodeError:
        return content
    if isinstance(data, dict):
        data["mpr"] = outcome.details()
        return msgspec.json.encode(data)
    return content


__all__ = ["ChatCompletions", "error_body", "mpr_headers"]

"""``POST /v1/chat/completions``: validate, refine the last user message, forward, relay.

In shadow mode (``refinement.mode``, ``targets[].refinement_mode``, ``x-mpr-mode`` / ``mpr.mode``)
the original request goes to the target while the refinement runs beside it
(:mod:`gateway.endpoints.shadow`); the headers say what apply mode would have done.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
from litestar import Request, Response
from litestar.response import Stream

from gateway.config.models import RefinementMode, TargetConfig
from gateway.disconnect import ClientDisconnected, DisconnectWatch
from gateway.endpoints.common import authorize, decode_object
from gateway.endpoints.shadow import ShadowRefinement
from gateway.errors import GatewayError, InvalidRequest, ModelNotFound, UpstreamUnreachable, error_body, sse_error_event
from gateway.messages import apply_refinement, find_prompt, validate_messages
from gateway.refinement.controls import RefineControls, parse_controls, resolve_mode
from gateway.refinement.pipeline import RefinementOutcome
from gateway.refinement.shadow import refinement_header, shadow_result
from gateway.runtime import Runtime
from gateway.sse import UsageFilter
from gateway.telemetry import NULL_CALL, TargetCall
from gateway.telemetry.middleware import MODEL_KEY, REFINE_KEY
from gateway.upstream.target import TargetReply

log = logging.getLogger("gateway.chat")

JSON = "application/json"
SSE = "text/event-stream"
_DONE = b"[DONE]"

# (status, headers, body or SSE byte iterator, media type)
Reply = tuple[int, dict[str, str], "bytes | AsyncIterator[bytes]", str]


def mpr_headers(refinement: str, refine_ms: float) -> dict[str, str]:
    return {"x-mpr-refinement": refinement, "x-mpr-refine-ms": f"{refine_ms:.1f}"}


_OFF_HEADERS = mpr_headers("off", 0.0)


@dataclass(frozen=True, slots=True)
class RefinementRun:
    """This request's refinement: ``mode`` None = off; ``outcome`` None = a shadow run still pending."""

    mode: RefinementMode | None = None
    outcome: RefinementOutcome | None = None
    shadow: ShadowRefinement | None = None

    @property
    def headers(self) -> dict[str, str]:
        """``x-mpr-refinement`` and ``x-mpr-refine-ms`` for the response."""
        outcome = self.outcome
        if self.mode is None:
            return dict(_OFF_HEADERS)  # a copy: cheaper than formatting it again, and never shared
        if outcome is None:
            return mpr_headers(refinement_header(self.mode, None), 0.0)
        return mpr_headers(refinement_header(self.mode, outcome.header), outcome.elapsed_ms)


_OFF = RefinementRun()


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
        scope[MODEL_KEY] = model  # metrics/access-log label
        had_mpr = "mpr" in payload  # even `"mpr": null` must not reach the target
        mpr_field = payload.pop("mpr", None)
        controls = parse_controls(header, mpr_field)
        stream = payload.get("stream") is True
        if payload.get("stream") not in (None, True, False):
            raise InvalidRequest("'stream' must be a boolean", param="stream")

        reply: TargetReply | None = None
        run = _OFF
        try:
            async with DisconnectWatch(receive):
                reply, call, run = await self._forward(raw, payload, messages, model, controls, had_mpr, stream)
                if run.shadow is not None and not stream:
                    # it ran beside the target call: the wait is max(target, refinement), not the sum
                    run = RefinementRun("shadow", await run.shadow.outcome())
        except ClientDisconnected:
            if run.shadow is not None:
                run.shadow.cancel()
            if reply is not None:  # the client left just as the target answered
                reply.finish(abort=True)
            raise
        if run.mode == "apply" and run.outcome is not None:
            scope[REFINE_KEY] = run.outcome.elapsed_ms / 1000.0  # the middleware's refinement share of TTFB
        options = payload.get("stream_options")
        strip_usage = not (isinstance(options, dict) and options.get("include_usage") is True)
        return self._respond(reply, call, run, controls, strip_usage)

    async def _forward(
        self,
        raw: bytes,
        payload: dict[str, Any],
        messages: list[dict[str, Any]],
        model: str,
        controls: RefineControls,
        had_mpr: bool,
        stream: bool,
    ) -> tuple[TargetReply, TargetCall, RefinementRun]:
        """Refine (or start a shadow refinement), then send to the target; errors carry the
        refinement headers."""
        runtime = self.runtime
        target = runtime.targets[model]
        config = target.config
        run = await self._refinement(payload, messages, model, controls, config)
        upstream_model = config.model_for_upstream
        if upstream_model != model:
            payload["model"] = upstream_model
        changed = run.mode == "apply" and run.outcome is not None and run.outcome.changed
        body = raw if not had_mpr and upstream_model == model and not changed else msgspec.json.encode(payload)
        call = runtime.telemetry.target_call(config, payload, stream)  # CLIENT span when tracing
        try:
            with call:
                reply = await target.send(body, stream=stream, extra_headers=call.headers)
        except GatewayError as exc:
            exc.headers.update(run.headers)  # a pending shadow run goes on and is recorded when it ends
            raise
        except BaseException:
            if run.shadow is not None:  # the client left (or the request was cancelled)
                run.shadow.cancel()
            raise
        return reply, call, run

    def _respond(
        self,
        reply: TargetReply,
        call: TargetCall,
        run: RefinementRun,
        controls: RefineControls,
        strip_usage: bool,
    ) -> Reply:
        """The client's response: the relayed stream, or the target's status and body."""
        headers = run.headers
        if reply.response is not None:
            if not reply.headers.get("content-type", "").startswith(SSE):
                bad_type = reply.headers.get("content-type", "none")
                reply.finish(abort=True)
                call.fail("wrong_content_type")
                raise UpstreamUnreachable(f"the target answered a stream with content-type {bad_type!r}", headers=headers)
            relay = self._relay(reply, call, UsageFilter() if strip_usage else None, run.shadow)
            return 200, {**reply.headers, **headers, "cache-control": "no-cache"}, relay, SSE
        content = reply.body or b""
        call.finish(reply.status, content)
        if controls.return_details and run.outcome is not None and reply.status == 200:
            content = _with_details(content, run.outcome, run.mode)
        media_type = reply.headers.pop("content-type", JSON)
        if reply.status == 200 and not media_type.startswith(JSON):
            raise UpstreamUnreachable(f"the target answered with content-type {media_type!r}, not JSON", headers=headers)
        if reply.status == 200 and not _valid_json(reply.body or b""):
            raise UpstreamUnreachable("the target answered 200 with a body that is not valid JSON", headers=headers)
        return reply.status, {**reply.headers, **headers}, content, media_type

    async def _refinement(
        self,
        payload: dict[str, Any],
        messages: list[dict[str, Any]],
        model: str,
        controls: RefineControls,
        config: TargetConfig,
    ) -> RefinementRun:
        """Apply mode: refine the last user message in place in ``payload``. Shadow mode: start
        refining it beside the target call, leaving ``payload`` as it is. Off: nothing."""
        wants = controls.refine if controls.refine is not None else config.refine
        refiner = self.runtime.refiner
        if not wants or refiner is None:
            return _OFF
        mode = resolve_mode(controls.mode, config.refinement_mode, self.runtime.config.refinement.mode)
        slot = find_prompt(messages)
        if slot is None:
            outcome = RefinementOutcome("", "", None, "skipped;reason=no_text", 0.0)
            if mode == "shadow":
                self._record_shadow(model, outcome)
            else:
                self._audit(outcome, model, mode)
            return RefinementRun(mode, outcome)
        if mode == "shadow":
            record = functools.partial(self._record_shadow, model)
            return RefinementRun(mode, None, ShadowRefinement(refiner, slot.text, controls, record, self.runtime.background))
        outcome = await refiner.refine(slot.text, controls.stages, use_gate=controls.skip_gate)
        if outcome.changed:
            placement = self.runtime.config.refinement.describer.placement
            payload["messages"] = apply_refinement(messages, slot, outcome.refined, outcome.description, placement)
        self._audit(outcome, model, mode)
        return RefinementRun(mode, outcome)

    def _record_shadow(self, model: str, outcome: RefinementOutcome) -> None:
        """A finished shadow refinement: its result metric and (when sampled) its audit line."""
        self.runtime.telemetry.metrics.shadow_refinement(shadow_result(outcome))
        self._audit(outcome, model, "shadow")

    def _audit(self, outcome: RefinementOutcome, model: str, mode: RefinementMode) -> None:
        audit = self.runtime.telemetry.audit
        if audit is not None:
            audit.record(outcome, model=model, mode=mode, refinement=refinement_header(mode, outcome.header))

    @staticmethod
    async def _relay(
        reply: TargetReply,
        call: TargetCall = NULL_CALL,
        usage_filter: UsageFilter | None = None,
        shadow: ShadowRefinement | None = None,
    ) -> AsyncIterator[bytes]:
        """Relay SSE bytes as they arrive; a broken stream ends with an error event and [DONE].

        With ``usage_filter`` (the client did not ask for usage) a usage-only chunk is dropped.
        A ``shadow`` refinement still running goes on after a finished stream (it records its own
        result) and is cancelled when the client leaves.
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
            if aborted and shadow is not None:
                shadow.cancel()


def _valid_json(content: bytes) -> bool:
    try:
        msgspec.json.decode(content)
    except (msgspec.DecodeError, RecursionError):
        return False
    return True


def _with_details(content: bytes, outcome: RefinementOutcome, mode: RefinementMode | None) -> bytes:
    try:
        data = msgspec.json.decode(content)
    except msgspec.DecodeError:
        return content
    if isinstance(data, dict):
        data["mpr"] = {**outcome.details(), "mode": mode}
        return msgspec.json.encode(data)
    return content


__all__ = ["ChatCompletions", "error_body", "mpr_headers"]

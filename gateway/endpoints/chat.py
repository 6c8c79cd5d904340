"""``POST /v1/chat/completions``: validate, refine a new last user turn (earlier turns as the
target saw them before), forward, relay.

In shadow mode (``refinement.mode``, ``targets[].refinement_mode``, ``x-mpr-mode`` / ``mpr.mode``)
the original request goes to the target while the refinement runs beside it
(:mod:`gateway.endpoints.shadow`); the headers say what apply mode would have done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.response import Stream

from gateway.config.models import TargetConfig
from gateway.endpoints.common import decode_object, serve_litestar
from gateway.endpoints.proxied import upstream_body
from gateway.endpoints.refinement_run import OFF, PromptRefinement, RefinementRun, earlier_turns, mpr_headers
from gateway.endpoints import relay
from gateway.endpoints.relay import Reply, exchange, respond
from gateway.endpoints.routing_keys import chat_affinity
from gateway.tenants.meter import current_partition
from gateway.errors import InvalidRequest, ModelNotFound, error_body
from gateway.messages import present, user_turns, validate_messages
from gateway.refinement.controls import RefineControls, parse_controls
from gateway.runtime import Runtime
from gateway.telemetry import TargetCall
from gateway.telemetry.middleware import MODEL_KEY, REFINE_KEY
from gateway.upstream.target import TargetReply

log = logging.getLogger("gateway.chat")

_OFF_HEADERS = OFF.headers


class ChatCompletions:
    """Serving logic for chat completions, bound to one :class:`Runtime`."""

    error_headers = _OFF_HEADERS  # on the gateway's own errors before refinement ran (the fast path's, the app's)

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.refinement = PromptRefinement(runtime)

    async def handle(self, request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        """The Litestar route (the raw ASGI fast path in :mod:`gateway.endpoints.fast` serves the
        usual ``POST /v1/chat/completions``; both share :meth:`process`)."""
        return await serve_litestar(self.runtime, self.process, request)  # authorized and metered as the fast path

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

        forward = self._forward(raw, payload, messages, model, controls, had_mpr, stream)
        reply, call, run = await exchange(forward, receive, stream)
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
        assert runtime.router is not None
        affinity = chat_affinity(payload, current_partition()) if model in runtime.router.affine else None  # before refinement
        run = await self._refinement(payload, messages, model, controls, config)
        changed = payload["messages"] is not messages  # a turn presented: the body is encoded anew
        body = upstream_body(raw, payload, model, config, changed=had_mpr or changed)
        # retries and fallbacks, each attempt with its CLIENT span when tracing
        reply, call = await relay.send(
            runtime, model, body, payload, stream=stream, path="/chat/completions", run=run, affinity=affinity
        )
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
        return respond(reply, call, run, controls, strip_usage)

    async def _refinement(
        self,
        payload: dict[str, Any],
        messages: list[dict[str, Any]],
        model: str,
        controls: RefineControls,
        config: TargetConfig,
    ) -> RefinementRun:
        """Apply mode: refine a new last user turn and put every earlier turn's remembered
        presentation back (:meth:`PromptRefinement.converse`), in ``payload``. Shadow mode: start
        refining it beside the target call, leaving ``payload`` as it is. Off: nothing."""
        keyed = self.refinement.keyed(controls, config)
        if keyed is None:
            return OFF
        slots, new = user_turns(messages)
        texts = [slot.text for slot in slots]
        begun = self.refinement.begin_turn(texts, new, model, keyed, config)
        if isinstance(begun, RefinementRun) and not earlier_turns(texts, new):
            return begun  # settled (a skipped prompt): nothing to recall or present, no await
        run, shown = await self.refinement.converse(texts, new, model, controls, config, begun)
        presented = [(slot, p) for slot, p in zip(slots, shown) if p is not None]
        if presented:
            placement = self.runtime.config.refinement.describer.placement
            payload["messages"] = present(messages, presented, placement)
        return run


__all__ = ["ChatCompletions", "Reply", "RefinementRun", "error_body", "mpr_headers"]

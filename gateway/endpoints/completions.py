"""``POST /v1/completions`` (legacy text completions): refine a string ``prompt``, forward, relay.

The same controls, modes (apply, shadow), headers and ``return_details`` as chat completions
(:mod:`gateway.endpoints.refinement_run`, :mod:`gateway.endpoints.relay`). Only a string prompt
is refined; a list of strings, token ids or token-id arrays is forwarded unrefined
(``skipped;reason=unsupported_prompt``). The describer does not run here: a completion prompt is
text the model continues, and context placed before or after it would change the continuation
(a chat request gets it as a system message instead).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.response import Stream

from gateway.config.models import Role
from gateway.endpoints.common import decode_object, serve_litestar
from gateway.endpoints.proxied import require_model, require_target, stream_flag, upstream_body
from gateway.endpoints.refinement_run import OFF, PromptRefinement, RefinementRun
from gateway.endpoints.relay import Exchange, Reply, exchange, respond, send
from gateway.errors import InvalidRequest
from gateway.refinement.controls import RefineControls, parse_controls
from gateway.runtime import Runtime
from gateway.telemetry.middleware import MODEL_KEY, REFINE_KEY

PATH = "/completions"
OPERATION = "text_completion"  # gen_ai.operation.name


def prompt_text(prompt: Any) -> tuple[str | None, str]:
    """(the text to refine, or None; the skip reason when None) for a ``prompt`` value.

    A string is refined (a blank one is ``no_text``); an absent prompt is ``no_text``; a list of
    strings, of token ids or of token-id arrays is ``unsupported_prompt``; anything else is a 400.
    """
    if isinstance(prompt, str):
        return (prompt, "") if prompt.strip() else (None, "no_text")
    if prompt is None:
        return None, "no_text"
    if isinstance(prompt, list):
        if all(isinstance(p, str) for p in prompt) or all(_token(p) for p in prompt):
            return None, "unsupported_prompt"
        if all(isinstance(p, list) and p and all(_token(t) for t in p) for p in prompt):
            return None, "unsupported_prompt"
    raise InvalidRequest(
        "'prompt' must be a string, an array of strings, an array of tokens or an array of token arrays", param="prompt"
    )


def _token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def without_describer(controls: RefineControls, stages: tuple[Role, ...]) -> RefineControls:
    """``controls`` with the describer left out of ``stages`` (the stages the request would run)."""
    if Role.DESCRIBER not in stages:
        return controls
    return dataclasses.replace(controls, stages=tuple(r for r in stages if r is not Role.DESCRIBER))


class Completions:
    """Serving logic for text completions, bound to one :class:`Runtime`."""

    error_headers = OFF.headers  # on the gateway's own errors before refinement ran

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.refinement = PromptRefinement(runtime)

    async def handle(self, request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        """The Litestar route; the fast path shares :meth:`process`."""
        return await serve_litestar(self.runtime, self.process, request)

    async def process(self, raw: bytes, header: Callable[[str], str | None], scope: Any, receive: Any) -> Reply:
        """Serve an authorized request whose body is ``raw`` (see :class:`~gateway.endpoints.fast.Serving`)."""
        payload = decode_object(raw)
        model = require_model(payload)
        text, skip_reason = prompt_text(payload.get("prompt"))
        require_target(self.runtime, model)
        scope[MODEL_KEY] = model  # metrics/access-log label
        had_mpr = "mpr" in payload  # even `"mpr": null` must not reach the target
        controls = parse_controls(header, payload.pop("mpr", None))
        refiner = self.runtime.refiner
        if refiner is not None:
            controls = without_describer(controls, refiner.stages_for(controls.stages))
        stream = stream_flag(payload)
        forward = self._forward(raw, payload, model, text, skip_reason, controls, had_mpr, stream)
        reply, call, run = await exchange(forward, receive, stream)
        if run.mode == "apply" and run.outcome is not None:
            scope[REFINE_KEY] = run.outcome.elapsed_ms / 1000.0  # the middleware's refinement share of TTFB
        options = payload.get("stream_options")
        strip_usage = not (isinstance(options, dict) and options.get("include_usage") is True)
        return respond(reply, call, run, controls, strip_usage, chunk_object="text_completion")

    async def _forward(
        self,
        raw: bytes,
        payload: dict[str, Any],
        model: str,
        text: str | None,
        skip_reason: str,
        controls: RefineControls,
        had_mpr: bool,
        stream: bool,
    ) -> Exchange:
        """Refine (or start a shadow refinement), then send to the target."""
        runtime = self.runtime
        config = runtime.targets[model].config
        run: RefinementRun = await self.refinement.start(text, model, controls, config, skip_reason)
        if (outcome := run.applied) is not None:
            payload["prompt"] = outcome.refined
        body = upstream_body(raw, payload, model, config, changed=had_mpr or run.applied is not None)
        reply, call = await send(runtime, model, body, payload, stream=stream, path=PATH, run=run, operation=OPERATION)
        return reply, call, run

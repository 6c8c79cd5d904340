"""``POST /v1/refine``: the refinement alone, with per-stage details, under the caller's key: its
refinement policy narrows the stages (a key that may not refine gets ``off``), and its tenant's
partition of the refinement cache is the one used."""

from __future__ import annotations

from typing import Any

from litestar import Request

from gateway.disconnect import DisconnectWatch
from gateway.endpoints.common import authorize, decode_object
from gateway.errors import InvalidRequest
from gateway.refinement.controls import RefineControls, parse_cache, parse_stages
from gateway.refinement.results import RefinementOutcome
from gateway.runtime import Runtime
from gateway.tenants.meter import Meter, keyed_controls, opened


async def refine(runtime: Runtime, request: Request[Any, Any, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Body and headers for a refinement of ``{"prompt", "stages"?, "skip_gate"?, "cache"?}``
    (``x-mpr-cache: off`` bypasses the cache too)."""
    tenant = await authorize(runtime, request)
    opened(Meter(tenant))  # the key's policy and cache partition for this request (gateway.tenants.meter)
    payload = decode_object(await request.body())
    prompt = payload.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidRequest("'prompt' must be a string", param="prompt")
    unknown = set(payload) - {"prompt", "stages", "skip_gate", "cache"}
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(sorted(unknown))}", param=sorted(unknown)[0])
    stages = parse_stages(payload["stages"], "stages") if "stages" in payload else None
    skip_gate = payload.get("skip_gate", True)
    if not isinstance(skip_gate, bool):
        raise InvalidRequest("'skip_gate' must be a boolean", param="skip_gate")
    cache = parse_cache(request.headers.get("x-mpr-cache"), payload.get("cache"))
    assert runtime.refiner is not None
    controls = keyed_controls(RefineControls(stages=stages, skip_gate=skip_gate, cache=cache))
    if controls.refine is False:
        outcome = RefinementOutcome(prompt, prompt, None, "off", 0.0)
    else:
        async with DisconnectWatch(request.receive):
            outcome = await runtime.refiner.refine(prompt, controls.stages, use_gate=skip_gate, cache=cache)
    body = {"object": "mpr.refinement", **outcome.details()}
    headers = {"x-mpr-refinement": outcome.header, "x-mpr-refine-ms": f"{outcome.elapsed_ms:.1f}"}
    return body, headers

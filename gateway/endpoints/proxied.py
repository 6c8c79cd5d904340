"""Request checks shared by the proxied endpoints (pure, or reading the runtime's target table)."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.config.models import TargetConfig
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.runtime import Runtime
from gateway.upstream.target import TargetClient


def require_model(payload: dict[str, Any]) -> str:
    """The body's ``model``, or a 400."""
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter", param="model")
    return model


def require_target(runtime: Runtime, model: str) -> TargetClient:
    """The configured target named ``model``, or a 404 ``model_not_found``."""
    target = runtime.target(model)
    if target is None:
        raise ModelNotFound(f"The model `{model}` does not exist or you do not have access to it.", param="model")
    return target


def stream_flag(payload: dict[str, Any]) -> bool:
    """``stream`` as a boolean (absent: false); anything else is a 400."""
    value = payload.get("stream")
    if value not in (None, True, False):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    return value is True


def upstream_body(raw: bytes, payload: dict[str, Any], model: str, config: TargetConfig, *, changed: bool) -> bytes:
    """The bytes to forward: the client's own when ``payload`` is unchanged (``changed``: the
    ``mpr`` field was removed or the prompt refined) and the model keeps its name upstream; else
    ``payload`` re-encoded with the upstream model name."""
    upstream_model = config.model_for_upstream
    if upstream_model != model:
        payload["model"] = upstream_model
    elif not changed:
        return raw
    return msgspec.json.encode(payload)

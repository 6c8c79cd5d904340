"""JSON ``POST /v1/*`` routes the gateway does not refine, routed by the body's ``model``.

``/v1/embeddings`` is one (a fixed path); the fast path's fallback entry serves the other
``POST /v1/<path>`` that :mod:`gateway.endpoints.allowlist` lets through (moderations, rerank,
score, classify, images, audio speech, and what an operator opened for a target and a key) with
the same path on the target; any other path is a 404 that never reaches a target. The client's bytes go through unchanged (only ``model`` becomes the target's
``upstream_model`` and the gateway's ``mpr`` field is removed), with the same auth, limits,
pools, retries and fallbacks, tracing, metrics and disconnect cancellation as chat. The answer is
relayed as it is, streamed when the request says ``"stream": true``. Only JSON bodies: a
multipart upload (audio transcriptions, files) is a 415.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.response import Stream

from gateway.config.allowlist import opened_anywhere, route_allowed, shadows_served
from gateway.endpoints.common import decode_object, serve_litestar
from gateway.endpoints.proxied import require_model, require_target, upstream_body
from gateway.endpoints.refinement_run import OFF
from gateway.endpoints.relay import Exchange, Reply, exchange, respond_raw, send
from gateway.errors import InvalidRequest, NotFound
from gateway.runtime import Runtime
from gateway.telemetry.middleware import MODEL_KEY
from gateway.tenants.meter import current_tenant

SERVED = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/responses/", "/v1/refine", "/v1/models", "/v1/models/")
"""Routes the gateway serves itself: a pass-through path equal to one but for case is refused."""

PREFIX = "/v1"
_SEGMENT = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*")


def target_path(path: str) -> str | None:
    """``/v1/a/b`` → ``/a/b`` (the path under the target's ``/v1``); None for anything that is not
    plain segments of letters, digits, ``_``, ``-`` and inner dots (no ``..``, no empty segment)."""
    if not path.startswith(PREFIX + "/"):
        return None
    rest = path[len(PREFIX) :]
    segments = rest[1:].split("/")
    if not all(_SEGMENT.fullmatch(s) for s in segments):
        return None
    return rest


def is_json_media_type(content_type: str | None) -> bool:
    """No content-type, ``application/json`` or ``application/*+json``."""
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class PassThrough:
    """Serving logic for an unrefined JSON route: ``path`` fixed (``/embeddings``), or None for the
    request's own path (the fast path's ``/v1/*`` fallback)."""

    error_headers = OFF.headers  # never refined: `x-mpr-refinement: off`, errors included

    def __init__(self, runtime: Runtime, path: str | None = None, operation: str = "passthrough") -> None:
        self.runtime = runtime
        self.path = path
        self.operation = operation  # gen_ai.operation.name of the target span
        self.opened = [t.passthrough for t in runtime.config.targets]  # each target's extra paths

    async def handle(self, request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        """The Litestar route (fixed paths only); the fast path shares :meth:`process`."""
        return await serve_litestar(self.runtime, self.process, request)

    async def process(self, raw: bytes, header: Callable[[str], str | None], scope: Any, receive: Any) -> Reply:
        """Serve an authorized request whose body is ``raw`` (see :class:`~gateway.endpoints.fast.Serving`)."""
        fixed = self.path is not None
        path = self.path if fixed else target_path(scope["path"])
        key_globs = self._key_globs()
        if path is None or not (fixed or self._may_open(scope["path"], key_globs)):
            raise NotFound(f"Unknown route: POST {scope['path']}")  # before the body: no hint of what others may call
        if not is_json_media_type(header("content-type")):
            error = InvalidRequest(
                "This gateway forwards JSON request bodies only; multipart uploads are not supported.", code="unsupported_media_type"
            )
            error.status_code = 415
            raise error
        payload = decode_object(raw)
        model = require_model(payload)
        target = require_target(self.runtime, model)
        if not fixed and not route_allowed(scope["path"], target.config.passthrough, key_globs):
            raise NotFound(f"Unknown route: POST {scope['path']}")  # the same 404 as for a path nobody opened
        scope[MODEL_KEY] = model  # metrics/access-log label
        had_mpr = "mpr" in payload
        payload.pop("mpr", None)
        stream = payload.get("stream") is True  # the route's own business; only `true` opens a stream
        allow = None if fixed else self._opens(scope["path"], key_globs)
        reply, call, _ = await exchange(self._forward(raw, payload, model, path, had_mpr, stream, allow), receive, stream)
        return respond_raw(reply, call, OFF.headers)

    @staticmethod
    def _key_globs() -> tuple[str, ...] | None:
        """This request's key's extra paths (None: a bare key or an open gateway, every opened path)."""
        tenant = current_tenant()
        return None if tenant is None or tenant.shared else tenant.routes

    def _may_open(self, path: str, key_globs: tuple[str, ...] | None) -> bool:
        """Whether some target could forward ``path`` for this key (checked before the body is read)."""
        return opened_anywhere(path, self.opened, key_globs) and not shadows_served(path, SERVED)

    def _opens(self, path: str, key_globs: tuple[str, ...] | None) -> Callable[[str], bool]:
        """The targets a fallback may be: those that open ``path`` for this key too."""
        targets = self.runtime.targets
        return lambda name: name in targets and route_allowed(path, targets[name].config.passthrough, key_globs)

    async def _forward(
        self, raw: bytes, payload: dict[str, Any], model: str, path: str, had_mpr: bool, stream: bool, allow: Callable[[str], bool] | None
    ) -> Exchange:
        config = self.runtime.targets[model].config
        body = upstream_body(raw, payload, model, config, changed=had_mpr)
        reply, call = await send(self.runtime, model, body, payload, stream=stream, path=path, operation=self.operation, allow=allow)
        return reply, call, OFF

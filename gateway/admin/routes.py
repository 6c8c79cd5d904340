"""The admin routes: ``POST /admin/reload`` (here), ``GET /admin/status`` (:mod:`.status`),
``GET /admin/events`` (:mod:`.stream`) and the dashboard ``GET /admin/`` (:mod:`.dashboard`).

``POST /admin/reload`` re-reads the routes file and swaps the new config in (see
:mod:`gateway.reload`). Admin key required (:mod:`.auth`); the answer is JSON, errors in OpenAI's
shape (a refused file: 400 ``invalid_config`` with every error, also under ``errors``)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import MediaType, Request, Response, post
from litestar.types import ControllerRouterHandler

from gateway.admin.canary import canary_routes
from gateway.admin.dashboard import dashboard_routes
from gateway.admin.status import status_route
from gateway.admin.stream import events_route
from gateway.admin.usage import usage_route
from gateway.errors import GatewayError, ServiceUnavailable, error_payload
from gateway.reload.live import RuntimeRef
from gateway.reload.reloader import ReloadOutcome, Reloader


class NotReloadable(GatewayError):
    """The gateway was built from a config in code (the demo), not from a file (409)."""

    status_code = 409
    error_type = "invalid_request_error"
    code = "not_reloadable"


def outcome_response(outcome: ReloadOutcome) -> Response[bytes]:
    """200 with the outcome; 400 ``invalid_config`` for a refused file; 503 while draining."""
    if outcome.status == "draining":
        raise ServiceUnavailable("The gateway is shutting down; the config was not reloaded.", headers={"retry-after": "1"})
    body = outcome.as_dict()
    if outcome.status == "refused":
        message = "The config was not reloaded (the running one stays): " + "; ".join(
            f"{path}: {text}" for path, text in outcome.errors
        )
        body = {**error_payload(message, "invalid_request_error", "invalid_config"), **body}
        return Response(msgspec.json.encode(body), status_code=400, media_type=MediaType.JSON)
    return Response(msgspec.json.encode(body), status_code=200, media_type=MediaType.JSON)


def admin_routes(ref: RuntimeRef, reloader: Reloader | None) -> list[ControllerRouterHandler]:
    """The admin route handlers; their keys are the current runtime's admin keys."""

    @post("/admin/reload", status_code=200)
    async def reload(request: Request[Any, Any, Any]) -> Response[bytes]:
        ref.current.runtime.admin.check(request.headers.get("authorization"))
        if reloader is None:
            raise NotReloadable("This gateway was not started from a routes file: there is nothing to reload.")
        return outcome_response(await reloader.request("POST /admin/reload"))

    return [reload, status_route(ref, reloader), events_route(ref), usage_route(ref), *canary_routes(ref), *dashboard_routes()]

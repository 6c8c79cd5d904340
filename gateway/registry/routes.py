"""``/admin/workers``: workers register and heartbeat (``POST``, idempotent), deregister
(``DELETE /admin/workers/{node}``) with a register key; operators list them (``GET``, admin or
register key). Errors in OpenAI's shape."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import MediaType, Request, Response, delete, get, post
from litestar.types import ControllerRouterHandler

from gateway.registry.auth import RegisterAuth, check_reader
from gateway.registry.models import NODE_PATTERN, parse_announcement
from gateway.registry.registry import Registrations
from gateway.reload.live import RuntimeRef


def _json(data: object, status: int = 200) -> Response[bytes]:
    return Response(msgspec.json.encode(data), status_code=status, media_type=MediaType.JSON)


def registry_routes(ref: RuntimeRef, registrations: Registrations) -> list[ControllerRouterHandler]:
    """The handlers; keys are read from the current runtime's config (and the environment)."""

    @post("/admin/workers", status_code=200)
    async def register(request: Request[Any, Any, Any]) -> Response[bytes]:
        RegisterAuth.of(ref.current.runtime.config).check(request.headers.get("authorization"))
        announcement, ignored = parse_announcement(await request.body())
        record = await registrations.announce(announcement)
        return _json({**record.public(), "pooled_roles": registrations.pooled_roles(record), "ignored_roles": ignored})

    @delete("/admin/workers/{node:str}", status_code=200)
    async def deregister(request: Request[Any, Any, Any], node: str) -> Response[bytes]:
        RegisterAuth.of(ref.current.runtime.config).check(request.headers.get("authorization"))
        known = NODE_PATTERN.match(node) is not None and await registrations.withdraw(node)
        return _json({"node": node, "deregistered": known})

    @get("/admin/workers")
    async def workers(request: Request[Any, Any, Any]) -> Response[bytes]:
        check_reader(ref.current.runtime.config, request.headers.get("authorization"))
        now = time.time()
        data = [
            {**record.public(), "pooled_roles": registrations.pooled_roles(record),
             "expires_in_s": round(record.received_at + record.ttl_s - now, 3)}
            for record in sorted(registrations.known.values(), key=lambda r: r.node)
        ]
        return _json({"object": "list", "data": data})

    return [register, deregister, workers]

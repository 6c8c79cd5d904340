"""``GET /admin/canary`` and ``POST /admin/canary/{role}/promote|rollback``: the stages' canaries
(:mod:`gateway.refinement.canary`) as JSON, and an operator's verdict on one. Admin key required.

A verdict is taken by the process that answers and kept in the shared state, from which every
other process adopts it within a second (:mod:`gateway.refinement.canary`); to make it permanent,
set ``adapters.<role>.model`` to the candidate (promote) or remove ``canary`` (roll back) in
``routes.yaml`` and reload.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.types import ControllerRouterHandler

from gateway.errors import NotFound
from gateway.reload.live import RuntimeRef


def _json(data: object) -> Response[bytes]:
    return Response(msgspec.json.encode(data), status_code=200, media_type=MediaType.JSON)


def canary_routes(ref: RuntimeRef) -> list[ControllerRouterHandler]:
    @get("/admin/canary")
    async def canary_status(request: Request[Any, Any, Any]) -> Response[bytes]:
        runtime = ref.current.runtime
        runtime.admin.check(request.headers.get("authorization"))
        return _json({"object": "mpr.canaries", "data": [c.as_dict() for c in runtime.canaries.values()]})

    @post("/admin/canary/{role:str}/{action:str}", status_code=200)
    async def canary_verdict(request: Request[Any, Any, Any], role: str, action: str) -> Response[bytes]:
        runtime = ref.current.runtime
        runtime.admin.check(request.headers.get("authorization"))
        canary = runtime.canaries.get(role)
        if canary is None:
            raise NotFound(f"No canary for stage {role!r}: set adapters.{role}.canary in the config.", param="role")
        states = {"promote": "promoted", "rollback": "rolled_back"}
        if action not in states:
            raise NotFound(f"Unknown canary action {action!r}: promote or rollback.", param="action")
        canary.set_state(states[action], f"operator: {action}")  # type: ignore[arg-type]
        return _json(canary.as_dict())

    return [canary_status, canary_verdict]

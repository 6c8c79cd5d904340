"""``GET /metrics``: Prometheus text exposition of the app's registry."""

from typing import Any, Callable, Optional

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from gateway.telemetry.facade import Telemetry
from gateway.telemetry.metrics import CONTENT_TYPE


def metrics_route(telemetry: Telemetry, authenticate: Optional[Callable[[Optional[str]], Any]] = None) -> HTTPRouteHandler:
    """The handler; ``authenticate(authorization_header)`` guards it (``server.protect_ops_endpoints``)."""

    @get("/metrics", sync_to_thread=False)
    def metrics(request: Request) -> Response:  # type: ignore[type-arg]
        if authenticate is not None:
            authenticate(request.headers.get("authorization"))
        # CONTENT_TYPE carries its charset; as a header Litestar leaves it alone (a text/* media_type
        # alone would get a second `; charset=utf-8`, which strict scrapers reject)
        return Response(telemetry.metrics.render(), media_type=CONTENT_TYPE, headers={"content-type": CONTENT_TYPE})

    return metrics

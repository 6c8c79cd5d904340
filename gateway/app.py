"""The Litestar application: routes, error mapping and lifespan, built from a config."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, delete, get, post
from litestar.exceptions import HTTPException
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from gateway.config import GatewayConfig, Role
from gateway.disconnect import ClientDisconnected
from gateway.endpoints.chat import ChatCompletions
from gateway.endpoints.common import authorize
from gateway.endpoints.completions import Completions
from gateway.endpoints.fast import FastPath, Serving, error_headers_of
from gateway.endpoints.passthrough import PassThrough
from gateway.endpoints.refine import refine as refine_prompt
from gateway.endpoints.responses import Responses
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    error_body,
    error_payload,
)
from gateway.refinement.stages import StageBackend
from gateway.runtime import Runtime, build_runtime
from gateway.state.metrics import StateCollector
from gateway.telemetry import metrics_route
from gateway.telemetry.middleware import TelemetryMiddleware

log = logging.getLogger("gateway.app")

_CREATED = int(time.time())


def _route_error_headers(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The headers a proxied route's errors carry (chat: ``x-mpr-refinement: off``); none elsewhere."""
    table: Mapping[str, Mapping[str, str]] = getattr(request.app.state, "route_error_headers", None) or {}
    return dict(table.get(request.scope["path"], {}))


def _gateway_error(request: Request[Any, Any, Any], exc: GatewayError) -> Response[bytes]:
    headers = {**_route_error_headers(request), **exc.headers}  # raised after refinement: its real values
    return Response(error_body(exc), status_code=exc.status_code, headers=headers, media_type=MediaType.JSON)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    mapped: GatewayError
    if exc.status_code == 404:
        mapped = NotFound(f"Unknown route: {request.method} {request.url.path}")
    elif exc.status_code == 405:
        mapped = MethodNotAllowed(f"Method {request.method} is not allowed on {request.url.path}")
    elif exc.status_code == 413:
        mapped = PayloadTooLarge("The request body is larger than this gateway accepts.")
    elif exc.status_code < 500:
        mapped = InvalidRequest(str(exc.detail))
        mapped.status_code = exc.status_code
    else:
        mapped = GatewayError("The gateway hit an internal error.")
    return _gateway_error(request, mapped)


def _disconnected(_: Request[Any, Any, Any], __: ClientDisconnected) -> Response[bytes]:
    return Response(b"", status_code=499)


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error("unhandled error on %s %s: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
    return Response(
        msgspec.json.encode(error_payload("The gateway hit an internal error.", "server_error", "internal_error")),
        status_code=500,
        headers=_route_error_headers(request),
        media_type=MediaType.JSON,
    )


def _json(data: object, status: int = 200, headers: Mapping[str, str] | None = None) -> Response[bytes]:
    return Response(msgspec.json.encode(data), status_code=status, headers=dict(headers or {}), media_type=MediaType.JSON)


def build_routes(runtime: Runtime) -> list[ControllerRouterHandler]:
    """Route handlers bound to ``runtime`` (closures: no globals)."""
    chat = ChatCompletions(runtime)
    protect_ops = runtime.config.server.protect_ops_endpoints

    @post("/v1/chat/completions", status_code=200)
    async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        return await chat.handle(request)

    completions_serving, embeddings_serving = Completions(runtime), embeddings(runtime)

    @post("/v1/completions", status_code=200)
    async def completions(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        return await completions_serving.handle(request)

    @post("/v1/embeddings", status_code=200)
    async def create_embeddings(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        return await embeddings_serving.handle(request)

    responses = Responses(runtime)  # shares the fast path's response id → target index

    @post("/v1/responses", status_code=200)
    async def create_response(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        return await responses.handle(request)

    @get("/v1/responses/{response_id:str}")
    async def get_response(request: Request[Any, Any, Any], response_id: str) -> Response[bytes]:
        return await responses.by_id(request, response_id, "GET")

    @get("/v1/responses/{response_id:str}/input_items")
    async def response_input_items(request: Request[Any, Any, Any], response_id: str) -> Response[bytes]:
        return await responses.by_id(request, response_id, "GET", "/input_items")

    @post("/v1/responses/{response_id:str}/cancel", status_code=200)
    async def cancel_response(request: Request[Any, Any, Any], response_id: str) -> Response[bytes]:
        return await responses.by_id(request, response_id, "POST", "/cancel")

    @delete("/v1/responses/{response_id:str}", status_code=200)
    async def delete_response(request: Request[Any, Any, Any], response_id: str) -> Response[bytes]:
        return await responses.by_id(request, response_id, "DELETE")

    @post("/v1/refine", status_code=200)
    async def refine(request: Request[Any, Any, Any]) -> Response[bytes]:
        body, headers = await refine_prompt(runtime, request)
        return _json(body, headers=headers)

    @get("/v1/models")
    async def models(request: Request[Any, Any, Any]) -> Response[bytes]:
        await authorize(runtime, request)
        data = [{"id": t.name, "object": "model", "created": _CREATED, "owned_by": "mpr-gateway"} for t in runtime.config.targets]
        return _json({"object": "list", "data": data})

    @get("/v1/models/{model_id:path}")
    async def model(request: Request[Any, Any, Any], model_id: str) -> Response[bytes]:
        await authorize(runtime, request)
        name = model_id.lstrip("/")
        if runtime.config.target(name) is None:
            from gateway.errors import ModelNotFound

            raise ModelNotFound(f"The model `{name}` does not exist or you do not have access to it.", param="model")
        return _json({"id": name, "object": "model", "created": _CREATED, "owned_by": "mpr-gateway"})

    @get("/health")
    async def health() -> Response[bytes]:
        return _json({"status": "ok"})

    @get("/ready")
    async def ready(request: Request[Any, Any, Any]) -> Response[bytes]:
        if protect_ops:
            runtime.auth.authenticate(request.headers.get("authorization"))
        is_ready, body = runtime.readiness()
        return _json(body, 200 if is_ready else 503)

    by_id = [get_response, response_input_items, cancel_response, delete_response]
    return [chat_completions, completions, create_embeddings, create_response, *by_id, refine, models, model, health, ready]


def create_app(
    config: GatewayConfig,
    *,
    builtin_stages: Mapping[Role, StageBackend] | None = None,
    extra_routes: Sequence[ControllerRouterHandler] = (),
) -> Litestar:
    """A ready-to-serve Litestar app for ``config``."""
    runtime = build_runtime(config, builtin_stages)

    async def startup() -> None:
        await runtime.start()

    async def shutdown() -> None:
        await runtime.stop()
        await asyncio.to_thread(telemetry.shutdown)  # flush spans still batched

    telemetry = runtime.telemetry
    telemetry.metrics.watch_pools(lambda: [*runtime.target_pools.values(), *runtime.adapter_pools.values()])
    telemetry.metrics.registry.register(StateCollector(lambda: runtime.state))  # type: ignore[arg-type]
    guard = runtime.auth.authenticate if config.server.protect_ops_endpoints else None
    app = Litestar(
        route_handlers=[*build_routes(runtime), metrics_route(telemetry, guard), *extra_routes],
        on_startup=[startup],
        on_shutdown=[shutdown],
        plugins=telemetry.litestar_plugins(),  # OpenTelemetry SERVER spans, only when tracing is on
        middleware=[telemetry.middleware()],  # request id, metrics, access log
        exception_handlers={
            GatewayError: _gateway_error,
            ClientDisconnected: _disconnected,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        request_max_body_size=config.server.max_body_bytes,
        openapi_config=None,
        debug=False,
        logging_config=None,
    )
    app.state.runtime = runtime
    app.state.route_error_headers = {
        path: dict(headers)
        for path, serving in fast_routes(runtime).items()
        if "*" not in path and (headers := error_headers_of(serving))  # exact paths: other methods' 405s
    }
    _install_fast_path(app, runtime)
    return app


def fast_routes(runtime: Runtime) -> dict[str, Serving]:
    """The proxied routes the fast path serves: path → the endpoint's serving object. ``/v1/*`` is
    the fallback: every other ``POST /v1/…`` that no Litestar route takes, passed through by model."""
    return {
        "/v1/chat/completions": ChatCompletions(runtime),
        "/v1/completions": Completions(runtime),
        "/v1/embeddings": embeddings(runtime),
        "/v1/responses": Responses(runtime),
        "/v1/*": PassThrough(runtime),
    }


def embeddings(runtime: Runtime) -> PassThrough:
    """``POST /v1/embeddings``: never refined, passed through to the target's ``/embeddings``."""
    return PassThrough(runtime, "/embeddings", "embeddings")


def _install_fast_path(app: Litestar, runtime: Runtime) -> None:
    """Serve the :func:`fast_routes` with :class:`FastPath` in front of the router: inside the
    OpenTelemetry SERVER span when tracing is on, wrapped in the telemetry middleware."""
    telemetry = runtime.telemetry
    routes = fast_routes(runtime)
    reserved = [route.path for route in app.routes]  # Litestar's own: never taken by the `/v1/*` fallback

    def fast(inner: Any) -> FastPath:
        return FastPath(inner, runtime, routes, wrap=lambda h: TelemetryMiddleware(h, telemetry), reserved=reserved)

    handler = app.asgi_handler
    otel = getattr(handler, "open_telemetry_middleware", None)  # the Litestar OpenTelemetry plugin
    if otel is not None:
        otel.app = fast(otel.app)
    else:
        app.asgi_handler = fast(handler)

"""The Litestar application: routes, error mapping and lifespan, built from a config."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, delete, get, post
from litestar.exceptions import HTTPException
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from gateway.admin.routes import admin_routes
from gateway.admin.stream import UNPINNED
from gateway.registry.registry import Registrations
from gateway.registry.routes import registry_routes
from gateway.config import GatewayConfig, Role
from gateway.config.source import ConfigSource
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
from gateway.reload.live import LIVE_KEY, Live, RuntimeRef
from gateway.reload.reloader import Reloader
from gateway.runtime import Runtime, build_runtime
from gateway.state.metrics import StateCollector
from gateway.telemetry import metrics_route
from gateway.tenants.keyring import Tenant
from gateway.tenants.ops import metrics_denied, ops_caller, scoped_readiness
from gateway.tenants.policy import may_use, visible
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


def _live(request: Request[Any, Any, Any], ref: RuntimeRef) -> Live:
    """The :class:`Live` the fast path pinned this request to (the current one otherwise)."""
    live: Live | None = request.scope.get(LIVE_KEY)  # type: ignore[call-overload]
    return live if live is not None else ref.current


def build_routes(ref: RuntimeRef) -> list[ControllerRouterHandler]:
    """Route handlers reading the request's :class:`Live` (closures over ``ref``: no globals); the
    proxied ones use its serving objects, which the fast path's table holds."""

    def serving(request: Request[Any, Any, Any], path: str) -> Any:
        return _live(request, ref).routes[path]

    @post("/v1/chat/completions", status_code=200)
    async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        return await serving(request, "/v1/chat/completions").handle(request)  # type: ignore[no-any-return]

    @post("/v1/completions", status_code=200)
    async def completions(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        return await serving(request, "/v1/completions").handle(request)  # type: ignore[no-any-return]

    @post("/v1/embeddings", status_code=200)
    async def create_embeddings(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        return await serving(request, "/v1/embeddings").handle(request)  # type: ignore[no-any-return]

    @post("/v1/responses", status_code=200)
    async def create_response(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
        return await serving(request, "/v1/responses").handle(request)  # type: ignore[no-any-return]

    @get("/v1/responses/{response_id:str}")
    async def get_response(request: Request[Any, Any, Any], response_id: str) -> Response[bytes]:
        return await serving(request, "/v1/responses").by_id(request, response_id, "GET")  # type: ignore[no-any-return]

    @get("/v1/responses/{response_id:str}/input_items")
    async def response_input_items(request: Request[Any, Any, Any], response_id: str) -> Response[bytes]:
        return await serving(request, "/v1/responses").by_id(request, response_id, "GET", "/input_items")  # type: ignore[no-any-return]

    @post("/v1/responses/{response_id:str}/cancel", status_code=200)
    async def cancel_response(request: Request[Any, Any, Any], response_id: str) -> Response[bytes]:
        return await serving(request, "/v1/responses").by_id(request, response_id, "POST", "/cancel")  # type: ignore[no-any-return]

    @delete("/v1/responses/{response_id:str}", status_code=200)
    async def delete_response(request: Request[Any, Any, Any], response_id: str) -> Response[bytes]:
        return await serving(request, "/v1/responses").by_id(request, response_id, "DELETE")  # type: ignore[no-any-return]

    @post("/v1/refine", status_code=200)
    async def refine(request: Request[Any, Any, Any]) -> Response[bytes]:
        body, headers = await refine_prompt(_live(request, ref).runtime, request)
        return _json(body, headers=headers)

    @get("/v1/models")
    async def models(request: Request[Any, Any, Any]) -> Response[bytes]:
        runtime = _live(request, ref).runtime
        tenant = await authorize(runtime, request)
        names = visible(tenant, [t.name for t in runtime.config.targets])  # only the models the key may use
        data = [{"id": name, "object": "model", "created": _CREATED, "owned_by": "mpr-gateway"} for name in names]
        return _json({"object": "list", "data": data})

    @get("/v1/models/{model_id:path}")
    async def model(request: Request[Any, Any, Any], model_id: str) -> Response[bytes]:
        runtime = _live(request, ref).runtime
        tenant = await authorize(runtime, request)
        name = model_id.lstrip("/")
        if runtime.config.target(name) is None or not may_use(tenant, name):
            from gateway.errors import ModelNotFound

            raise ModelNotFound(f"The model `{name}` does not exist or you do not have access to it.", param="model")
        return _json({"id": name, "object": "model", "created": _CREATED, "owned_by": "mpr-gateway"})

    @get("/health")
    async def health() -> Response[bytes]:
        return _json({"status": "ok"})

    @get("/ready")
    async def ready(request: Request[Any, Any, Any]) -> Response[bytes]:
        live = _live(request, ref)
        runtime = live.runtime
        if runtime.config.server.protect_ops_endpoints:
            caller = ops_caller(runtime, request.headers.get("authorization"))
            if isinstance(caller, Tenant):  # a client key among tenants: its own models only
                is_ready, scoped = scoped_readiness(runtime, caller)
                return _json(scoped, 200 if is_ready else 503)
        is_ready, body = runtime.readiness()
        body["config"] = live.source.as_dict()
        return _json(body, 200 if is_ready else 503)

    by_id = [get_response, response_input_items, cancel_response, delete_response]
    return [chat_completions, completions, create_embeddings, create_response, *by_id, refine, models, model, health, ready]


def create_app(
    config: GatewayConfig,
    *,
    builtin_stages: Mapping[Role, StageBackend] | None = None,
    extra_routes: Sequence[ControllerRouterHandler] = (),
    source: ConfigSource | None = None,
    config_path: str | Path | None = None,
    reload_on_sighup: bool = False,
    broadcast_reload: Callable[[], None] | None = None,
) -> Litestar:
    """A ready-to-serve Litestar app for ``config``. With ``config_path`` (the file ``config`` came
    from, ``source`` its hash) ``POST /admin/reload`` re-reads it, and with ``reload_on_sighup``
    so does SIGHUP; ``broadcast_reload`` (a worker of ``--workers N``) tells every worker instead."""
    runtime = build_runtime(config, builtin_stages)
    runtime.registrations = registrations = Registrations(runtime.events)  # registered workers, kept across reloads
    ref = RuntimeRef(make_live(runtime, source or ConfigSource.of_config(config)))
    reloader = Reloader(ref, Path(config_path), make_live, builtin_stages, broadcast_reload) if config_path is not None else None
    hup = _SighupHandler(reloader) if reloader is not None and reload_on_sighup else None

    async def startup() -> None:
        await ref.current.runtime.start()
        registrations.start()
        if hup is not None and reloader is not None:
            hup.install()
            reloader.catch_up()

    async def shutdown() -> None:
        if hup is not None:
            hup.remove()
        await registrations.close()
        if reloader is not None:
            await reloader.close()
        await ref.current.runtime.stop()
        await asyncio.to_thread(telemetry.shutdown)  # flush spans still batched

    telemetry = runtime.telemetry  # one per process: a reload keeps it
    telemetry.metrics.watch_pools(lambda: [*ref.current.runtime.target_pools.values(), *ref.current.runtime.adapter_pools.values()])
    telemetry.metrics.registry.register(StateCollector(lambda: ref.current.runtime.state))  # type: ignore[arg-type]

    def guard(authorization: str | None) -> None:
        current = ref.current.runtime
        if current.config.server.protect_ops_endpoints and isinstance(ops_caller(current, authorization), Tenant):
            raise metrics_denied()  # every tenant's usage: operators only

    app = Litestar(
        route_handlers=[
            *build_routes(ref), *admin_routes(ref, reloader), *registry_routes(ref, registrations), metrics_route(telemetry, guard), *extra_routes
        ],
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
    app.state.ref = ref
    app.state.route_error_headers = {
        path: dict(headers)
        for path, serving in ref.current.routes.items()
        if "*" not in path and (headers := error_headers_of(serving))  # exact paths: other methods' 405s
    }
    _install_fast_path(app, ref)
    return app


class _SighupHandler:
    """SIGHUP on the event loop → :meth:`Reloader.on_signal` (main thread only)."""

    def __init__(self, reloader: Reloader) -> None:
        self.reloader = reloader
        self.installed = False

    def install(self) -> None:
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reloader.on_signal)
            self.installed = True
        except (ValueError, RuntimeError, NotImplementedError) as exc:  # not the main thread, not Unix
            log.warning("SIGHUP does not reload here (%s); POST /admin/reload does", exc)

    def remove(self) -> None:
        if self.installed:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a late SIGHUP must not kill a stopping server


def make_live(runtime: Runtime, source: ConfigSource) -> Live:
    """A :class:`Live` for ``runtime``: its serving objects (:func:`fast_routes`)."""
    return Live(runtime, fast_routes(runtime), source)


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


def _install_fast_path(app: Litestar, ref: RuntimeRef) -> None:
    """Serve the current :func:`fast_routes` with :class:`FastPath` in front of the router: inside the
    OpenTelemetry SERVER span when tracing is on, wrapped in the telemetry middleware."""
    telemetry = ref.current.runtime.telemetry
    reserved = [route.path for route in app.routes]  # Litestar's own: never taken by the `/v1/*` fallback

    def fast(inner: Any) -> FastPath:
        return FastPath(inner, ref, wrap=lambda h: TelemetryMiddleware(h, telemetry), reserved=reserved, unpinned=UNPINNED)

    handler = app.asgi_handler
    otel = getattr(handler, "open_telemetry_middleware", None)  # the Litestar OpenTelemetry plugin
    if otel is not None:
        otel.app = fast(otel.app)
    else:
        app.asgi_handler = fast(handler)

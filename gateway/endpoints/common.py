"""Request preamble shared by the endpoints: API key and rate limit; JSON body decoding; a
serving object's ``process`` as a Litestar route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.response import Stream

from gateway.errors import InvalidRequest, RateLimited, ServiceUnavailable
from gateway.runtime import Runtime
from gateway.tenants.gate import metered
from gateway.tenants.keyring import Tenant


async def authorize(runtime: Runtime, request: Request[Any, Any, Any]) -> Tenant | None:
    """Authenticate and charge the rate limit; returns the caller's tenant (None when auth is off)."""
    client = request.client
    host = client.host if client else "anonymous"
    tenant = admit(runtime, request.headers.get("authorization"), host)
    if runtime.config.server.rate_limit.requests_per_s > 0 or (tenant is not None and tenant.requests_per_s > 0):
        await charge(runtime, tenant, host)
    return tenant


def admit(runtime: Runtime, authorization: str | None, client_host: str) -> Tenant | None:
    """The synchronous part of :func:`authorize`: draining 503, API key (the rate limit is
    :func:`charge`, awaited only when a limit is set)."""
    if runtime.draining:  # SIGTERM received: in-flight requests finish, new ones go elsewhere
        raise ServiceUnavailable("The gateway is shutting down; retry the request.", headers={"retry-after": "1"})
    return runtime.auth.authenticate(authorization)


async def charge(runtime: Runtime, tenant: Tenant | None, host: str) -> None:
    """Take one token from the caller's bucket in the shared state (the key's own
    ``requests_per_s``, else ``server.rate_limit``); 429 with ``retry-after`` when empty."""
    limit = runtime.config.server.rate_limit
    rate, burst = limit.requests_per_s, limit.burst
    if tenant is not None and tenant.requests_per_s > 0:
        rate, burst = tenant.requests_per_s, tenant.burst
    wait = await runtime.state.take(tenant.subject if tenant is not None else host, rate, burst)
    if wait > 0:
        retry_after = retry_after_s(wait)
        raise RateLimited(
            f"Rate limit reached for this API key; retry in {retry_after}s.",
            headers={"retry-after": str(retry_after)},
        )


def retry_after_s(wait: float) -> int:
    """A wait in seconds as a ``retry-after`` value: whole seconds, rounded up, at least 1."""
    return max(1, int(wait + 0.999))


def decode_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 in OpenAI's shape."""
    if not body:
        raise InvalidRequest("The request body is empty; expected a JSON object.")
    try:
        payload = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec raises the latter for bad UTF-8
        raise InvalidRequest(f"We could not parse the JSON body of your request ({exc}).") from None
    except RecursionError:  # msgspec raises it, not DecodeError, for JSON nested too deep
        raise InvalidRequest("The JSON body of your request is nested too deeply.") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return payload


Process = Callable[[bytes, Callable[[str], "str | None"], Any, Any], Awaitable[tuple[int, dict[str, str], "bytes | AsyncIterator[bytes]", str]]]


async def serve_litestar(runtime: Runtime, process: Process, request: Request[Any, Any, Any]) -> Response[Any] | Stream:
    """A Litestar route serving ``request`` with a serving object's ``process`` (the fast path
    calls the same ``process``)."""
    tenant = await authorize(runtime, request)
    raw = await request.body()
    scope, receive = request.scope, request.receive
    status, headers, content, media_type = await metered(runtime, tenant, raw, scope, lambda: process(raw, request.headers.get, scope, receive))
    if isinstance(content, bytes):
        return Response(content, status_code=status, headers=headers, media_type=media_type)
    return Stream(content, status_code=status, headers=headers, media_type=media_type)

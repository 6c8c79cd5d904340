"""The tenant checks and accounting around one endpoint's ``process`` (the fast path and the
Litestar routes call :func:`metered`): the key's models (404), its token limits (429, a
reservation of the estimate), the meter the relay feeds, and the accounting once the answer is
finished — for a stream, when the relay ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from gateway.disconnect import ClientDisconnected
from gateway.errors import GatewayError, ModelNotFound
from gateway.telemetry.middleware import MODEL_KEY
from gateway.tenants.accounting import ANONYMOUS, Accountant
from gateway.tenants.keyring import Tenant
from gateway.tenants.meter import Meter, opened
from gateway.tenants.policy import may_use
from gateway.tenants.quota import Counter, counters, estimate, exceeded

if TYPE_CHECKING:
    from gateway.runtime import Runtime

Reply = tuple[int, dict[str, str], "bytes | AsyncIterator[bytes]", str]


class _Head(msgspec.Struct):
    """The few body fields the checks read (the rest is skipped by the decoder)."""

    model: Any = None
    max_tokens: Any = None
    max_completion_tokens: Any = None
    max_output_tokens: Any = None


def read_head(raw: bytes) -> tuple[str | None, int | None]:
    """(model, completion token limit) of a JSON body, or (None, None) when unreadable (pure)."""
    try:
        head = msgspec.json.decode(raw, type=_Head)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError):
        return None, None
    model = head.model if isinstance(head.model, str) else None
    for value in (head.max_completion_tokens, head.max_tokens, head.max_output_tokens):
        if isinstance(value, int) and not isinstance(value, bool):
            return model, value
    return model, None


TENANT_HEADERS = frozenset(
    {
        "content-type",
        "content-disposition",
        "content-language",
        "cache-control",
        "retry-after",
        "retry-after-ms",
        "x-request-id",
        "openai-processing-ms",
        "openai-version",
    }
)
"""The target's response headers a tenant key gets: what a client needs to read the answer and
back off. Everything else a target or the provider behind it sends — account-wide rate limits
(``x-ratelimit-*``, ``anthropic-ratelimit-*``: what every tenant used), spend, vendor traces — stays
with the operator; the gateway's own ``x-mpr-*`` headers go through."""


def tenant_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` as a tenant key may see them (:data:`TENANT_HEADERS` and ``x-mpr-*``; pure;
    ``headers`` itself when nothing is dropped)."""
    if all(name in TENANT_HEADERS or name.startswith("x-mpr-") for name in headers):
        return headers
    return {name: value for name, value in headers.items() if name in TENANT_HEADERS or name.startswith("x-mpr-")}


def not_allowed(model: str) -> ModelNotFound:
    """OpenAI's answer for a model the key may not use: the same 404 as for a model that does not exist."""
    return ModelNotFound(f"The model `{model}` does not exist or you do not have access to it.", param="model")


def accountant_of(runtime: Runtime) -> Accountant:
    """The runtime's :class:`Accountant` (one without a usage log for a runtime built by hand)."""
    if runtime.accountant is None:
        runtime.accountant = Accountant(runtime.state, runtime.telemetry.metrics, None, [t.name for t in runtime.config.targets])
    return runtime.accountant


async def metered(runtime: Runtime, tenant: Tenant | None, raw: bytes, scope: Any, serve: Callable[[], Awaitable[Reply]]) -> Reply:
    """``serve()`` under ``tenant``'s model scope and token limits, its usage accounted. The body
    is read here only for a key with a model list or token limits; else the model is the one the
    endpoint validated (``scope[MODEL_KEY]``)."""
    accountant = accountant_of(runtime)
    checked = tenant is not None and (bool(tenant.models) or tenant.metered)
    model, max_tokens = read_head(raw) if checked else (None, None)
    meter = Meter(tenant, model or "-")
    if tenant is not None and model is not None and not may_use(tenant, model):
        accountant.refused(tenant.name, "model_not_allowed")
        accountant.finish(meter, 404, None, [])  # its usage-log line (no tokens)
        raise not_allowed(model)
    charged: list[Counter] = []
    if tenant is not None and tenant.metered:
        charged = counters(tenant)
        amount = estimate(len(raw), max_tokens)
        index = await runtime.state.reserve([(c.key, c.limit, c.ttl_s) for c in charged], amount)
        if index >= 0:
            accountant.refused(tenant.name, charged[index].code)
            accountant.finish(meter, 429, None, [])
            raise exceeded(tenant, charged[index])
        meter.reserved = amount
    opened(meter)
    try:
        status, headers, content, media_type = await serve()
    except BaseException as exc:
        status = exc.status_code if isinstance(exc, GatewayError) else 499 if isinstance(exc, ClientDisconnected) else 500
        meter.model = scope.get(MODEL_KEY) or meter.model
        accountant.finish(meter, status, None, charged)
        raise
    meter.model = scope.get(MODEL_KEY) or meter.model  # the model the endpoint validated
    if tenant is not None and not tenant.shared:
        headers = tenant_headers(headers)
    target = headers.get("x-mpr-target")
    if isinstance(content, bytes):
        accountant.finish(meter, status, target, charged)
        return status, headers, content, media_type
    return status, headers, _accounted(content, accountant, meter, status, target, charged), media_type


class _Accounted:
    """``content`` relayed; the request accounted once when it ends: exhausted, broken, or closed
    (``aclose``, which the serving paths call, started or not)."""

    __slots__ = ("content", "finish", "done")

    def __init__(self, content: AsyncIterator[bytes], finish: Callable[[], None]) -> None:
        self.content = content
        self.finish = finish
        self.done = False

    def __aiter__(self) -> _Accounted:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.content.__anext__()
        except BaseException:
            self._end()
            raise

    async def aclose(self) -> None:
        try:
            await self.content.aclose()  # type: ignore[attr-defined]
        finally:
            self._end()

    def _end(self) -> None:
        if not self.done:
            self.done = True
            self.finish()


def _accounted(
    content: AsyncIterator[bytes], accountant: Accountant, meter: Meter, status: int, target: str | None, charged: list[Counter]
) -> _Accounted:
    def finish() -> None:
        if meter.stream is not None:
            meter.stream.close()
        accountant.finish(meter, status, target, charged)

    return _Accounted(content, finish)


def key_name(tenant: Tenant | None) -> str:
    return tenant.name if tenant is not None else ANONYMOUS

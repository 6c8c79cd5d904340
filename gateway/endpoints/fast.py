"""A raw-ASGI fast path for the proxied ``POST`` routes, in front of Litestar's router.

Litestar's routing, handler signature parsing, ``Request``/``Response`` objects and exception
middleware cost about as much CPU as the whole pass-through; this path serves the hot routes —
one table, path → serving object (:class:`Serving`: ``ChatCompletions`` and the other endpoints'
classes, whose ``process()`` the Litestar routes share) — with plain ASGI and the same answers,
byte for byte: body read with the ``max_body_bytes`` 413
check, headers from the scope in one pass, OpenAI-shaped errors (the same handlers' output),
disconnect cancellation, and the SSE relay with a disconnect watcher. Everything else (other
routes, other methods: 405 in OpenAI shape) goes to Litestar unchanged.

A key ending in ``/*`` (``/v1/*``) is the table's fallback for its prefix: it serves a ``POST`` to
any path under it that no exact key and no Litestar route (``reserved``: ``/v1/refine``,
``/v1/models/…``, ``/v1/responses/{id}/cancel``) takes, under the bounded route template
``/v1/{passthrough}`` (metric labels stay few).

It is also where a request pins its configuration: it reads ``RuntimeRef.current`` once (the
:class:`~gateway.reload.live.Live` of the current runtime: serving table, limits), puts it in the
scope under ``LIVE_KEY`` for the Litestar routes, counts the request in flight on it until the
response is sent (a reload retires the old runtime after its last request), and adds
``x-mpr-config`` to every response. The ``unpinned`` paths (``GET /admin/events``: a stream that
may stay open for days and reads only what a reload keeps) are not counted: they never hold an
old runtime alive.

It sits inside Litestar's ``asgi_handler`` (so inside the OpenTelemetry SERVER span when tracing
is on) and runs wrapped in :class:`~gateway.telemetry.middleware.TelemetryMiddleware`, as the
Litestar route does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import msgspec

from gateway.disconnect import ClientDisconnected, DisconnectWatch
from gateway.endpoints.chat import Reply
from gateway.endpoints.common import admit, charge
from gateway.errors import GatewayError, InvalidRequest, PayloadTooLarge, error_body, error_payload
from gateway.reload.live import LIVE_KEY, Live, RuntimeRef
from gateway.tenants.gate import metered

log = logging.getLogger("gateway.app")

class Serving(Protocol):
    """One endpoint's serving logic: an authorized request's body → (status, headers, body or SSE
    byte iterator, media type); errors raise :class:`GatewayError` / :class:`ClientDisconnected`."""

    async def process(self, raw: bytes, header: Callable[[str], str | None], scope: Any, receive: Any) -> Reply: ...

_JSON = b"application/json"
_CONTENT_TYPE = b"content-type"
_CONTENT_LENGTH = b"content-length"
_INTERNAL = msgspec.json.encode(error_payload("The gateway hit an internal error.", "server_error", "internal_error"))


FALLBACK_TEMPLATE = "{passthrough}"  # the route template (metrics label) of a fallback's requests


def reserved_paths(paths: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Litestar route paths as (exact paths, prefixes of the parameterised ones: the part before
    the first ``{``)."""
    exact: set[str] = set()
    prefixes: list[str] = []
    for path in paths:
        if "{" in path:
            prefixes.append(path[: path.index("{")])
        else:
            exact.add(path)
    return frozenset(exact), tuple(prefixes)


def is_reserved(path: str, reserved: tuple[frozenset[str], tuple[str, ...]]) -> bool:
    """Whether a Litestar route takes ``path`` (see :func:`reserved_paths`)."""
    exact, prefixes = reserved
    return path in exact or path.rstrip("/") in exact or any(path.startswith(p) for p in prefixes)


def error_headers_of(serving: object) -> Mapping[str, str]:
    """A serving object's optional ``error_headers``: headers every error it answers carries."""
    return getattr(serving, "error_headers", None) or {}


class _ResponseStarted:
    __slots__ = ("send", "started")

    def __init__(self, send: Any) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


_NAMES: dict[str, bytes] = {}  # header name → its lowercased bytes (a few dozen names in practice)
_MAX_NAMES = 1024


def _name(key: str) -> bytes:
    name = _NAMES.get(key)
    if name is None:
        name = key.lower().encode("latin-1")
        if len(_NAMES) < _MAX_NAMES:
            _NAMES[key] = name
    return name


def _encode(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    names = _NAMES
    return [(names.get(k) or _name(k), v.encode("latin-1")) for k, v in headers.items()]


class _Stamped:
    """``send`` adding one header (``x-mpr-config``) to the response start (Litestar's routes)."""

    __slots__ = ("send", "header")

    def __init__(self, send: Any, header: tuple[bytes, bytes]) -> None:
        self.send = send
        self.header = header

    async def __call__(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), self.header]
        await self.send(message)


_MEDIA_TYPES: dict[str, bytes] = {}


def _media_type(media_type: str) -> bytes:
    """The content-type header value of ``media_type`` (Litestar's: text types get a charset)."""
    value = _MEDIA_TYPES.get(media_type)
    if value is None:
        value = (f"{media_type}; charset=utf-8" if media_type.startswith("text/") else media_type).encode("latin-1")
        if len(_MEDIA_TYPES) < _MAX_NAMES:
            _MEDIA_TYPES[media_type] = value
    return value


async def _send_bytes(
    send: Any, status: int, headers: dict[str, str], body: bytes, media_type: str, extra: tuple[bytes, bytes] | None = None
) -> None:
    """What a Litestar ``Response(body, status_code, headers, media_type)`` sends (plus ``extra``)."""
    raw = _encode(headers)
    if extra is not None:
        raw.append(extra)
    if status in (204, 304) or status < 200:
        if body and body != b"null":
            raise RuntimeError("response content is not supported for a status code that does not allow content")
        body = b""
    else:
        has_type = has_length = False
        for name, _ in raw:
            if name == _CONTENT_TYPE:
                has_type = True
            elif name == _CONTENT_LENGTH:
                has_length = True
        if not has_type:
            raw.append((_CONTENT_TYPE, _media_type(media_type)))
        if not has_length:
            raw.append((_CONTENT_LENGTH, str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class FastPath:
    """ASGI: ``POST`` to a path of the current :class:`Live`'s table served here by its
    :class:`Serving`, everything else by ``app``; every HTTP request pinned to one :class:`Live`."""

    __slots__ = ("app", "ref", "reserved", "handler", "unpinned")

    def __init__(
        self, app: Any, ref: RuntimeRef, wrap: Any = None, reserved: Iterable[str] = (), unpinned: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.ref = ref
        self.reserved = reserved_paths(reserved)
        self.handler = wrap(self._serve) if wrap is not None else self._serve  # TelemetryMiddleware
        self.unpinned = frozenset(unpinned)  # long-lived routes that follow ref.current themselves

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        live = self.ref.current  # the one read of the current runtime: this request's to its end
        scope[LIVE_KEY] = live
        if scope["path"] in self.unpinned:  # not in flight on `live`: a reload may retire it meanwhile
            await self.app(scope, receive, _Stamped(send, live.config_header))
            return
        live.in_flight += 1
        try:
            if scope["method"] == "POST" and (match := self.match(live, scope["path"])) is not None:
                scope["path_template"] = match[0]
                await self.handler(scope, receive, send)
            else:
                await self.app(scope, receive, _Stamped(send, live.config_header))
        finally:
            live.leave()

    def match(self, live: Live, path: str) -> tuple[str, Serving] | None:
        """(route template, serving) for a ``POST`` to ``path``, or None: Litestar serves it."""
        serving = live.exact.get(path)
        if serving is not None:
            return path, serving
        for prefix, fallback in live.fallbacks:
            if path.startswith(prefix) and not is_reserved(path, self.reserved):
                return prefix + FALLBACK_TEMPLATE, fallback
        return None

    async def _serve(self, scope: Any, receive: Any, send: Any) -> None:
        stamp = scope[LIVE_KEY].config_header
        tracked = _ResponseStarted(send)
        try:
            await self._handle(scope, receive, tracked)
        except GatewayError as exc:
            if tracked.started:
                raise
            headers = {**self._error_headers(scope), **exc.headers}  # raised after refinement: its real values
            await _send_bytes(send, exc.status_code, headers, error_body(exc), "application/json", stamp)
        except ClientDisconnected:
            if tracked.started:  # the stream's watcher fired: the relay already cleaned up
                return
            await _send_bytes(send, 499, {}, b"", "application/json", stamp)
        except Exception as exc:
            if tracked.started:
                raise
            log.error("unhandled error on %s %s: %s", scope["method"], scope["path"], type(exc).__name__, exc_info=exc)
            await _send_bytes(send, 500, self._error_headers(scope), _INTERNAL, "application/json", stamp)

    def _error_headers(self, scope: Any) -> dict[str, str]:
        """The serving's headers for the gateway's own errors (chat: ``x-mpr-refinement: off``)."""
        match = self.match(scope[LIVE_KEY], scope["path"])
        return dict(error_headers_of(match[1] if match is not None else None))

    async def _handle(self, scope: Any, receive: Any, send: Any) -> None:
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:  # first value wins, as Litestar's Headers.get
            key = name.decode("latin-1")
            if key not in headers:
                headers[key] = value.decode("latin-1")
        client = scope.get("client")
        host = client[0] if client else "anonymous"
        live: Live = scope[LIVE_KEY]
        tenant = admit(live.runtime, headers.get("authorization"), host)
        if live.limited or (tenant is not None and tenant.requests_per_s > 0):
            await charge(live.runtime, tenant, host)
        raw = await self._body(headers.get("content-length"), receive, live.max_body)
        match = self.match(live, scope["path"])
        assert match is not None  # __call__ matched it
        serving = match[1]
        serve = lambda: serving.process(raw, headers.get, scope, receive)  # noqa: E731
        status, out_headers, content, media_type = await metered(live.runtime, tenant, raw, scope, serve)  # keys' scope, limits, usage
        if isinstance(content, bytes):
            await _send_bytes(send, status, out_headers, content, media_type, live.config_header)
            return
        raw_headers = _encode(out_headers)  # a stream: the target's content-type is among them
        raw_headers.append(live.config_header)
        try:
            async with DisconnectWatch(receive):  # the client leaves: the relay is cancelled
                await send({"type": "http.response.start", "status": status, "headers": raw_headers})
                async for chunk in content:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await content.aclose()  # type: ignore[attr-defined]

    async def _body(self, announced: str | None, receive: Any, limit: float) -> bytes:
        """The request body, with Litestar's checks: content-length, then the bytes received."""
        if announced is not None:
            try:
                length = int(announced)
            except ValueError:
                raise InvalidRequest(f"Invalid content-length: {announced!r}") from None
            if length > limit:
                raise PayloadTooLarge("The request body is larger than this gateway accepts.")
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "http.request":
                body = message["body"]
                if body:
                    total += len(body)
                    if total > limit:
                        raise PayloadTooLarge("The request body is larger than this gateway accepts.")
                    chunks.append(body)
                if not message.get("more_body", False):
                    break
            if kind == "http.disconnect":
                raise GatewayError("The gateway hit an internal error.")  # as Litestar's 500 for it
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

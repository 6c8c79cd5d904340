"""Shared keep-alive sessions of the wire client (:mod:`gateway.upstream.wire`), one per upstream pool.

The client is the gateway's own, on httptools' parser, because a call is the largest cost a
pass-through request has: measured in one run on one core at c=32 against the same fake upstream,
aiohttp's ``ClientSession.post`` + ``read`` cost ≈ 62-95 µs of CPU a call and the wire client ≈ 18 µs.
(Earlier, in Litestar pass-through prototypes: httpx's pool 341-461 req/s, httpx over
``httpx-aiohttp`` ~1,380, aiohttp ~2,000-2,300.)
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.upstream.wire import Session

# Response headers that describe the hop, not the payload, or name the operator's account: never
# relayed to the client.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "server",
        "date",
        "set-cookie",
        # the operator's account at the target: never a client's business (docs/security.md)
        "openai-organization",
        "openai-project",
        "anthropic-organization-id",
    }
)


IDLE_KEEPALIVE_S = 30.0
"""How long an upstream connection may sit idle in a session's pool before it is closed."""


def new_session(max_connections: int, *, force_close: bool = False, retry_stale: bool = False) -> Session:
    """A session with its own connections (idle ones closed after :data:`IDLE_KEEPALIVE_S`); each call sets its own
    timeout. It keeps no cookies: a session serves every tenant, so a cookie one call's answer set
    (a CDN's bot cookie, a session id) must not go out with the next call. ``retry_stale`` (the
    adapters' sessions): a pooled connection the worker closed as it was picked is not a failed
    stage; a target's client retries on its own terms (another endpoint first)."""
    return Session(max_connections, keepalive_s=IDLE_KEEPALIVE_S, force_close=force_close, retry_stale=retry_stale)


def relay_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Upstream response headers worth passing to the client (``retry-after``, rate limits, request
    ids); the account-wide ``x-ratelimit-*`` are dropped for tenant keys by
    :func:`gateway.tenants.gate.metered`. ``headers``: a wire :class:`~gateway.upstream.wire.Response`'s,
    whose names are lowercased already."""
    return {name: value for name, value in headers.items() if name not in HOP_BY_HOP and not name.startswith("x-mpr-")}

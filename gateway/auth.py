"""Client API keys: constant-time comparison; the key is never forwarded or logged."""

from __future__ import annotations

import hmac

from gateway.errors import AuthenticationFailed


def bearer_token(authorization: str | None) -> str:
    """The key of ``Authorization: Bearer <key>``; raises :class:`AuthenticationFailed` (401) when
    the header is missing or malformed."""
    if not authorization:
        raise AuthenticationFailed("Missing API key: send 'Authorization: Bearer <key>'.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("Malformed Authorization header: expected 'Bearer <key>'.")
    return token.strip()


class ApiKeyAuth:
    """Checks ``Authorization: Bearer <key>`` against the configured keys (no keys = open)."""

    def __init__(self, keys: frozenset[str]) -> None:
        self._keys = tuple(k.encode() for k in keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def authenticate(self, authorization: str | None) -> str | None:
        """The matching key (for rate limiting), None when auth is off; raises when refused."""
        if not self._keys:
            return None
        candidate = bearer_token(authorization).encode()
        match: bytes | None = None
        for key in self._keys:  # compare against every key: timing does not reveal which matched
            if hmac.compare_digest(candidate, key):
                match = key
        if match is None:
            raise AuthenticationFailed("Incorrect API key provided.")
        return match.decode()

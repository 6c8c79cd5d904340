"""The wire client's one exception tree (httpx-style): what went wrong talking HTTP/1.1 upstream.

Each class also derives from the builtin the asyncio world expects (``ConnectionError``,
``TimeoutError``), so ``except TimeoutError`` around a call still means "it took too long".
"""

from __future__ import annotations


class WireError(Exception):
    """Anything that went wrong on the way to an upstream or back."""


class ConnectError(WireError, ConnectionError):
    """No connection was made: refused, unreachable, unresolvable, or the TLS handshake failed."""


class ConnectTimeout(ConnectError, TimeoutError):
    """No connection was made within the connect timeout."""


class ReadTimeout(WireError, TimeoutError):
    """The upstream sent nothing for the read timeout, or the exchange ran past its total deadline."""


class Disconnected(WireError, ConnectionError):
    """The upstream closed or reset the connection before its answer ended.

    ``answered``: part of the answer had arrived. A reused keep-alive connection that drops before
    any byte of the answer (``reused and not answered``) is the race a keep-alive timeout causes,
    and is worth one retry on a fresh connection."""

    def __init__(self, message: str, *, answered: bool = False, reused: bool = False) -> None:
        super().__init__(message)
        self.answered = answered
        self.reused = reused


class ProtocolError(WireError):
    """The upstream's answer is not HTTP/1.1 that the parser accepts."""


__all__ = ["ConnectError", "ConnectTimeout", "Disconnected", "ProtocolError", "ReadTimeout", "WireError"]

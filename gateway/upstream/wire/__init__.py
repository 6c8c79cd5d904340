"""A lean HTTP/1.1 client for the gateway's upstream calls (targets, stages, probes).

``Session`` (keep-alive pool) → ``Response`` (status, headers, body read whole or as it comes);
``Timeout`` says how long; every failure is a ``WireError``. See :mod:`.session` for why it exists.
"""

from gateway.upstream.wire.connection import Response
from gateway.upstream.wire.errors import ConnectError, ConnectTimeout, Disconnected, ProtocolError, ReadTimeout, WireError
from gateway.upstream.wire.session import Session
from gateway.upstream.wire.timeout import NO_TIMEOUT, Timeout

__all__ = [
    "NO_TIMEOUT",
    "ConnectError",
    "ConnectTimeout",
    "Disconnected",
    "ProtocolError",
    "ReadTimeout",
    "Response",
    "Session",
    "Timeout",
    "WireError",
]

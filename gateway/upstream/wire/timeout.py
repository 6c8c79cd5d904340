"""How long a call may wait (a small value class, like httpx's ``Timeout``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Timeout:
    """Seconds, ``None`` for no limit: ``connect`` to open a connection, ``read`` between two
    arrivals of the answer's bytes, ``total`` for the whole call (connect, headers and body)."""

    connect: float | None = None
    read: float | None = None
    total: float | None = None


NO_TIMEOUT = Timeout()

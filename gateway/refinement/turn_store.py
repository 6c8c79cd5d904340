"""Remembered user turns: each refined turn's :class:`~gateway.refinement.history.Presentation`,
kept in the runtime's :class:`~gateway.state.SharedState` (in-process, or Redis so that every
replica puts the same history back).

Never fails a request: a lookup that errs is a miss (that turn goes to the target as the client
sent it) and a store that errs is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from gateway.refinement.history import Presentation
from gateway.state import SharedState

log = logging.getLogger("gateway.refinement")


class TurnStore:
    """Reads and writes presentations under :func:`~gateway.refinement.history.turn_keys` keys."""

    def __init__(self, state: SharedState, ttl_s: float) -> None:
        self.state = state
        self.ttl_s = ttl_s

    async def recall(self, keys: Sequence[str]) -> list[Presentation | None]:
        """The presentation remembered for each key (None: never refined, or forgotten)."""
        if not keys:
            return []
        try:
            found = await asyncio.gather(*(self.state.cache_get(key) for key in keys))
        except Exception as exc:  # noqa: BLE001 - history never fails a request
            log.warning("conversation history lookup failed (%s); earlier turns go as sent", type(exc).__name__)
            return [None] * len(keys)
        return [Presentation.decode(raw) for raw in found]

    async def remember(self, key: str, presentation: Presentation) -> None:
        try:
            await self.state.cache_put(key, presentation.encode(), self.ttl_s)
        except Exception as exc:  # noqa: BLE001
            log.warning("conversation history store failed (%s)", type(exc).__name__)

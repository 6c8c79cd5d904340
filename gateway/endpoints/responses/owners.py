"""Who created a stored response, and where it lives: :class:`Owner` records (tenant partition,
target, replica) kept in this process (a bounded LRU, carried across reloads) and as records of
the runtime's :class:`~gateway.state.SharedState` (Redis when configured: every replica agrees;
without it the server's shared directory under ``serve --workers N``), and the pure decision of
what a caller may do with a response id (:func:`access`).

OpenAI scopes a response to the project that created them and answers 404 to anyone else; the
gateway calls its targets with the operator's one credential, so the target cannot tell tenants
apart and the gateway must: a response id of another tenant is a 404 that never reaches a target.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import msgspec

from gateway.state import SharedState

log = logging.getLogger("gateway.responses")

KEY_PREFIX = "resp:"
TTL_S = 30 * 86400.0  # OpenAI keeps a stored response 30 days
INDEX_CAPACITY = 100_000


@dataclass(frozen=True, slots=True)
class Owner:
    """The tenant partition that created a response, the target that stores it, and the endpoint
    (replica) of that target it lives on (None: unknown)."""

    partition: str
    target: str
    endpoint: str | None = None

    def encode(self) -> bytes:
        return msgspec.json.encode([self.partition, self.target, self.endpoint])

    @staticmethod
    def decode(raw: bytes | None) -> Owner | None:
        """The stored record, or None for a missing or unreadable one."""
        if raw is None:
            return None
        try:
            partition, target, *rest = msgspec.json.decode(raw)
        except (msgspec.DecodeError, ValueError, TypeError):
            return None
        endpoint = rest[0] if rest else None
        if not isinstance(partition, str) or not isinstance(target, str) or not (endpoint is None or isinstance(endpoint, str)):
            return None
        return Owner(partition, target, endpoint)


Access = Literal["serve", "not_found", "probe"]


def access(owner: Owner | None, partition: str, may_use: bool, isolating: bool) -> Access:
    """What a caller of ``partition`` gets for a response id (pure):

    - ``serve``: its own response, on a target its key may use (``may_use``), goes to that target;
    - ``not_found``: another partition's, a target outside the key's scope, or an id of unknown
      owner while tenant keys exist (``isolating``: asking the targets could hand over another
      tenant's response, so nobody may);
    - ``probe``: an id of unknown owner in a single trust domain (bare keys or no keys): the
      targets the key may use are asked in order, as before ownership was recorded.
    """
    if owner is None:
        return "not_found" if isolating else "probe"
    if owner.partition != partition or not may_use:
        return "not_found"
    return "serve"


class ResponseIndex:
    """This process's bounded LRU map: response id → :class:`Owner` (carried across reloads)."""

    __slots__ = ("capacity", "_map")

    def __init__(self, capacity: int = INDEX_CAPACITY) -> None:
        self.capacity = capacity
        self._map: OrderedDict[str, Owner] = OrderedDict()

    def remember(self, response_id: str, owner: Owner) -> None:
        self._map[response_id] = owner
        self._map.move_to_end(response_id)
        while len(self._map) > self.capacity:
            self._map.popitem(last=False)

    def get(self, response_id: str) -> Owner | None:
        owner = self._map.get(response_id)
        if owner is not None:
            self._map.move_to_end(response_id)
        return owner

    def __len__(self) -> int:
        return len(self._map)


class ResponseOwners:
    """Records and looks up :class:`Owner` by response id: this process's :class:`ResponseIndex`
    first, then the shared ``state``."""

    __slots__ = ("index", "state")

    def __init__(self, state: SharedState, index: ResponseIndex | None = None) -> None:
        self.index = index if index is not None else ResponseIndex()
        self.state = state

    async def record(self, response_id: str, owner: Owner) -> None:
        """Remember ``owner`` here and in the shared state (a failed store is logged: this process
        still knows it)."""
        self.index.remember(response_id, owner)
        try:
            await self.state.record_put(KEY_PREFIX + response_id, owner.encode(), TTL_S)
        except Exception as exc:  # noqa: BLE001 - never fails the request that created it
            log.warning("response owner store failed (%s)", type(exc).__name__)

    async def owner(self, response_id: str) -> Owner | None:
        """The recorded owner of ``response_id`` (None: never seen, expired, or the store unreachable)."""
        found = self.index.get(response_id)
        if found is not None:
            return found
        try:
            found = Owner.decode(await self.state.record_get(KEY_PREFIX + response_id))
        except Exception as exc:  # noqa: BLE001 - an unreachable store is an unknown owner
            log.warning("response owner lookup failed (%s)", type(exc).__name__)
            return None
        if found is not None:
            self.index.remember(response_id, found)
        return found

"""Conversation turn keys and remembered presentations (pure), and the store's failure handling."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.refinement.history import KEY_PREFIX, Presentation, turn_keys
from gateway.refinement.turn_store import TurnStore
from gateway.state.local import LocalState


def test_turn_keys_chain_every_earlier_turn() -> None:
    a, b = turn_keys(["hello", "again"])
    assert a.startswith(KEY_PREFIX) and b.startswith(KEY_PREFIX)
    assert turn_keys(["hello", "again", "more"])[:2] == [a, b]  # a later request derives the same keys
    assert turn_keys(["again"])[0] != b  # the same words at another point are another turn
    assert turn_keys(["hello", "agai", "n"])[1] != b  # texts cannot run into one another
    assert turn_keys(["héllo \ud800"])  # any str, even a lone surrogate, has a key


def test_presentation_round_trip_and_bad_records() -> None:
    for p in (Presentation("Q?", "Facts."), Presentation("Q?")):
        assert Presentation.decode(p.encode()) == p
    for raw in (None, b"", b"{", b"[1, 2]", b'["a"]', b'{"a": 1}'):
        assert Presentation.decode(raw) is None


class _Broken(LocalState):
    async def cache_get(self, key: str) -> bytes | None:
        raise ConnectionError("down")

    async def cache_put(self, key: str, value: bytes, ttl_s: float) -> None:
        raise ConnectionError("down")


def test_store_remembers_and_a_broken_store_is_a_miss() -> None:
    async def run() -> tuple[Any, Any]:
        store = TurnStore(LocalState(), 60)
        keys = turn_keys(["a", "b"])
        await store.remember(keys[0], Presentation("A", "ctx"))
        good = await store.recall(keys)
        broken = TurnStore(_Broken(), 60)
        await broken.remember(keys[0], Presentation("A"))  # logged, never raised
        return good, await broken.recall(keys)

    good, broken = asyncio.run(run())
    assert good == [Presentation("A", "ctx"), None]
    assert broken == [None, None]

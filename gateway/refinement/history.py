"""Conversations, pure: the key a user turn's refinement is remembered under, and what the target
saw for that turn (:class:`Presentation`).

A conversation is re-sent whole on every turn (chat ``messages``, Responses ``input`` items). Only
a *new* user turn — the request's last message — is refined; every earlier user turn is shown to
the target as it was shown before (``history: refined``: its remembered presentation is put back,
never refined again) or exactly as the client sent it (``history: raw``). Either way the tokens of
earlier turns are identical from one request to the next, so the target's prefix cache holds.

A turn's key chains the caller's tenant partition and the texts of every user turn up to it
(``sha256``), so the same words at another point of another conversation, or from another
tenant, are another turn, and keys cost microseconds to derive from
the request alone — no conversation id is needed from the client.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

KEY_PREFIX = "mpr:turn:"


@dataclass(frozen=True, slots=True)
class Presentation:
    """What the target was sent for one user turn: the refined text and the description placed
    beside it (None: none accepted)."""

    refined: str
    description: str | None = None

    def encode(self) -> bytes:
        return msgspec.json.encode([self.refined, self.description])

    @staticmethod
    def decode(raw: bytes | None) -> Presentation | None:
        """The stored presentation, or None for a missing or unreadable record."""
        if raw is None:
            return None
        try:
            refined, description = msgspec.json.decode(raw)
        except (msgspec.DecodeError, ValueError, TypeError):
            return None
        if not isinstance(refined, str) or not (description is None or isinstance(description, str)):
            return None
        return Presentation(refined, description)


def turn_keys(texts: Sequence[str], partition: str = "shared") -> list[str]:
    """One key per user turn, in order: turn ``i``'s key hashes the caller's ``partition`` (its
    tenant's, :mod:`gateway.tenants.partition`) and the texts of turns ``0..i``."""
    keys: list[str] = []
    digest = hashlib.sha256(b"mpr-turn-v2")
    digest.update(partition.encode("ascii", "replace"))
    for text in texts:
        digest.update(b"\x1e")
        digest.update(text.encode("utf-8", "surrogatepass"))
        keys.append(KEY_PREFIX + digest.copy().hexdigest()[:40])
    return keys

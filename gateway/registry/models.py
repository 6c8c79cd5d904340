"""A worker's announcement and the record the gateway stores for it: pure validation, no I/O."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import msgspec

from gateway.config.models import ALL_ROLES
from gateway.errors import InvalidRequest

NODE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TIERS = ("gpu", "cpu")
MIN_HEARTBEAT_S, MAX_HEARTBEAT_S = 0.2, 300.0
MISSED_HEARTBEATS = 3  # a registration expires after this many heartbeats did not come
TOMBSTONE_S = 30.0  # how long a deregistration is remembered (so every process tells it from an expiry)


class Announcement(msgspec.Struct, frozen=True, kw_only=True):
    """What ``POST /admin/workers`` carries: ``adapters`` maps each role served to the LoRA name the
    gateway must send as ``model`` for it; ``url`` is the worker's OpenAI base URL (``…/v1``)."""

    node: str
    url: str
    tier: str
    adapters: dict[str, str]
    base_model: str | None = None
    roles: list[str] | None = None  # informative; when given it must match ``adapters``
    heartbeat_s: float = 5.0
    loras: dict[str, list[str]] | None = None  # informative: every LoRA name served per role (hot-loaded versions)


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """A registration as stored: the announcement, when it came (wall clock) and for how long it holds."""

    node: str
    url: str
    tier: str
    adapters: dict[str, str]
    base_model: str | None
    heartbeat_s: float
    received_at: float
    ttl_s: float
    gone: bool = False  # a deregistration (kept for TOMBSTONE_S)
    loras: dict[str, list[str]] | None = None  # every LoRA name served per role, when the worker says

    def public(self) -> dict[str, object]:
        """The operator's view (``GET /admin/workers``, events): no secrets."""
        view: dict[str, object] = {"node": self.node, "roles": sorted(self.adapters), "adapters": dict(self.adapters),
                                   "tier": self.tier, "url": self.url, "base_model": self.base_model,
                                   "heartbeat_s": self.heartbeat_s, "ttl_s": self.ttl_s}
        if self.loras is not None:
            view["loras"] = {role: list(names) for role, names in self.loras.items()}
        return view

    def endpoint_key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """What the pools hold of it: a change means leave and join again."""
        return self.url, self.tier, tuple(sorted(self.adapters.items()))


def ttl_for(heartbeat_s: float) -> float:
    """How long a registration holds without a heartbeat: ``MISSED_HEARTBEATS`` of them."""
    return MISSED_HEARTBEATS * heartbeat_s


def _bad(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_registration")


def normalise_url(url: str) -> str:
    """The worker's base URL without a trailing slash; 400 unless http(s), with a host, no
    credentials, no query, ending in ``/v1``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad(f"url {url!r} must be an http(s) URL with a host", "url")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise _bad("url must carry no credentials, query or fragment", "url")
    base = url.strip().rstrip("/")
    if not base.endswith("/v1"):
        raise _bad(f"url {url!r} must be an OpenAI-compatible base URL ending in /v1", "url")
    return base


def parse_announcement(body: bytes) -> tuple[Announcement, list[str]]:
    """The validated announcement (unknown roles dropped) and the roles dropped; 400 when unusable."""
    try:
        found = msgspec.json.decode(body, type=Announcement)
    except msgspec.ValidationError as exc:
        raise _bad(f"invalid registration: {exc}", "body") from None
    except msgspec.DecodeError:
        raise _bad("the registration is not a JSON object", "body") from None
    if not NODE_PATTERN.match(found.node):
        raise _bad("node must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", "node")
    if found.tier not in TIERS:
        raise _bad(f"tier must be one of {', '.join(TIERS)}", "tier")
    if not MIN_HEARTBEAT_S <= found.heartbeat_s <= MAX_HEARTBEAT_S:
        raise _bad(f"heartbeat_s must be between {MIN_HEARTBEAT_S:g} and {MAX_HEARTBEAT_S:g}", "heartbeat_s")
    if found.roles is not None and sorted(found.roles) != sorted(found.adapters):
        raise _bad("roles must list exactly the roles of adapters", "roles")
    bad_names = [role for role, name in found.adapters.items() if not name.strip() or len(name) > 256]
    if bad_names:
        raise _bad(f"adapters.{bad_names[0]}: the LoRA name must be 1-256 characters", "adapters")
    known = {role.value for role in ALL_ROLES}
    adapters = {role: name.strip() for role, name in found.adapters.items() if role in known}
    dropped = sorted(set(found.adapters) - known)
    if not adapters:
        raise _bad(f"adapters must name at least one of the roles {', '.join(sorted(known))}", "adapters")
    url = normalise_url(found.url)
    loras = None if found.loras is None else {
        role: [n.strip() for n in names if n.strip() and len(n) <= 256][:64] for role, names in found.loras.items() if role in known}
    return msgspec.structs.replace(found, url=url, adapters=adapters, roles=sorted(adapters), loras=loras), dropped


def record_of(announcement: Announcement, now: float) -> Record:
    """The record stored for ``announcement`` received at ``now`` (wall clock)."""
    return Record(node=announcement.node, url=announcement.url, tier=announcement.tier, adapters=dict(announcement.adapters),
                  base_model=announcement.base_model, heartbeat_s=announcement.heartbeat_s, received_at=now,
                  ttl_s=ttl_for(announcement.heartbeat_s), loras=announcement.loras)


def tombstone(record: Record, now: float) -> Record:
    """What a deregistration stores in place of ``record``."""
    return msgspec.structs.replace(record, received_at=now, ttl_s=TOMBSTONE_S, gone=True)


def decode_records(stored: dict[str, bytes]) -> dict[str, Record]:
    """The store's records by node (malformed ones skipped: another version's, or garbage)."""
    records: dict[str, Record] = {}
    for node, raw in stored.items():
        try:
            record = msgspec.json.decode(raw, type=Record)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if record.node == node:
            records[node] = record
    return records


def changes(known: dict[str, Record], stored: dict[str, Record]) -> tuple[list[Record], list[Record], list[tuple[Record, Record]]]:
    """(joined, left, replaced (old, new)) going from ``known`` (live records) to the store's
    records (tombstones count as absent)."""
    live = {node: r for node, r in stored.items() if not r.gone}
    joined = [r for node, r in live.items() if node not in known]
    left = [r for node, r in known.items() if node not in live]
    replaced = [(known[node], r) for node, r in live.items() if node in known and known[node].endpoint_key() != r.endpoint_key()]
    return joined, left, replaced

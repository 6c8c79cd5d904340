"""Client keys → :class:`Tenant`: keys are kept only as SHA-256 digests, looked up by the digest
of the presented key (the digest reveals nothing of the key; the final check is constant-time)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from gateway.config.keys import HASH_PREFIX, BudgetConfig, KeyConfig, KeyRefinementPolicy, KeysFile
from gateway.auth import bearer_token
from gateway.errors import AuthenticationFailed


def hash_key(plain: str) -> str:
    """``sha256:<hex>`` of a plain key (what ``server.keys[].key`` stores)."""
    return HASH_PREFIX + hashlib.sha256(plain.strip().encode()).hexdigest()


def stored_hash(value: str) -> str:
    """A configured key as its hash: already ``sha256:…``, or a plain key hashed now."""
    value = value.strip()
    return value if value.startswith(HASH_PREFIX) else hash_key(value)


SHARED_PARTITION = "shared"


def named_partition(subject: str) -> str:
    """A named key's partition: ``t`` and 16 hex digits of a hash of the key's hash (stable across
    restarts and replicas, revealing nothing of the key)."""
    return "t" + hashlib.blake2b(subject.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class Tenant:
    """One key's identity and limits. ``subject`` (the key's hash) names its buckets and counters."""

    name: str
    subject: str
    team: str | None = None
    models: tuple[str, ...] = ()
    requests_per_s: float = 0.0
    burst: int = 0
    tokens_per_min: int = 0
    budget: BudgetConfig | None = None
    policy: KeyRefinementPolicy = field(default_factory=KeyRefinementPolicy)
    routes: tuple[str, ...] = ()  # pass-through path globs beyond the inference defaults
    shared: bool = False  # a bare ``server.api_keys`` key: one trust domain with every other bare key
    partition: str = SHARED_PARTITION  # its part of the shared structures (gateway.tenants.partition)

    @property
    def metered(self) -> bool:
        """Whether tokens are limited (a reservation is needed before the call)."""
        return self.tokens_per_min > 0 or self.budget is not None

    @classmethod
    def of(cls, config: KeyConfig) -> Tenant:
        return cls(
            name=config.name,
            subject=stored_hash(config.key),
            team=config.team,
            models=tuple(config.models),
            requests_per_s=config.requests_per_s,
            burst=config.burst,
            tokens_per_min=config.tokens_per_min,
            budget=config.budget,
            policy=config.refinement,
            routes=tuple(config.routes),
            partition=named_partition(stored_hash(config.key)),
        )

    @classmethod
    def bare(cls, plain: str) -> Tenant:
        """A ``server.api_keys`` key: no limits of its own, every model; named by its hash."""
        digest = hash_key(plain)
        return cls(name="key-" + digest[len(HASH_PREFIX) : len(HASH_PREFIX) + 8], subject=digest, shared=True)


class KeyRing:
    """Authenticates ``Authorization: Bearer <key>`` (no keys = open: every caller is None)."""

    def __init__(self, tenants: Iterable[Tenant]) -> None:
        self._by_hash: dict[str, Tenant] = {}
        for tenant in tenants:
            self._by_hash.setdefault(tenant.subject, tenant)  # a named key wins over the same bare key
        self.isolating = any(not t.shared for t in self._by_hash.values())
        """Whether named (tenant) keys exist: then objects of unknown owner are refused to everyone
        and the ops endpoints show client keys only their own part (docs/security.md)."""

    @property
    def enabled(self) -> bool:
        return bool(self._by_hash)

    @property
    def tenants(self) -> list[Tenant]:
        return list(self._by_hash.values())

    def authenticate(self, authorization: str | None) -> Tenant | None:
        """The caller's tenant, None when auth is off; raises :class:`AuthenticationFailed` when refused."""
        if not self._by_hash:
            return None
        digest = hash_key(bearer_token(authorization))
        tenant = self._by_hash.get(digest)
        if tenant is None or not hmac.compare_digest(digest, tenant.subject):
            raise AuthenticationFailed("Incorrect API key provided.")
        return tenant


def read_keys_file(path: Path) -> list[KeyConfig]:
    """The keys of a ``server.keys_file`` (``ValueError`` naming the first problem)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if isinstance(data, list):
        data = {"keys": data}
    return list(KeysFile.model_validate(data).keys)


def keys_errors(configured: Iterable[KeyConfig], path: Path | None) -> list[tuple[str, str]]:
    """``(key path, message)`` for each problem of the keys file and duplicate names (none: they load)."""
    named = [k.name for k in configured]
    if path is not None:
        if not path.is_file():
            return [("server.keys_file", f"keys file not found: {path}")]
        try:
            named += [k.name for k in read_keys_file(path)]
        except ValidationError as exc:
            return [("server.keys_file:" + ".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()]
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
            return [("server.keys_file", f"unreadable: {type(exc).__name__}")]
    dupes = sorted({n for n in named if named.count(n) > 1})
    return [("server.keys", f"duplicate key names: {', '.join(dupes)}")] if dupes else []


def build_keyring(configured: Iterable[KeyConfig], bare_keys: Iterable[str], keys_file: Path | None) -> KeyRing:
    """Named keys (``server.keys``, then ``server.keys_file``) and the bare ``server.api_keys``."""
    named = list(configured)
    if keys_file is not None:
        named += read_keys_file(keys_file)
    names = [k.name for k in named]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate key names: {', '.join(dupes)}")
    return KeyRing([*(Tenant.of(k) for k in named), *(Tenant.bare(k) for k in bare_keys)])

"""Tenant API keys (``server.keys`` and ``server.keys_file``): who may call which models, how
much, and with which refinement policy. Self-contained (no import of :mod:`.models`)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

HASH_PREFIX = "sha256:"
_HEX = re.compile(r"[0-9a-f]{64}")
StageName = Literal["cleaner", "describer", "paraphraser"]


def check_route_glob(glob: str) -> str:
    """A pass-through path glob: ``/v1/`` and at least one more character (``ValueError`` otherwise)."""
    glob = glob.strip()
    if not glob.startswith("/v1/") or len(glob) <= len("/v1/"):
        raise ValueError(f"route {glob!r} must be a path under /v1/ (a glob: /v1/files, /v1/vector_stores/*)")
    return glob


RouteGlob = Annotated[str, AfterValidator(check_route_glob)]
"""A ``/v1/…`` path glob of the pass-through (``server.keys[].routes``, ``targets[].passthrough``)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BudgetConfig(_Frozen):
    """A token budget (prompt + completion + refinement stages) per calendar ``per`` (UTC)."""

    tokens: int = Field(ge=1, description="tokens allowed per period")
    per: Literal["day", "month"] = "day"


class KeyRefinementPolicy(_Frozen):
    """The key's refinement policy: defaults a request may narrow, never widen."""

    refine: bool = Field(default=True, description="false: this key's requests are never refined")
    mode: Literal["apply", "shadow"] | None = Field(
        default=None, description="shadow: forced (the original prompt always goes); apply: the default; null: the target's"
    )
    stages: list[StageName] | None = Field(default=None, description="the stages this key may run; null: all")
    capture: bool = Field(default=True, description="false: this key's prompts never reach the audit log or the admin's recent list")
    deadline_s: float | None = Field(default=None, gt=0, description="a shorter refinement deadline (the smaller of it and refinement.deadline_s)")
    max_drift: float | None = Field(default=None, ge=0, le=1, description="a tighter drift bound (the smaller of it and refinement.drift.max_drift)")


class KeyConfig(_Frozen):
    """One client key. ``key`` is ``sha256:<hex>`` (``mpr-gateway hash-key``) or a plain key
    (``${ENV}`` interpolation), hashed on load and never logged."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@:-]+$", description="metrics, usage log, /admin/usage")
    key: str = Field(min_length=8, repr=False, description="sha256:<64 hex> or the plain key")
    team: str | None = None
    models: list[str] = Field(default_factory=list, description="target names or globs (fnmatch); empty: every model")
    requests_per_s: float = Field(default=0.0, ge=0, description="0: server.rate_limit applies")
    burst: int = Field(default=0, ge=0)
    tokens_per_min: int = Field(default=0, ge=0, description="0: unlimited")
    budget: BudgetConfig | None = None
    refinement: KeyRefinementPolicy = KeyRefinementPolicy()
    routes: list[RouteGlob] = Field(
        default_factory=list,
        description="pass-through paths beyond the inference defaults this key may call (globs of /v1/… paths a target's "
        "`passthrough` opens; docs/security.md); empty: the defaults only",
    )

    @field_validator("key")
    @classmethod
    def _hash_form(cls, value: str) -> str:
        value = value.strip()
        if value.startswith(HASH_PREFIX) and not _HEX.fullmatch(value[len(HASH_PREFIX) :]):
            raise ValueError("a hashed key must be 'sha256:' followed by 64 lowercase hex digits (mpr-gateway hash-key)")
        return value


class KeysFile(_Frozen):
    """The YAML of ``server.keys_file``: ``keys: [...]``."""

    keys: list[KeyConfig] = Field(default_factory=list)

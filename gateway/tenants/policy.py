"""What a tenant may do (pure): its models, and its refinement policy over a request's controls."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from fnmatch import fnmatchcase

from gateway.config.keys import KeyRefinementPolicy
from gateway.config.models import RefinementConfig, Role
from gateway.refinement.controls import RefineControls
from gateway.tenants.keyring import Tenant


def may_use(tenant: Tenant | None, model: str) -> bool:
    """Whether ``tenant`` may call ``model`` (no tenant or no ``models`` list: every model)."""
    if tenant is None or not tenant.models:
        return True
    return any(fnmatchcase(model, pattern) for pattern in tenant.models)


def visible(tenant: Tenant | None, names: Iterable[str]) -> list[str]:
    """The model names ``tenant`` may use, in order (``/v1/models``)."""
    return [name for name in names if may_use(tenant, name)]


def narrow(controls: RefineControls, policy: KeyRefinementPolicy) -> RefineControls:
    """The request's controls under the key's policy: the policy is a default the request may
    narrow, never widen — refinement off stays off, ``shadow`` stays shadow, stages are
    intersected with the allowed ones, and a request cannot switch capture back on."""
    if policy.refine and policy.mode is None and policy.stages is None:
        return controls  # the default policy (most keys): nothing to narrow
    refine = controls.refine
    if not policy.refine:
        refine = False
    mode = controls.mode
    if policy.mode == "shadow":
        mode = "shadow"
    elif mode is None and policy.mode is not None:
        mode = policy.mode
    stages = controls.stages
    if policy.stages is not None:
        allowed = tuple(Role(s) for s in policy.stages)
        stages = allowed if stages is None else tuple(s for s in stages if s in allowed)
    if (refine, mode, stages) == (controls.refine, controls.mode, controls.stages):
        return controls
    return dataclasses.replace(controls, refine=refine, mode=mode, stages=stages)


def tightened(config: RefinementConfig, policy: KeyRefinementPolicy) -> RefinementConfig:
    """``config`` with the key's deadline and drift bound where they are tighter; ``config``
    itself when neither is (pure)."""
    update: dict[str, object] = {}
    if policy.deadline_s is not None and policy.deadline_s < config.deadline_s:
        update["deadline_s"] = policy.deadline_s
    if policy.max_drift is not None and policy.max_drift < config.drift.max_drift:
        update["drift"] = config.drift.model_copy(update={"max_drift": policy.max_drift})
    return config.model_copy(update=update) if update else config

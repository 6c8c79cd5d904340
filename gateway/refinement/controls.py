"""Per-request refinement controls from headers and the body's ``mpr`` field (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.config.models import RefinementMode, Role
from gateway.errors import InvalidRequest

_OFF = frozenset({"off", "false", "0", "no", "none"})
_ON = frozenset({"on", "true", "1", "yes"})
_MODES: dict[str, RefinementMode] = {"apply": "apply", "shadow": "shadow"}


@dataclass(frozen=True, slots=True)
class RefineControls:
    """``refine``: None = target default; ``stages``: None = config default; ``mode``: None = the
    target's ``refinement_mode``, else ``refinement.mode``."""

    refine: bool | None = None
    stages: tuple[Role, ...] | None = None
    return_details: bool = False
    """True: the response carries the refinement details (``x-mpr-details: 1``, ``mpr.details`` or
    ``mpr.return_details``): a top-level ``mpr`` object, or a first ``mpr`` chunk in a stream."""
    skip_gate: bool = True
    mode: RefinementMode | None = None
    cache: bool = True
    """False: neither read nor write the refinement cache (``x-mpr-cache: off``, ``mpr.cache: false``)."""


def parse_stages(value: Any, param: str) -> tuple[Role, ...]:
    """A comma-separated string or a list of role names; unknown names are a 400."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise InvalidRequest(f"'{param}' must be a list of stage names", param=param)
    stages: list[Role] = []
    for item in items:
        name = item.strip().lower() if isinstance(item, str) else item
        if name == "":
            continue
        try:
            role = Role(name)
        except ValueError:
            raise InvalidRequest(
                f"unknown stage {item!r} in '{param}'; expected any of cleaner, describer, paraphraser", param=param
            ) from None
        if role not in stages:
            stages.append(role)
    return tuple(stages)


def _flag(value: Any, param: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _ON | _OFF:
        return value.strip().lower() in _ON
    raise InvalidRequest(f"'{param}' must be a boolean (or on/off)", param=param)


def parse_mode(value: Any, param: str) -> RefinementMode:
    """``apply`` or ``shadow`` (case-insensitive); anything else is a 400."""
    mode = _MODES.get(value.strip().lower()) if isinstance(value, str) else None
    if mode is None:
        raise InvalidRequest(f"'{param}' must be 'apply' or 'shadow'", param=param)
    return mode


def parse_cache(header: str | None, body: Any) -> bool:
    """Whether to use the refinement cache: ``x-mpr-cache`` (on/off), overridden by a body ``cache`` value."""
    cache = True if header is None else _flag(header, "x-mpr-cache")
    return cache if body is None else _flag(body, "cache")


def resolve_mode(requested: RefinementMode | None, target: RefinementMode | None, default: RefinementMode) -> RefinementMode:
    """The request's mode, else the target's ``refinement_mode``, else ``refinement.mode``."""
    return requested or target or default


def parse_controls(header: Callable[[str], str | None], mpr: Any) -> RefineControls:
    """Combine ``x-mpr-refine`` / ``x-mpr-stages`` / ``x-mpr-mode`` / ``x-mpr-cache`` /
    ``x-mpr-details`` headers with the body's ``mpr`` object.

    The body wins over headers when both set the same control.
    """
    refine: bool | None = None
    stages: tuple[Role, ...] | None = None
    if (value := header("x-mpr-refine")) is not None:
        refine = _flag(value, "x-mpr-refine")
    if (value := header("x-mpr-stages")) is not None:
        stages = parse_stages(value, "x-mpr-stages")
    mode: RefinementMode | None = None
    if (value := header("x-mpr-mode")) is not None:
        mode = parse_mode(value, "x-mpr-mode")
    cache = True
    if (value := header("x-mpr-cache")) is not None:
        cache = _flag(value, "x-mpr-cache")
    return_details = False
    if (value := header("x-mpr-details")) is not None:
        return_details = _flag(value, "x-mpr-details")
    skip_gate = True
    if mpr is not None:
        if not isinstance(mpr, dict):
            raise InvalidRequest("'mpr' must be an object", param="mpr")
        unknown = set(mpr) - {"refine", "stages", "details", "return_details", "skip_gate", "mode", "cache"}
        if unknown:
            raise InvalidRequest(f"unknown key(s) in 'mpr': {', '.join(sorted(unknown))}", param="mpr")
        if "refine" in mpr:
            refine = _flag(mpr["refine"], "mpr.refine")
        if "stages" in mpr:
            stages = parse_stages(mpr["stages"], "mpr.stages")
        if "return_details" in mpr:
            return_details = _flag(mpr["return_details"], "mpr.return_details")
        if "details" in mpr:  # the short name; it wins over `return_details`
            return_details = _flag(mpr["details"], "mpr.details")
        if "skip_gate" in mpr:
            skip_gate = _flag(mpr["skip_gate"], "mpr.skip_gate")
        if "mode" in mpr:
            mode = parse_mode(mpr["mode"], "mpr.mode")
        if "cache" in mpr:
            cache = _flag(mpr["cache"], "mpr.cache")
    return RefineControls(refine, stages, return_details, skip_gate, mode, cache)

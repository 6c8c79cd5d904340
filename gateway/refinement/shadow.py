"""Shadow mode's pure decisions: the ``x-mpr-refinement`` value and the result label.

In shadow mode the gateway refines beside the target call but forwards the original request;
the header reports what apply mode would have said, prefixed ``shadow;`` (``shadow;pending``
while the refinement is still running, as on a stream that has already started).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.config.models import RefinementMode

if TYPE_CHECKING:
    from gateway.refinement.results import RefinementOutcome

SHADOW_PENDING = "shadow;pending"
SHADOW_RESULTS = ("changed", "unchanged", "skipped", "failed")


def refinement_header(mode: RefinementMode | None, header: str | None) -> str:
    """``x-mpr-refinement``: ``off`` (no mode), the outcome's header (apply), or ``shadow;<header>``
    (``shadow;pending`` when the shadow run has not finished)."""
    if mode is None:
        return "off"
    if mode == "shadow":
        return SHADOW_PENDING if header is None else f"shadow;{header}"
    return header or ""


def shadow_result(outcome: RefinementOutcome) -> str:
    """What applying the outcome would have done: ``changed``, ``unchanged``, ``skipped``, ``failed``."""
    if outcome.header.startswith("fallback"):
        return "failed"
    if outcome.header.startswith("skipped"):
        return "skipped"
    return "changed" if outcome.changed else "unchanged"

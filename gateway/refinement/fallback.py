"""A stage that answers with a CPU stand-in when its adapter fails (``builtin_cleaner: fallback``)."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from gateway.config.models import Role
from gateway.refinement.cache_key import stage_fingerprint
from gateway.refinement.results import StageResult
from gateway.refinement.stages import StageBackend

log = logging.getLogger("gateway.refinement")


class FallbackStage:
    """Runs ``primary``; when it errs (timeout, HTTP error, no endpoint…), ``standby`` answers and
    the result says so in ``fallback_from``. ``primary`` None: ``standby`` always answers."""

    def __init__(self, role: Role, primary: StageBackend | None, standby: StageBackend) -> None:
        self.role = role
        self.primary = primary
        self.standby = standby

    @property
    def fingerprint(self) -> str:
        """This stage's version in the refinement cache's key: the primary's and the standby's."""
        return f"fallback({stage_fingerprint(self.primary) if self.primary else '-'},{stage_fingerprint(self.standby)})"

    @property
    def canary(self) -> object:
        """The primary's canary (None: none)."""
        return getattr(self.primary, "canary", None)

    @property
    def config(self) -> object:
        """The primary's adapter config (span attributes name its model)."""
        return getattr(self.primary, "config", None)

    async def run(self, text: str, headers: dict[str, str] | None = None) -> StageResult:
        started = time.perf_counter()
        if self.primary is None:
            return await self.standby.run(text, headers)
        result = await self.primary.run(text, headers)
        if result.error is None:
            return result
        log.info("stage %s failed (%s); the built-in %s answers", self.role.value, result.error, self.role.value)
        standby = await self.standby.run(text, headers)
        return replace(standby, fallback_from=result.error, latency_ms=(time.perf_counter() - started) * 1000, arm=result.arm)

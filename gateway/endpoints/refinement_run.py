"""One request's refinement, shared by the refining endpoints (chat and text completions).

:class:`PromptRefinement` decides whether and how a prompt is refined (off, apply, shadow), runs
it (apply) or starts it beside the target call (shadow, :mod:`gateway.endpoints.shadow`), and
records the audit line / shadow metric. Putting the refined text back is the endpoint's job.

Most prompts need no await: :meth:`PromptRefinement.begin` settles off, no text, a shadow start and
a prompt the gate skips at once (the gate runs synchronously: ``Refiner.settle``), and hands any
other prompt on as a :class:`PendingRefinement` that :meth:`PromptRefinement.finish` runs through
the stages, so the gate is consulted once per request.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.config.models import RefinementMode, TargetConfig
from gateway.endpoints.shadow import ShadowRefinement
from gateway.refinement.controls import RefineControls, resolve_mode
from gateway.refinement.history import Presentation, turn_keys
from gateway.refinement.pipeline import Gated, Refiner
from gateway.refinement.results import RefinementOutcome
from gateway.refinement.shadow import refinement_header, shadow_result
from gateway.runtime import Runtime
from gateway.tenants.meter import current_partition, keyed_controls, policy_capture


def mpr_headers(refinement: str, refine_ms: float) -> dict[str, str]:
    """``x-mpr-refinement`` and ``x-mpr-refine-ms`` (``refine_ms`` ≥ 0; under 0.05, as a skip
    mostly is, its format is known: formatting a float costs more than the rest of the headers)."""
    return {"x-mpr-refinement": refinement, "x-mpr-refine-ms": "0.0" if refine_ms < 0.05 else f"{refine_ms:.1f}"}


_OFF_HEADERS = mpr_headers("off", 0.0)
HISTORY_HEADER = "x-mpr-history"


@dataclass(slots=True)
class RefinementRun:
    """This request's refinement: ``mode`` None = off; ``outcome`` None = a shadow run still pending.

    A value, never changed once made (:data:`OFF` is shared); not ``frozen``, as
    :class:`~gateway.refinement.results.RefinementOutcome` is not: one is made per request.
    """

    mode: RefinementMode | None = None
    outcome: RefinementOutcome | None = None
    shadow: ShadowRefinement | None = None
    history: str | None = None  # ``x-mpr-history``: how earlier user turns went (None: there were none)

    @property
    def headers(self) -> dict[str, str]:
        """``x-mpr-refinement`` and ``x-mpr-refine-ms`` for the response."""
        outcome = self.outcome
        if self.mode is None:
            return dict(_OFF_HEADERS)  # a copy: cheaper than formatting it again, and never shared
        if outcome is None:
            headers = mpr_headers(refinement_header(self.mode, None), 0.0)
        else:
            header = outcome.header if self.mode == "apply" else refinement_header(self.mode, outcome.header)
            headers = mpr_headers(header, outcome.elapsed_ms)
        if self.history is not None:
            headers[HISTORY_HEADER] = self.history
        return headers

    @property
    def applied(self) -> RefinementOutcome | None:
        """The outcome to put into the request: apply mode and something changed; else None."""
        outcome = self.outcome
        return outcome if self.mode == "apply" and outcome is not None and outcome.changed else None


OFF = RefinementRun()


def earlier_turns(texts: Sequence[str], new: bool) -> int:
    """How many of a conversation's user turns ``texts`` came before the one refined (``new``:
    the last is a new turn; else every one is earlier)."""
    return len(texts) - 1 if new else len(texts)


@dataclass(frozen=True, slots=True)
class PendingRefinement:
    """A prompt :meth:`PromptRefinement.begin` left for the stages (apply mode): its refiner,
    text, model, the key's controls and the gate's verdict."""

    refiner: Refiner
    text: str
    model: str
    controls: RefineControls
    gated: Gated


class PromptRefinement:
    """Refines one prompt text per request, bound to a :class:`Runtime`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def keyed(self, controls: RefineControls, config: TargetConfig) -> RefineControls | None:
        """``controls`` under the key's refinement policy (:mod:`gateway.tenants.policy`) when this
        request is refined at all (the policy, the request's controls, the target's setting, a
        refiner configured); None when it is not: the endpoint then reads no user turns."""
        keyed = keyed_controls(controls)
        wants = keyed.refine if keyed.refine is not None else config.refine
        return keyed if wants and self.runtime.refiner is not None else None

    def begin(
        self,
        text: str | None,
        model: str,
        controls: RefineControls,
        config: TargetConfig,
        skip_reason: str = "no_text",
    ) -> RefinementRun | PendingRefinement:
        """:meth:`start` up to its first await: the run where nothing needs awaiting — off
        (controls, target, no refiner): :data:`OFF`; ``text`` None: skipped with
        ``skip_reason``; shadow mode: a refinement started beside the target call; apply mode: a
        prompt the gate skips — else the prompt the stages must refine (:meth:`finish`)."""
        keyed = self.keyed(controls, config)
        return OFF if keyed is None else self._begin(text, model, keyed, config, skip_reason)

    def _begin(
        self, text: str | None, model: str, controls: RefineControls, config: TargetConfig, skip_reason: str
    ) -> RefinementRun | PendingRefinement:
        """:meth:`begin` for a request :meth:`keyed` says is refined, with its ``controls``."""
        refiner = self.runtime.refiner
        assert refiner is not None  # keyed() says there is one
        mode = resolve_mode(controls.mode, config.refinement_mode, self.runtime.config.refinement.mode)
        if text is None:
            outcome = RefinementOutcome("", "", None, f"skipped;reason={skip_reason}", 0.0)
            if mode == "shadow":
                self._record_shadow(model, outcome)
            else:
                self._audit(outcome, model, mode)
            return RefinementRun(mode, outcome)
        if mode == "shadow":
            record = functools.partial(self._record_shadow, model)
            return RefinementRun(mode, None, ShadowRefinement(refiner, text, controls, record, self.runtime.background))
        settled = refiner.settle(text, controls.stages, use_gate=controls.skip_gate)
        if isinstance(settled, Gated):
            return PendingRefinement(refiner, text, model, controls, settled)
        self._audit(settled, model, mode)
        return RefinementRun(mode, settled)

    async def finish(self, pending: PendingRefinement) -> RefinementRun:
        """Apply mode: run the stages on a prompt :meth:`begin` sent on (the same refiner: a
        reload meanwhile does not split one request across two)."""
        controls = pending.controls
        outcome = await pending.refiner.refine(
            pending.text, controls.stages, use_gate=controls.skip_gate, cache=controls.cache, gated=pending.gated
        )
        self._audit(outcome, pending.model, "apply")
        return RefinementRun("apply", outcome)

    async def start(
        self,
        text: str | None,
        model: str,
        controls: RefineControls,
        config: TargetConfig,
        skip_reason: str = "no_text",
    ) -> RefinementRun:
        """Apply mode: the finished outcome. Shadow mode: a refinement started beside the target
        call. Off (controls, target, no refiner): :data:`OFF`. ``text`` None: skipped with
        ``skip_reason``."""
        begun = self.begin(text, model, controls, config, skip_reason)
        return begun if isinstance(begun, RefinementRun) else await self.finish(begun)

    def begin_turn(
        self,
        texts: Sequence[str],
        new: bool,
        model: str,
        keyed: RefineControls,
        config: TargetConfig,
    ) -> RefinementRun | PendingRefinement:
        """:meth:`begin` for a conversation's user turns ``texts`` (``new``: the last is a new
        turn, the only one refined) in a request :meth:`keyed` says is refined (``keyed``: what
        it returned). A settled run of a conversation with no earlier user turn
        (:func:`earlier_turns`) is final: nothing to recall or present. Else pass the result to
        :meth:`converse`."""
        text = texts[-1] if new and texts[-1].strip() else None
        reason = "no_text" if new or not texts else "no_new_turn"
        return self._begin(text, model, keyed, config, reason)

    async def converse(
        self,
        texts: Sequence[str],
        new: bool,
        model: str,
        controls: RefineControls,
        config: TargetConfig,
        begun: RefinementRun | PendingRefinement | None = None,
    ) -> tuple[RefinementRun, list[Presentation | None]]:
        """A conversation's refinement: ``texts`` are its user turns in order, ``new`` whether the
        last one is a new turn (the conversation ends with it). Only that turn is refined; each
        earlier one gets the presentation remembered for it (``history: refined``) or goes as
        sent (``raw``, or nothing remembered). Returns the run and one presentation per turn
        (None: as the client sent it). Shadow and off change nothing. ``begun``: what
        :meth:`begin_turn` returned for these arguments (it is not begun twice)."""
        if begun is None:
            keyed = self.keyed(controls, config)
            begun = OFF if keyed is None else self.begin_turn(texts, new, model, keyed, config)
        run = begun if isinstance(begun, RefinementRun) else await self.finish(begun)
        shown: list[Presentation | None] = [None] * len(texts)
        if run.mode != "apply":
            return run, shown
        earlier = earlier_turns(texts, new)
        settings = self.runtime.config.refinement.conversations
        policy = config.conversation_history or settings.history
        store = self.runtime.turns
        remembered = store if policy == "refined" else None
        outcome = run.applied
        # per tenant; only when there is something to recall or remember (a one-turn prompt left as it is: nothing)
        keys = turn_keys(texts, current_partition()) if remembered is not None and (earlier or outcome is not None) else []
        if earlier and remembered is not None:
            shown[:earlier] = await remembered.recall(keys[:earlier])
        if outcome is not None:
            shown[-1] = Presentation(outcome.refined, outcome.description)
            if remembered is not None:
                await remembered.remember(keys[-1], shown[-1])
        if earlier:
            reapplied = sum(p is not None for p in shown[:earlier])
            history = f"refined;turns={earlier};reapplied={reapplied}" if remembered is not None else f"raw;turns={earlier}"
            run = dataclasses.replace(run, history=history)
        return run, shown

    def _record_shadow(self, model: str, outcome: RefinementOutcome) -> None:
        """A finished shadow refinement: its result metric and (when sampled) its audit line."""
        self.runtime.telemetry.metrics.shadow_refinement(shadow_result(outcome))
        self._audit(outcome, model, "shadow")

    def _audit(self, outcome: RefinementOutcome, model: str, mode: RefinementMode) -> None:
        telemetry = self.runtime.telemetry
        telemetry.recent.record(outcome, model, mode, outcome.header if mode == "apply" else refinement_header(mode, outcome.header))  # /admin/status
        audit = telemetry.audit
        if audit is not None and policy_capture():  # the key's policy may keep its prompts out of the audit log
            audit.record(outcome, model=model, mode=mode, refinement=refinement_header(mode, outcome.header))

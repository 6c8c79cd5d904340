"""One request's token usage, collected where the answer passes: the serving path opens a
:class:`Meter` in a context variable (:func:`opened`), the relay and the stage backends feed it
(:func:`note_body`, :func:`note_chunk`, :func:`note_stage`), the accounting reads it when the
answer is finished. Without an open meter every hook is one context-variable read."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any
from dataclasses import dataclass, field

from gateway.config.models import RefinementConfig
from gateway.refinement.controls import RefineControls
from gateway.tenants.keyring import SHARED_PARTITION, Tenant
from gateway.tenants.policy import narrow, tightened
from gateway.tenants.usage import StreamUsage, Usage, body_usage, usage_of

_CURRENT: ContextVar[Meter | None] = ContextVar("mpr_meter", default=None)


@dataclass(slots=True)
class Meter:
    """What one request used: the target's usage and each refinement stage's."""

    tenant: Tenant | None
    model: str = "-"
    reserved: int = 0  # tokens reserved before the call (settled against the actual use)
    body: Usage | None = None
    stream: StreamUsage | None = None
    stages: dict[str, list[int]] = field(default_factory=dict)  # stage → [prompt, completion]
    settings: tuple[RefinementConfig, RefinementConfig] | None = None  # (global, under the key's policy), memoised
    controls: tuple[RefineControls, RefineControls] | None = None  # (the request's, under the key's policy), memoised

    @property
    def usage(self) -> Usage:
        """(prompt, completion) the target reported (0, 0 when it reported none)."""
        if self.stream is not None and self.stream.usage is not None:
            return self.stream.usage
        return self.body or (0, 0)

    @property
    def stage_tokens(self) -> int:
        return sum(p + c for p, c in self.stages.values())


def opened(meter: Meter) -> None:
    """Make ``meter`` this request's (its task and the tasks it starts see it)."""
    _CURRENT.set(meter)


def current() -> Meter | None:
    return _CURRENT.get()


def current_tenant() -> Tenant | None:
    """This request's tenant (None: auth off, or no meter open)."""
    meter = _CURRENT.get()
    return None if meter is None else meter.tenant


def current_partition() -> str:
    """This request's partition of the refinement cache and conversation store
    (:mod:`gateway.tenants.partition`)."""
    meter = _CURRENT.get()
    return SHARED_PARTITION if meter is None or meter.tenant is None else meter.tenant.partition


def policy_capture() -> bool:
    """Whether this request's prompts may be captured (audit log, recent refinements)."""
    meter = _CURRENT.get()
    return meter is None or meter.tenant is None or meter.tenant.policy.capture


def note_body(body: bytes) -> None:
    """A complete (non-streamed) answer from the target."""
    meter = _CURRENT.get()
    if meter is not None:
        meter.body = body_usage(body)


def note_answer(answer: Any) -> None:
    """A complete answer from the target, already decoded (:func:`~gateway.tenants.usage.decode_answer`)."""
    meter = _CURRENT.get()
    if meter is not None:
        meter.body = usage_of(answer)


def stream_meter() -> StreamUsage | None:
    """A usage reader for the target's stream (None: no meter open); the relay feeds it every chunk."""
    meter = _CURRENT.get()
    if meter is None:
        return None
    meter.stream = StreamUsage()
    return meter.stream


def note_stage(stage: str, body: bytes) -> None:
    """A refinement stage's reply (its ``usage``, when it has one)."""
    meter = _CURRENT.get()
    if meter is None:
        return
    usage = body_usage(body)
    if usage is not None:
        total = meter.stages.setdefault(stage, [0, 0])
        total[0] += usage[0]
        total[1] += usage[1]


def keyed_controls(controls: RefineControls) -> RefineControls:
    """``controls`` under this request's key's refinement policy (:func:`~gateway.tenants.policy.narrow`)."""
    meter = _CURRENT.get()
    if meter is None or meter.tenant is None:
        return controls
    if meter.controls is not None and meter.controls[0] is controls:
        return meter.controls[1]
    narrowed = narrow(controls, meter.tenant.policy)
    meter.controls = (controls, narrowed)
    return narrowed


def keyed_refinement(config: RefinementConfig) -> RefinementConfig:
    """``config`` under this request's key's policy: its deadline and drift bound, when tighter
    (``config`` itself otherwise: the refiner then uses the cache as usual)."""
    meter = _CURRENT.get()
    if meter is None or meter.tenant is None:
        return config
    if meter.settings is not None and meter.settings[0] is config:
        return meter.settings[1]
    keyed = tightened(config, meter.tenant.policy)
    meter.settings = (config, keyed)
    return keyed

"""Where refinement runs: in this process (a :class:`Refiner`) or in a gateway over HTTP.

Both implement :class:`Backend`: ``await backend.refine(text, use_gate=...)`` returns an
:class:`EvalOutcome`. :func:`open_backend` builds the one the command line asks for.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import httpx

from gateway.config.models import RefinementConfig, Role
from gateway.refinement.gate import GateDecision, decide
from gateway.refinement.pipeline import Refiner

BYPASSED = "bypassed"  # the reason when the gate was not asked


class BackendError(RuntimeError):
    """The backend cannot be used (unreachable gateway, HTTP error, missing stage)."""


class SetupError(ValueError):
    """A bad combination of arguments (a stage the backend does not have, a bad config)."""


@dataclass(frozen=True, slots=True)
class EvalOutcome:
    """One refinement as the evaluation sees it.

    ``refine``: the gate sent the text to the stages (always True with the gate bypassed, unless
    the text was empty or too long); ``reason``: the gate's reason, or ``bypassed``; ``tokens``:
    what drove the gate's decision; ``gate_ms``: the gate alone (None over HTTP); ``stage_ms`` /
    ``stage_errors``: per stage that ran.
    """

    refine: bool
    reason: str
    refined: str
    tokens: tuple[str, ...] = ()
    gate_ms: float | None = None
    refine_ms: float | None = None
    stage_ms: Mapping[str, float] = field(default_factory=dict)
    stage_errors: Mapping[str, str] = field(default_factory=dict)


class Backend(Protocol):
    name: str
    concurrency: int  # refinements worth having in flight at once

    async def refine(self, text: str, *, use_gate: bool) -> EvalOutcome: ...


def gate_tokens(decision: GateDecision) -> tuple[str, ...]:
    """The words behind a gate decision (``tokens`` where the gate has them)."""
    return tuple(getattr(decision, "tokens", None) or decision.unknown_words)


class InProcessBackend:
    """A :class:`Refiner` in this process; the gate is also timed on its own per text."""

    def __init__(self, refiner: Refiner, stages: tuple[Role, ...], name: str, concurrency: int = 1) -> None:
        self.refiner = refiner
        self.stages = stages
        self.name = name
        self.concurrency = concurrency

    async def refine(self, text: str, *, use_gate: bool) -> EvalOutcome:
        gate_ms = None
        if use_gate:
            started = time.perf_counter()
            decide(text, self.refiner.vocabulary, self.refiner.config.skip_gate)
            gate_ms = (time.perf_counter() - started) * 1000
        outcome = await self.refiner.refine(text, self.stages, use_gate=use_gate)
        gate = outcome.gate
        return EvalOutcome(
            refine=True if gate is None else gate.refine,
            reason=BYPASSED if gate is None else gate.reason,
            refined=outcome.refined,
            tokens=() if gate is None else gate_tokens(gate),
            gate_ms=gate_ms,
            refine_ms=outcome.elapsed_ms,
            stage_ms={role.value: r.latency_ms for role, r in outcome.results.items()},
            stage_errors={role.value: r.error for role, r in outcome.results.items() if r.error},
        )


class HttpBackend:
    """A running gateway's ``POST /v1/refine``."""

    def __init__(self, client: httpx.AsyncClient, url: str, stages: tuple[Role, ...], concurrency: int = 8) -> None:
        self.client = client
        self.endpoint = refine_endpoint(url)
        self.stages = [r.value for r in stages]
        self.name = f"url:{url}"
        self.concurrency = concurrency

    async def refine(self, text: str, *, use_gate: bool) -> EvalOutcome:
        payload = {"prompt": text, "stages": self.stages, "skip_gate": use_gate}
        try:
            response = await self.client.post(self.endpoint, json=payload)
        except httpx.HTTPError as exc:
            raise BackendError(f"POST {self.endpoint}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise BackendError(f"POST {self.endpoint}: HTTP {response.status_code}: {response.text[:300]}")
        body = response.json()
        if body.get("refinement") == "skipped;reason=no_stages":
            raise BackendError(f"the gateway at {self.endpoint} has none of the stages {', '.join(self.stages)}")
        return outcome_from_json(body)


def refine_endpoint(url: str) -> str:
    """``…/v1/refine`` for a gateway URL given with or without ``/v1``."""
    base = url.rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    return f"{base}/v1/refine"


def outcome_from_json(body: Mapping[str, Any]) -> EvalOutcome:
    """An :class:`EvalOutcome` from a ``/v1/refine`` response body."""
    gate = body.get("gate")
    stages = body.get("stages") or {}
    tokens = () if not gate else tuple(gate.get("tokens") or gate.get("unknown_words") or ())
    return EvalOutcome(
        refine=True if not gate else bool(gate.get("refine")),
        reason=BYPASSED if not gate else str(gate.get("reason")),
        refined=str(body.get("refined", "")),
        tokens=tokens,
        gate_ms=None,
        refine_ms=body.get("refine_ms"),
        stage_ms={role: float(v["latency_ms"]) for role, v in stages.items() if v.get("latency_ms") is not None},
        stage_errors={role: str(v["error"]) for role, v in stages.items() if v.get("error")},
    )


@lru_cache(maxsize=1)
def builtin_refiner() -> Refiner:
    """The default: the built-in CPU spelling cleaner with the default refinement config (built once)."""
    from gateway.refinement.lexicon import lexicon
    from gateway.refinement.spelling import SpellingCleaner

    return Refiner(RefinementConfig(), {Role.CLEANER: SpellingCleaner()}, lexicon())


def check_stages(available: set[Role] | frozenset[Role], stages: tuple[Role, ...], where: str) -> None:
    missing = [r.value for r in stages if r not in available]
    if missing:
        have = ", ".join(sorted(r.value for r in available)) or "none"
        raise SetupError(f"{where} has no {', '.join(missing)} stage (it has: {have})")


@asynccontextmanager
async def open_backend(
    stages: tuple[Role, ...],
    *,
    url: str | None = None,
    config_path: str | None = None,
    api_key: str | None = None,
    concurrency: int = 8,
) -> AsyncIterator[Backend]:
    """The backend for these options (HTTP, a routes file, or the built-in cleaner), closed after use."""
    if url is not None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(headers=headers, limits=limits, timeout=httpx.Timeout(120.0, connect=10.0)) as client:
            yield HttpBackend(client, url, stages, concurrency)
        return
    if config_path is not None:
        from gateway.config import ConfigError, load_config
        from gateway.runtime import build_runtime

        try:
            config = load_config(config_path)
        except ConfigError as exc:
            details = "; ".join(f"{path}: {message}" for path, message in exc.errors)
            raise SetupError(f"{config_path}: {details}") from None
        runtime = build_runtime(config)
        await runtime.start()
        try:
            assert runtime.refiner is not None
            check_stages(frozenset(runtime.refiner.backends), stages, config_path)
            yield InProcessBackend(runtime.refiner, stages, f"config:{config_path}", concurrency)
        finally:
            await runtime.stop()
        return
    check_stages(frozenset({Role.CLEANER}), stages, "the built-in backend")
    # CPU-bound: overlapping texts gains nothing and would put others' work into each latency
    yield InProcessBackend(builtin_refiner(), stages, "builtin", concurrency=1)

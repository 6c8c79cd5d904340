"""After an answer is finished: a request's usage settled against its reservation, counted in
the metrics and the per-minute usage buckets (shared state), and written to the usage log.

The hot path only reads the meter and updates in-process counters; a reservation is settled in a
background task, and the usage buckets are written once a second (:data:`FLUSH_S`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from gateway.state import SharedState
from gateway.telemetry.logcontext import REQUEST_ID
from gateway.telemetry.metrics import Metrics
from gateway.tenants.meter import Meter
from gateway.tenants.quota import Counter

log = logging.getLogger("gateway.usage")

ANONYMOUS = "-"  # the key name when client auth is off
FLUSH_S = 1.0  # usage buckets reach the shared state this often (GET /admin/usage lags by as much)
SEP = "\t"  # usage bucket fields: key name, model, kind (p: prompt, c: completion, s: stages, r: requests)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def bucket_fields(name: str, model: str, prompt: int, completion: int, stages: int) -> dict[str, int]:
    """The usage-bucket increments of one request (pure)."""
    head = name + SEP + model + SEP
    return {head + "r": 1, head + "p": prompt, head + "c": completion, head + "s": stages}


class _Labels:
    """One (key name, model)'s metric label tuples and usage-bucket fields, made once."""

    __slots__ = ("name", "model", "prompt", "completion", "requests", "fields")

    def __init__(self, name: str, model: str) -> None:
        self.name, self.model = name, model
        self.prompt = (name, model, "prompt", "target")
        self.completion = (name, model, "completion", "target")
        self.requests: dict[int, tuple[str, str, str]] = {}  # status → (name, model, status class)
        self.fields = tuple(bucket_fields(name, model, 0, 0, 0))  # requests, prompt, completion, stages

    def of_status(self, status: int) -> tuple[str, str, str]:
        labels = self.requests.get(status)
        if labels is None:
            labels = self.requests[status] = (self.name, self.model, status_class(status))
        return labels


class Accountant:
    """Per runtime: where usage goes (``state``, ``metrics``, ``usage_log``)."""

    def __init__(self, state: SharedState, metrics: Metrics, usage_log: Path | None, models: Collection[str]) -> None:
        self.state = state
        self.metrics = metrics
        self.usage_log = usage_log
        self.models = frozenset(models)
        self.pending: set[asyncio.Task[Any]] = set()
        self._buffer: dict[int, dict[str, int]] = {}  # minute → field → tokens, not yet in the shared state
        self._flush: asyncio.TimerHandle | None = None
        self._labels: dict[tuple[str, str], _Labels] = {}  # bounded: key names x configured targets (+ "-")

    def label(self, model: str) -> str:
        """A bounded model label: a configured target's name, else ``-``."""
        return model if model in self.models else "-"

    def refused(self, name: str, reason: str) -> None:
        self.metrics.tenant_refusals.inc((name, reason))

    def finish(self, meter: Meter, status: int, target: str | None, counters: list[Counter]) -> None:
        """Account one finished request (called once, after the last byte or the error)."""
        name = meter.tenant.name if meter.tenant is not None else ANONYMOUS
        model = self.label(meter.model)
        labels = self._labels.get((name, model))
        if labels is None:
            labels = self._labels[(name, model)] = _Labels(name, model)
        prompt, completion = meter.usage
        metrics = self.metrics
        inc = metrics.tenant_tokens.inc
        if prompt:
            inc(labels.prompt, prompt)
        if completion:
            inc(labels.completion, completion)
        for stage, (p, c) in meter.stages.items():
            if p:
                inc((name, model, "prompt", stage), p)
            if c:
                inc((name, model, "completion", stage), c)
        metrics.tenant_requests.inc(labels.of_status(status))
        stages = meter.stage_tokens
        used = prompt + completion + stages
        now = time.time()
        if counters and used != meter.reserved:  # settle the reservation now: the next request checks against it
            task = asyncio.get_running_loop().create_task(self._settle(counters, used - meter.reserved))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
        bucket = self._buffer.get(minute := int(now // 60))
        if bucket is None:
            bucket = self._buffer[minute] = {}
        requests, prompt_field, completion_field, stages_field = labels.fields  # bucket_fields' keys, made once
        bucket[requests] = bucket.get(requests, 0) + 1
        bucket[prompt_field] = bucket.get(prompt_field, 0) + prompt
        bucket[completion_field] = bucket.get(completion_field, 0) + completion
        bucket[stages_field] = bucket.get(stages_field, 0) + stages
        if self._flush is None:  # the usage buckets: one write per FLUSH_S, not per request
            self._flush = asyncio.get_running_loop().call_later(FLUSH_S, self._start_flush)
        if self.usage_log is not None:
            from gateway.tenants.usage_log import append

            append(
                self.usage_log,
                {
                    "time": round(now, 3),
                    "key": name,
                    "team": meter.tenant.team if meter.tenant is not None else None,
                    "model": meter.model if model != "-" else "-",
                    "target": target,
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "stage_tokens": {stage: {"prompt_tokens": p, "completion_tokens": c} for stage, (p, c) in meter.stages.items()},
                    "status": status,
                    "request_id": REQUEST_ID.get(),
                },
            )

    async def _settle(self, counters: list[Counter], delta: int) -> None:
        try:
            await self.state.settle([(c.key, c.limit, c.ttl_s) for c in counters], delta)
        except Exception as exc:  # noqa: BLE001 - accounting never fails a request
            log.warning("usage settlement failed: %s", type(exc).__name__)

    def _start_flush(self) -> None:
        self._flush = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def close(self) -> None:
        """Write what is buffered and wait for the settlements (the runtime stops)."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)
        await self.flush()

    async def flush(self) -> None:
        """Add the buffered usage to the shared state's per-minute buckets."""
        buffered, self._buffer = self._buffer, {}
        for minute, fields in buffered.items():
            try:
                await self.state.usage_add(minute, fields)
            except Exception as exc:  # noqa: BLE001 - accounting never fails a request
                log.warning("usage buckets: %s", type(exc).__name__)

"""Retries and fallbacks of one target call: the loop every endpoint shares.

:meth:`TargetRouter.send` tries the requested target up to ``retry.attempts`` times, then each of
its ``fallbacks`` in order (their own fallbacks are not followed), as
:func:`gateway.upstream.retry.decide` says. It all happens before the client got a byte: a
streaming 200 is returned at once (committed), so a stream is never sent twice. The request body
is built once by the caller; a fallback gets it with its own upstream model name.

A fallback the caller may not use (``allow``: the client key's model scope, a pass-through path
the fallback does not open) is skipped, never called, and counted in ``x-mpr-fallbacks-skipped``
when the call fails. The reply (or the error raised) carries
``x-mpr-target`` (the target that answered) and ``x-mpr-attempts`` (tries in all). Each attempt gets its own target CLIENT span from ``new_call``
and is counted in ``mpr_target_attempts_total{target,outcome}``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import msgspec

from gateway.config.models import GatewayConfig, TargetConfig
from gateway.errors import GatewayError, UpstreamCredentialRefused
from gateway.telemetry import NULL_CALL, TargetCall
from gateway.telemetry.metrics import Metrics
from gateway.upstream.retry import RetryPolicy, decide, error_retryable, outcome_of, parse_retry_after
from gateway.upstream.target import TargetClient, TargetReply

CREDENTIAL_REFUSED = frozenset({401, 403})
"""Target statuses about the gateway's own credential: answered as the gateway's 502, body dropped."""
TARGET_HEADER = "x-mpr-target"
ATTEMPTS_HEADER = "x-mpr-attempts"
SKIPPED_HEADER = "x-mpr-fallbacks-skipped"

CallFactory = Callable[[TargetConfig, int], TargetCall]
"""(target config, attempt number from 1) → the attempt's CLIENT span (``Telemetry.target_call``)."""


def _no_call(config: TargetConfig, attempt: int) -> TargetCall:
    return NULL_CALL


def route_headers(target: str, attempts: int, skipped: int = 0) -> dict[str, str]:
    """``x-mpr-target``, ``x-mpr-attempts`` and, when fallbacks outside the key's scope were left
    out of a call that failed, how many (never their names: a key learns nothing of the models it
    may not use)."""
    headers = {TARGET_HEADER: target, ATTEMPTS_HEADER: str(attempts)}
    if skipped:
        headers[SKIPPED_HEADER] = str(skipped)
    return headers


def route_headers_of(headers: Mapping[str, str]) -> dict[str, str]:
    """The route headers among a reply's ``headers`` (none when it did not come through a router)."""
    return {k: headers[k] for k in (TARGET_HEADER, ATTEMPTS_HEADER, SKIPPED_HEADER) if k in headers}


def scoped_chain(chain: tuple[str, ...], allow: Callable[[str], bool] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the targets to try, the fallbacks skipped): the first target always (the caller checked
    it), each fallback only when ``allow`` says the caller may use it (pure)."""
    if allow is None or len(chain) == 1:
        return chain, ()
    kept = [chain[0]]
    skipped = []
    for name in chain[1:]:
        (kept if allow(name) else skipped).append(name)
    return tuple(kept), tuple(skipped)


def body_for(body: bytes, config: TargetConfig) -> bytes:
    """``body`` with ``model`` set to ``config``'s upstream model (unchanged if it is no JSON object)."""
    try:
        payload = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return body
    if not isinstance(payload, dict) or payload.get("model") == config.model_for_upstream:
        return body
    payload["model"] = config.model_for_upstream
    return msgspec.json.encode(payload)


@dataclass(slots=True)
class Routed:
    """The reply to relay (its ``call`` not yet finished), which target gave it, after how many tries."""

    reply: TargetReply
    call: TargetCall
    target: str
    attempts: int


class TargetRouter:
    """Sends a request to a target with the retry policy and fallbacks of its config."""

    def __init__(
        self,
        clients: Mapping[str, TargetClient],
        config: GatewayConfig,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.clients = clients  # the runtime's dict: filled when the runtime starts
        self.metrics = metrics
        self.policies = {t.name: RetryPolicy.of(config.retry_for(t)) for t in config.targets}
        self.chains = {t.name: (t.name, *t.fallbacks) for t in config.targets}  # a fallback's own are not followed
        placed = {t.name for t in config.targets if t.balance == "affinity" and len(t.endpoints) > 1}
        self.affine = frozenset(name for name, chain in self.chains.items() if placed.intersection(chain))
        """Targets whose calls (or fallbacks') are placed by an affinity key: the endpoints derive one
        only for these (none for a one-endpoint target)."""
        self._clock, self._wall, self._sleep = clock, wall, sleep
        self._rng = rng or random.Random()

    async def send(
        self,
        name: str,
        body: bytes,
        *,
        stream: bool,
        path: str = "/chat/completions",
        extra_headers: dict[str, str] | None = None,
        new_call: CallFactory = _no_call,
        allow: Callable[[str], bool] | None = None,
        affinity: int | None = None,
        pin: str | None = None,
    ) -> Routed:
        """The first final answer among the target and its fallbacks (see the module docstring).

        Raises the last attempt's :class:`GatewayError` (with the route headers) when that was an
        error; a last target error status comes back as a reply, like any other. ``affinity``: the
        request's affinity key hash (each target's pool places it); ``pin``: the one endpoint URL of
        the requested target that may answer (a continued response lives there): no fallback then.
        """
        policy = self.policies[name]
        chain, skipped = scoped_chain(self.chains[name], allow)
        if pin is not None:
            chain = chain[:1]  # another target never saw the response being continued
        started = self._clock()
        total = 0
        for index, target in enumerate(chain):
            client = self.clients[target]
            target_body = body if index == 0 else body_for(body, client.config)
            attempt = 0
            while True:
                attempt += 1
                total += 1
                call = new_call(client.config, total)
                headers = call.headers if not extra_headers else {**extra_headers, **(call.headers or {})}
                reply: TargetReply | None = None
                try:
                    with call:
                        reply = await client.send(
                            target_body, stream=stream, extra_headers=headers, path=path, affinity=affinity, pin=pin if index == 0 else None
                        )
                except GatewayError as exc:
                    error: GatewayError | None = exc
                    retryable = error_retryable(policy, exc)
                else:
                    error = None
                    if reply.status in CREDENTIAL_REFUSED:  # the operator's credential, never the client's key
                        self.metrics.target_attempt(target, "exhausted")
                        call.finish(reply.status, reply.body)
                        reply.finish()
                        refused = UpstreamCredentialRefused.of(target, reply.status)
                        refused.headers.update(route_headers(target, total))
                        raise refused
                    if reply.status not in policy.on_status:  # success, or the client's fault: final
                        self.metrics.target_attempt(target, "ok")
                        reply.headers.update(route_headers(target, total))
                        return Routed(reply, call, target, total)
                    retryable = True
                remaining = policy.deadline_s - (self._clock() - started)
                retry_after = parse_retry_after(reply.headers, self._wall()) if reply is not None else None
                decision = decide(
                    policy,
                    retryable=retryable,
                    attempt=attempt,
                    retry_after=retry_after,
                    remaining_s=remaining,
                    fallbacks_left=index + 1 < len(chain),
                    draw=self._rng.random(),
                )
                self.metrics.target_attempt(target, outcome_of(decision, error is None))
                if decision.action in ("done", "give_up"):
                    if error is not None:
                        error.headers.update(route_headers(target, total, len(skipped)))
                        raise error
                    assert reply is not None
                    reply.headers.update(route_headers(target, total, len(skipped)))
                    return Routed(reply, call, target, total)
                if reply is not None:  # a retryable status: this attempt's span ends here
                    call.finish(reply.status, reply.body)
                    reply.finish()
                if decision.action == "fail_over":
                    break
                if decision.delay_s > 0:
                    await self._sleep(decision.delay_s)
        raise AssertionError("unreachable: the last target of the chain always gives up")  # pragma: no cover

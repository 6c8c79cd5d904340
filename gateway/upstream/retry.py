"""The retry policy for target calls, as pure functions: what an attempt's outcome means, how long
to wait before the next one, and what ``retry-after`` asks for. No I/O, no clock of its own: the
caller passes the time and the random draw.

Outcomes of one attempt (the ``outcome`` label of ``mpr_target_attempts_total``):

* ``ok``: its answer goes to the client (a success, or a status the policy does not retry: a 400
  is the client's fault);
* ``retried_status`` / ``retried_error``: a retryable status or error, and the same target is tried
  again;
* ``failed_over``: a retryable status or error, and the next fallback target is tried;
* ``exhausted``: a retryable status or error (or an error the policy does not retry), and nothing
  is left to try: the client gets this attempt's error.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from gateway.config.models import RetryConfig
from gateway.errors import GatewayError, UpstreamTimeout, UpstreamUnreachable

ErrorKind = Literal["connect", "timeout"]
Outcome = Literal["ok", "retried_status", "retried_error", "failed_over", "exhausted"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "retried_status", "retried_error", "failed_over", "exhausted")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A target's effective retry settings (``targets[].retry`` over the top-level ``retry``)."""

    attempts: int = 1
    on_status: frozenset[int] = frozenset({429, 500, 502, 503, 504})
    on_errors: frozenset[str] = frozenset({"connect", "timeout"})
    backoff_s: float = 0.2
    backoff_max_s: float = 5.0
    deadline_s: float = 60.0

    @classmethod
    def of(cls, config: RetryConfig) -> RetryPolicy:
        return cls(
            attempts=config.attempts,
            on_status=frozenset(config.on_status),
            on_errors=frozenset(config.on_errors),
            backoff_s=config.backoff_s,
            backoff_max_s=config.backoff_max_s,
            deadline_s=config.deadline_s,
        )


def error_kind(exc: GatewayError) -> ErrorKind | None:
    """``connect`` (refused, reset, dropped before the answer), ``timeout`` (read timeout) or None."""
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, UpstreamUnreachable):
        return "connect"
    return None


def status_retryable(policy: RetryPolicy, status: int) -> bool:
    """A target status worth another try (by default 429 and 5xx gateway/availability errors)."""
    return status in policy.on_status


def error_retryable(policy: RetryPolicy, exc: GatewayError) -> bool:
    kind = error_kind(exc)
    return kind is not None and kind in policy.on_errors


def backoff_delay(policy: RetryPolicy, retry: int, draw: float) -> float:
    """Seconds before retry number ``retry`` (1 = the first retry): exponential from ``backoff_s``,
    capped at ``backoff_max_s``, with "equal jitter" (``draw`` in [0, 1) picks between half and
    the whole of it)."""
    if policy.backoff_s <= 0:
        return 0.0
    ceiling = min(policy.backoff_max_s, policy.backoff_s * (2 ** max(0, retry - 1)))
    return ceiling * (0.5 + 0.5 * min(max(draw, 0.0), 1.0))


def parse_retry_after(headers: Mapping[str, str], now_epoch: float) -> float | None:
    """Seconds the target asks to wait: ``retry-after-ms``, else ``retry-after`` (delay-seconds or
    an HTTP date, relative to ``now_epoch``); None when absent or unreadable. Never negative."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000.0
        except ValueError:
            value = -1.0
        if value >= 0 and value == value and value != float("inf"):
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now_epoch)
    if seconds != seconds or seconds == float("inf"):
        return None
    return max(0.0, seconds)


def next_delay(policy: RetryPolicy, retry: int, retry_after: float | None, remaining_s: float, draw: float) -> float | None:
    """The wait before retry number ``retry`` on the same target, or None when it does not fit in
    the ``remaining_s`` of the deadline (the caller then fails over or gives up). ``retry_after``,
    when the target sent one, replaces the backoff: waiting less would only earn another 429."""
    delay = retry_after if retry_after is not None else backoff_delay(policy, retry, draw)
    if delay >= remaining_s:
        return None
    return delay


Action = Literal["done", "retry", "fail_over", "give_up"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What follows an attempt: ``done`` (its answer is final), ``retry`` the same target after
    ``delay_s``, ``fail_over`` to the next fallback, or ``give_up`` (the client gets this attempt's
    error)."""

    action: Action
    delay_s: float = 0.0


DONE = Decision("done")
FAIL_OVER = Decision("fail_over")
GIVE_UP = Decision("give_up")


def decide(
    policy: RetryPolicy,
    *,
    retryable: bool,
    attempt: int,
    retry_after: float | None,
    remaining_s: float,
    fallbacks_left: bool,
    draw: float,
) -> Decision:
    """The step after attempt number ``attempt`` (1-based) on one target.

    Not retryable: done. Retryable: the same target again while it has attempts left and the wait
    fits in the deadline; else the next fallback while time remains; else give up.
    """
    if not retryable:
        return DONE
    if attempt < policy.attempts:
        delay = next_delay(policy, attempt, retry_after, remaining_s, draw)
        if delay is not None:
            return Decision("retry", delay)
    if fallbacks_left and remaining_s > 0:
        return FAIL_OVER
    return GIVE_UP


def outcome_of(decision: Decision, is_status: bool) -> Outcome:
    """The ``mpr_target_attempts_total`` label of an attempt that ended with a status reply
    (``is_status``) or an error, given what follows it."""
    action = decision.action
    if action == "retry":
        return "retried_status" if is_status else "retried_error"
    if action == "fail_over":
        return "failed_over"
    if action == "done" and is_status:
        return "ok"
    return "exhausted"

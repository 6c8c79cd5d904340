"""Token limits (pure): the counters a request charges, the estimate it reserves, the 429s.

Counters are fixed windows named by the wall clock (UTC): ``tokens_per_min`` by the minute,
budgets by the calendar day or month. A request reserves its estimate in every counter before
the call (refused when one would pass its limit) and settles the difference with the actual
usage after it (:mod:`gateway.tenants.accounting`).
"""

from __future__ import annotations

import calendar
import math
import time
from dataclasses import dataclass

from gateway.errors import RateLimited
from gateway.tenants.keyring import Tenant

CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Counter:
    """One window of one key: ``key`` (no secret in it), its ``limit``, how long it lives and
    when it resets (``reset_s`` from now), and what exceeding it is called."""

    key: str
    limit: int
    ttl_s: float
    reset_s: float
    code: str


def estimate(body_bytes: int, max_tokens: int | None) -> int:
    """Tokens reserved before the call: the body's size / 4 (over-counts the prompt: the JSON
    around it counts too) plus the completion limit the request set (0 when none)."""
    return math.ceil(body_bytes / CHARS_PER_TOKEN) + max(0, max_tokens or 0)


def counters(tenant: Tenant, now: float | None = None) -> list[Counter]:
    """``tenant``'s counters at wall time ``now`` (none: tokens are unlimited)."""
    now = time.time() if now is None else now
    tag = tenant.subject.rpartition(":")[2][:32]
    out: list[Counter] = []
    if tenant.tokens_per_min > 0:
        minute = int(now // 60)
        out.append(Counter(f"{tag}:tpm:{minute}", tenant.tokens_per_min, 120.0, 60.0 - now % 60, "tokens_per_minute_exceeded"))
    budget = tenant.budget
    if budget is not None:
        t = time.gmtime(now)
        if budget.per == "day":
            midnight = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) + 86400
            out.append(Counter(f"{tag}:bd:{t.tm_year:04d}{t.tm_mon:02d}{t.tm_mday:02d}", budget.tokens, 2 * 86400.0, midnight - now, "budget_exceeded"))
        else:
            year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
            first = calendar.timegm((year, month, 1, 0, 0, 0))
            out.append(Counter(f"{tag}:bm:{t.tm_year:04d}{t.tm_mon:02d}", budget.tokens, 32 * 86400.0, first - now, "budget_exceeded"))
    return out


def exceeded(tenant: Tenant, counter: Counter) -> RateLimited:
    """The 429 for ``counter``: ``retry-after`` until it resets, the limit and the code in the message."""
    retry_after = max(1, math.ceil(counter.reset_s))
    if counter.code == "budget_exceeded":
        per = tenant.budget.per if tenant.budget is not None else "day"
        message = f"Token budget of {counter.limit} tokens per {per} exhausted for key '{tenant.name}'; it resets in {retry_after}s."
    else:
        message = f"Rate limit reached for key '{tenant.name}': {counter.limit} tokens per minute; retry in {retry_after}s."
    return RateLimited(message, code=counter.code, headers={"retry-after": str(retry_after)})

"""``GET /admin/usage?window=1h``: tokens and requests by key name and model over the last
``window`` (``30m``, ``1h``, ``24h``, ``7d``; at most 7 days), from the per-minute usage buckets
in the shared state (every replica's with Redis; this process's without). Admin key required.

Each process writes its usage about once a second; the process answering flushes its own first,
so a request it just served shows. Another worker's or replica's last second may not yet."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get
from litestar.types import ControllerRouterHandler

from gateway.errors import InvalidRequest
from gateway.reload.live import RuntimeRef
from gateway.tenants.accounting import SEP

MAX_WINDOW_S = 7 * 86400
_WINDOW = re.compile(r"(\d+)([mhd])")
_UNITS = {"m": 60, "h": 3600, "d": 86400}
_KINDS = {"r": "requests", "p": "prompt_tokens", "c": "completion_tokens", "s": "stage_tokens"}


def parse_window(text: str | None) -> int:
    """A window like ``1h`` in seconds (default 1h); a 400 for anything else or past 7 days."""
    match = _WINDOW.fullmatch((text or "1h").strip().lower())
    seconds = int(match.group(1)) * _UNITS[match.group(2)] if match else 0
    if not 60 <= seconds <= MAX_WINDOW_S:
        raise InvalidRequest("'window' must be minutes, hours or days (30m, 1h, 24h, 7d), between 1m and 7d", param="window")
    return seconds


def usage_rows(totals: Mapping[str, int]) -> list[dict[str, Any]]:
    """Summed bucket fields (``key\\tmodel\\tkind``) as rows by key and model, biggest first (pure)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for field, value in totals.items():
        parts = field.split(SEP)
        if len(parts) != 3 or parts[2] not in _KINDS:
            continue
        row = rows.setdefault((parts[0], parts[1]), {"key": parts[0], "model": parts[1], **{k: 0 for k in _KINDS.values()}})
        row[_KINDS[parts[2]]] += value
    out = list(rows.values())
    for row in out:
        row["total_tokens"] = row["prompt_tokens"] + row["completion_tokens"] + row["stage_tokens"]
    return sorted(out, key=lambda r: (-r["total_tokens"], r["key"], r["model"]))


def usage_route(ref: RuntimeRef) -> ControllerRouterHandler:
    @get("/admin/usage")
    async def usage(request: Request[Any, Any, Any]) -> Response[bytes]:
        runtime = ref.current.runtime
        runtime.admin.check(request.headers.get("authorization"))
        seconds = parse_window(request.query_params.get("window"))
        if runtime.accountant is not None:
            await runtime.accountant.flush()  # this process's last second of usage, written now
        now = time.time()
        last = int(now // 60)
        totals = await runtime.state.usage_since(last - seconds // 60 + 1, last)
        body = {
            "object": "mpr.usage",
            "window_s": seconds,
            "since": (last - seconds // 60 + 1) * 60,
            "until": round(now, 3),
            "shared": runtime.state.status().get("kind") != "local",
            "data": usage_rows(totals),
        }
        return Response(msgspec.json.encode(body), media_type=MediaType.JSON)

    return usage

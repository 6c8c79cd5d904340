"""A chat turn's refinement summary and timings as text lines (pure; used by ``mpr-gateway chat``).

The input is the gateway's ``mpr`` details object (:meth:`RefinementOutcome.details`, asked for
with ``x-mpr-details: 1``) and the ``x-mpr-refinement`` header; the output is plain lines, with
ANSI colours only when ``color`` is true.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ROLES = ("cleaner", "describer", "paraphraser")

_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}

_REASONS = {
    "unchanged": "no change",
    "empty": "empty output",
    "echo": "repeated the prompt",
    "gibberish": "not language",
}


def paint(text: str, style: str, color: bool) -> str:
    """``text`` in an ANSI ``style`` (a key of ``_CODES``) when ``color``; else as it is."""
    return f"\x1b[{_CODES[style]}m{text}\x1b[0m" if color else text


@dataclass(frozen=True, slots=True)
class Timings:
    """One turn's latencies in milliseconds: ``refine_ms`` (the gateway's), ``ttft_ms`` (first
    answer token, None when there was none or no stream) and ``total_ms`` (request to last byte)."""

    refine_ms: float | None
    ttft_ms: float | None
    total_ms: float


def applied_stages(header: str | None) -> tuple[str, ...]:
    """The stages an ``x-mpr-refinement`` value says were applied (``cleaner,describer``;
    ``shadow;…`` and ``;cache=hit`` tails allowed); none for ``skipped``/``fallback``/``none``/``off``."""
    if not header:
        return ()
    parts = header.split(";")
    if parts[0] == "shadow":
        parts = parts[1:]
    names = tuple(p.strip() for p in (parts[0] if parts else "").split(","))
    return names if names and all(n in ROLES for n in names) else ()


def verdict_text(verdict: Mapping[str, Any], applied: bool) -> tuple[str, str]:
    """(status, why) for one stage's verdict: ``applied``, ``accepted`` (superseded by another
    rewrite), ``rejected`` or ``failed``, with the reason in words."""
    if verdict.get("error"):
        return "failed", f"stage failed: {verdict['error']}"
    if verdict.get("accepted"):
        why = f"drift {verdict['drift']:.2f}" if isinstance(verdict.get("drift"), (int, float)) else ""
        return ("applied", why) if applied else ("accepted", "superseded by another rewrite")
    reason = verdict.get("reason")
    if reason == "drift":
        return "rejected", f"drift too high ({verdict.get('drift', 0):.2f})"
    if reason == "length":
        return "rejected", f"too long ({verdict.get('length_ratio', 0):.1f}x the prompt)"
    return "rejected", _REASONS.get(str(reason), str(reason or "not used"))


_STATUS_STYLE = {"applied": "green", "accepted": "cyan", "rejected": "yellow", "failed": "red"}


def stage_lines(details: Mapping[str, Any], header: str | None, color: bool = False) -> list[str]:
    """One line per stage that ran: name, status, why, latency (and a built-in stand-in)."""
    applied = applied_stages(header)
    stages = details.get("stages") or {}
    lines = []
    for role in sorted(stages, key=lambda r: ROLES.index(r) if r in ROLES else len(ROLES)):
        verdict = stages[role]
        status, why = verdict_text(verdict, role in applied)
        text = f"{role:<12} {paint(f'{status:<9}', _STATUS_STYLE[status], color)}"
        extras = [why] if why else []
        if verdict.get("fallback_from"):
            extras.append(f"built-in cleaner stood in (adapter: {verdict['fallback_from']})")
        if isinstance(verdict.get("latency_ms"), (int, float)):
            extras.append(f"{verdict['latency_ms']:.0f} ms")
        lines.append((text + " " + " · ".join(extras)).rstrip())
    return lines


def summary_lines(details: Mapping[str, Any] | None, header: str | None, color: bool = False) -> list[str]:
    """The refinement of a turn: what happened (the header), original and refined prompt, the
    description added, and each stage's verdict. Without details, the header alone."""
    what = header or "off"
    lines = [f"{paint('refinement', 'bold', color)}: {what}"]
    if details is None:
        return lines
    gate = details.get("gate")
    if isinstance(gate, Mapping) and not gate.get("refine", True):
        lines[0] += f" (skip gate: {gate.get('reason')})"
    elif isinstance(gate, Mapping) and gate.get("tokens"):
        lines[0] += f" (gate: {gate.get('reason')}: {', '.join(map(str, gate['tokens']))})"
    if details.get("cache") == "hit":
        lines[0] += " [cached]"
    original, refined = details.get("original", ""), details.get("refined", "")
    lines.append(f"  original  {original}")
    if refined != original:
        lines.append(f"  refined   {paint(str(refined), 'green', color)}")
    else:
        lines.append(f"  refined   {paint('(unchanged)', 'dim', color)}")
    if details.get("description"):
        lines.append(f"  context   {paint(str(details['description']), 'cyan', color)}")
    lines.extend("  " + line for line in stage_lines(details, header, color))
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def timing_line(timings: Timings, color: bool = False) -> str:
    """``refine 181 ms · first token 412 ms · total 950 ms``."""
    text = f"refine {_ms(timings.refine_ms)} · first token {_ms(timings.ttft_ms)} · total {_ms(timings.total_ms)}"
    return paint(text, "dim", color)

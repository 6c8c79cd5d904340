"""``/ready`` and ``/admin/status`` bodies as short text lines (pure; ``mpr-gateway chat``'s
``/stages`` and ``/status``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.console.turn import ROLES, paint


def _endpoint_line(endpoint: Mapping[str, Any], color: bool) -> str:
    up = bool(endpoint.get("up"))
    text = f"{endpoint.get('url', '?')}  {paint('up' if up else 'down', 'green' if up else 'red', color)}"
    if isinstance(endpoint.get("last_probe_ms"), (int, float)):
        text += f"  probe {endpoint['last_probe_ms']:.0f} ms"
    if endpoint.get("cooling_down"):
        text += "  cooling down"
    if not up and endpoint.get("last_error"):
        text += f"  ({endpoint['last_error']})"
    return text


def _health(endpoints: Any) -> tuple[int, int]:
    items = endpoints if isinstance(endpoints, list) else []
    return sum(1 for e in items if isinstance(e, Mapping) and e.get("up")), len(items)


def stage_lines(ready: Mapping[str, Any], color: bool = False) -> list[str]:
    """Each refinement stage with its endpoints' health (``/ready``'s ``adapters``)."""
    adapters = ready.get("adapters") or {}
    lines = []
    for role in (*ROLES, *sorted(set(adapters) - set(ROLES))):
        endpoints = adapters.get(role)
        if endpoints is None:
            lines.append(f"{role:<12} {paint('not configured', 'dim', color)}")
            continue
        up, total = _health(endpoints)
        state = paint(f"{up}/{total} up", "green" if up == total and total else ("yellow" if up else "red"), color)
        lines.append(f"{role:<12} {state}")
        lines.extend(f"  {_endpoint_line(e, color)}" for e in endpoints if isinstance(e, Mapping))
    return lines


def ready_lines(ready: Mapping[str, Any], color: bool = False) -> list[str]:
    """A fleet summary from ``/ready``: status, targets and stages up, config, shared state."""
    status = str(ready.get("status", "?"))
    head = paint(status, "green" if status == "ready" else "red", color)
    if ready.get("draining"):
        head += " (draining)"
    lines = [f"gateway      {head}"]
    config = ready.get("config")
    if isinstance(config, Mapping) and config.get("hash"):
        lines.append(f"config       {config['hash']}" + (f" ({config['source']})" if config.get("source") else ""))
    for name, endpoints in sorted((ready.get("targets") or {}).items()):
        up, total = _health(endpoints)
        lines.append(f"target       {name}: {up}/{total} endpoint(s) up")
    adapters = ready.get("adapters") or {}
    stages = [f"{role} {'/'.join(map(str, _health(eps)))}" for role, eps in sorted(adapters.items())]
    lines.append("stages       " + (", ".join(stages) if stages else "none configured"))
    state = ready.get("state")
    if isinstance(state, Mapping):
        reachable = state.get("reachable", True)
        lines.append(f"state        {state.get('kind', '?')}" + ("" if reachable else " (unreachable: failing open)"))
    return lines


_MAX_ITEMS = 8
_LABELS = ("name", "role", "url")


def _item_line(item: Mapping[str, Any]) -> str:
    """One object of a list on one line: its name (``name``/``role``/``url``), its endpoints'
    health when it has some, then its first few scalar fields."""
    label = next((str(item[k]) for k in _LABELS if item.get(k)), "")
    parts = [label] if label else []
    if isinstance(item.get("endpoints"), list):
        up, total = _health(item["endpoints"])
        parts.append(f"{up}/{total} up")
    scalars = [f"{k}={v}" for k, v in item.items() if k not in _LABELS and not isinstance(v, (Mapping, list)) and v is not None]
    return "  ".join(parts + scalars[:4])


def status_lines(body: Any, color: bool = False, depth: int = 0) -> list[str]:
    """Any JSON object (``/admin/status``) as indented ``key: value`` lines: nested objects
    indented, lists of scalars joined, lists of objects one line each (counted beyond two levels)."""
    if not isinstance(body, Mapping):
        return [str(body)]
    lines = []
    pad = "  " * depth
    for key, value in body.items():
        if isinstance(value, Mapping) and depth < 3:
            lines.append(f"{pad}{paint(str(key), 'bold', color)}:")
            lines.extend(status_lines(value, color, depth + 1))
        elif isinstance(value, list) and all(not isinstance(v, (Mapping, list)) for v in value):
            lines.append(f"{pad}{key}: {', '.join(map(str, value)) or '-'}")
        elif isinstance(value, list) and depth < 2 and all(isinstance(v, Mapping) for v in value):
            lines.append(f"{pad}{paint(str(key), 'bold', color)}:")
            lines.extend(f"{pad}  - {_item_line(item)}" for item in value[:_MAX_ITEMS])
            if len(value) > _MAX_ITEMS:
                lines.append(f"{pad}  … {len(value) - _MAX_ITEMS} more")
        elif isinstance(value, (Mapping, list)):
            lines.append(f"{pad}{key}: ({len(value)} item(s))")
        else:
            lines.append(f"{pad}{key}: {value}")
    return lines

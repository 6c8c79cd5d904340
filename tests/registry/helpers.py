"""Gateways and registrations for the registration tests: a routes tree with adapters declared
but no configured endpoints, and small HTTP helpers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.support.gateway_proc import REPO, GatewayProcess

REGISTER_KEY = "reg-key-0123456789"
ADMIN_KEY = "adm-key-0123456789"
DIRTY = "whats the captial of frane and how big is it"
CLEANED = "whats the capital of france and how big is it"


def routes_with_registration(target_url: str, roles: tuple[str, ...] = ("cleaner",), *, adapter: dict[str, Any] | None = None,
                             server: dict[str, Any] | None = None, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Target ``test-model``; ``roles`` declared under adapters with no endpoints (workers register)."""
    tree: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "probe_interval_s": 0.5, "register_keys": [REGISTER_KEY],
                   "admin_keys": [ADMIN_KEY], **(server or {})},
        "targets": [{"name": "test-model", "endpoints": [target_url], "upstream_model": "target-model", "timeout_s": 10, "cooldown_s": 1}],
        "refinement": {"deadline_s": 2.0, "cache": {"enabled": False}, "stages": list(roles)},
        "adapters": {
            role: {"endpoints": [], "model": f"configured-{role}", "prompt": str(REPO / "lora_adapters" / role / "prompt.md"),
                   "timeout_s": 1.0, "cooldown_s": 1, **(adapter or {})}
            for role in roles
        },
    }
    if state:
        tree["state"] = state
    return tree


def announcement(node: str, url: str, tier: str = "gpu", heartbeat_s: float = 5.0, **adapters: str) -> dict[str, Any]:
    return {"node": node, "url": url, "tier": tier, "adapters": adapters or {"cleaner": f"lora-{node}"},
            "base_model": "tiny", "heartbeat_s": heartbeat_s}


def register(gw: GatewayProcess, body: dict[str, Any], key: str | None = REGISTER_KEY) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(gw.url + "/admin/workers", json=body, headers=headers, timeout=5)


def deregister(gw: GatewayProcess, node: str, key: str = REGISTER_KEY) -> httpx.Response:
    return httpx.delete(gw.url + f"/admin/workers/{node}", headers={"authorization": f"Bearer {key}"}, timeout=5)


def listed(gw: GatewayProcess, key: str = ADMIN_KEY) -> list[dict[str, Any]]:
    r = httpx.get(gw.url + "/admin/workers", headers={"authorization": f"Bearer {key}"}, timeout=5)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def pooled(gw: GatewayProcess, role: str = "cleaner") -> list[str]:
    """The URLs in ``role``'s pool, as ``/ready`` shows them (a new connection each call)."""
    with httpx.Client() as client:
        body = client.get(gw.url + "/ready", timeout=5).json()
    return [e["url"] for e in body["adapters"].get(role, [])]


def chat(gw: GatewayProcess, text: str = DIRTY) -> httpx.Response:
    return httpx.post(gw.base_url + "/chat/completions", json={"model": "test-model", "messages": [{"role": "user", "content": text}]},
                      timeout=10)


def until(predicate: Callable[[], Any], timeout: float, what: str) -> float:
    """Seconds until ``predicate`` holds; fails after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout}s"
        time.sleep(0.05)
    return time.monotonic() - started


def status_endpoints(gw: GatewayProcess, role: str = "cleaner") -> list[tuple[str, str, str | None]]:
    """(url, source, tier) of ``role``'s endpoints in ``GET /admin/status``."""
    r = httpx.get(gw.url + "/admin/status", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=5)
    assert r.status_code == 200, r.text
    [stage] = [s for s in r.json()["stages"] if s["role"] == role]
    return [(e["url"], e["source"], e["tier"]) for e in stage["endpoints"]]

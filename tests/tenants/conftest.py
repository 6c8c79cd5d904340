"""Fixtures for the tenant tests: a fake OpenAI peer (target and adapters) and routes with keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.tenants.keyring import hash_key
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import routes

ADMIN = "adm-tenants-0123456789abcdef"
KEYS = {  # name → the raw key the client sends (never in a log line)
    "alpha": "sk-alpha-raw-0123456789abcdef",
    "beta": "sk-beta-raw-0123456789abcdef",
    "tpm-plain": "sk-tpm-plain-0123456789abcdef",
    "tpm-stream": "sk-tpm-stream-0123456789abcdef",
    "budget-plain": "sk-budget-plain-0123456789abcd",
    "budget-stream": "sk-budget-stream-0123456789abc",
    "meter": "sk-meter-raw-0123456789abcdef",
    "shadow": "sk-shadow-raw-0123456789abcdef",
    "apply": "sk-apply-raw-0123456789abcdef",
    "strict": "sk-strict-raw-0123456789abcdef",
}
BARE = "sk-bare-raw-0123456789abcdef"


def key_entries() -> list[dict[str, Any]]:
    """``server.keys``: hashed at rest, except ``alpha`` (a plain key from the environment)."""
    def entry(name: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "key": hash_key(KEYS[name]), **extra}

    return [
        {"name": "alpha", "key": "${ALPHA_KEY}", "team": "research", "models": ["test-model"]},
        entry("beta", models=["other-*"]),
        entry("tpm-plain", tokens_per_min=120),
        entry("tpm-stream", tokens_per_min=120),
        entry("budget-plain", budget={"tokens": 100, "per": "day"}),
        entry("budget-stream", budget={"tokens": 100, "per": "month"}),
        entry("meter", team="billing"),
        entry("shadow", refinement={"mode": "shadow"}),
        entry("apply", refinement={"mode": "apply", "capture": False}),
        entry("strict", refinement={"max_drift": 0.05, "deadline_s": 1.0, "stages": ["cleaner", "paraphraser"]}),
    ]


def tenant_routes(fake: FakeOpenAI, workdir: Path, **overrides: Any) -> dict[str, Any]:
    config = routes(fake.base_url, fake.base_url, **overrides)
    config["targets"].append({"name": "other-model", "endpoints": [fake.base_url], "upstream_model": "other-upstream", "timeout_s": 10})
    config["server"] = {**config["server"], "keys": key_entries(), "api_keys": [BARE], "admin_keys": [ADMIN]}
    config["telemetry"] = {**config.get("telemetry", {}), "usage_log": str(workdir / "usage.jsonl")}
    return config


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as peer:
        yield peer


@pytest.fixture(autouse=True)
def _reset(fake: FakeOpenAI) -> None:
    fake.reset()


def away_from_minute_edge(margin_s: float = 5.0) -> None:
    """Sleep past the next minute boundary when it is near (a tokens/min window resets there)."""
    import time

    left = 60 - time.time() % 60
    if left < margin_s:
        time.sleep(left + 0.1)

"""The config keys of registration and tiers: adapters without endpoints, ``tiers``, ``prefer``,
``max_inflight``, ``server.register_keys``; the adapter pool built from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, parse_config
from gateway.config.models import Role
from gateway.runtime import adapter_pool

PROMPT = str(Path(__file__).resolve().parents[2] / "lora_adapters" / "cleaner" / "prompt.md")


def _config(**cleaner: Any):  # type: ignore[no-untyped-def]
    tree = {"server": {"register_keys": ["r"]}, "targets": [{"name": "m", "endpoints": ["http://127.0.0.1:1/v1"]}],
            "adapters": {"cleaner": {"model": "c", "prompt": PROMPT, **cleaner}}}
    return parse_config(tree, base_dir=Path("."), env={})


def test_an_adapter_may_have_no_configured_endpoint_when_workers_register() -> None:
    config = _config()
    adapter = config.adapters.get(Role.CLEANER)
    assert adapter is not None and adapter.base_urls == [] and adapter.prefer == "none" and adapter.max_inflight == 4
    assert config.server.register_keys == ["r"]
    assert adapter_pool(Role.CLEANER, adapter).endpoints == []


def test_configured_endpoints_declare_tiers_and_the_pool_takes_the_policy() -> None:
    config = _config(endpoints=["http://gpu:1/v1", "http://cpu:1/v1/"], tiers={"http://cpu:1/v1/": "cpu", "http://gpu:1/v1": "gpu"},
                     prefer="gpu", max_inflight=2)
    adapter = config.adapters.get(Role.CLEANER)
    assert adapter is not None
    pool = adapter_pool(Role.CLEANER, adapter)
    assert [(e.url, e.tier, e.source) for e in pool.endpoints] == [("http://gpu:1/v1", "gpu", "config"), ("http://cpu:1/v1", "cpu", "config")]
    assert pool.prefer == "gpu" and pool.max_inflight == 2


@pytest.mark.parametrize(
    ("cleaner", "where"),
    [
        ({"endpoints": ["http://a:1/v1"], "tiers": {"http://b:1/v1": "gpu"}}, "tiers"),
        ({"endpoints": ["http://a:1/v1"], "tiers": {"http://a:1/v1": "tpu"}}, "tiers"),
        ({"prefer": "fastest"}, "prefer"),
        ({"max_inflight": 0}, "max_inflight"),
    ],
)
def test_bad_tier_settings_are_refused_with_their_key_path(cleaner: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _config(**cleaner)
    assert any(where in path or where in message for path, message in refused.value.errors), refused.value.errors

"""The pure decisions behind tenant isolation: the pass-through allow-list, case-shadowed routes,
check-config's exposure warnings, response ownership, scoped fallback chains, partitions of the
cache and conversation keys, and the headers a tenant may see."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from gateway.config.allowlist import INFERENCE_ROUTES, exposure_warnings, route_allowed, sensitive_globs, shadows_served
from gateway.config.keys import KeyConfig
from gateway.config.models import ALL_ROLES
from gateway.endpoints.passthrough import SERVED
from gateway.endpoints.responses.owners import Owner, access
from gateway.refinement.cache_key import cache_key
from gateway.refinement.history import turn_keys
from gateway.tenants.gate import tenant_headers
from gateway.tenants.keyring import Tenant
from gateway.tenants.partition import SHARED, partition_of
from gateway.upstream.router import scoped_chain
from tests.support.gateway_proc import REPO


def test_only_inference_routes_pass_by_default() -> None:
    assert route_allowed("/v1/moderations", [], ["/v1/nothing"])
    for path in ("/v1/load_lora_adapter", "/v1/files", "/v1/batches", "/v1/fine_tuning/jobs", "/v1/anything"):
        assert not route_allowed(path, [], None)
    assert all(path.startswith("/v1/") for path in INFERENCE_ROUTES)


def test_an_opened_path_needs_the_key_too() -> None:
    opened = ["/v1/vector_stores/*"]
    assert route_allowed("/v1/vector_stores/vs_1/search", opened, None)  # bare key / open gateway
    assert route_allowed("/v1/vector_stores/vs_1/search", opened, ["/v1/vector_stores/*"])
    assert not route_allowed("/v1/vector_stores/vs_1/search", opened, [])  # a named key without routes
    assert not route_allowed("/v1/vector_stores/vs_1/search", [], ["/v1/vector_stores/*"])  # the target does not open it


def test_a_case_variant_of_a_served_route_is_refused() -> None:
    assert shadows_served("/v1/Chat/Completions", SERVED)
    assert shadows_served("/v1/RESPONSES/resp_1/cancel", SERVED)
    assert shadows_served("/v1/Embeddings", SERVED)
    assert not shadows_served("/v1/moderations", SERVED)
    assert not shadows_served("/v1/chat/completions", SERVED)  # the route itself is not a variant


def test_sensitive_globs_are_found() -> None:
    found = dict(sensitive_globs(["/v1/files", "/v1/fine_tuning/*", "/v1/*", "/v1/rerank", "/v1/load_lora_adapter"]))
    assert set(found) == {"/v1/files", "/v1/fine_tuning/*", "/v1/*", "/v1/load_lora_adapter"}
    warnings = exposure_warnings([("targets[0].passthrough", ["/v1/batches"])], [("server.keys[1].routes", ["/v1/tokenize"])])
    assert [w[0] for w in warnings] == ["targets[0].passthrough"] and "/v1/batches" in warnings[0][1]


def test_check_config_warns_about_an_opened_account_route(tmp_path: Path) -> None:
    prompt = REPO / "lora_adapters" / "cleaner" / "prompt.md"
    config = {
        "targets": [{"name": "gpt", "endpoints": ["http://127.0.0.1:9/v1"], "passthrough": ["/v1/files", "/v1/tokenize"]}],
        "server": {"keys": [{"name": "ops", "key": "sk-ops-0123456789", "routes": ["/v1/files"]}]},
        "adapters": {"cleaner": {"endpoints": ["http://127.0.0.1:9/v1"], "model": "cleaner", "prompt": str(prompt)}},
        "refinement": {"stages": ["cleaner"]},
    }
    path = tmp_path / "routes.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "gateway", "check-config", str(path)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "warning" in line]
    assert any("targets[0].passthrough" in line and "/v1/files" in line for line in warned), done.stderr
    assert any("server.keys[0].routes" in line for line in warned), done.stderr
    assert not any("/v1/tokenize" in line for line in warned)


def test_a_route_glob_must_be_under_v1() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must be a path under /v1/"):
        KeyConfig(name="k", key="sk-0123456789", routes=["files"])


def test_response_access() -> None:
    mine = Owner("t1", "gpt")
    assert access(mine, "t1", True, True) == "serve"
    assert access(mine, "t2", True, True) == "not_found"  # another tenant's
    assert access(mine, "t1", False, True) == "not_found"  # a target outside the key's scope
    assert access(None, "t1", True, True) == "not_found"  # unknown owner among tenants: nobody probes
    assert access(None, SHARED, True, False) == "probe"  # one trust domain: asked of the targets
    assert Owner.decode(mine.encode()) == mine and Owner.decode(b"junk") is None


def test_fallbacks_outside_the_scope_are_skipped() -> None:
    chain = ("gpt", "model-b", "gpt-mini")
    assert scoped_chain(chain, None) == (chain, ())
    assert scoped_chain(chain, lambda name: name.startswith("gpt")) == (("gpt", "gpt-mini"), ("model-b",))
    assert scoped_chain(("gpt",), lambda name: False) == (("gpt",), ())  # the requested target is the caller's check


def test_partitions_split_the_cache_and_the_conversation_keys() -> None:
    a = Tenant.of(KeyConfig(name="a", key="sk-a-0123456789"))
    b = Tenant.of(KeyConfig(name="b", key="sk-b-0123456789"))
    bare = Tenant.bare("sk-bare-0123456789")
    assert partition_of(a) != partition_of(b) and SHARED not in (partition_of(a), partition_of(b))
    assert partition_of(bare) == partition_of(None) == SHARED
    assert partition_of(a) == Tenant.of(KeyConfig(name="renamed", key="sk-a-0123456789")).partition  # stable: the key, not the name
    key = lambda p: cache_key("teh text", ALL_ROLES, True, {}, "settings", p)  # noqa: E731
    assert key(partition_of(a)) != key(partition_of(b)) != key(SHARED)
    assert turn_keys(["hi", "again"], partition_of(a)) != turn_keys(["hi", "again"], partition_of(b))


def test_a_tenant_gets_only_the_headers_a_client_needs() -> None:
    headers = {"retry-after": "2", "x-ratelimit-remaining-requests": "9", "anthropic-ratelimit-tokens-remaining": "5",
               "x-litellm-key-spend": "3.2", "x-request-id": "r", "x-mpr-target": "gpt", "content-type": "audio/mpeg"}
    assert tenant_headers(headers) == {"retry-after": "2", "x-request-id": "r", "x-mpr-target": "gpt", "content-type": "audio/mpeg"}
    clean = {"content-type": "application/json", "x-mpr-attempts": "1"}
    assert tenant_headers(clean) is clean


def test_check_config_warns_when_tenants_meet_open_ops_endpoints() -> None:
    from gateway.config.checks import config_warnings
    from gateway.config.models import GatewayConfig

    base = {"targets": [{"name": "gpt", "endpoints": ["http://127.0.0.1:9/v1"]}], "refinement": {"stages": []}}
    tenants = {"keys": [{"name": "a", "key": "sk-a-0123456789"}]}
    open_ops = GatewayConfig.model_validate({**base, "server": tenants})
    closed = GatewayConfig.model_validate({**base, "server": {**tenants, "protect_ops_endpoints": True}})
    assert [path for path, _ in config_warnings(open_ops)] == ["server.protect_ops_endpoints"]
    assert config_warnings(closed) == []
    assert config_warnings(GatewayConfig.model_validate(base)) == []  # no tenants: nothing to leak

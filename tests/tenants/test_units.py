"""The tenant layer's pure parts: key hashing and lookup, model scope, policy narrowing, the
estimate and windows, usage parsing of bodies and streams, counters, the admin usage rows."""

from __future__ import annotations

import calendar
from pathlib import Path

import pytest

from gateway.admin.usage import parse_window, usage_rows
from gateway.config import ConfigError, parse_config
from gateway.config.keys import BudgetConfig, KeyConfig, KeyRefinementPolicy
from gateway.config.models import Role
from gateway.errors import AuthenticationFailed, InvalidRequest
from gateway.refinement.controls import RefineControls
from gateway.state.quota import LocalQuota
from gateway.tenants.accounting import bucket_fields
from gateway.tenants.gate import read_head
from gateway.tenants.keyring import KeyRing, Tenant, build_keyring, hash_key
from gateway.config.models import RefinementConfig
from gateway.tenants.policy import may_use, narrow, tightened, visible
from gateway.tenants.quota import counters, estimate, exceeded
from gateway.tenants.usage import StreamUsage, body_usage

PLAIN = "sk-tenant-plain-0123456789"


def test_hash_key_and_keyring_accept_hashed_and_plain_keys() -> None:
    hashed = KeyConfig(name="a", key=hash_key(PLAIN))
    plain = KeyConfig(name="b", key="sk-other-plain-key-99")
    ring = build_keyring([hashed, plain], ["sk-bare-key-000000"], None)
    assert ring.authenticate(f"Bearer {PLAIN}").name == "a"  # type: ignore[union-attr]
    assert ring.authenticate("Bearer sk-other-plain-key-99").name == "b"  # type: ignore[union-attr]
    bare = ring.authenticate("Bearer sk-bare-key-000000")
    assert bare is not None and bare.name.startswith("key-") and not bare.metered and bare.models == ()
    with pytest.raises(AuthenticationFailed):
        ring.authenticate("Bearer nope-nope-nope")
    assert all("sk-" not in t.subject for t in ring.tenants)  # only hashes are kept
    assert KeyRing([]).authenticate(None) is None


def test_a_malformed_hash_is_refused() -> None:
    with pytest.raises(ValueError, match="64 lowercase hex"):
        KeyConfig(name="a", key="sha256:abc")


def test_model_scope_with_globs() -> None:
    tenant = Tenant("t", "sha256:x", models=("gpt-4o*", "demo"))
    assert may_use(tenant, "gpt-4o-mini") and may_use(tenant, "demo")
    assert not may_use(tenant, "claude") and may_use(None, "claude") and may_use(Tenant("u", "s"), "any")
    assert visible(tenant, ["demo", "claude", "gpt-4o"]) == ["demo", "gpt-4o"]


def test_policy_narrows_but_never_widens() -> None:
    shadow = KeyRefinementPolicy(mode="shadow", stages=["cleaner", "paraphraser"])
    assert narrow(RefineControls(mode="apply"), shadow).mode == "shadow"
    got = narrow(RefineControls(stages=(Role.CLEANER, Role.DESCRIBER)), shadow)
    assert got.stages == (Role.CLEANER,)
    assert narrow(RefineControls(), shadow).stages == (Role.CLEANER, Role.PARAPHRASER)
    apply = KeyRefinementPolicy(mode="apply")
    assert narrow(RefineControls(), apply).mode == "apply"
    assert narrow(RefineControls(mode="shadow"), apply).mode == "shadow"  # the request may narrow
    assert narrow(RefineControls(refine=True), KeyRefinementPolicy(refine=False)).refine is False
    same = RefineControls()
    assert narrow(same, KeyRefinementPolicy()) is same


def test_estimate_and_windows() -> None:
    assert estimate(400, None) == 100 and estimate(401, 50) == 151
    assert read_head(b'{"model":"m","max_tokens":12,"messages":[]}') == ("m", 12)
    assert read_head(b'{"model":"m","max_completion_tokens":3}') == ("m", 3)
    assert read_head(b"not json") == (None, None)
    tenant = Tenant("t", hash_key(PLAIN), tokens_per_min=100, budget=BudgetConfig(tokens=1000, per="month"))
    now = calendar.timegm((2026, 12, 31, 23, 59, 30))
    tpm, month = counters(tenant, now)
    assert tpm.reset_s == pytest.approx(30) and tpm.code == "tokens_per_minute_exceeded"
    assert month.reset_s == pytest.approx(30) and month.key.endswith(":bm:202612")
    assert PLAIN not in tpm.key and PLAIN not in month.key
    error = exceeded(tenant, month)
    assert error.status_code == 429 and error.code == "budget_exceeded" and error.headers["retry-after"] == "30"
    day = counters(Tenant("t", "sha256:ab", budget=BudgetConfig(tokens=5)), calendar.timegm((2026, 3, 1, 12, 0, 0)))[0]
    assert day.reset_s == pytest.approx(12 * 3600) and day.key.endswith(":bd:20260301")


def test_usage_of_bodies_and_streams() -> None:
    assert body_usage(b'{"usage":{"prompt_tokens":3,"completion_tokens":4}}') == (3, 4)
    assert body_usage(b'{"usage":{"prompt_tokens":5,"total_tokens":5}}') == (5, 0)  # embeddings
    assert body_usage(b'{"usage":{"input_tokens":2,"output_tokens":9}}') == (2, 9)  # Responses
    assert body_usage(b'{"choices":[]}') is None
    stream = StreamUsage()
    chat = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: {"choices":[],"usage":{"prompt_tok'
    stream.feed(chat)
    stream.feed(b'ens":11,"completion_tokens":22}}\n\ndata: [DONE]\n\n')
    stream.close()
    assert stream.usage == (11, 22)
    responses = StreamUsage()
    responses.feed(b'event: response.completed\ndata: {"type":"response.completed","response":{"usage":{"input_tokens":1,"output_tokens":2}}}')
    responses.close()  # no final blank line: read at the end
    assert responses.usage == (1, 2)


def test_local_counters_reserve_atomically_and_settle() -> None:
    now = [0.0]
    quota = LocalQuota(clock=lambda: now[0])
    spec = [("a", 100, 60.0), ("b", 50, 60.0)]
    assert quota.reserve(spec, 40) == -1
    assert quota.reserve(spec, 20) == 1  # b would pass 50: nothing charged
    quota.settle(spec, -30)  # actual use was 10
    assert quota.reserve(spec, 40) == -1
    now[0] = 61.0  # expired
    assert quota.reserve(spec, 50) == -1


def test_usage_buckets_and_rows() -> None:
    quota = LocalQuota()
    quota.usage_add(10, bucket_fields("a", "m", 3, 4, 5))
    quota.usage_add(11, bucket_fields("a", "m", 1, 1, 0))
    quota.usage_add(11, bucket_fields("b", "m", 100, 0, 0))
    rows = usage_rows(quota.usage_since(10, 11))
    assert rows[0] == {"key": "b", "model": "m", "requests": 1, "prompt_tokens": 100, "completion_tokens": 0, "stage_tokens": 0, "total_tokens": 100}
    assert rows[1]["requests"] == 2 and rows[1]["total_tokens"] == 14
    assert usage_rows(quota.usage_since(11, 11))[1]["total_tokens"] == 2
    assert parse_window("24h") == 86400 and parse_window(None) == 3600
    with pytest.raises(InvalidRequest):
        parse_window("8d")


def test_a_key_may_only_tighten_the_deadline_and_drift_bound() -> None:
    config = RefinementConfig(deadline_s=3.0)
    assert tightened(config, KeyRefinementPolicy()) is config
    assert tightened(config, KeyRefinementPolicy(deadline_s=5.0, max_drift=0.5)) is config  # looser: ignored
    tight = tightened(config, KeyRefinementPolicy(deadline_s=0.5, max_drift=0.05))
    assert tight.deadline_s == 0.5 and tight.drift.max_drift == 0.05 and tight.drift.max_length_ratio == config.drift.max_length_ratio


def test_check_config_reads_the_keys_file(tmp_path: Path) -> None:
    base = {"targets": [{"name": "m", "endpoints": ["http://127.0.0.1:1/v1"]}]}
    good = tmp_path / "keys.yaml"
    good.write_text(f"keys:\n  - name: a\n    key: {hash_key(PLAIN)}\n    models: [m]\n")
    config = parse_config({**base, "server": {"keys_file": "keys.yaml"}}, base_dir=tmp_path)
    assert config.server.keys_file == good
    assert build_keyring(config.server.keys, [], config.server.keys_file).authenticate(f"Bearer {PLAIN}").models == ("m",)  # type: ignore[union-attr]
    (tmp_path / "bad.yaml").write_text("keys:\n  - name: a\n    key: sha256:xyz\n")
    with pytest.raises(ConfigError) as bad:
        parse_config({**base, "server": {"keys_file": "bad.yaml"}}, base_dir=tmp_path)
    assert bad.value.errors[0][0] == "server.keys_file:keys.0.key"
    with pytest.raises(ConfigError) as dupes:
        parse_config({**base, "server": {"keys_file": "keys.yaml", "keys": [{"name": "a", "key": "sk-another-key-000"}]}}, base_dir=tmp_path)
    assert dupes.value.errors == [("server.keys", "duplicate key names: a")]
    with pytest.raises(ConfigError) as plain_logged:
        parse_config({**base, "server": {"keys": [{"name": "bad name", "key": "sk-secret-plain-key"}]}}, base_dir=tmp_path)
    assert "sk-secret-plain-key" not in str(plain_logged.value)  # a refused entry never prints its key

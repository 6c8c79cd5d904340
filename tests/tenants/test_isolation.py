"""Tenant isolation end to end: two tenant keys (``team-a``, ``team-b``, scoped to the model
``gpt``), a wider key, a bare key and an admin key, in front of two recording upstreams that see
every request (``gpt`` → upstream A, ``model-b`` → upstream B, called with the operator's
credential), served by two gateway processes sharing one real Redis.

Each test asserts what a tenant gets and what never reaches an upstream: the closed pass-through,
objects that belong to their creator, the key's model scope on every hop, the refinement cache and
conversation store partitioned by tenant, ops endpoints and relayed headers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import httpx
import pytest

from tests.gateway.conftest import assert_openai_error, openapi, start_gateways, stop_gateways  # noqa: F401 - fixtures
from tests.support.gateway_proc import GatewayProcess
from tests.support.recording_upstream import RecordingUpstream
from tests.support.redis_server import RedisServer

OPERATOR_CREDENTIAL = "sk-operator-credential-0123456789"
ADMIN = "adm-isolation-0123456789abcdef"
BARE = "sk-bare-isolation-0123456789abc"
KEYS = {
    "team-a": "sk-team-a-0123456789abcdef",
    "team-b": "sk-team-b-0123456789abcdef",
    "wide": "sk-wide-0123456789abcdef",
    "no-refine": "sk-no-refine-0123456789abcdef",
}

MANAGEMENT_AND_ACCOUNT = [
    "/load_lora_adapter",
    "/unload_lora_adapter",
    "/fine_tuning/jobs",
    "/batches",
    "/files",
    "/vector_stores",
    "/assistants",
    "/threads",
    "/uploads",
    "/conversations",
    "/organization/projects",
    "/Chat/Completions",  # a served route but for case: would skip refinement and its checks
    "/Moderations",
]


def auth(name: str) -> dict[str, str]:
    key = {"admin": ADMIN, "bare": BARE}.get(name) or KEYS[name]
    return {"authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[RecordingUpstream, RecordingUpstream]]:
    with RecordingUpstream("a") as a, RecordingUpstream("b") as b:
        yield a, b


def isolation_config(a: RecordingUpstream, b: RecordingUpstream, redis_url: str) -> dict[str, Any]:
    return {
        "server": {
            "host": "127.0.0.1", "port": 0, "probe_interval_s": 0.5, "protect_ops_endpoints": True,
            "admin_keys": [ADMIN], "api_keys": [BARE],
            "keys": [
                {"name": "team-a", "key": KEYS["team-a"], "models": ["gpt"], "routes": ["/v1/extra/*"]},
                {"name": "team-b", "key": KEYS["team-b"], "models": ["gpt"]},
                {"name": "wide", "key": KEYS["wide"], "models": ["gpt", "model-b"]},
                {"name": "no-refine", "key": KEYS["no-refine"], "models": ["gpt"], "refinement": {"refine": False}},
            ],
        },
        "targets": [
            {"name": "gpt", "endpoints": [a.base_url], "api_key_env": "OPERATOR_KEY", "fallbacks": ["model-b"],
             "passthrough": ["/v1/extra/*"], "cooldown_s": 0, "timeout_s": 10, "retry": {"attempts": 2, "backoff_s": 0}},
            {"name": "model-b", "endpoints": [b.base_url], "api_key_env": "OPERATOR_KEY", "cooldown_s": 0, "timeout_s": 10},
        ],
        "refinement": {"builtin_cleaner": "always", "stages": ["cleaner"], "cache": {"enabled": True}},
        "state": {"redis_url": redis_url, "key_prefix": "iso:"},
    }


@pytest.fixture(scope="module")
def gateways(upstreams: tuple[RecordingUpstream, RecordingUpstream], tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[GatewayProcess]]:
    redis = RedisServer(tmp_path_factory.mktemp("redis")).start()
    a, b = upstreams
    config = isolation_config(a, b, redis.url)
    gws = start_gateways(tmp_path_factory, config, config, env={"OPERATOR_KEY": OPERATOR_CREDENTIAL})
    try:
        yield gws
    finally:
        stop_gateways(gws)
        redis.stop()


@pytest.fixture
def gw(gateways: list[GatewayProcess]) -> GatewayProcess:
    return gateways[0]


@pytest.fixture(autouse=True)
def _reset(upstreams: tuple[RecordingUpstream, RecordingUpstream]) -> None:
    for up in upstreams:
        up.reset()


def post(gw: GatewayProcess, path: str, who: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(gw.base_url + path, json=body, headers=auth(who), timeout=10)


# -- the closed pass-through -----------------------------------------------------------------------


@pytest.mark.parametrize("path", MANAGEMENT_AND_ACCOUNT)
def test_management_and_account_routes_never_reach_the_target(
    gw: GatewayProcess, upstreams: tuple[RecordingUpstream, RecordingUpstream], path: str, assert_openai_error: Callable[..., Any]
) -> None:
    for who in ("team-a", "team-b", "bare"):
        r = post(gw, path, who, {"model": "gpt", "lora_name": "cleaner", "lora_path": "/tmp/x", "input": "hi"})
        assert_openai_error(r, 404, code="not_found")
    assert upstreams[0].calls == [] and upstreams[1].calls == []


def test_an_inference_route_of_the_allow_list_goes_through(gw: GatewayProcess, upstreams: tuple[RecordingUpstream, RecordingUpstream]) -> None:
    r = post(gw, "/moderations", "team-b", {"model": "gpt", "input": "hi"})
    assert r.status_code == 200 and r.json()["path"] == "/v1/moderations"
    (call,) = upstreams[0].calls
    assert call.headers["Authorization"] == f"Bearer {OPERATOR_CREDENTIAL}"  # the operator's credential, only for allowed routes


def test_an_operator_added_route_works_only_for_the_key_given_it(
    gw: GatewayProcess, upstreams: tuple[RecordingUpstream, RecordingUpstream], assert_openai_error: Callable[..., Any]
) -> None:
    r = post(gw, "/extra/thing", "team-a", {"model": "gpt", "x": 1})
    assert r.status_code == 200 and r.json()["path"] == "/v1/extra/thing"
    assert upstreams[0].paths() == ["/v1/extra/thing"]
    upstreams[0].reset()
    denied = post(gw, "/extra/thing", "team-b", {"model": "gpt", "x": 1})
    assert assert_openai_error(denied, 404, code="not_found")["message"] == "Unknown route: POST /v1/extra/thing"  # as for any unknown path
    assert post(gw, "/extra/thing", "bare", {"model": "gpt"}).status_code == 200  # bare keys: the operator's trust domain
    assert upstreams[0].paths() == ["/v1/extra/thing"]  # the bare key's call only


# -- responses belong to their creator, on every replica ---------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_another_tenant_gets_404_for_a_response_on_every_route_and_replica(
    gateways: list[GatewayProcess], upstreams: tuple[RecordingUpstream, RecordingUpstream], stream: bool, assert_openai_error: Callable[..., Any]
) -> None:
    first, second = gateways
    created = post(first, "/responses", "team-a", {"model": "gpt", "input": "team a's secret plan", "stream": stream})
    assert created.status_code == 200
    rid = list(upstreams[0].responses)[-1]
    if stream:
        assert f'"id": "{rid}"'.encode() in created.content
    else:
        assert created.json()["id"] == rid
    upstreams[0].reset()
    for gw in gateways:  # the record is in Redis: both replicas refuse team-b
        for method, suffix in (("GET", ""), ("GET", "/input_items"), ("POST", "/cancel"), ("DELETE", "")):
            r = httpx.request(method, f"{gw.base_url}/responses/{rid}{suffix}", headers=auth("team-b"), timeout=10)
            assert assert_openai_error(r, 404, code="not_found")["param"] == "response_id"
            assert "secret" not in r.text
        cont = post(gw, "/responses", "team-b", {"model": "gpt", "input": "go on", "previous_response_id": rid})
        assert assert_openai_error(cont, 400, code="previous_response_not_found")["param"] == "previous_response_id"
    assert upstreams[0].calls == [] and upstreams[1].calls == []  # none of it reached a target
    mine = httpx.get(f"{second.base_url}/responses/{rid}", headers=auth("team-a"), timeout=10)  # the owner, on the other replica
    assert mine.status_code == 200 and "secret plan" in mine.json()["output"][0]["content"][0]["text"]
    assert mine.headers["x-mpr-target"] == "gpt"
    go_on = post(second, "/responses", "team-a", {"model": "gpt", "input": "go on", "previous_response_id": rid})
    assert go_on.status_code == 200 and go_on.json()["previous_response_id"] == rid


def test_an_id_of_unknown_owner_is_asked_of_no_target(
    gw: GatewayProcess, upstreams: tuple[RecordingUpstream, RecordingUpstream], assert_openai_error: Callable[..., Any]
) -> None:
    upstreams[1].responses["resp_planted"] = {"id": "resp_planted", "object": "response", "output": []}  # exists upstream only
    for who in ("team-a", "wide", "bare"):
        r = httpx.get(f"{gw.base_url}/responses/resp_planted", headers=auth(who), timeout=10)
        assert_openai_error(r, 404, code="not_found")
    assert upstreams[0].calls == [] and upstreams[1].calls == []


def test_a_response_on_a_target_outside_the_key_scope_stays_out_of_reach(
    gw: GatewayProcess, upstreams: tuple[RecordingUpstream, RecordingUpstream], assert_openai_error: Callable[..., Any]
) -> None:
    created = post(gw, "/responses", "wide", {"model": "model-b", "input": "on b"})
    rid = created.json()["id"]
    assert created.headers["x-mpr-target"] == "model-b"
    upstreams[1].reset()
    for who in ("team-a", "team-b"):
        assert_openai_error(httpx.get(f"{gw.base_url}/responses/{rid}", headers=auth(who), timeout=10), 404)
    assert upstreams[1].calls == []
    assert httpx.get(f"{gw.base_url}/responses/{rid}", headers=auth("wide"), timeout=10).status_code == 200


# -- a key's model scope on every hop -----------------------------------------------------------------


def test_a_fallback_outside_the_key_scope_is_skipped_and_said(gw: GatewayProcess, upstreams: tuple[RecordingUpstream, RecordingUpstream]) -> None:
    a, b = upstreams
    a.status = 503
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hello there"}]}
    for path, payload in (("/chat/completions", body), ("/responses", {"model": "gpt", "input": "hello"}), ("/moderations", {"model": "gpt", "input": "x"})):
        scoped = post(gw, path, "team-a", payload)
        assert scoped.status_code == 503, scoped.text
        assert scoped.headers["x-mpr-target"] == "gpt" and scoped.headers["x-mpr-fallbacks-skipped"] == "1"  # a count: no name
        assert scoped.headers["x-mpr-attempts"] == "2"  # the retry went to the same target
    assert len(a.calls) == 6 and b.calls == []  # never served by a target outside its scope
    wide = post(gw, "/chat/completions", "wide", body)
    assert wide.status_code == 200 and wide.headers["x-mpr-target"] == "model-b" and wide.headers["x-mpr-attempts"] == "3"
    assert "x-mpr-fallbacks-skipped" not in wide.headers
    assert len(b.calls) == 1


# -- cache and history do not cross tenants -----------------------------------------------------------


def test_a_cache_hit_is_reported_only_to_the_tenant_that_caused_it(gw: GatewayProcess) -> None:
    prompt = "whta is the captial of portugall and its largest rivver?"
    body = {"model": "gpt", "messages": [{"role": "user", "content": prompt}]}
    first = post(gw, "/chat/completions", "team-a", body).headers["x-mpr-refinement"]
    again = post(gw, "/chat/completions", "team-a", body).headers["x-mpr-refinement"]
    other = post(gw, "/chat/completions", "team-b", body).headers["x-mpr-refinement"]
    assert first.startswith("cleaner") and not first.endswith("cache=hit")
    assert again.endswith(";cache=hit")  # the cache works for its tenant
    assert other.startswith("cleaner") and not other.endswith("cache=hit")  # team-b learns nothing of team-a's traffic
    refine = httpx.post(gw.base_url + "/refine", json={"prompt": prompt}, headers=auth("team-b"), timeout=10).json()
    assert refine["cache"] == "hit"  # team-b's own entry now; /v1/refine uses the caller's partition too
    assert httpx.post(gw.base_url + "/refine", json={"prompt": prompt}, headers=auth("wide"), timeout=10).json()["cache"] == "miss"


def test_refine_endpoint_applies_the_key_policy(gw: GatewayProcess) -> None:
    prompt = "plese fix teh speling of this sentance"
    off = httpx.post(gw.base_url + "/refine", json={"prompt": prompt}, headers=auth("no-refine"), timeout=10).json()
    assert off["refinement"] == "off" and off["refined"] == prompt
    on = httpx.post(gw.base_url + "/refine", json={"prompt": prompt}, headers=auth("team-a"), timeout=10).json()
    assert on["refinement"].startswith("cleaner") and on["refined"] != prompt


def test_conversation_history_is_not_shared_between_tenants(gw: GatewayProcess) -> None:
    turns = [{"role": "user", "content": "tell me abuot the histroy of lisbon"}, {"role": "assistant", "content": "It is old."}]
    follow = {"role": "user", "content": "and porto?"}
    post(gw, "/chat/completions", "team-a", {"model": "gpt", "messages": turns[:1]})
    mine = post(gw, "/chat/completions", "team-a", {"model": "gpt", "messages": [*turns, follow]})
    theirs = post(gw, "/chat/completions", "team-b", {"model": "gpt", "messages": [*turns, follow]})
    assert mine.headers["x-mpr-history"] == "refined;turns=1;reapplied=1"
    assert theirs.headers["x-mpr-history"] == "refined;turns=1;reapplied=0"


# -- ops endpoints and relayed headers ---------------------------------------------------------------


def test_a_client_key_reads_only_its_own_part_of_the_ops_endpoints(gw: GatewayProcess, assert_openai_error: Callable[..., Any]) -> None:
    for who in ("team-a", "bare"):
        denied = httpx.get(gw.url + "/metrics", headers=auth(who), timeout=5)
        assert_openai_error(denied, 403, code="insufficient_permissions")
        assert "team-b" not in denied.text
    ready = httpx.get(gw.url + "/ready", headers=auth("team-a"), timeout=5)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "draining": False, "targets": {"gpt": {"up": True}}}
    full = httpx.get(gw.url + "/ready", headers=auth("admin"), timeout=5).json()
    assert set(full["targets"]) == {"gpt", "model-b"} and "config" in full
    metrics = httpx.get(gw.url + "/metrics", headers=auth("admin"), timeout=5)
    assert metrics.status_code == 200 and "mpr_requests_total" in metrics.text
    assert httpx.get(gw.url + "/ready", timeout=5).status_code == 401


def test_the_operator_account_headers_never_reach_a_client(gw: GatewayProcess) -> None:
    for who in ("team-a", "bare"):
        for path, body in (("/chat/completions", {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}),
                           ("/moderations", {"model": "gpt", "input": "x"})):
            headers = post(gw, path, who, body).headers
            assert "openai-organization" not in headers and "openai-project" not in headers
            assert headers["x-request-id"]
            shared = who == "bare"  # the account-wide rate limits: the operator's trust domain only
            assert ("x-ratelimit-remaining-requests" in headers) is shared


def test_a_target_refusing_the_operator_credential_is_the_gateway_502(
    gw: GatewayProcess, upstreams: tuple[RecordingUpstream, RecordingUpstream], assert_openai_error: Callable[..., Any]
) -> None:
    upstreams[0].status = 401  # e.g. "Incorrect API key provided: sk-op***89": the operator's, never the client's
    for path, body in (("/chat/completions", {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}),
                       ("/moderations", {"model": "gpt", "input": "x"})):
        r = post(gw, path, "team-a", body)
        assert assert_openai_error(r, 502, code="upstream_auth_failed")["message"].startswith("The target 'gpt' refused")
        assert "failing" not in r.text and "openai-organization" not in r.headers
    assert upstreams[1].calls == []  # not a reason to fail over either


def test_owners_are_shared_by_the_workers_of_one_server_without_redis(
    upstreams: tuple[RecordingUpstream, RecordingUpstream], tmp_path: Any
) -> None:
    """``serve --workers 2`` and no Redis: a response made on one worker is its owner's on the
    other (the server's shared directory), and still nobody else's."""
    from tests.support.gateway_proc import GatewayProcess as Process

    config = isolation_config(*upstreams, "redis://127.0.0.1:1")
    del config["state"]
    with Process(config, tmp_path, env={"OPERATOR_KEY": OPERATOR_CREDENTIAL}, workers=2) as gw:
        for _ in range(100):
            if 'mpr_server_workers{state="live"} 2.0' in httpx.get(gw.url + "/metrics", headers=auth("admin"), timeout=5).text:
                break
        rid = post(gw, "/responses", "team-a", {"model": "gpt", "input": "mine"}).json()["id"]
        mine = [httpx.get(f"{gw.base_url}/responses/{rid}", headers=auth("team-a"), timeout=5).status_code for _ in range(12)]
        theirs = [httpx.get(f"{gw.base_url}/responses/{rid}", headers=auth("team-b"), timeout=5).status_code for _ in range(12)]
        go_on = [post(gw, "/responses", "team-a", {"model": "gpt", "input": "more", "previous_response_id": rid}).status_code for _ in range(6)]
    assert set(mine) == {200} and set(theirs) == {404} and set(go_on) == {200}

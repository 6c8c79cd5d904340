"""Token limits across two gateway processes sharing one real redis-server: the tokens/min limit
and the budget are one pool for both (Lua reservations), plain and streamed, and /admin/usage
on either shows the other's traffic."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import GatewayProcess
from tests.support.redis_server import RedisServer
from tests.tenants.conftest import ADMIN, KEYS, away_from_minute_edge, tenant_routes

MESSAGES = [{"role": "user", "content": "What is the capital of France and how big is it?"}]
REDIS: list[RedisServer] = []  # the module's server (the fail-open test kills it)


@pytest.fixture(scope="module")
def pair(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[GatewayProcess]]:
    workdir = tmp_path_factory.mktemp("shared-limits")
    redis = RedisServer(workdir).start()
    state = {"redis_url": redis.url, "key_prefix": "tn:", "op_timeout_s": 0.5}
    config = tenant_routes(fake, workdir, state=state)
    gateways = [GatewayProcess(config, workdir, env={"ALPHA_KEY": KEYS["alpha"]}) for _ in range(2)]
    try:
        for gw in gateways:
            gw.launch()
        for gw in gateways:
            gw.wait_ready()
        REDIS[:] = [redis]
        yield gateways
    finally:
        for gw in gateways:
            gw.stop()
        redis.stop()


def _send(gw: GatewayProcess, key: str, stream: bool) -> httpx.Response:
    body: dict[str, Any] = {"model": "test-model", "messages": MESSAGES, "stream": stream}
    with httpx.stream("POST", gw.base_url + "/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=10) as answer:
        answer.read()
    return answer


@pytest.mark.parametrize(("name", "code", "stream"), [
    ("tpm-plain", "tokens_per_minute_exceeded", False),
    ("tpm-stream", "tokens_per_minute_exceeded", True),
    ("budget-plain", "budget_exceeded", False),
    ("budget-stream", "budget_exceeded", True),
])
def test_limits_are_shared_by_both_gateways(pair: list[GatewayProcess], name: str, code: str, stream: bool) -> None:
    away_from_minute_edge()
    accepted = 0
    for sent in range(20):
        answer = _send(pair[sent % 2], KEYS[name], stream)  # alternate: each process alone would allow about twice as many
        if answer.status_code == 429:
            assert answer.json()["error"]["code"] == code and int(answer.headers["retry-after"]) >= 1
            break
        assert answer.status_code == 200
        accepted += 1
        time.sleep(0.05)
    else:
        raise AssertionError("never refused")
    limit = 120 if name.startswith("tpm") else 100
    per_request = 7 + len(("echo: " + MESSAGES[0]["content"]).split())  # what the fake target reports
    assert 2 <= accepted <= limit // per_request + 1  # one shared counter (local ones: about twice as many)
    for gw in pair:  # both refuse now
        assert _send(gw, KEYS[name], stream).status_code == 429


def test_admin_usage_covers_both_gateways(pair: list[GatewayProcess]) -> None:
    _send(pair[0], KEYS["meter"], False)
    _send(pair[1], KEYS["meter"], True)
    time.sleep(1.3)  # the usage buckets are written once a second
    answer = httpx.get(pair[0].url + "/admin/usage", params={"window": "10m"}, headers={"authorization": f"Bearer {ADMIN}"}, timeout=5)
    body = answer.json()
    assert body["shared"] is True
    row = next(r for r in body["data"] if r["key"] == "meter")
    assert row["requests"] == 2 and row["prompt_tokens"] == 14


def test_limits_fail_open_while_redis_is_down(pair: list[GatewayProcess]) -> None:
    assert _send(pair[0], KEYS["budget-plain"], False).status_code == 429  # spent, in Redis
    REDIS[0].kill()
    answers = [_send(gw, KEYS["budget-plain"], False) for gw in pair for _ in range(2)]
    assert [a.status_code for a in answers] == [200] * 4  # each process counts on its own meanwhile
    for gw in pair:
        logs = gw.logs()
        assert "shared state unreachable" in logs
        assert not any(raw in logs for raw in KEYS.values())  # no raw key in any log line

"""``GET /v1/models`` (OpenAI list shape, validated against the spec), ``/health`` and ``/ready``
(each endpoint up/down with its last probe; 503 when no target is reachable)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.gateway.conftest import OpenAPISchemas, dead_url, start_gateways, stop_gateways, wait_until
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes


@pytest.fixture(scope="module")
def gateways(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[GatewayProcess]]:
    live = routes(fake.base_url, fake.base_url, server={"probe_interval_s": 0.2})
    live["targets"].append({"name": "second-model", "endpoints": [fake.base_url, fake.base_url.replace("127.0.0.1", "localhost")]})
    dead = routes(dead_url(), dead_url(), server={"probe_interval_s": 0.2})
    gws = start_gateways(tmp_path_factory, live, dead)
    yield gws
    stop_gateways(gws)


@pytest.fixture(scope="module")
def gateway(gateways: list[GatewayProcess]) -> GatewayProcess:
    return gateways[0]


@pytest.fixture(scope="module")
def unreachable(gateways: list[GatewayProcess]) -> GatewayProcess:
    return gateways[1]


def test_models_list_has_every_target_in_openai_shape(gateway: GatewayProcess, openapi: OpenAPISchemas) -> None:
    response = httpx.get(gateway.base_url + "/models")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    openapi.validate(body, "ListModelsResponse")
    assert [m["id"] for m in body["data"]] == ["test-model", "second-model"]
    for model in body["data"]:
        openapi.validate(model, "Model")
        assert model["object"] == "model"
        assert isinstance(model["created"], int) and model["created"] > 1_600_000_000


def test_sdk_lists_and_retrieves_models(gateway: GatewayProcess, openapi: OpenAPISchemas) -> None:
    with openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0) as client:
        assert [m.id for m in client.models.list()] == ["test-model", "second-model"]
        model = client.models.retrieve("second-model")
        assert model.id == "second-model" and model.object == "model"
        with pytest.raises(openai.NotFoundError) as info:
            client.models.retrieve("gpt-unknown")
        assert info.value.code == "model_not_found"
    openapi.validate(httpx.get(gateway.base_url + "/models/test-model").json(), "Model")


def test_models_never_lists_upstream_names(gateway: GatewayProcess) -> None:
    ids = {m["id"] for m in httpx.get(gateway.base_url + "/models").json()["data"]}
    assert "target-model" not in ids and "cleaner" not in ids


def test_health_is_alive(gateway: GatewayProcess, unreachable: GatewayProcess) -> None:
    for gw in (gateway, unreachable):
        response = httpx.get(gw.url + "/health")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"


def ready(gw: GatewayProcess) -> httpx.Response:
    return httpx.get(gw.url + "/ready", timeout=5)


def probed(body: dict[str, Any]) -> bool:
    endpoints = [e for group in ("targets", "adapters") for pool in body[group].values() for e in pool]
    return all(e["last_probe_age_s"] is not None for e in endpoints)


def test_ready_lists_every_endpoint_with_its_last_probe(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    wait_until(lambda: probed(ready(gateway).json()))
    response = ready(gateway)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["targets"]) == {"test-model", "second-model"}
    assert [e["url"] for e in body["targets"]["second-model"]] == [fake.base_url, fake.base_url.replace("127.0.0.1", "localhost")]
    assert set(body["adapters"]) == {"cleaner", "describer", "paraphraser"}
    for group in ("targets", "adapters"):
        for endpoints in body[group].values():
            for endpoint in endpoints:
                assert endpoint["up"] is True
                assert endpoint["last_probe_ms"] >= 0
                assert 0 <= endpoint["last_probe_age_s"] < 5


def test_ready_is_503_when_no_target_is_reachable(unreachable: GatewayProcess) -> None:
    wait_until(lambda: ready(unreachable).status_code == 503)
    body = ready(unreachable).json()
    assert body["status"] == "unready"
    (endpoint,) = body["targets"]["test-model"]
    assert endpoint["up"] is False and endpoint["last_error"]
    assert all(not e["up"] for pool in body["adapters"].values() for e in pool)


def test_ready_follows_the_target_going_down_and_up(gateway: GatewayProcess, fake: FakeOpenAI) -> None:
    wait_until(lambda: ready(gateway).status_code == 200)
    fake.down = True  # /v1/models answers 503: every endpoint on this fake fails its probe
    wait_until(lambda: ready(gateway).status_code == 503, timeout=5)
    body = ready(gateway).json()
    assert all(not e["up"] for e in body["targets"]["test-model"])
    fake.down = False
    wait_until(lambda: ready(gateway).status_code == 200, timeout=5)
    assert all(e["up"] for e in ready(gateway).json()["targets"]["test-model"])


def test_models_and_health_ignore_post(gateway: GatewayProcess, assert_openai_error: Callable[..., Any]) -> None:
    assert_openai_error(httpx.post(gateway.base_url + "/models", json={}), 405)

"""Conformance with the docs: ``MPR_API_KEYS`` protects the gateway by default, ``/metrics`` has one
charset, the chat route's own errors carry the ``x-mpr-*`` headers, and a target's error bodies
reach the client in OpenAI's shape."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from tests.gateway.conftest import CLEAN, start_gateway
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes

KEY = "sk-from-the-environment"
MAX_BODY = 2048
USER = [{"role": "user", "content": CLEAN}]
CheckError = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """No key in routes.yaml: only ``MPR_API_KEYS`` in the environment (the default ``api_keys_env``)."""
    gw = start_gateway(tmp_path_factory, routes(fake.base_url, server={"max_body_bytes": MAX_BODY}), env={"MPR_API_KEYS": KEY})
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {KEY}"}, timeout=10) as c:
        yield c


# -- MPR_API_KEYS --------------------------------------------------------------------------------


def test_mpr_api_keys_in_the_environment_protect_the_gateway(gateway: GatewayProcess, http: httpx.Client, assert_openai_error: CheckError) -> None:
    body = {"model": "test-model", "messages": USER}
    assert_openai_error(httpx.post(gateway.base_url + "/chat/completions", json=body, timeout=5), 401, code="invalid_api_key")
    assert_openai_error(httpx.get(gateway.base_url + "/models", timeout=5), 401, code="invalid_api_key")
    assert http.post("/v1/chat/completions", json=body).status_code == 200


# -- /metrics ------------------------------------------------------------------------------------


def test_metrics_content_type_has_exactly_one_charset(gateway: GatewayProcess) -> None:
    response = httpx.get(gateway.url + "/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers.get_list("content-type") == ["text/plain; version=1.0.0; charset=utf-8"]
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST


# -- x-mpr-* headers on the chat route's own errors ------------------------------------------------


def assert_off(response: httpx.Response) -> None:
    assert response.headers["x-mpr-refinement"] == "off", response.headers
    assert response.headers["x-mpr-refine-ms"] == "0.0"


def test_bad_json_400_carries_refinement_headers(http: httpx.Client, assert_openai_error: CheckError) -> None:
    response = http.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert_openai_error(response, 400)
    assert_off(response)


def test_401_carries_refinement_headers(gateway: GatewayProcess, assert_openai_error: CheckError) -> None:
    response = httpx.post(gateway.base_url + "/chat/completions", json={"model": "test-model", "messages": USER}, timeout=5)
    assert_openai_error(response, 401, code="invalid_api_key")
    assert_off(response)


def test_unknown_model_404_carries_refinement_headers(http: httpx.Client, assert_openai_error: CheckError) -> None:
    response = http.post("/v1/chat/completions", json={"model": "no-such-model", "messages": USER})
    assert_openai_error(response, 404, code="model_not_found")
    assert_off(response)


def test_413_carries_refinement_headers(http: httpx.Client, fake: FakeOpenAI, assert_openai_error: CheckError) -> None:
    response = http.post("/v1/chat/completions", json={"model": "test-model", "messages": [{"role": "user", "content": "x" * MAX_BODY}]})
    assert_openai_error(response, 413, code="request_too_large")
    assert_off(response)
    assert fake.requests == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_405_on_the_chat_route_carries_refinement_headers(http: httpx.Client, assert_openai_error: CheckError, method: str) -> None:
    response = http.request(method, "/v1/chat/completions")
    assert_openai_error(response, 405, code="method_not_allowed")
    assert_off(response)


def test_other_routes_do_not_get_refinement_headers(gateway: GatewayProcess, http: httpx.Client) -> None:
    for response in (
        httpx.get(gateway.url + "/health", timeout=5),
        httpx.get(gateway.url + "/metrics", timeout=5),
        http.get("/nowhere"),
        http.get("/v1/models/no-such-model"),
        httpx.get(gateway.base_url + "/models", timeout=5),  # 401
    ):
        assert "x-mpr-refinement" not in response.headers, (response.url, response.headers)
        assert "x-mpr-refine-ms" not in response.headers


# -- a target's error bodies in OpenAI's shape ---------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_vllm_error_body_is_normalised(http: httpx.Client, fake: FakeOpenAI, assert_openai_error: CheckError, stream: bool) -> None:
    vllm = {"object": "error", "message": "This model's maximum context length is 4096 tokens.", "type": "BadRequestError", "param": None, "code": 400}
    fake.behave("target-model", Behaviour(mode="status", status=400, body=vllm, headers={"retry-after": "3"}))
    response = http.post("/v1/chat/completions", json={"model": "test-model", "messages": USER, "stream": stream})
    error = assert_openai_error(response, 400, code="400", error_type="BadRequestError")
    assert error["message"] == vllm["message"]
    assert response.headers["retry-after"] == "3"
    assert response.headers["x-mpr-refinement"] == "skipped;reason=clean"  # refinement ran: its value


@pytest.mark.parametrize("stream", [False, True])
def test_html_error_page_is_normalised(http: httpx.Client, fake: FakeOpenAI, assert_openai_error: CheckError, stream: bool) -> None:
    page = b"<html><body><h1>503 Service Temporarily Unavailable</h1><hr><center>nginx</center></body></html>"
    fake.behave("target-model", Behaviour(mode="status", status=503, body=page, headers={"content-type": "text/html", "retry-after": "5"}))
    response = http.post("/v1/chat/completions", json={"model": "test-model", "messages": USER, "stream": stream})
    error = assert_openai_error(response, 503, error_type="server_error")
    assert error["message"] == "503 Service Temporarily Unavailable nginx"
    assert response.headers["retry-after"] == "5"


def test_plain_text_and_empty_error_bodies_are_normalised(http: httpx.Client, fake: FakeOpenAI, assert_openai_error: CheckError) -> None:
    fake.behave("target-model", Behaviour(mode="status", status=500, body=b"Internal Server Error\n", headers={"content-type": "text/plain"}))
    response = http.post("/v1/chat/completions", json={"model": "test-model", "messages": USER})
    assert assert_openai_error(response, 500, error_type="server_error")["message"] == "Internal Server Error"
    fake.behave("target-model", Behaviour(mode="status", status=502, body=b""))
    response = http.post("/v1/chat/completions", json={"model": "test-model", "messages": USER})
    assert assert_openai_error(response, 502)["message"] == "The target answered HTTP 502 (Bad Gateway)."


def test_openai_shaped_target_error_is_unchanged(http: httpx.Client, fake: FakeOpenAI) -> None:
    raw = b'{"error": {"message": "Rate limit", "type": "requests", "param": null, "code": "rate_limit_exceeded"}, "vendor": 1}'
    fake.behave("target-model", Behaviour(mode="status", status=429, body=raw, headers={"content-type": "application/json", "retry-after": "7"}))
    response = http.post("/v1/chat/completions", json={"model": "test-model", "messages": USER})
    assert response.status_code == 429
    assert response.content == raw
    assert json.loads(response.content)["vendor"] == 1
    assert response.headers["retry-after"] == "7"

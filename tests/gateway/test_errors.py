"""Errors in OpenAI's shape, through the SDK and raw HTTP: 400, 401, 404, 413, 502, 504, upstream
429/503 passed through with their headers; the client key never goes upstream."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.gateway.conftest import CLEAN, OpenAPISchemas, dead_url, start_gateway, wait_until
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import GatewayProcess, routes

KEY = "sk-client-secret-123"
UPSTREAM_KEY = "sk-upstream-456"
MAX_BODY = 4096
TARGET_TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = routes(fake.base_url, server={"api_keys": [KEY, "sk-second-key"], "max_body_bytes": MAX_BODY})
    config["targets"][0].update(timeout_s=TARGET_TIMEOUT_S, api_key_env="MPR_TEST_UPSTREAM_KEY")
    config["targets"].append({"name": "down-model", "endpoints": [dead_url()], "cooldown_s": 0})
    gw = start_gateway(tmp_path_factory, config, env={"MPR_TEST_UPSTREAM_KEY": UPSTREAM_KEY})
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key=KEY, max_retries=0, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, headers={"authorization": f"Bearer {KEY}"}, timeout=10) as c:
        yield c


CheckError = Callable[..., dict[str, Any]]
USER = [{"role": "user", "content": CLEAN}]


# -- 400 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b"{not json", None),
        (b"", None),
        (b"[1, 2]", None),
        (b'{"model": "test-model"}', "messages"),
        (b'{"model": "test-model", "messages": []}', "messages"),
        (b'{"model": "test-model", "messages": "hi"}', "messages"),
        (b'{"model": "test-model", "messages": [{"role": "wizard", "content": "x"}]}', "messages[0].role"),
        (b'{"model": "test-model", "messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}', "stream"),
    ],
    ids=["bad_json", "empty", "not_object", "no_messages", "empty_messages", "messages_string", "bad_role", "bad_content", "no_model", "bad_stream"],
)
def test_bad_requests_are_400(http: httpx.Client, fake: FakeOpenAI, assert_openai_error: CheckError, content: bytes, param: str | None) -> None:
    response = http.post("/chat/completions", content=content, headers={"content-type": "application/json"})
    error = assert_openai_error(response, 400, error_type="invalid_request_error")
    if param is not None:
        assert error["param"] == param
    assert fake.requests == []


def test_sdk_raises_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="test-model", messages=[])
    assert info.value.status_code == 400
    assert info.value.param == "messages"


# -- 401 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key", "Bearer", f"Basic {KEY}", KEY, f"Bearer {KEY}x"],
    ids=["missing", "wrong", "empty", "basic", "no_scheme", "suffix"],
)
def test_missing_or_wrong_api_key_is_401(
    gateway: GatewayProcess, fake: FakeOpenAI, assert_openai_error: CheckError, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    for method, path, body in (("POST", "/chat/completions", {"model": "test-model", "messages": USER}), ("GET", "/models", None), ("POST", "/refine", {"prompt": "x"})):
        response = httpx.request(method, gateway.base_url + path, json=body, headers=headers, timeout=5)
        assert_openai_error(response, 401, code="invalid_api_key")
    assert fake.requests == []


def test_sdk_with_a_wrong_key_raises_authentication_error(gateway: GatewayProcess) -> None:
    with openai.OpenAI(base_url=gateway.base_url, api_key="nope", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as info:
            bad.chat.completions.create(model="test-model", messages=USER)  # type: ignore[arg-type]
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"


def test_every_configured_key_is_accepted(gateway: GatewayProcess) -> None:
    for key in (KEY, "sk-second-key"):
        response = httpx.post(
            gateway.base_url + "/chat/completions",
            json={"model": "test-model", "messages": USER},
            headers={"authorization": f"Bearer {key}"},
            timeout=5,
        )
        assert response.status_code == 200


def test_health_needs_no_key(gateway: GatewayProcess) -> None:
    assert httpx.get(gateway.url + "/health", timeout=5).status_code == 200


# -- the client key never goes upstream ------------------------------------------------------------


def test_client_key_is_never_forwarded(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    client.chat.completions.create(model="test-model", messages=USER)  # type: ignore[arg-type]
    client.chat.completions.create(model="test-model", messages=USER, stream=True).close()  # type: ignore[arg-type]
    assert len(fake.requests) == 2
    for call in fake.requests:
        headers = {k.lower(): v for k, v in call.headers.items()}
        assert headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"
        assert KEY not in " ".join(headers.values())
        assert KEY not in str(call.body)


# -- 404 -----------------------------------------------------------------------------------------


def test_unknown_model_is_404_model_not_found(client: openai.OpenAI, http: httpx.Client, fake: FakeOpenAI, assert_openai_error: CheckError) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-nonexistent", messages=USER)  # type: ignore[arg-type]
    assert info.value.code == "model_not_found"
    error = assert_openai_error(http.post("/chat/completions", json={"model": "gpt-nonexistent", "messages": USER}), 404, code="model_not_found")
    assert error["param"] == "model"
    assert "gpt-nonexistent" in error["message"]
    assert fake.requests == []


def test_unknown_route_and_method(http: httpx.Client, assert_openai_error: CheckError) -> None:
    assert_openai_error(http.get("/nowhere"), 404)
    assert_openai_error(http.get("/chat/completions"), 405)


# -- 413 -----------------------------------------------------------------------------------------


def test_body_over_the_limit_is_413(http: httpx.Client, fake: FakeOpenAI, assert_openai_error: CheckError) -> None:
    big = [{"role": "user", "content": "word " * MAX_BODY}]
    assert_openai_error(http.post("/chat/completions", json={"model": "test-model", "messages": big}), 413, code="request_too_large")
    assert fake.requests == []


def test_sdk_sees_413(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="test-model", messages=[{"role": "user", "content": "x" * (MAX_BODY + 10)}])
    assert info.value.status_code == 413


# -- target trouble ------------------------------------------------------------------------------


def test_target_unreachable_is_502(client: openai.OpenAI, http: httpx.Client, assert_openai_error: CheckError) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="down-model", messages=USER)  # type: ignore[arg-type]
    assert info.value.status_code == 502
    response = http.post("/chat/completions", json={"model": "down-model", "messages": USER})
    assert_openai_error(response, 502, code="upstream_unreachable")
    assert "x-mpr-refinement" in response.headers and "x-mpr-refine-ms" in response.headers


def test_target_unreachable_while_streaming_is_502(http: httpx.Client, assert_openai_error: CheckError) -> None:
    response = http.post("/chat/completions", json={"model": "down-model", "messages": USER, "stream": True})
    assert_openai_error(response, 502, code="upstream_unreachable")


@pytest.mark.parametrize("stream", [False, True])
def test_target_timeout_is_504(http: httpx.Client, fake: FakeOpenAI, assert_openai_error: CheckError, stream: bool) -> None:
    fake.behave("target-model", Behaviour(mode="hang"))
    response = http.post("/chat/completions", json={"model": "test-model", "messages": USER, "stream": stream})
    assert_openai_error(response, 504, code="upstream_timeout")
    assert "x-mpr-refinement" in response.headers
    assert response.elapsed.total_seconds() < TARGET_TIMEOUT_S + 2


def test_target_stalling_mid_stream_ends_with_an_error_event(http: httpx.Client, fake: FakeOpenAI, openapi: OpenAPISchemas) -> None:
    fake.behave("target-model", Behaviour(chunks=4, chunk_delay_s=TARGET_TIMEOUT_S * 4))
    body = {"model": "test-model", "stream": True, "messages": [{"role": "user", "content": "one two three four five six seven eight"}]}
    with http.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200
        raw = response.read().decode()
    events = [b[len("data: ") :] for b in raw.split("\n\n") if b.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[0])["object"] == "chat.completion.chunk"
    openapi.validate(json.loads(events[-2]), "ErrorResponse")
    wait_until(lambda: "target-model" in fake.cancelled, timeout=3)


def test_sdk_sees_504(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.behave("target-model", Behaviour(mode="hang"))
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="test-model", messages=USER)  # type: ignore[arg-type]
    assert info.value.status_code == 504


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_429_passes_through_with_retry_after(client: openai.OpenAI, http: httpx.Client, fake: FakeOpenAI, stream: bool) -> None:
    body = {"error": {"message": "Rate limit reached for requests", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}
    headers = {"retry-after": "7", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "7s"}
    fake.behave("target-model", Behaviour(mode="status", status=429, body=body, headers=headers))
    response = http.post("/chat/completions", json={"model": "test-model", "messages": USER, "stream": stream})
    assert response.status_code == 429
    assert response.json() == body
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.headers["x-ratelimit-reset-requests"] == "7s"
    assert "x-mpr-refinement" in response.headers and "x-mpr-refine-ms" in response.headers
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="test-model", messages=USER, stream=stream)  # type: ignore[call-overload]
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_503_passes_through(client: openai.OpenAI, http: httpx.Client, fake: FakeOpenAI, stream: bool) -> None:
    body = {"error": {"message": "The engine is currently overloaded", "type": "server_error", "param": None, "code": None}}
    fake.behave("target-model", Behaviour(mode="status", status=503, body=body, headers={"retry-after": "2", "x-upstream": "vllm-3"}))
    response = http.post("/chat/completions", json={"model": "test-model", "messages": USER, "stream": stream})
    assert response.status_code == 503
    assert response.json() == body
    assert response.headers["retry-after"] == "2"
    assert response.headers["x-upstream"] == "vllm-3"
    assert "x-mpr-refinement" in response.headers
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="test-model", messages=USER)  # type: ignore[arg-type]
    assert info.value.status_code == 503
    assert len(fake.requests_for("target-model")) == 2  # an answered 503 is not retried


def test_upstream_400_passes_through(http: httpx.Client, fake: FakeOpenAI) -> None:
    body = {"error": {"message": "max_tokens is too large", "type": "BadRequestError", "param": "max_tokens", "code": 400}}
    fake.behave("target-model", Behaviour(mode="status", status=400, body=body))
    response = http.post("/chat/completions", json={"model": "test-model", "messages": USER, "max_tokens": 10**6})
    assert response.status_code == 400
    assert response.json() == body


def test_target_answering_html_is_502(http: httpx.Client, fake: FakeOpenAI, assert_openai_error: CheckError) -> None:
    fake.behave("target-model", Behaviour(mode="wrong_type"))
    for stream in (False, True):
        response = http.post("/chat/completions", json={"model": "test-model", "messages": USER, "stream": stream})
        assert_openai_error(response, 502)


def test_target_dropping_the_connection_is_502(http: httpx.Client, fake: FakeOpenAI, assert_openai_error: CheckError) -> None:
    fake.behave("target-model", Behaviour(mode="reset"))
    response = http.post("/chat/completions", json={"model": "test-model", "messages": USER})
    assert_openai_error(response, 502, code="upstream_unreachable")

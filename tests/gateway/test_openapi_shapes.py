"""Bodies the gateway builds itself, checked against ``../shared/reference/openai-openapi.yaml``.

The HTTP-level checks live next to each endpoint (``assert_openai_error`` validates every error
body of test_errors / test_refine_api, test_models_ready validates ``/v1/models``, test_streaming
the SSE error event). Here: the validator is not vacuous, and every error class renders the shape.
"""

from __future__ import annotations

import json

import pytest

from gateway import errors
from tests.gateway.conftest import OpenAPISchemas


def test_the_validator_resolves_refs_and_rejects_wrong_shapes(openapi: OpenAPISchemas) -> None:
    good = {"error": {"message": "m", "type": "invalid_request_error", "param": None, "code": None}}
    assert openapi.is_valid(good, "ErrorResponse")
    assert not openapi.is_valid({"error": {"message": "m", "type": "t"}}, "ErrorResponse")  # param/code required
    assert not openapi.is_valid({"error": {"message": 5, "type": "t", "param": None, "code": None}}, "ErrorResponse")
    assert not openapi.is_valid({"detail": "Not Found"}, "ErrorResponse")  # a framework's default 404
    model = {"id": "m", "object": "model", "created": 1, "owned_by": "o"}
    assert openapi.is_valid({"object": "list", "data": [model]}, "ListModelsResponse")
    assert not openapi.is_valid({"object": "list", "data": [{**model, "object": "engine"}]}, "ListModelsResponse")
    assert not openapi.is_valid({"object": "list", "data": [{"id": "m", "object": "model"}]}, "ListModelsResponse")
    assert not openapi.is_valid({"data": []}, "ListModelsResponse")


def _error_classes() -> list[type[errors.GatewayError]]:
    found, queue = [], [errors.GatewayError]
    while queue:
        cls = queue.pop()
        found.append(cls)
        queue.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_class_renders_the_openai_shape(openapi: OpenAPISchemas, cls: type[errors.GatewayError]) -> None:
    exc = cls("something went wrong", param="messages[0].content")
    body = json.loads(errors.error_body(exc))
    openapi.validate(body, "ErrorResponse")
    assert body["error"]["message"] == "something went wrong"
    assert body["error"]["param"] == "messages[0].content"
    assert 400 <= exc.status_code < 600
    assert isinstance(body["error"]["type"], str) and body["error"]["type"]


def test_sse_error_event_is_an_error_then_done(openapi: OpenAPISchemas) -> None:
    raw = errors.sse_error_event(errors.UpstreamUnreachable("the target stream broke")).decode()
    events = [block for block in raw.split("\n\n") if block]
    assert events[-1] == "data: [DONE]"
    assert events[0].startswith("data: ")
    openapi.validate(json.loads(events[0][len("data: ") :]), "ErrorResponse")

"""Pure decisions of the completions and pass-through endpoints and the fast path's table."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.config.models import Role
from gateway.endpoints.completions import prompt_text, without_describer
from gateway.endpoints.fast import is_reserved, reserved_paths
from gateway.endpoints.passthrough import is_json_media_type, target_path
from gateway.endpoints.relay import unserved_error
from gateway.errors import InvalidRequest, MethodNotAllowed, NotFound, error_body
from gateway.refinement.controls import RefineControls


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("hello", ("hello", "")),
        ("  ", (None, "no_text")),
        (None, (None, "no_text")),
        (["a", "b"], (None, "unsupported_prompt")),
        ([], (None, "unsupported_prompt")),
        ([1, 2], (None, "unsupported_prompt")),
        ([[1, 2], [3]], (None, "unsupported_prompt")),
    ],
)
def test_prompt_text(prompt: Any, expected: tuple[str | None, str]) -> None:
    assert prompt_text(prompt) == expected


@pytest.mark.parametrize("prompt", [5, True, {"a": 1}, ["a", 1], [[]], [[1, "x"]], [True]])
def test_prompt_text_rejects_other_shapes(prompt: Any) -> None:
    with pytest.raises(InvalidRequest) as info:
        prompt_text(prompt)
    assert info.value.param == "prompt"


def test_without_describer_drops_only_the_describer() -> None:
    controls = RefineControls(mode="shadow")
    all_three = (Role.CLEANER, Role.DESCRIBER, Role.PARAPHRASER)
    assert without_describer(controls, all_three) == RefineControls(stages=(Role.CLEANER, Role.PARAPHRASER), mode="shadow")
    assert without_describer(controls, (Role.CLEANER,)) is controls
    assert without_describer(controls, (Role.DESCRIBER,)).stages == ()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/moderations", "/moderations"),
        ("/v1/images/generations", "/images/generations"),
        ("/v1/audio/speech", "/audio/speech"),
        ("/v1/x.y", "/x.y"),
        ("/v1/a/../b", None),
        ("/v1/a//b", None),
        ("/v1/", None),
        ("/v1/a%2Fb", None),
        ("/v2/moderations", None),
    ],
)
def test_target_path(path: str, expected: str | None) -> None:
    assert target_path(path) == expected


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [(None, True), ("application/json", True), ("Application/JSON; charset=utf-8", True), ("application/merge-patch+json", True),
     ("multipart/form-data; boundary=x", False), ("text/plain", False)],
)  # fmt: skip
def test_is_json_media_type(content_type: str | None, ok: bool) -> None:
    assert is_json_media_type(content_type) is ok


def test_reserved_paths_keep_litestar_routes_from_the_fallback() -> None:
    reserved = reserved_paths(["/v1/refine", "/v1/models", "/v1/models/{model_id:path}", "/v1/responses/{id:str}/cancel", "/health"])
    assert is_reserved("/v1/refine", reserved) and is_reserved("/v1/models/", reserved)
    assert is_reserved("/v1/models/abc", reserved) and is_reserved("/v1/responses/r1/cancel", reserved)
    assert not is_reserved("/v1/moderations", reserved) and not is_reserved("/v1/responsesx", reserved)


def test_unserved_error_only_for_a_404_or_405_that_is_no_openai_error() -> None:
    assert isinstance(unserved_error(404, b"404: Not Found"), NotFound)
    assert isinstance(unserved_error(405, b'{"detail": "Method Not Allowed"}'), MethodNotAllowed)
    openai_404 = json.dumps({"error": {"message": "no such model", "type": "invalid_request_error", "param": None, "code": None}})
    assert unserved_error(404, openai_404.encode()) is None  # the target's own answer: relayed
    assert unserved_error(400, b"bad") is None and unserved_error(200, b"{}") is None
    error = unserved_error(404, b"")
    assert error is not None and json.loads(error_body(error))["error"]["code"] == "not_found"

from __future__ import annotations

import pytest

from gateway.config.models import Role
from gateway.errors import InvalidRequest
from gateway.refinement.controls import RefineControls, parse_controls, resolve_mode


def headers(**values: str):  # type: ignore[no-untyped-def]
    return {k.replace("_", "-"): v for k, v in values.items()}.get


def test_defaults() -> None:
    assert parse_controls(headers(), None) == RefineControls()


def test_header_off_and_stages() -> None:
    controls = parse_controls(headers(x_mpr_refine="off", x_mpr_stages="cleaner, paraphraser"), None)
    assert controls.refine is False
    assert controls.stages == (Role.CLEANER, Role.PARAPHRASER)


def test_body_wins_over_headers() -> None:
    controls = parse_controls(headers(x_mpr_refine="off"), {"refine": True, "stages": ["describer"], "return_details": True})
    assert controls == RefineControls(True, (Role.DESCRIBER,), True)


@pytest.mark.parametrize(
    ("hdrs", "body", "param"),
    [
        ({"x-mpr-refine": "maybe"}, None, "x-mpr-refine"),
        ({"x-mpr-stages": "cleaner,poet"}, None, "x-mpr-stages"),
        ({}, "yes", "mpr"),
        ({}, {"refine": "sure"}, "mpr.refine"),
        ({}, {"stages": "cleaner"}, None),
        ({}, {"stages": 3}, "mpr.stages"),
        ({}, {"bogus": 1}, "mpr"),
    ],
)
def test_bad_controls(hdrs: dict[str, str], body: object, param: str | None) -> None:
    if param is None:
        assert parse_controls(hdrs.get, body).stages == (Role.CLEANER,)
        return
    with pytest.raises(InvalidRequest) as info:
        parse_controls(hdrs.get, body)
    assert info.value.param == param


# -- shadow mode ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "mode"), [("shadow", "shadow"), (" Apply ", "apply"), ("SHADOW", "shadow")])
def test_mode_header(value: str, mode: str) -> None:
    assert parse_controls(headers(x_mpr_mode=value), None).mode == mode


def test_mode_defaults_to_none_and_body_wins() -> None:
    assert parse_controls(headers(), None).mode is None
    assert parse_controls(headers(x_mpr_mode="shadow"), {"mode": "apply"}).mode == "apply"
    assert parse_controls(headers(x_mpr_mode="apply"), {"mode": "shadow"}).mode == "shadow"


@pytest.mark.parametrize(
    ("hdrs", "body", "param"),
    [
        ({"x-mpr-mode": "dry-run"}, None, "x-mpr-mode"),
        ({"x-mpr-mode": ""}, None, "x-mpr-mode"),
        ({}, {"mode": "sometimes"}, "mpr.mode"),
        ({}, {"mode": True}, "mpr.mode"),
        ({"x-mpr-mode": "shadow"}, {"mode": None}, "mpr.mode"),
    ],
)
def test_bad_mode(hdrs: dict[str, str], body: object, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_controls(hdrs.get, body)
    assert info.value.param == param
    assert "apply" in info.value.message and "shadow" in info.value.message


@pytest.mark.parametrize(
    ("requested", "target", "default", "expected"),
    [
        (None, None, "apply", "apply"),
        (None, None, "shadow", "shadow"),
        (None, "shadow", "apply", "shadow"),
        (None, "apply", "shadow", "apply"),
        ("apply", "shadow", "shadow", "apply"),
        ("shadow", "apply", "apply", "shadow"),
    ],
)
def test_resolve_mode_request_then_target_then_config(requested: str | None, target: str | None, default: str, expected: str) -> None:
    assert resolve_mode(requested, target, default) == expected  # type: ignore[arg-type]


def test_cache_is_on_by_default_and_turned_off_by_header_or_body() -> None:
    assert parse_controls(headers(), None).cache is True
    assert parse_controls(headers(x_mpr_cache="off"), None).cache is False
    assert parse_controls(headers(), {"cache": False}).cache is False
    assert parse_controls(headers(x_mpr_cache="off"), {"cache": True}).cache is True  # the body wins


@pytest.mark.parametrize(("hdrs", "body", "param"), [({"x-mpr-cache": "later"}, None, "x-mpr-cache"), ({}, {"cache": "maybe"}, "mpr.cache"), ({}, {"cache": 2}, "mpr.cache")])
def test_bad_cache_control(hdrs: dict[str, str], body: object, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_controls(hdrs.get, body)
    assert info.value.param == param

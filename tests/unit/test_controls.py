from __future__ import annotations

import pytest

from gateway.config.models import Role
from gateway.errors import InvalidRequest
from gateway.refinement.controls import RefineControls, parse_controls


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

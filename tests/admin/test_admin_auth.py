"""Admin keys (``server.admin_keys`` + ``MPR_ADMIN_KEY``) and the reload route's answers."""

from __future__ import annotations

import msgspec
import pytest

from gateway.admin.auth import AdminAuth, AdminDisabled, admin_keys
from gateway.admin.routes import outcome_response
from gateway.config import parse_config
from gateway.config.source import ConfigSource
from gateway.errors import AuthenticationFailed, ServiceUnavailable
from gateway.reload.reloader import ReloadOutcome


def _config(**server: object):  # type: ignore[no-untyped-def]
    tree = {"server": server, "targets": [{"name": "m", "endpoints": ["http://127.0.0.1:1/v1"]}]}
    return parse_config(tree, base_dir=__import__("pathlib").Path("."), env={})


def test_admin_keys_come_from_the_config_and_the_env_and_never_from_client_keys() -> None:
    config = _config(admin_keys=["a1", " "], api_keys=["client"])
    assert admin_keys(config, {"MPR_ADMIN_KEY": "e1, e2"}) == {"a1", "e1", "e2"}
    assert admin_keys(_config(api_keys=["client"]), {"MPR_API_KEYS": "c2"}) == frozenset()


def test_without_an_admin_key_the_route_is_off_403_and_a_wrong_key_is_401() -> None:
    with pytest.raises(AdminDisabled) as off:
        AdminAuth(frozenset()).check("Bearer anything")
    assert off.value.status_code == 403
    auth = AdminAuth(frozenset({"secret"}))
    for header in (None, "Bearer nope", "Basic secret"):
        with pytest.raises(AuthenticationFailed):
            auth.check(header)
    auth.check("Bearer secret")


def test_a_refused_reload_answers_400_in_openai_shape_with_every_error() -> None:
    outcome = ReloadOutcome("refused", "abc", errors=[("server.port", "bad"), ("<yaml>", "broken")])
    response = outcome_response(outcome)
    body = msgspec.json.decode(response.content)
    assert response.status_code == 400
    assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["code"] == "invalid_config"
    assert "server.port: bad" in body["error"]["message"] and "<yaml>: broken" in body["error"]["message"]
    assert body["errors"] == [{"path": "server.port", "message": "bad"}, {"path": "<yaml>", "message": "broken"}]
    assert body["previous"] == "abc"


def test_a_reload_answers_200_with_the_new_hash_and_503_while_draining() -> None:
    source = ConfigSource("0123456789ab", 1.0, "/etc/routes.yaml")
    ok = outcome_response(ReloadOutcome("signalled", "abc", source, restart_required=["server.port"]))
    body = msgspec.json.decode(ok.content)
    assert ok.status_code == 200
    assert body == {"status": "signalled", "previous": "abc", "config": source.as_dict(), "restart_required": ["server.port"]}
    with pytest.raises(ServiceUnavailable):
        outcome_response(ReloadOutcome("draining", "abc", source))

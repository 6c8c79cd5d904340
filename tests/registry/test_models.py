"""The pure pieces of worker registration: announcement validation, TTLs, diffs, register keys."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from gateway.config import parse_config
from gateway.errors import AuthenticationFailed, InvalidRequest
from gateway.registry.auth import RegisterAuth, RegistrationDisabled, check_reader, register_keys
from gateway.registry.models import changes, decode_records, parse_announcement, record_of, tombstone, ttl_for

GOOD = {"node": "gpu-1", "url": "http://10.0.0.5:8002/v1/", "tier": "gpu", "roles": ["cleaner", "describer"],
        "adapters": {"cleaner": "mpr-cleaner", "describer": "mpr-describer"}, "base_model": "llama", "heartbeat_s": 2}


def _parse(**changes_: object):  # type: ignore[no-untyped-def]
    return parse_announcement(msgspec.json.encode({**GOOD, **changes_}))


def test_a_good_announcement_is_normalised_and_unknown_roles_are_dropped() -> None:
    found, dropped = _parse(adapters={"cleaner": " mpr-cleaner ", "summariser": "x"}, roles=None)
    assert found.url == "http://10.0.0.5:8002/v1" and found.adapters == {"cleaner": "mpr-cleaner"}
    assert found.roles == ["cleaner"] and dropped == ["summariser"]


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"node": "bad node"}, "node"),
        ({"node": ""}, "node"),
        ({"tier": "tpu"}, "tier"),
        ({"heartbeat_s": 0.01}, "heartbeat_s"),
        ({"heartbeat_s": 1000}, "heartbeat_s"),
        ({"url": "ftp://h/v1"}, "url"),
        ({"url": "http://h:1/api"}, "url"),
        ({"url": "http://user:pw@h:1/v1"}, "url"),
        ({"roles": ["cleaner"]}, "roles"),
        ({"adapters": {"summariser": "x"}, "roles": None}, "adapters"),
        ({"adapters": {"cleaner": " "}, "roles": None}, "adapters"),
        ({"adapters": "cleaner"}, "body"),
    ],
)
def test_a_bad_announcement_is_a_400_naming_the_field(change: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        _parse(**change)
    assert refused.value.status_code == 400 and refused.value.param == param
    assert refused.value.code == "invalid_registration"


def test_a_body_that_is_not_json_is_a_400() -> None:
    with pytest.raises(InvalidRequest):
        parse_announcement(b"not json")
    with pytest.raises(InvalidRequest):
        parse_announcement(b'{"node": "n"}')  # required fields missing


def test_a_registration_expires_after_three_missed_heartbeats() -> None:
    assert ttl_for(5) == 15
    record = record_of(_parse()[0], now=100.0)
    assert record.ttl_s == 6 and record.received_at == 100.0


def test_changes_tell_joined_left_and_replaced_workers_and_tombstones_count_as_gone() -> None:
    a = record_of(_parse(node="a")[0], 1.0)
    b = record_of(_parse(node="b")[0], 1.0)
    a_beat = msgspec.structs.replace(a, received_at=5.0)  # a heartbeat: same endpoint
    a_moved = msgspec.structs.replace(a, url="http://10.0.0.6:8002/v1")
    assert changes({}, {"a": a}) == ([a], [], [])
    assert changes({"a": a}, {"a": a_beat}) == ([], [], [])
    assert changes({"a": a}, {"a": a_moved}) == ([], [], [(a, a_moved)])
    assert changes({"a": a, "b": b}, {"b": b}) == ([], [a], [])
    assert changes({"a": a}, {"a": tombstone(a, 2.0)}) == ([], [a], [])


def test_stored_records_that_do_not_decode_or_match_their_node_are_skipped() -> None:
    a = record_of(_parse(node="a")[0], 1.0)
    stored = {"a": msgspec.json.encode(a), "b": b"garbage", "c": msgspec.json.encode(a)}
    assert decode_records(stored) == {"a": a}


def _config(**server: object):  # type: ignore[no-untyped-def]
    tree = {"server": server, "targets": [{"name": "m", "endpoints": ["http://127.0.0.1:1/v1"]}]}
    return parse_config(tree, base_dir=Path("."), env={})


def test_register_keys_come_from_the_config_and_the_env_never_from_client_or_admin_keys() -> None:
    config = _config(register_keys=["r1"], admin_keys=["adm"], api_keys=["client"])
    assert register_keys(config, {"MPR_REGISTER_KEY": "r2, r3", "MPR_ADMIN_KEY": "adm2"}) == {"r1", "r2", "r3"}


def test_registration_is_403_without_a_register_key_and_401_with_a_wrong_one() -> None:
    with pytest.raises(RegistrationDisabled) as off:
        RegisterAuth.of(_config(admin_keys=["adm"]), {}).check("Bearer adm")
    assert off.value.status_code == 403
    auth = RegisterAuth.of(_config(register_keys=["r1"]), {})
    for header in (None, "Bearer adm", "Bearer nope"):
        with pytest.raises(AuthenticationFailed):
            auth.check(header)
    auth.check("Bearer r1")


def test_the_worker_list_takes_an_admin_or_a_register_key() -> None:
    config = _config(register_keys=["r1"], admin_keys=["adm"], api_keys=["client"])
    check_reader(config, "Bearer r1", {})
    check_reader(config, "Bearer adm", {})
    with pytest.raises(AuthenticationFailed):
        check_reader(config, "Bearer client", {})
    with pytest.raises(RegistrationDisabled):
        check_reader(_config(api_keys=["client"]), "Bearer client", {})


def test_served_loras_are_kept_for_the_operator() -> None:
    """A worker that hot-loaded versions says so (``loras``); old workers say nothing and that holds too."""
    found, _ = _parse(loras={"cleaner": ["mpr-cleaner", " cleaner@2 "], "summariser": ["x"]})
    assert found.loras == {"cleaner": ["mpr-cleaner", "cleaner@2"]}
    record = record_of(found, 100.0)
    assert record.public()["loras"] == {"cleaner": ["mpr-cleaner", "cleaner@2"]}
    assert decode_records({"gpu-1": msgspec.json.encode(record)})["gpu-1"].loras == record.loras
    assert "loras" not in record_of(_parse()[0], 100.0).public()

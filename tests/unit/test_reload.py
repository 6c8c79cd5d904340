"""Live configuration's pieces: the config hash, restart-only changes, the in-flight count of a
:class:`Live`, the swap, and the :class:`Reloader` against a real file (no network)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from gateway.app import make_live
from gateway.config import ConfigError, load_config
from gateway.config.source import ConfigSource, config_hash, load_source
from gateway.reload.changes import restart_only_changes
from gateway.reload.live import RuntimeRef
from gateway.reload.reloader import Reloader
from gateway.runtime import build_runtime


def _tree(*names: str, **server: object) -> dict[str, object]:
    return {
        "server": {"api_keys_env": None, "probe_interval_s": 60, **server},
        "targets": [{"name": name, "endpoints": ["http://127.0.0.1:9/v1"]} for name in names],
    }


def _write(path: Path, tree: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(tree))
    return path


def test_the_hash_is_of_the_file_bytes(tmp_path: Path) -> None:
    path = _write(tmp_path / "routes.yaml", _tree("a"))
    config, source = load_source(path, env={})
    assert source.hash == config_hash(path.read_bytes()) and len(source.hash) == 12
    assert source.source == str(path.resolve()) and config == load_config(path, env={})
    path.write_text(path.read_text() + "# a comment changes the bytes\n")
    assert load_source(path, env={})[1].hash != source.hash


def test_restart_only_changes_name_the_keys_a_reload_cannot_apply(tmp_path: Path) -> None:
    old = load_config(_write(tmp_path / "a.yaml", _tree("a")), env={})
    same = load_config(_write(tmp_path / "b.yaml", _tree("a", "b", api_keys=["k"])), env={})
    moved = load_config(_write(tmp_path / "c.yaml", {**_tree("a", port=9000), "telemetry": {"log_level": "DEBUG"}}), env={})
    assert restart_only_changes(old, same) == []
    assert restart_only_changes(old, moved) == ["server.port", "telemetry"]


async def test_a_live_is_idle_after_its_last_request_and_the_swap_keeps_draining(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path / "routes.yaml", _tree("a")), env={})
    first = make_live(build_runtime(config), ConfigSource.of_config(config))
    ref = RuntimeRef(first)
    first.enter()
    first.enter()
    waiter = asyncio.ensure_future(first.wait_idle())
    first.leave()
    await asyncio.sleep(0.01)
    assert not waiter.done()
    first.leave()
    await asyncio.wait_for(waiter, 1)
    ref.draining = True
    second = make_live(build_runtime(config), ConfigSource.of_config(config))
    assert ref.swap(second) is first and ref.current is second and second.runtime.draining


async def test_the_reloader_swaps_a_valid_file_and_keeps_the_old_config_on_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "routes.yaml", _tree("a", api_keys=["old"]))
    config, source = load_source(path, env={})
    runtime = build_runtime(config)
    await runtime.start()
    ref = RuntimeRef(make_live(runtime, source))
    reloader = Reloader(ref, path, make_live)
    try:
        _write(path, _tree("a", "b", api_keys=["new"]))
        outcome = await reloader.reload("test")
        assert outcome.status == "reloaded" and outcome.previous == source.hash
        assert set(ref.runtime.targets) == {"a", "b"} and ref.runtime.auth.authenticate("Bearer new") is not None
        assert ref.current.source.hash == config_hash(path.read_bytes())
        assert ref.current.routes["/v1/chat/completions"].runtime is ref.runtime  # serving objects rebuilt
        await asyncio.sleep(0.05)
        assert runtime.sessions == []  # the old runtime, idle, was stopped
        current = ref.current
        path.write_text("targets: [{name: x, endpoints: [ftp://nope]}]\nserver: {port: -1}\n")
        refused = await reloader.reload("test")
        assert refused.status == "refused" and ref.current is current
        assert {"server.port", "targets[0].endpoints[0]"} <= {p for p, _ in refused.errors}
    finally:
        await reloader.close()
        await ref.runtime.stop()


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_source(tmp_path / "missing.yaml")
    assert exc.value.errors[0][0] == "<file>"

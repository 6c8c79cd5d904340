from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.cli import main
from gateway.config import ConfigError, load_api_keys, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config" / "routes.yaml"


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def minimal(**extra: object) -> dict[str, object]:
    return {"targets": [{"name": "m", "endpoints": ["http://127.0.0.1:9/v1"]}], **extra}


def test_shipped_config_describes_seed_deployment() -> None:
    config = load_config(SHIPPED, env={})
    assert config.server.port == 8000
    urls = {role: getattr(config.adapters, role).base_urls[0] for role in ("cleaner", "describer", "paraphraser")}
    assert urls == {"cleaner": "http://jw2:8002/v1", "describer": "http://jw3:8003/v1", "paraphraser": "http://kcloud:8004/v1"}
    text = SHIPPED.read_text()
    for ip in ("129.254.202.251", "129.254.202.252", "129.254.202.253", "129.254.202.129"):
        assert ip in text
    assert config.refinement.drift.max_drift == 0.18 and config.refinement.drift.max_length_ratio == 2.4
    assert config.refinement.describer.max_facts == 3 and config.refinement.describer.max_tokens == 120
    for role in ("cleaner", "describer", "paraphraser"):
        assert getattr(config.adapters, role).prompt.is_file()


def test_env_interpolation_with_default(tmp_path: Path) -> None:
    path = write(tmp_path, "targets:\n  - name: m\n    endpoints: ['${URL:-http://a:1/v1}']\n    upstream_model: ${UP}\n")
    config = load_config(path, env={"UP": "meta/llama"})
    assert config.targets[0].base_urls == ["http://a:1/v1"]
    assert config.targets[0].model_for_upstream == "meta/llama"


def test_missing_env_is_an_error_with_path(tmp_path: Path) -> None:
    path = write(tmp_path, "targets:\n  - name: m\n    endpoints: ['http://a:1/v1']\n    upstream_model: ${NOPE}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert ("targets[0].upstream_model", "environment variable NOPE is not set") in info.value.errors


@pytest.mark.parametrize(
    ("data", "path_fragment"),
    [
        ({"targets": []}, "targets"),
        ({"targets": [{"name": "m", "endpoints": ["http://a:1"]}]}, "targets[0].endpoints[0]"),
        ({"targets": [{"name": "m", "endpoints": ["not a url"]}]}, "targets[0].endpoints[0]"),
        ({"targets": [{"name": "m", "endpoints": ["https://user:secret@a:1/v1"]}]}, "targets[0].endpoints[0]"),  # never sent
        ({**minimal(), "refinement": {"drift": {"max_drift": 3}}}, "refinement.drift.max_drift"),
        ({**minimal(), "refinement": {"stages": ["cleaner", "poet"]}}, "refinement.stages[1]"),
        ({**minimal(), "server": {"port": "eighty"}}, "server.port"),
        ({**minimal(), "surprise": 1}, "surprise"),
        (
            {"targets": [{"name": "m", "endpoints": ["http://a:1/v1"]}, {"name": "m", "endpoints": ["http://b:1/v1"]}]},
            "<root>",
        ),
    ],
)
def test_bad_configs_name_the_key(tmp_path: Path, data: dict[str, object], path_fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=tmp_path, env={})
    paths = [p for p, _ in info.value.errors]
    assert any(p.startswith(path_fragment) for p in paths), paths


def test_missing_prompt_file(tmp_path: Path) -> None:
    data = minimal(adapters={"cleaner": {"endpoints": ["http://a:1/v1"], "model": "c", "prompt": "nope.md"}})
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=tmp_path, env={})
    assert info.value.errors[0][0] == "adapters.cleaner.prompt"


def test_prompt_paths_resolve_against_config_dir(tmp_path: Path) -> None:
    (tmp_path / "p.md").write_text("# user\n{{input}}")
    data = minimal(adapters={"cleaner": {"endpoints": ["http://a:1/v1"], "model": "c", "prompt": "p.md"}})
    config = parse_config(data, base_dir=tmp_path, env={})
    assert config.adapters.cleaner is not None and config.adapters.cleaner.prompt == tmp_path / "p.md"


def test_api_keys_from_list_env_and_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# comment\nfile-key\n\n")
    data = minimal(server={"api_keys": ["lit"], "api_keys_env": "KEYS", "api_keys_file": "keys.txt"})
    config = parse_config(data, base_dir=tmp_path, env={})
    assert load_api_keys(config, env={"KEYS": "a, b"}) == {"lit", "a", "b", "file-key"}


def test_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "targets: [\n"))
    assert info.value.errors[0][0] == "<yaml>"


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(SHIPPED)]) == 0
    bad = write(tmp_path, {"targets": [{"name": "m", "endpoints": ["http://a:1"]}], "server": {"port": -1}})
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "targets[0].endpoints[0]" in err and "server.port" in err


# -- shadow mode and the audit log -----------------------------------------------------------------


def test_refinement_mode_defaults_and_overrides(tmp_path: Path) -> None:
    config = parse_config(minimal(), base_dir=tmp_path, env={})
    assert config.refinement.mode == "apply" and config.targets[0].refinement_mode is None
    data = minimal(refinement={"mode": "shadow"})
    data["targets"][0]["refinement_mode"] = "apply"  # type: ignore[index]
    config = parse_config(data, base_dir=tmp_path, env={})
    assert config.refinement.mode == "shadow" and config.targets[0].refinement_mode == "apply"


@pytest.mark.parametrize(
    ("data", "path_fragment"),
    [
        (minimal(refinement={"mode": "dry-run"}), "refinement.mode"),
        ({"targets": [{"name": "m", "endpoints": ["http://a:1/v1"], "refinement_mode": "sometimes"}]}, "targets[0].refinement_mode"),
        (minimal(telemetry={"audit_sample_rate": 1.5, "capture_prompts": True}), "telemetry.audit_sample_rate"),
        (minimal(telemetry={"audit_sample_rate": -0.1, "capture_prompts": True}), "telemetry.audit_sample_rate"),
    ],
)
def test_bad_mode_and_audit_values_name_the_key(tmp_path: Path, data: dict[str, object], path_fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=tmp_path, env={})
    assert any(p.startswith(path_fragment) for p, _ in info.value.errors), info.value.errors


def test_audit_without_capture_prompts_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = minimal(telemetry={"audit_sample_rate": 0.5})
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=tmp_path, env={})
    ((path, message),) = info.value.errors
    assert path == "telemetry"
    assert "capture_prompts" in message and "user data" in message
    assert main(["check-config", str(write(tmp_path, data))]) == 1
    assert "capture_prompts" in capsys.readouterr().err
    # opted in: valid, and a relative audit path resolves against the config's directory
    config = parse_config(minimal(telemetry={"audit_sample_rate": 0.5, "capture_prompts": True, "audit_path": "audit.jsonl"}), base_dir=tmp_path, env={})
    assert config.telemetry.audit_path == tmp_path / "audit.jsonl"
    assert parse_config(minimal(), base_dir=tmp_path, env={}).telemetry.audit_sample_rate == 0


def test_audit_path_needs_an_existing_directory(tmp_path: Path) -> None:
    data = minimal(telemetry={"audit_sample_rate": 1, "capture_prompts": True, "audit_path": "no/such/dir/audit.jsonl"})
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=tmp_path, env={})
    assert info.value.errors[0][0] == "telemetry.audit_path"


def test_api_keys_env_defaults_to_mpr_api_keys(tmp_path: Path) -> None:
    config = parse_config(minimal(), base_dir=tmp_path, env={})
    assert config.server.api_keys_env == "MPR_API_KEYS"
    assert load_api_keys(config, env={"MPR_API_KEYS": "k1, k2"}) == {"k1", "k2"}
    off = parse_config(minimal(server={"api_keys_env": None}), base_dir=tmp_path, env={})
    assert off.server.api_keys_env is None
    assert load_api_keys(off, env={"MPR_API_KEYS": "k1"}) == frozenset()

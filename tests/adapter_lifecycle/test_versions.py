"""Version records in adapter.yaml: the digest, the writer (text kept), the reader's checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from adapter_lifecycle.versions import (
    VersionError,
    find_by_weights,
    load_versions,
    parse_versions,
    record_version,
    same_base,
    set_current,
    update_version,
    weights_digest,
)

REPO = Path(__file__).resolve().parents[2]


def _weights(path: Path, payload: bytes = b"tensor bytes") -> Path:
    (path / "sub").mkdir(parents=True)
    (path / "adapter_config.json").write_text('{"r": 8}')
    (path / "adapter_model.safetensors").write_bytes(payload)
    (path / "sub" / "notes.txt").write_text("x")
    return path


def test_digest_depends_on_paths_and_bytes_only(tmp_path: Path) -> None:
    a = _weights(tmp_path / "a")
    b = tmp_path / "elsewhere" / "b"
    shutil.copytree(a, b)
    assert weights_digest(a) == weights_digest(b)  # the directory's name and place do not count
    assert len(weights_digest(a)) == 64
    (b / "adapter_model.safetensors").write_bytes(b"tensor bytez")
    assert weights_digest(a) != weights_digest(b)
    shutil.rmtree(b)
    shutil.copytree(a, b)
    (b / "sub" / "notes.txt").rename(b / "sub" / "notes2.txt")
    assert weights_digest(a) != weights_digest(b)
    with pytest.raises(VersionError, match="does not exist"):
        weights_digest(tmp_path / "missing")


def test_digest_is_the_documented_formula(tmp_path: Path) -> None:
    import hashlib

    d = tmp_path / "w"
    d.mkdir()
    (d / "b.bin").write_bytes(b"BB")
    (d / "a.json").write_bytes(b"{}")
    h = hashlib.sha256()
    for rel, data in (("a.json", b"{}"), ("b.bin", b"BB")):
        h.update(rel.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    assert weights_digest(d) == h.hexdigest()


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "lora_adapters", tmp_path / "lora_adapters")
    return tmp_path / "lora_adapters"


def test_record_update_and_promote_keep_the_rest_of_the_manifest(manifests: Path, tmp_path: Path) -> None:
    manifest = manifests / "cleaner" / "adapter.yaml"
    original = manifest.read_text()
    weights = _weights(tmp_path / "runs" / "cleaner-1")
    first = record_version(manifest.parent, "cleaner", weights, "meta-llama/Llama-3.2-3B-Instruct",
                           data=[{"spec": "jfleg:dev.jsonl", "sha256": "0" * 64, "samples": 3}],
                           training={"seed": 1, "lora": {"r": 64}})
    assert (first.version, first.name) == (1, "cleaner@1")
    assert first.weights == "../../runs/cleaner-1"  # under the tree holding lora_adapters/: relative
    second = record_version(manifest, "cleaner", weights, "meta-llama/Llama-3.2-3B-Instruct", make_current=True)
    assert second.name == "cleaner@2"
    update_version(manifest, 1, evaluation={"restoration": {"rate": 0.8}})

    text = manifest.read_text()
    assert text.startswith(original.rstrip("\n"))  # comments and keys untouched, records appended
    records = load_versions(manifest)
    assert records.current == 2 and [v.version for v in records.versions] == [1, 2]
    assert records.get(1).evaluation == {"restoration": {"rate": 0.8}}
    assert records.weights_path(records.get(1)) == weights.resolve()
    assert find_by_weights(records, weights).version == 2
    data = yaml.safe_load(text)
    assert data["versions"][0] == {
        "version": 1, "name": "cleaner@1", "weights": "../../runs/cleaner-1", "sha256": weights_digest(weights),
        "base_model": "meta-llama/Llama-3.2-3B-Instruct",
        "data": [{"spec": "jfleg:dev.jsonl", "sha256": "0" * 64, "samples": 3}],
        "training": {"seed": 1, "lora": {"r": 64}}, "evaluation": {"restoration": {"rate": 0.8}},
    }

    set_current(manifest, None)
    assert load_versions(manifest).current is None
    assert "current:" not in manifest.read_text()
    with pytest.raises(VersionError, match="no version 7"):
        set_current(manifest, 7)


def test_weights_outside_the_tree_are_recorded_absolute(manifests: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    weights = _weights(tmp_path_factory.mktemp("far") / "w")
    entry = record_version(manifests / "describer", "describer", weights, "base")
    assert entry.weights == str(weights.resolve())


def test_repository_manifests_have_no_versions_yet() -> None:
    for role in ("cleaner", "describer", "paraphraser"):
        records = load_versions(REPO / "lora_adapters" / role)
        assert records.current is None and records.current_version() is None


@pytest.mark.parametrize(("data", "message"), [
    ({"versions": {"a": 1}}, "versions: must be a list"),
    ({"versions": [{"version": 0}]}, r"versions\[0\].version: 0 is not a positive integer"),
    ({"versions": [{"version": 1, "name": "c@1", "weights": "w", "sha256": "abc", "base_model": "b"}]},
     "not a 64-digit"),
    ({"versions": [{"version": 1, "name": "c@1", "weights": "w", "sha256": "a" * 64, "base_model": "b", "x": 1}]},
     "unknown keys"),
    ({"versions": [], "current": 3}, "current: 3 is not a recorded version"),
])
def test_malformed_records_are_errors(data: dict[str, object], message: str) -> None:
    with pytest.raises(VersionError, match=message):
        parse_versions(data, "m.yaml")


def test_same_base() -> None:
    assert same_base("meta-llama/Llama-3.2-3B-Instruct", "/models/Llama-3.2-3B-Instruct/")
    assert not same_base("meta-llama/Llama-3.2-3B-Instruct", "meta-llama/Llama-3.1-8B-Instruct")

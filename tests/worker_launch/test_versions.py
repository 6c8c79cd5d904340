"""Adapter versions on the worker side: ``ROLE@N`` in manifests and launches, the weights digest and
the recorded base model checks, runtime load/unload against a fake vLLM, and what the announcer says."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from adapter_lifecycle.versions import record_version, weights_digest
from worker_launch.cli import main
from worker_launch.command import build_vllm_command
from worker_launch.config import WorkerConfig, load_worker_config
from worker_launch.hotload import announced_adapters, role_of, served_base, served_lora_names
from worker_launch.manifest import ManifestError, load_manifest, parse_manifest, split_role_version
from worker_launch.plan import LaunchOptions, PlanError, parse_role_versions, parse_roles, resolve_launch
from worker_launch.register import Announcer, Registration
from worker_launch.testmodel import build_test_model
from worker_launch.verify import AdapterFiles, check_adapter, record_findings, verify_spec

ROLES = ("cleaner", "describer", "paraphraser")
SHA = "a" * 64


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny test model; cleaner gets version 1 (a copy of its random LoRA) and version 2 (another copy)."""
    out = tmp_path_factory.mktemp("versions")
    build_test_model(out)
    for n in (1, 2):
        shutil.copytree(out / "adapters" / "cleaner", out / "adapters" / f"cleaner-v{n}")
        record_version(out / "lora_adapters" / "cleaner", "cleaner", out / "adapters" / f"cleaner-v{n}", "mpr-test/tiny-llama")
    return out


def _manifest(**extra: Any) -> dict[str, Any]:
    return {"name": "cleaner", "role": "cleaner", "training": {"dataset": "d", "samples": 1}, "lora": {"rank": 8}, **extra}


def _record(version: int, **changes: Any) -> dict[str, Any]:
    return {"version": version, "name": f"cleaner@{version}", "weights": f"/w/cleaner-{version}", "sha256": SHA,
            "base_model": "org/base", **changes}


VARIANTS = {"3b": {"base_model": "org/base", "weights": "/w/legacy"}}


# -- manifests ---------------------------------------------------------------------------------------------------
def test_split_role_version() -> None:
    assert split_role_version("cleaner@2") == ("cleaner", 2)
    assert split_role_version(" cleaner ") == ("cleaner", None)
    for bad in ("cleaner@", "cleaner@x", "@2", "cleaner@0"):
        with pytest.raises(ManifestError):
            split_role_version(bad)


def test_roles_may_name_versions() -> None:
    assert parse_roles("cleaner@2,describer", ROLES) == ("cleaner", "describer")
    assert parse_role_versions("cleaner@2,describer, paraphraser@11") == {"cleaner": 2, "paraphraser": 11}
    with pytest.raises(PlanError, match="twice"):
        parse_roles("cleaner@1,cleaner@2", ROLES)
    with pytest.raises(PlanError, match="ROLE@VERSION"):
        parse_roles("cleaner@two", ROLES)


def test_legacy_manifest_selects_its_variant() -> None:
    manifest = parse_manifest(_manifest(variants=VARIANTS), "m.yaml")
    assert manifest.records is None
    chosen = manifest.selection("3b")
    assert (chosen.name, chosen.weights, chosen.version, chosen.sha256) == ("cleaner", "/w/legacy", None, None)
    with pytest.raises(ManifestError, match="no recorded versions"):
        manifest.selection("3b", 2)


def test_versions_without_current_keep_the_variant_and_select_by_number() -> None:
    manifest = parse_manifest(_manifest(variants=VARIANTS, versions=[_record(1), _record(2)]), "/a/cleaner/adapter.yaml")
    assert manifest.selection("3b").name == "cleaner"  # no current: the legacy entry, as before versions
    two = manifest.selection("3b", 2)
    assert (two.name, two.weights, two.version, two.sha256, two.base_model) == ("cleaner@2", "/w/cleaner-2", 2, SHA, "org/base")
    with pytest.raises(ManifestError, match=r"no version 3 \(recorded: 1, 2\)"):
        manifest.selection("3b", 3)


def test_current_selects_a_version_and_variants_become_optional() -> None:
    manifest = parse_manifest(_manifest(versions=[_record(1, weights="../../out/c1"), _record(2)], current=1),
                              "/a/lora_adapters/cleaner/adapter.yaml")
    chosen = manifest.selection("any-size")
    assert (chosen.name, chosen.weights) == ("cleaner@1", "/a/out/c1")  # relative to the manifest
    with pytest.raises(ManifestError, match="records only versions"):
        manifest.variant("3b")


@pytest.mark.parametrize(("data", "problem"), [
    (_manifest(), "`variants` or `versions`"),
    (_manifest(variants=VARIANTS, versions=[_record(1, sha256="xyz")]), "sha256"),
    (_manifest(variants=VARIANTS, versions=[_record(1), _record(1)]), "duplicate"),
    (_manifest(variants=VARIANTS, versions=[_record(1)], current=4), "current"),
    (_manifest(variants=VARIANTS, current=1), "current"),
])
def test_bad_version_records_are_refused(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ManifestError, match=problem):
        parse_manifest(data, "m.yaml")


# -- plan ---------------------------------------------------------------------------------------------------------
def test_launch_plan_serves_the_version(model: Path) -> None:
    config, config_dir = load_worker_config(model / "worker.yaml")
    manifests = {r: load_manifest(config.adapters_dir, r) for r in ROLES}

    def plan(**opts: Any):
        return resolve_launch(LaunchOptions(roles=ROLES, device="cpu", **opts), config, config_dir, manifests, env={})

    legacy = plan()
    assert legacy.lora_names == ROLES and all(lora.sha256 is None for lora in legacy.loras)
    spec = plan(versions={"cleaner": 2})
    cleaner = spec.loras[0]
    assert spec.lora_names == ("cleaner@2", "describer", "paraphraser")
    assert (cleaner.version, cleaner.path, cleaner.record_base_model) == (2, str(model / "adapters" / "cleaner-v2"), "mpr-test/tiny-llama")
    assert cleaner.sha256 == weights_digest(model / "adapters" / "cleaner-v2")
    argv = build_vllm_command(spec).argv
    assert json.loads(argv[argv.index("--lora-modules") + 1])["name"] == "cleaner@2"
    # the worker config picks a version too; --role cleaner@N wins
    by_config = config.model_copy(update={"versions": {"cleaner": 1}})
    assert resolve_launch(LaunchOptions(roles=("cleaner",)), by_config, config_dir, manifests, env={}).lora_names == ("cleaner@1",)
    assert resolve_launch(LaunchOptions(roles=("cleaner",), versions={"cleaner": 2}), by_config, config_dir, manifests,
                          env={}).lora_names == ("cleaner@2",)
    # weights placed elsewhere on this node (--adapter, worker.yaml adapters): the record's digest still applies
    moved = plan(versions={"cleaner": 2}, adapters={"cleaner": str(model / "adapters" / "cleaner")})
    assert moved.loras[0].path == str(model / "adapters" / "cleaner") and moved.loras[0].sha256 == cleaner.sha256
    with pytest.raises(PlanError, match="not launched"):
        resolve_launch(LaunchOptions(roles=("describer",), versions={"cleaner": 2}), config, config_dir, manifests, env={})


# -- verification -------------------------------------------------------------------------------------------------
def test_digest_and_base_model_checks(model: Path) -> None:
    config, config_dir = load_worker_config(model / "worker.yaml")
    manifests = {"cleaner": load_manifest(config.adapters_dir, "cleaner")}
    spec = resolve_launch(LaunchOptions(roles=("cleaner",), versions={"cleaner": 2}), config, config_dir, manifests, env={})
    assert verify_spec(spec) == []

    moved = resolve_launch(LaunchOptions(roles=("cleaner",), versions={"cleaner": 2},
                                         adapters={"cleaner": str(model / "adapters" / "describer")}),
                           config, config_dir, manifests, env={})
    [finding] = verify_spec(moved)
    expected, actual = spec.loras[0].sha256, weights_digest(model / "adapters" / "describer")
    assert finding.role == "cleaner" and finding.level == "error"
    assert finding.message == (f"version 2 (cleaner@2): weights digest mismatch in {model / 'adapters' / 'describer'}: "
                               f"expected sha256 {expected} (the record), actual {actual}")

    other_base = resolve_launch(LaunchOptions(roles=("cleaner",), versions={"cleaner": 2}, base_model="/m/Llama-3.2-3B-Instruct"),
                                config, config_dir, manifests, env={})
    message = ("version 2 (cleaner@2) was trained on base model 'mpr-test/tiny-llama' (its record's base_model) "
               "but this worker serves '/m/Llama-3.2-3B-Instruct'")
    assert [f.message for f in record_findings(other_base)] == [message]  # held even with --skip-verify
    assert message in [f.message for f in verify_spec(other_base)]
    # the legacy entries have no record: nothing to compare
    assert record_findings(resolve_launch(LaunchOptions(roles=("describer",), base_model="/m/other"), config, config_dir,
                                          {"describer": load_manifest(config.adapters_dir, "describer")}, env={})) == []


def test_check_adapter_reports_an_unreadable_digest() -> None:
    from worker_launch.plan import LoraModule

    lora = LoraModule("cleaner", "cleaner@2", "/w", 8, version=2, sha256=SHA)
    files = AdapterFiles(Path("/w"), {"peft_type": "LORA", "base_model_name_or_path": "org/base", "r": 8}, None,
                         {"adapter_model.safetensors": None}, None, "permission denied")
    assert [f.message for f in check_adapter(lora, "org/base", 8, files)] == \
        ["version 2 (cleaner@2): cannot digest /w: permission denied"]


def test_cli_verify_and_launch_refuse(model: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = model / "worker.yaml"
    assert main(["verify-adapters", "--config", str(config), "--role", "cleaner@2"]) == 0
    assert "OK cleaner: cleaner@2 ->" in capsys.readouterr().out
    broken = tmp_path / "broken"
    shutil.copytree(model / "adapters" / "cleaner-v2", broken)
    (broken / "adapter_model.safetensors").write_bytes((broken / "adapter_model.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    assert main(["verify-adapters", "--config", str(config), "--role", "cleaner@2", "--adapter", f"cleaner={broken}"]) == 1
    err = capsys.readouterr().err
    assert "ERROR cleaner: version 2 (cleaner@2): weights digest mismatch" in err and "expected sha256" in err
    code = main(["launch", "--config", str(config), "--role", "cleaner@2", "--device", "cpu", "--skip-verify",
                 "--base-model", "/m/Llama-3.2-3B-Instruct", "--vllm-python", "/nonexistent/python"])
    assert code == 1
    assert "was trained on base model 'mpr-test/tiny-llama'" in capsys.readouterr().err


# -- what the announcer says --------------------------------------------------------------------------------------
def test_announced_adapters() -> None:
    launched = {"cleaner": "cleaner", "describer": "describer@3"}
    assert role_of("cleaner@2", launched) == "cleaner" and role_of("describer@3", launched) == "describer"
    assert role_of("mystery", launched) is None
    assert announced_adapters(launched, ["cleaner", "describer@3"]) == (
        {"cleaner": "cleaner", "describer": "describer@3"}, {"cleaner": ["cleaner"], "describer": ["describer@3"]})
    # a loaded candidate is announced, the launch name stays the one the gateway sends
    adapters, loras = announced_adapters(launched, ["cleaner", "describer@3", "cleaner@2"])
    assert adapters["cleaner"] == "cleaner" and loras["cleaner"] == ["cleaner", "cleaner@2"]
    # the launch name unloaded (load --replace): the newest version takes over
    assert announced_adapters(launched, ["describer@3", "cleaner@2", "cleaner@10"])[0]["cleaner"] == "cleaner@10"
    # a role loaded at runtime that the node was not launched with
    assert announced_adapters(launched, ["cleaner", "paraphraser@1"])[0] == {"cleaner": "cleaner", "paraphraser": "paraphraser@1"}


# -- a fake vLLM with the runtime LoRA API ------------------------------------------------------------------------
class FakeVllm:
    """``/v1/models`` + ``/v1/load_lora_adapter`` + ``/v1/unload_lora_adapter`` as vLLM 0.32 answers them."""

    def __init__(self, base_root: str, loras: dict[str, str], runtime: bool = True) -> None:
        self.base_root, self.loras, self.runtime = base_root, dict(loras), runtime
        self.posts: list[tuple[str, dict[str, Any]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: Any) -> None:
                raw = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:  # noqa: N802
                data = [{"id": "mpr-tiny-llama", "root": fake.base_root, "parent": None}]
                data += [{"id": n, "root": p, "parent": "mpr-tiny-llama"} for n, p in fake.loras.items()]
                self._send(200, {"object": "list", "data": data})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.posts.append((self.path, body))
                if not fake.runtime:
                    return self._send(404, {"detail": "Not Found"})
                name = body["lora_name"]
                if self.path == "/v1/load_lora_adapter":
                    if name in fake.loras:
                        return self._send(400, {"error": {"message": f"The lora adapter '{name}' has already been loaded.",
                                                          "code": 400}})
                    fake.loras[name] = body["lora_path"]
                    return self._send(200, f"Success: LoRA adapter '{name}' added successfully.")
                if name not in fake.loras:
                    return self._send(404, {"error": {"message": f"The lora adapter '{name}' cannot be found.", "code": 404}})
                del fake.loras[name]
                return self._send(200, f"Success: LoRA adapter '{name}' removed successfully.")

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def vllm(model: Path) -> Iterator[FakeVllm]:
    fake = FakeVllm(str(model / "tiny-llama"), {r: str(model / "adapters" / r) for r in ROLES})
    yield fake
    fake.close()


def _adapters(model: Path, vllm: FakeVllm, *args: str) -> int:
    return main(["adapters", *args, "--config", str(model / "worker.yaml"), "--url", vllm.url])


def test_load_verifies_then_loads_and_replace_unloads_the_rest(model: Path, vllm: FakeVllm,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert _adapters(model, vllm, "load", "cleaner@2") == 0
    assert vllm.posts == [("/v1/load_lora_adapter", {"lora_name": "cleaner@2", "lora_path": str(model / "adapters" / "cleaner-v2")})]
    assert "event=adapter_loaded" in capsys.readouterr().out
    assert _adapters(model, vllm, "load", "cleaner@2") == 1  # vLLM's refusal is reported
    assert "has already been loaded" in capsys.readouterr().err
    assert _adapters(model, vllm, "load", "cleaner@1", "--replace") == 0
    assert [n for n in vllm.loras if n.startswith("cleaner")] == ["cleaner@1"]
    vllm.loras["cleaner@2"] = "/elsewhere"
    vllm.posts.clear()
    assert _adapters(model, vllm, "load", "cleaner@1", "--replace") == 0  # already loaded: only the others go
    assert vllm.posts == [("/v1/unload_lora_adapter", {"lora_name": "cleaner@2"})]
    assert _adapters(model, vllm, "list") == 0
    assert f"lora cleaner@1 -> {model / 'adapters' / 'cleaner-v1'}" in capsys.readouterr().out
    assert _adapters(model, vllm, "unload", "cleaner@1") == 0
    assert "cleaner@1" not in vllm.loras
    assert _adapters(model, vllm, "unload", "cleaner@1") == 1
    assert "cannot be found" in capsys.readouterr().err
    assert _adapters(model, vllm, "load", "cleaner") == 0  # legacy manifest entry: served under its plain name
    assert vllm.loras["cleaner"] == str(model / "adapters" / "cleaner")


def test_load_refuses_a_digest_mismatch_and_another_base_model(model: Path, vllm: FakeVllm, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert _adapters(model, vllm, "load", "cleaner@2", "--adapter", str(model / "adapters" / "describer")) == 1
    err = capsys.readouterr().err
    assert "version 2 (cleaner@2): weights digest mismatch" in err and "expected sha256" in err and "actual" in err
    vllm.base_root = "/models/Llama-3.2-3B-Instruct"
    for extra in ((), ("--skip-verify",)):
        assert _adapters(model, vllm, "load", "cleaner@2", *extra) == 1
        assert "was trained on base model 'mpr-test/tiny-llama'" in capsys.readouterr().err
    assert vllm.posts == []  # nothing reached vLLM


def test_load_says_when_runtime_updating_is_off(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeVllm(str(model / "tiny-llama"), {}, runtime=False)
    try:
        assert _adapters(model, fake, "load", "cleaner@2") == 1
    finally:
        fake.close()
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" in capsys.readouterr().err


def test_announcer_follows_what_vllm_serves(vllm: FakeVllm) -> None:
    reg = Registration(gateway="http://127.0.0.1:9", node="n1", url="http://n1:8002/v1", tier="cpu",
                       adapters={"cleaner": "cleaner", "describer": "describer"}, base_model="b")
    announcer = Announcer(reg, timeout_s=2, vllm_url=vllm.url)
    try:
        announcer.refresh()
        assert announcer.registration.body()["loras"] == {"cleaner": ["cleaner"], "describer": ["describer"],
                                                          "paraphraser": ["paraphraser"]}
        vllm.loras["cleaner@2"] = "/w"
        announcer.refresh()
        body = announcer.registration.body()
        assert body["adapters"]["cleaner"] == "cleaner" and body["loras"]["cleaner"] == ["cleaner", "cleaner@2"]
        del vllm.loras["cleaner"]
        announcer.refresh()
        assert announcer.registration.adapters["cleaner"] == "cleaner@2"
        vllm.close()  # vLLM unreachable: the last registration stands
        announcer.refresh()
        assert announcer.registration.adapters["cleaner"] == "cleaner@2"
    finally:
        announcer.close()


def test_served_helpers() -> None:
    body = {"data": [{"id": "base", "root": "/m/base", "parent": None}, {"id": "cleaner", "root": "/a", "parent": "base"}]}
    assert served_base(body).root == "/m/base" and served_lora_names(body) == ["cleaner"]
    assert served_base({}) is None
    assert httpx  # imported for the fake's clients
    assert yaml and WorkerConfig  # keep the imports honest

"""``mpr-gateway eval`` in-process (the built-in cleaner) through ``gateway.cli.main``."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config.models import SkipGateConfig
from gateway.refinement.lexicon import lexicon as gate_vocabulary
from gateway.eval.noise import eligible_words, typo_count
from gateway.refinement.dictionary import english_words
from gateway.refinement.gate import decide
from tests.eval.conftest import PROMPTS

TOP_KEYS = {
    "backend", "stages", "seed", "noise_levels", "prompts", "english_prompts", "refinements", "elapsed_s",
    "clean", "noise", "restoration", "changed", "latency_ms", "sources", "classes", "worst",
}  # fmt: skip


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["eval", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_report(prompt_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, str(prompt_file), "--noise", "0.1,0.3", "--seed", "3")
    assert set(report) == TOP_KEYS
    assert report["backend"] == "builtin" and report["stages"] == ["cleaner"] and report["seed"] == 3
    assert report["noise_levels"] == [0.0, 0.1, 0.3]
    assert (report["prompts"], report["english_prompts"]) == (6, 5)
    assert set(report["clean"]) == {"n", "skipped", "skip_rate", "reasons", "tokens"}
    assert set(report["noise"]) == {"0.1", "0.3"}
    assert set(report["noise"]["0.1"]) == {
        "n", "no_eligible", "typos", "refined", "refine_rate", "clean_skipped", "refined_clean_skipped",
        "refine_rate_clean_skipped", "typo_prompts", "refined_typo_prompts", "refine_rate_typo_prompts", "reasons",
    }  # fmt: skip
    assert set(report["restoration"]) == {"all", "non_word", "real_word", "deleted", "by_noise"}
    assert set(report["restoration"]["all"]) == {"n", "restored", "rate"}
    assert set(report["changed"]) == {"words", "changed", "rate", "by_noise"} and set(report["changed"]["by_noise"]) == {"0", "0.1", "0.3"}
    assert set(report["latency_ms"]) == {"gate", "refine", "stages"} and set(report["latency_ms"]["gate"]) == {"n", "p50", "p99"}
    assert set(report["latency_ms"]["stages"]) == {"cleaner"}
    assert set(report["worst"]) == {"clean_refined", "noisy_skipped", "typos_not_restored", "words_changed"}
    assert {row["source"] for row in report["sources"]} == {"fact", "code", "other"}

    # the figures are what the gate and the injector say, prompt by prompt
    lexicon = gate_vocabulary()
    skipped = sum(not decide(p["prompt"], lexicon, SkipGateConfig()).refine for p in PROMPTS)
    assert report["clean"]["n"] == 6 and report["clean"]["skipped"] == skipped
    english = [p["prompt"] for p in PROMPTS if p.get("lang", "en") == "en"]
    for rate in (0.1, 0.3):
        expected = sum(typo_count(rate, len(eligible_words(t, english_words()))) for t in english)
        assert report["noise"][f"{rate:g}"]["typos"] == expected
        assert report["noise"][f"{rate:g}"]["n"] == 5
    noisy_typos = sum(report["noise"][k]["typos"] for k in report["noise"])
    assert report["restoration"]["all"]["n"] == noisy_typos
    assert report["restoration"]["all"]["restored"] > 0  # the built-in cleaner fixes some
    assert report["latency_ms"]["gate"]["n"] == 6 + 10  # every text the gate saw
    # the gate's clean-text words, typos excepted, are the words the scorer counts
    assert report["changed"]["by_noise"]["0"]["words"] == sum(len(t.split()) for t in english)

    # the same seed gives the same figures
    again = run_json(capsys, str(prompt_file), "--noise", "0.1,0.3", "--seed", "3")
    for key in ("clean", "noise", "restoration", "changed", "sources", "worst"):
        assert again[key] == report[key]


def test_text_report(prompt_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(prompt_file), "--noise", "0,0.2", "--worst", "2", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    report = run_json(capsys, str(prompt_file), "--noise", "0,0.2", "--worst", "2", "--limit", "5")
    clean = report["clean"]
    assert "MPR refinement eval: 5 prompts (5 English)" in out
    assert f"skipped   {100 * clean['skip_rate']:.1f}% ({clean['skipped']}/{clean['n']})" in out
    restored = report["restoration"]["all"]
    assert f"{100 * restored['rate']:.1f}% ({restored['restored']}/{restored['n']})" in out
    changed = report["changed"]
    assert f"({changed['changed']}/{changed['words']})" in out
    for heading in ("Skip gate on noisy prompts", "Typos restored", "Correct words changed", "Latency (ms)", "By source",
                    "Worst examples", "refine@0.2", "Typos not restored"):  # fmt: skip
        assert heading in out
    assert len(report["worst"]["typos_not_restored"]) <= 2


@pytest.mark.parametrize(
    "args",
    [
        ["--noise", "0.1,x"],
        ["--noise", "1.5"],
        ["--stages", "polisher"],
        ["--url", "http://127.0.0.1:1", "--config", "routes.yaml"],
        ["--limit", "-1"],
    ],
)
def test_bad_arguments_exit_2(prompt_file: Path, args: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["eval", str(prompt_file), *args])
    assert exited.value.code == 2


def test_bad_files_and_setups_exit_2(tmp_path: Path, prompt_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: no such file or directory" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\nnot json\n')
    assert main(["eval", str(bad)]) == 2
    assert "bad.jsonl:2: invalid JSON" in capsys.readouterr().err
    assert main(["eval", str(prompt_file), "--stages", "paraphraser"]) == 2
    assert "built-in backend has no paraphraser stage" in capsys.readouterr().err
    routes = tmp_path / "routes.yaml"
    routes.write_text("targets: nope\n")
    assert main(["eval", str(prompt_file), "--config", str(routes)]) == 2
    assert "routes.yaml" in capsys.readouterr().err


def test_unreachable_gateway_exits_1(prompt_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        assert main(["eval", str(prompt_file), "--url", url]) == 1
    assert "ConnectError" in capsys.readouterr().err

"""The data readers on small local files written for these tests (no dataset is copied here)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from adapter_lifecycle.data import DataError, load, parse_spec
from adapter_lifecycle.data.readers import MAX_TOKENS, describer_answer, noise_pairs
from adapter_lifecycle.render import render_sample, role_template
from gateway.eval.noise import KINDS, inject, rng_for
from gateway.refinement.dictionary import english_words
from gateway.refinement.prompts import load_template

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ specs

def test_spec_syntax() -> None:
    spec = parse_spec("noise:/data/clean.txt?rate=0.1&clean=0.3")
    assert (spec.kind, spec.source, spec.options) == ("noise", "/data/clean.txt", {"rate": "0.1", "clean": "0.3"})
    assert parse_spec("jfleg:hf:jhu-clsp/jfleg?split=test").hub == "jhu-clsp/jfleg"
    with pytest.raises(DataError, match="unknown kind 'csv'"):
        parse_spec("csv:x")
    with pytest.raises(DataError, match="expected KIND:SOURCE"):
        parse_spec("pairs.jsonl")
    with pytest.raises(DataError, match=r"unknown options \['rate'\]"):
        parse_spec("paws:x.tsv?rate=1")


def test_a_reader_for_another_role_is_refused(tmp_path: Path) -> None:
    f = write(tmp_path / "p.tsv", "id\tsentence1\tsentence2\tlabel\n1\tA cat sat.\tThe cat was sitting.\t1\n")
    with pytest.raises(DataError, match="paws data trains the paraphraser, not the cleaner"):
        load(f"paws:{f}", "cleaner")


def test_a_missing_file_and_a_hub_name_without_datasets(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load(f"jsonl:{tmp_path / 'nope.jsonl'}")
    try:
        import datasets  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match="needs the `datasets` library"):
            load("jfleg:hf:jhu-clsp/jfleg")


# ------------------------------------------------------------------------------------------ jfleg

def test_jfleg_json_lines(tmp_path: Path) -> None:
    f = write(tmp_path / "jfleg.jsonl",
              json.dumps({"sentence": "She go to school every days .",
                          "corrections": ["She goes to school every day .", "She goes to school every day .",
                                          "She went to school every day .", ""]}) + "\n"
              + json.dumps({"sentence": "I has a idea .", "corrections": ["I have an idea ."]}) + "\n")
    ds = load(f"jfleg:{f}", "cleaner")
    assert [(s.input, s.output) for s in ds.samples] == [
        ("She go to school every days .", "She goes to school every day ."),
        ("She go to school every days .", "She went to school every day ."),
        ("I has a idea .", "I have an idea ."),
    ]
    assert ds.samples[2].source == f"{f}:2"
    assert ds.notes == ("1 empty corrections left out",)
    assert ds.record() == {"spec": f"jfleg:{f}", "sha256": ds.sha256, "samples": 3}


def test_jfleg_source_and_reference_files(tmp_path: Path) -> None:
    write(tmp_path / "dev.src", "Their is a problem .\nHe dont know .\n")
    write(tmp_path / "dev.ref0", "There is a problem .\nHe doesn't know .\n")
    write(tmp_path / "dev.ref1", "There is a problem .\nHe does not know .\n")
    ds = load(f"jfleg:{tmp_path}")
    assert [(s.input, s.output) for s in ds.samples] == [
        ("Their is a problem .", "There is a problem ."),
        ("He dont know .", "He doesn't know ."), ("He dont know .", "He does not know ."),
    ]
    write(tmp_path / "dev.ref1", "There is a problem .\n")
    with pytest.raises(DataError, match=r"dev.ref1:2: 1 lines, but dev.src has 2"):
        load(f"jfleg:{tmp_path / 'dev.src'}")


def test_jfleg_malformed_lines(tmp_path: Path) -> None:
    f = write(tmp_path / "j.jsonl", '{"sentence": "ok .", "corrections": ["ok ."]}\n\n{"sentence": "x", "corrections": "x"}\n')
    with pytest.raises(DataError, match=rf"^{f}:3: field 'corrections' must be a list of strings$"):
        load(f"jfleg:{f}")


# ------------------------------------------------------------------------------------- paws / qqp

def test_paws_keeps_label_1_pairs(tmp_path: Path) -> None:
    f = write(tmp_path / "train.tsv", "id\tsentence1\tsentence2\tlabel\n"
              "1\tThe river flows north through the valley .\tThrough the valley the river flows north .\t1\n"
              "2\tTom met Ann in Rome .\tAnn met Tom in Paris .\t0\n"
              "3\tThe shop opens at nine .\tAt nine the shop opens .\t1\n")
    ds = load(f"paws:{f}", "paraphraser")
    assert [(s.input, s.output, s.source) for s in ds.samples] == [
        ("The river flows north through the valley .", "Through the valley the river flows north .", f"{f}:2"),
        ("The shop opens at nine .", "At nine the shop opens .", f"{f}:4"),
    ]
    assert ds.notes == ("1 label-0 pairs left out (not paraphrases)",)


def test_paws_malformed_lines(tmp_path: Path) -> None:
    f = write(tmp_path / "p.tsv", "id\tsentence1\tsentence2\tlabel\n1\tA b .\tB a .\t1\n2\tC d .\tD c .\tyes\n")
    with pytest.raises(DataError, match=rf"^{f}:3: label is 'yes', expected 0 or 1$"):
        load(f"paws:{f}")
    write(f, "id\tsentence1\tsentence2\tlabel\n1\tonly two\n")
    with pytest.raises(DataError, match=rf"^{f}:2: 2 fields, the header has 4$"):
        load(f"paws:{f}")
    write(f, "id\ttext\tlabel\n")
    with pytest.raises(DataError, match=rf"^{f}:1: header .* lacks the columns \['sentence1', 'sentence2'\]"):
        load(f"paws:{f}")


def test_qqp_tsv_and_csv(tmp_path: Path) -> None:
    tsv = write(tmp_path / "qqp.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                "7\t1\t2\tHow do I learn to swim as an adult?\tWhat is the best way for a grown-up to learn swimming?\t1\n"
                "8\t3\t4\tWhy is the sea salty?\tWhy do cats purr?\t0\n")
    csv_file = write(tmp_path / "qqp.csv", '"id","qid1","qid2","question1","question2","is_duplicate"\n'
                     '"9","5","6","Is coffee bad for sleep, really?","Does drinking coffee\nhurt my sleep?","1"\n'
                     '"10","7","8","Where is Oslo?","What is 2+2?","0"\n'
                     '"11","9","10","Broken row","1"\n')
    ds = load(f"qqp:{tsv}")
    assert [(s.input, s.output) for s in ds.samples] == [
        ("How do I learn to swim as an adult?", "What is the best way for a grown-up to learn swimming?")]
    with pytest.raises(DataError, match=rf"^{csv_file}:5: 5 fields, the header has 6$"):
        load(f"qqp:{csv_file}")  # the quoted newline makes row 2 span lines 2-3: the broken row starts on line 5
    write(csv_file, '"id","qid1","qid2","question1","question2","is_duplicate"\n'
          '"9","5","6","Is coffee bad for sleep, really?","Does drinking coffee\nhurt my sleep?","1"\n')
    assert load(f"qqp:{csv_file}").samples[0].output == "Does drinking coffee\nhurt my sleep?"


# -------------------------------------------------------------------------------------- wikipedia

ARTICLE = ("The Glass Harbour (also called the Bay of Lamps) is a fictional sheltered bay on a northern coast. "
           "It was first charted by fishermen in the twelfth century. Its water stays calm in winter storms. "
           "A lighthouse built of green stone stands at its mouth. Ferries cross it every hour.\n\n"
           "History\n\nThe harbour grew into a trading port.")


def test_wikipedia_articles_become_describer_samples(tmp_path: Path) -> None:
    f = write(tmp_path / "wiki.jsonl", json.dumps({"id": "1", "title": "Glass Harbour", "text": ARTICLE}) + "\n"
              + json.dumps({"title": "Empty page", "text": ""}) + "\n")
    ds = load(f"wikipedia:{f}", "describer")
    (sample,) = ds.samples
    assert "Glass Harbour" in sample.input and sample.input.endswith(("?", "."))
    assert sample.output.split("\n") == [
        "The Glass Harbour is a fictional sheltered bay on a northern coast.",
        "It was first charted by fishermen in the twelfth century.",
        "Its water stays calm in winter storms.",
    ]
    assert ds.notes == ("1 articles without a lead paragraph left out",)
    assert load(f"wikipedia:{f}?seed=3").samples[0].output == sample.output


def test_describer_answers_stay_within_the_token_budget() -> None:
    long = " ".join(["word"] * 200) + ". Second sentence here."
    assert len(describer_answer(long).split()) == MAX_TOKENS
    two = " ".join(["alpha"] * 70) + ". " + " ".join(["beta"] * 70) + "."
    assert describer_answer(two).count("\n") == 0  # the second fact would pass 120 tokens: left out


def test_wikipedia_malformed_line(tmp_path: Path) -> None:
    f = write(tmp_path / "w.jsonl", json.dumps({"title": "A", "text": ARTICLE}) + "\n" + json.dumps({"text": "x"}) + "\n")
    with pytest.raises(DataError, match=rf"^{f}:2: field 'title' is missing, expected a string$"):
        load(f"wikipedia:{f}")


# ------------------------------------------------------------------------------------------ jsonl

def test_jsonl_pairs_and_errors(tmp_path: Path) -> None:
    f = write(tmp_path / "mine.jsonl", '{"input": "plese help", "output": "please help"}\n'
              '{"input": "Who was Ada Lovelace?", "output": ""}\n')
    ds = load(f"jsonl:{f}?limit=1")
    assert [(s.input, s.output) for s in ds.samples] == [("plese help", "please help")]
    assert len(load(f"jsonl:{f}").samples) == 2  # an empty output is a valid describer answer
    write(f, '{"input": "a", "output": "b"}\n["a", "b"]\n')
    with pytest.raises(DataError, match=rf"^{f}:2: expected a JSON object, got list$"):
        load(f"jsonl:{f}")
    write(f, '{"input": "a", "output": 3}\n')
    with pytest.raises(DataError, match=rf"^{f}:1: field 'output' is int, expected a string$"):
        load(f"jsonl:{f}")


# ------------------------------------------------------------------------------------------ noise

CLEAN = ["The farmer carried a heavy basket of apples to the market on Monday morning.",
         "Please tell me how the moon changes its shape during a month.",
         "Our small team finished the report before the deadline and celebrated with cake.",
         "Which mountains are the highest in Europe and how were they formed?"]


def test_noise_pairs_come_from_the_gateways_injector(tmp_path: Path) -> None:
    f = write(tmp_path / "clean.txt", "\n".join(CLEAN) + "\n")
    ds = load(f"noise:{f}?rate=0.3&clean=0&seed=5", "cleaner")
    assert [s.output for s in ds.samples] == CLEAN
    for sample, text in zip(ds.samples, CLEAN, strict=True):
        rng = rng_for(5, sample.source, 0.3)
        rng.random()  # the clean/noisy draw comes first
        assert sample.input == inject(text, 0.3, rng, english_words()).text != text


def test_noise_covers_every_typo_kind_and_clean_pairs() -> None:
    texts = [(f"k{i}", CLEAN[i % len(CLEAN)]) for i in range(240)]
    samples = list(noise_pairs(texts, 0.25, 0.2, seed=11))
    unchanged = sum(s.input == s.output for s in samples)
    assert 0.1 < unchanged / len(samples) < 0.35  # the clean → unchanged share
    kinds: Counter[str] = Counter()
    vocabulary = english_words()
    for key, text in texts:
        rng = rng_for(11, key, 0.25)
        if rng.random() < 0.2:
            continue
        kinds.update(t.kind for t in inject(text, 0.25, rng, vocabulary).typos)
    assert set(kinds) == set(KINDS)  # swaps, deletions, insertions, substitutions, doubled, real words, deleted words


def test_noise_rejects_bad_options_and_non_text(tmp_path: Path) -> None:
    f = write(tmp_path / "c.txt", CLEAN[0] + "\n")
    with pytest.raises(DataError, match=r"rate=2.0 is outside \[0.0, 1.0\]"):
        load(f"noise:{f}?rate=2")
    (tmp_path / "b.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(DataError, match=rf"^{tmp_path / 'b.txt'}: not UTF-8 text"):
        load(f"noise:{tmp_path / 'b.txt'}")


# ------------------------------------------------------------------------------------------ render

def test_samples_are_rendered_exactly_as_the_gateway_sends_them(tmp_path: Path) -> None:
    f = write(tmp_path / "pairs.jsonl", '{"input": "wat time is it", "output": "What time is it?"}\n')
    (sample,) = load(f"jsonl:{f}").samples
    for role in ("cleaner", "describer", "paraphraser"):
        rendered = render_sample(role_template(REPO / "lora_adapters", role), sample)
        gateway = load_template(REPO / "lora_adapters" / role / "prompt.md").render("wat time is it")
        assert rendered["messages"] == gateway and rendered["answer"] == "What time is it?"
        assert rendered["messages"][0]["role"] == "system" and rendered["messages"][-1]["content"] == "wat time is it"

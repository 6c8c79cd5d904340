"""What the tokeniser hands the gate and the cleaner, and what it leaves alone."""

from __future__ import annotations

from gateway.refinement.tokens import scan


def texts(prompt: str) -> list[str]:
    return [w.text for w in scan(prompt).words]


def test_unicode_words_apostrophes_and_hyphens() -> None:
    assert texts("She’s in Kraków with Schrödinger's cat-like bike-lane.") == [
        "She’s", "in", "Kraków", "with", "Schrödinger's", "cat", "like", "bike", "lane",
    ]  # fmt: skip


def test_left_alone() -> None:
    prompt = (
        'Is "recieve" right? Run `pip instal x` on https://exmaple.com, mail a@b.io; '
        "my_var, useEffect, df.groupby, NASA, SVG, 5kg, 3rd, B12, $x^2$, \\frac, (B) x"
    )
    assert texts(prompt) == ["Is", "right", "Run", "on", "mail"]


def test_units_after_numbers_and_hyphenated_names() -> None:
    assert texts("It is 9 ft tall and 2 hrs away from Ra Jong-yil.") == [
        "It", "is", "tall", "and", "away", "from", "Ra", "Jong", "Yil",
    ]  # fmt: skip
    # after a number and a comma a short word is prose, not a unit (a file's suffix or a factor still is)
    assert texts("The GDP in 2023, iin trillions, was 27 km or 2*pi or 2.5.0.txt.") == [
        "The", "in", "iin", "trillions", "was", "or", "or",
    ]  # fmt: skip


def test_long_quotes_are_prose() -> None:
    assert texts('He said "the quick brown fox jumps" today.') == ["He", "said", "the", "quick", "brown", "fox", "jumps", "today"]


def test_sentence_starts_and_breaks() -> None:
    words = scan("Dr. Benni met him. Then, we left (A) Vitamin C").words
    flags = [(w.text, w.sentence_start, w.after_break) for w in words]
    assert flags == [
        ("Dr", True, True),
        ("Benni", False, True),  # Dr. does not end a sentence
        ("met", False, False),
        ("him", False, False),
        ("Then", True, True),
        ("we", False, True),  # after a comma: no pair across it
        ("left", False, False),
        ("Vitamin", False, True),
    ]


def test_offsets_point_into_the_prompt() -> None:
    prompt = 'x = f(y);\nWhy is "a long quoted passage here" so slow?'
    for word in scan(prompt).words:
        assert prompt[word.start : word.start + len(word.text)] == word.text


def test_code() -> None:
    assert scan("```py\nprint(1)\n```").has_code
    assert scan("def f(x):\n    return x").has_code
    assert not scan("Complete the sequence, making sure the brackets close. Input: [ { ( < > ) }").has_code
    # prose lines around code are kept; `a == b` inside prose does not make the line code
    assert texts("What does `x == y` do here?\nfor i in range(3): print(i)") == ["What", "does", "do", "here"]

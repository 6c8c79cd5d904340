from __future__ import annotations

from pathlib import Path

import pytest

from gateway.auth import ApiKeyAuth
from gateway.errors import AuthenticationFailed
from gateway.ratelimit import TokenBuckets
from gateway.refinement.prompts import load_template, parse_template

REPO = Path(__file__).resolve().parents[2]


def test_template_sections_and_slot() -> None:
    t = parse_template("<!-- note -->\n# system\nYou fix typos.\n# user\nText: {{input}}\nAnswer:")
    assert t.render("helo") == [{"role": "system", "content": "You fix typos."}, {"role": "user", "content": "Text: helo\nAnswer:"}]


def test_template_without_headings_or_slot() -> None:
    assert parse_template("Fix this:").render("x") == [{"role": "user", "content": "Fix this:\nx"}]


@pytest.mark.parametrize("role", ["cleaner", "describer", "paraphraser"])
def test_shipped_templates_have_the_slot(role: str) -> None:
    template = load_template(REPO / "lora_adapters" / role / "prompt.md")
    rendered = template.render("UNIQUE-INPUT-42")
    assert "UNIQUE-INPUT-42" in rendered[-1]["content"]


def test_auth() -> None:
    auth = ApiKeyAuth(frozenset({"sk-one", "sk-two"}))
    assert auth.authenticate("Bearer sk-two") == "sk-two"
    for header in (None, "", "Bearer", "Basic sk-one", "Bearer sk-three", "Bearer sk-onf"):
        with pytest.raises(AuthenticationFailed):
            auth.authenticate(header)
    assert ApiKeyAuth(frozenset()).authenticate(None) is None


def test_token_bucket() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=2, clock=lambda: now[0])
    assert buckets.take("k") == 0.0
    assert buckets.take("k") == 0.0
    wait = buckets.take("k")
    assert wait == pytest.approx(0.5)
    assert buckets.take("other") == 0.0
    now[0] += 0.5
    assert buckets.take("k") == 0.0

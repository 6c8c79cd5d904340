"""Every relative link of the repository's Markdown resolves: the file exists and, with a
``#fragment``, the anchor does (GitHub's heading slugs, or an explicit ``<a id>``)."""

from __future__ import annotations

from pathlib import Path

from tests.docs.links import Link, anchors, broken, links, markdown_files, slug
from tests.support.gateway_proc import REPO


def test_every_relative_link_and_anchor_resolves() -> None:
    files = markdown_files(REPO)
    assert REPO / "README.md" in files and REPO / "docs" / "quickstart-deploy.md" in files
    found = [link for path in files for link in links(path)]
    assert len(found) > 50  # the checker does see the links
    problems = [f"{link.source.relative_to(REPO)}:{link.line}: {link.target}: {why}" for link in found if (why := broken(link, REPO))]
    assert problems == []


def test_the_slugs_are_githubs() -> None:
    assert slug("Workers (`serve --workers N`)") == "workers-serve---workers-n"
    assert slug("8. Many gateways behind HAProxy") == "8-many-gateways-behind-haproxy"
    assert slug("Refinement cache (`gateway/refinement/outcome_cache.py`, `cache_key.py`)") == (
        "refinement-cache-gatewayrefinementoutcome_cachepy-cache_keypy"
    )
    text = "# A\n## A\n```\n## not a heading\n```\n<a id=\"custom\"></a>\n"
    assert anchors(text) == {"a", "a-1", "custom"}


def test_a_missing_anchor_or_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Title\n[ok](#title) [gone](#nowhere) [file](b.md#x) [none](c.md) `[code](c.md)`\n")
    (tmp_path / "b.md").write_text("# X\n")
    reasons = [broken(link, tmp_path) for link in links(tmp_path / "a.md")]
    assert reasons == [None, "no anchor #nowhere in a.md", None, "no file c.md"]
    assert broken(Link(tmp_path / "a.md", 1, "../outside.md"), tmp_path) is not None

"""The dashboard in real headless Chromium (Debian's ``chromium``, driven by Playwright over the
DevTools protocol; ``scripts/install-chromium.sh``): it asks for the key, shows the fleet, and
follows a worker going down and coming back. Saves ``test-artifacts/dashboard.png``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.admin.conftest import ADMIN_KEY, DIRTY, refining, restart
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import REPO, GatewayProcess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "test-artifacts"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (scripts/install-chromium.sh installs it)")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test dependency (scripts/bootstrap.sh)")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def test_the_dashboard_follows_a_worker_down_and_up(browser, gateway: GatewayProcess, worker: FakeOpenAI, target: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    refining(worker)
    for _ in range(3):  # some refinements for the outcome figures
        reply = httpx.post(
            gateway.base_url + "/chat/completions",
            json={"model": "test-model", "messages": [{"role": "user", "content": DIRTY}]},
            timeout=10,
        )
        assert reply.status_code == 200
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and "401" not in msg.text else None)
    try:
        page.goto(gateway.url + "/admin/")
        assert page.is_visible("#login") and not page.is_visible("#board")

        page.fill("#admin-key", "wrong-key")  # refused: the form stays, with the gateway's reason
        page.click("#key-form button")
        page.wait_for_selector("#error:not([hidden])", timeout=5000)
        assert "refused the key (401)" in page.text_content("#error")
        assert page.is_visible("#login")

        page.fill("#admin-key", ADMIN_KEY)
        page.click("#key-form button")
        worker_rows = f'.endpoint[data-endpoint="{worker.base_url}"]'
        page.wait_for_selector(f'{worker_rows}[data-up="true"]', timeout=5000)
        assert page.locator(f'{worker_rows}[data-up="true"]').count() == 3  # cleaner, describer, paraphraser
        assert page.locator(f'.endpoint[data-endpoint="{target.base_url}"][data-up="true"]').count() == 1
        page.wait_for_selector('#connection[data-connection="live"]', timeout=5000)
        assert page.locator('[data-stage="cleaner"]').count() == 1
        assert page.locator('#recent tbody tr[data-result="applied"]').count() >= 3
        assert DIRTY not in page.content()

        worker.stop()
        try:
            sync_api.expect(page.locator(f'{worker_rows}[data-up="false"]')).to_have_count(3, timeout=5000)
            page.wait_for_selector('#events li[data-kind="endpoint.down"]', timeout=5000)
            assert page.locator(f'.endpoint[data-endpoint="{target.base_url}"][data-up="true"]').count() == 1
        finally:
            restart(worker)
        sync_api.expect(page.locator(f'{worker_rows}[data-up="true"]')).to_have_count(3, timeout=5000)
        page.wait_for_selector('#events li[data-kind="endpoint.up"]', timeout=5000)

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        page.click("#sign-out")  # the key leaves the tab's storage
        assert page.is_visible("#login") and page.evaluate("sessionStorage.getItem('mpr-admin-key')") is None
        assert errors == [], errors
    finally:
        page.close()


def test_artifacts_are_ignored_by_git() -> None:
    assert "/test-artifacts/" in Path(REPO / ".gitignore").read_text().splitlines()

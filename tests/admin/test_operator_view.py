"""The operator's view of a gateway with the built-in cleaner (a real ``mpr-gateway serve`` and a
fake target on loopback): recent requests carry their HTTP status, a failed target call counts as
``failed`` (not ``applied``), the dashboard's page and assets say their charset once, the
built-in cleaner shows in the Fleet panel (headless Chromium, when installed), and
``GET /admin/usage`` right after traffic shows it (an empty ``mpr-gateway usage`` says why)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.console.status import headline, summary_lines
from gateway.console.usage import render
from gateway.telemetry.recent import PENDING, STATUS, RecentRefinements
from gateway.refinement.results import RefinementOutcome
from tests.admin.conftest import ADMIN_KEY, AUTH, status
from tests.support.fake_openai import Behaviour, FakeOpenAI
from tests.support.gateway_proc import REPO, GatewayProcess, routes

DIRTY = "what is the captial of frnace?"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def target() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(target: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = routes(target.base_url, refinement={"builtin_cleaner": "always", "stages": ["cleaner"], "cache": {"enabled": False}})
    config["targets"].append({"name": "broken-model", "endpoints": [target.base_url], "upstream_model": "broken", "timeout_s": 5})
    with GatewayProcess(config, tmp_path_factory.mktemp("operator"), env={"MPR_ADMIN_KEY": ADMIN_KEY}) as gw:
        yield gw


def _chat(gw: GatewayProcess, model: str) -> httpx.Response:
    return httpx.post(gw.base_url + "/chat/completions", json={"model": model, "messages": [{"role": "user", "content": DIRTY}]}, timeout=10)


def test_a_failed_target_call_shows_its_status_and_counts_as_failed(gateway: GatewayProcess, target: FakeOpenAI) -> None:
    target.behave("broken", Behaviour(mode="status", status=500, body={"error": {"message": "boom", "type": "server_error"}}))
    before = status(gateway)["refinement"]["since_start"]["results"]
    ok = _chat(gateway, "test-model")
    failed = _chat(gateway, "broken-model")
    assert ok.status_code == 200 and ok.headers["x-mpr-refinement"] == "cleaner"
    assert failed.status_code >= 500 and failed.headers["x-mpr-refinement"] == "cleaner"  # refined, then the target failed
    body = status(gateway)
    newest, previous = body["refinement"]["recent"][:2]
    assert (newest["model"], newest["status"], newest["result"]) == ("broken-model", failed.status_code, "failed")
    assert (previous["model"], previous["status"], previous["result"]) == ("test-model", 200, "applied")
    after = body["refinement"]["since_start"]["results"]
    assert after["applied"] == before["applied"] + 1 and after["failed"] == before["failed"] + 1
    assert body["refinement"]["window"]["results"]["failed"] >= 1


def test_the_built_in_cleaner_is_a_stage_and_the_fleet_shows_it(gateway: GatewayProcess) -> None:
    body = status(gateway)
    assert [(s["role"], s["kind"]) for s in body["stages"]] == [("cleaner", "builtin")]
    script = (REPO / "gateway" / "admin" / "static" / "dashboard.js").read_text()
    assert 'st.kind === "builtin"' in script  # the Fleet panel draws built-in stages (checked in a browser below)


@pytest.mark.parametrize(("path", "kind"), [("/admin/", "text/html"), ("/admin/assets/dashboard.js", "text/javascript"), ("/admin/assets/dashboard.css", "text/css")])
def test_the_dashboard_says_its_charset_once(gateway: GatewayProcess, path: str, kind: str) -> None:
    response = httpx.get(gateway.url + path, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{kind}; charset=utf-8"


def test_usage_right_after_traffic_shows_it(gateway: GatewayProcess) -> None:
    before = _usage_requests(gateway)
    assert _chat(gateway, "test-model").status_code == 200
    assert _usage_requests(gateway) == before + 1  # flushed before the answer: no second's wait


def _usage_requests(gw: GatewayProcess) -> int:
    response = httpx.get(gw.url + "/admin/usage", headers=AUTH, timeout=5)
    assert response.status_code == 200, response.text
    return sum(row["requests"] for row in response.json()["data"] if row["model"] == "test-model")


def test_an_empty_usage_table_says_why() -> None:
    empty = render({"object": "mpr.usage", "window_s": 3600, "shared": False, "data": []})
    assert "about once a second" in empty
    row = {"key": "-", "model": "m", "requests": 1, "prompt_tokens": 1, "completion_tokens": 1, "stage_tokens": 0, "total_tokens": 2}
    assert "about once a second" not in render({"window_s": 3600, "data": [row]})


def test_an_entry_is_settled_once_with_its_status() -> None:
    recent = RecentRefinements()
    slot: list[Any] = []
    token = PENDING.set(slot)
    try:
        recent.record(RefinementOutcome("a", "b", None, "cleaner", 1.0), "m", "apply", "cleaner")
    finally:
        PENDING.reset(token)
    assert len(slot) == 1 and slot[0][STATUS] is None
    recent.settle(slot, 502)
    recent.settle(slot, 200)  # once only
    snap = recent.snapshot()
    assert snap["recent"][0]["status"] == 502 and snap["recent"][0]["result"] == "failed"
    assert snap["since_start"]["results"]["failed"] == 1 and snap["window"]["results"]["failed"] == 1


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (scripts/install-chromium.sh installs it)")
def test_the_dashboard_shows_the_built_in_cleaner_and_the_status(gateway: GatewayProcess) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test dependency (scripts/bootstrap.sh)")
    assert _chat(gateway, "broken-model").status_code >= 500
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(gateway.url + "/admin/")
            page.fill("#admin-key", ADMIN_KEY)
            page.click("#key-form button")
            page.wait_for_selector('.endpoint[data-pool="builtin:cleaner"][data-up="true"]', timeout=5000)
            page.wait_for_selector('#recent tbody tr[data-result="failed"]', timeout=5000)
            assert page.locator('#recent tbody tr[data-result="failed"] td.status').first.text_content() == "500"
            assert errors == [], errors
        finally:
            browser.close()



def test_the_status_headline_names_retiring_runtimes() -> None:
    base = {"version": "x", "pid": 1, "workers": 1, "uptime_s": 5, "config": {"hash": "abc"}}
    assert "finishing requests" not in headline({**base, "runtimes": {"serving": 1, "retiring": 0}})
    assert "2 old config(s) finishing requests" in headline({**base, "runtimes": {"serving": 1, "retiring": 2}})
    assert "failed 0" in summary_lines({"refinement": {"window": {"total": 0, "results": {}}}})[0]

"""``mpr-gateway status`` against a real gateway process: the fleet table, ``--json``, and clear
failures when the gateway is unreachable or refuses the key."""

from __future__ import annotations

import json
import subprocess
import sys

from gateway.console.status import fleet_rows, render_plain
from tests.admin.conftest import ADMIN_KEY
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway_proc import REPO, GatewayProcess, clean_env, free_port


def mpr_status(*args: str, key: str | None = ADMIN_KEY) -> subprocess.CompletedProcess[str]:
    env = clean_env()
    if key is not None:
        env["MPR_ADMIN_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "gateway", "status", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def test_status_prints_the_fleet_as_an_aligned_table_when_piped(gateway: GatewayProcess, target: FakeOpenAI, worker: FakeOpenAI) -> None:
    result = mpr_status("--url", gateway.url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("mpr-gateway ") and f"pid {gateway.proc.pid} of 1 worker" in lines[0]
    header = next(line for line in lines if line.startswith("KIND"))
    assert header.split() == ["KIND", "NAME", "NODE", "TIER", "STATE", "IN-FLIGHT", "P50", "MS", "P99", "MS", "URL", "LAST", "ERROR"]
    rows = [line for line in lines if line.startswith(("target", "stage"))]
    assert len(rows) == 4
    url_at = header.index("URL")
    assert rows[0].startswith("target") and rows[0][url_at:].startswith(target.base_url)  # columns line up
    assert all(row[url_at:].startswith(worker.base_url) for row in rows[1:])
    assert all(row[header.index("STATE"):].startswith("up") for row in rows)
    assert any(line.startswith("STAGE") for line in lines) and any(line.startswith("refinements") for line in lines)
    assert "\x1b[" not in result.stdout  # no colours when piped


def test_status_json_and_the_url_with_v1_and_the_key_flag(gateway: GatewayProcess) -> None:
    result = mpr_status("--url", gateway.base_url, "--key", ADMIN_KEY, "--json", key=None)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["object"] == "mpr.status" and body["pid"] == gateway.proc.pid
    assert render_plain(body).count("\n") > len(fleet_rows(body))


def test_a_refused_key_exits_2_and_an_unreachable_gateway_exits_1(gateway: GatewayProcess) -> None:
    refused = mpr_status("--url", gateway.url, key="wrong")
    assert refused.returncode == 2 and refused.stdout == ""
    assert "refused the admin key (401)" in refused.stderr
    missing = mpr_status("--url", gateway.url, key=None)
    assert missing.returncode == 2 and "MPR_ADMIN_KEY" in missing.stderr
    down = mpr_status("--url", f"http://127.0.0.1:{free_port()}", "--timeout", "2")
    assert down.returncode == 1 and "cannot reach the gateway" in down.stderr


def test_a_rich_table_on_a_terminal(gateway: GatewayProcess) -> None:
    import io

    from gateway.console.status import fetch_status, render_rich

    out = io.StringIO()
    render_rich(fetch_status(gateway.url, ADMIN_KEY), out, width=200)
    text = out.getvalue()
    assert "KIND" in text and "test-model" in text and "cleaner" in text

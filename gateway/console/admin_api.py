"""Reading a running gateway's admin API from a terminal: the shared options and one GET that turns
every failure into an :class:`AdminApiError` with the CLI's exit code (1: unreachable or an error
answer; 2: the admin key refused)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"


class AdminApiError(Exception):
    """Why there is no answer: ``exit_code`` 1 (unreachable, an error answer) or 2 (key refused)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """``--url``, ``--key``, ``--json`` and ``--timeout``, as every admin command takes them."""
    parser.add_argument("--url", default=os.environ.get("MPR_GATEWAY_URL", DEFAULT_URL), help=f"the gateway (default {DEFAULT_URL}; env MPR_GATEWAY_URL)")
    parser.add_argument("--key", help="admin key (default: env MPR_ADMIN_KEY)")
    parser.add_argument("--json", action="store_true", help="print the answer's JSON as it is")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)")


def fetch_admin(
    url: str,
    path: str,
    key: str | None,
    expect: str | None,
    params: Mapping[str, str] | None = None,
    timeout_s: float = 5.0,
    method: str = "GET",
) -> dict[str, Any]:
    """``{method} {url}{path}`` with the admin key: the JSON object whose ``object`` is ``expect``
    (None: any JSON object)."""
    endpoint = url.rstrip("/").removesuffix("/v1") + path
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.request(method, endpoint, params=params, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise AdminApiError(f"cannot reach the gateway at {endpoint}: {type(exc).__name__}: {exc}") from None
    if response.status_code in (401, 403):
        hint = "" if key else " (no key given: pass --key or set MPR_ADMIN_KEY)"
        raise AdminApiError(f"the gateway refused the admin key ({response.status_code}): {error_message(response)}{hint}", 2)
    if response.status_code != 200:
        raise AdminApiError(f"{method} {endpoint} answered {response.status_code}: {error_message(response)}")
    try:
        body = response.json()
    except ValueError:
        raise AdminApiError(f"{method} {endpoint} did not answer JSON (is this an MPR gateway?)") from None
    if not isinstance(body, dict) or (expect is not None and body.get("object") != expect):
        raise AdminApiError(f"{method} {endpoint} did not answer an {expect} object (is this an MPR gateway?)")
    return body


def error_message(response: httpx.Response) -> str:
    """The message of an OpenAI-shaped error answer, else the start of its text."""
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase

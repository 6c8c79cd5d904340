"""Talk to a running vLLM: ``/health`` and ``/v1/models`` (I/O), and the pure check of the model list."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx


def listed_model_ids(models_body: Mapping[str, Any]) -> list[str]:
    """The ``id`` of every entry in an OpenAI ``/v1/models`` list body."""
    data = models_body.get("data")
    if not isinstance(data, list):
        return []
    return [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]


def missing_models(models_body: Mapping[str, Any], expected: Iterable[str]) -> list[str]:
    """Names in ``expected`` that the ``/v1/models`` body does not list, in order."""
    listed = set(listed_model_ids(models_body))
    return [name for name in expected if name not in listed]


def base_url(host: str, port: int) -> str:
    """``http://host:port`` for probing (a wildcard bind address is probed on loopback)."""
    probe_host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in probe_host:
        probe_host = f"[{probe_host}]"
    return f"http://{probe_host}:{port}"


def is_healthy(url: str, timeout_s: float = 2.0) -> bool:
    """True when ``GET {url}/health`` answers 200."""
    try:
        return httpx.get(f"{url}/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def fetch_models(url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """``GET {url}/v1/models`` as JSON; raises ``httpx.HTTPError`` on failure."""
    response = httpx.get(f"{url}/v1/models", timeout=timeout_s)
    response.raise_for_status()
    body = response.json()
    return body if isinstance(body, dict) else {}


def describe_missing(missing: Sequence[str], listed: Sequence[str]) -> str:
    """The error shown when vLLM came up without some LoRA names."""
    return (f"vLLM is up but /v1/models does not list LoRA adapter(s) {', '.join(missing)} "
            f"(it lists: {', '.join(listed) or 'nothing'}); check --lora-modules paths and names")

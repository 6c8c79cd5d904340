"""Load and unload LoRA versions in a running vLLM (no restart): ``mpr-worker adapters load|unload|list``.

vLLM serves ``POST /v1/load_lora_adapter`` ``{lora_name, lora_path}`` and ``POST
/v1/unload_lora_adapter`` ``{lora_name}`` only when started with
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` (``mpr-worker launch`` sets it unless the worker config
says ``runtime_lora_updating: false``). ``mpr-worker`` talks to the vLLM port directly: the
gateway never forwards these routes (they are not on its pass-through allow-list).

Which LoRA name the worker announces for a role (:func:`announced_adapters`, used by
:class:`~worker_launch.register.Announcer` at every heartbeat): the name it was launched with while
vLLM still serves it, else the newest version of that role vLLM serves. Every served name of the
role is announced as well (``loras``), so a gateway can send a canary share to a candidate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from worker_launch import ROLES

LOAD_PATH = "/v1/load_lora_adapter"
UNLOAD_PATH = "/v1/unload_lora_adapter"

_VERSION_RE = re.compile(r"^(?P<role>.+)@(?P<version>[0-9]+)$")


class HotLoadError(Exception):
    """vLLM refused or could not be asked."""


@dataclass(frozen=True)
class ServedModel:
    """One entry of vLLM's ``/v1/models``: ``parent`` is None for the base model, set for a LoRA."""

    id: str
    root: str | None
    parent: str | None


def served_models(models_body: Mapping[str, Any]) -> list[ServedModel]:
    """The entries of a ``/v1/models`` body, in order (vLLM lists LoRAs in the order they were loaded)."""
    data = models_body.get("data")
    if not isinstance(data, list):
        return []
    return [ServedModel(str(m["id"]), m.get("root"), m.get("parent")) for m in data if isinstance(m, dict) and "id" in m]


def served_base(models_body: Mapping[str, Any]) -> ServedModel | None:
    """The base model vLLM serves (the first entry without a parent)."""
    return next((m for m in served_models(models_body) if m.parent is None), None)


def served_lora_names(models_body: Mapping[str, Any]) -> list[str]:
    return [m.id for m in served_models(models_body) if m.parent is not None]


def role_of(name: str, launched: Mapping[str, str]) -> str | None:
    """The role a LoRA name serves: the role it was launched for, else the ``ROLE`` of ``ROLE@N``,
    else the role of the same name (a legacy manifest's LoRA is named after its directory)."""
    for role, launched_name in launched.items():
        if name == launched_name:
            return role
    match = _VERSION_RE.match(name)
    if match:
        return match.group("role")
    return name if name in launched or name in ROLES else None


def _version(name: str) -> int:
    match = _VERSION_RE.match(name)
    return int(match.group("version")) if match else 0


def announced_adapters(launched: Mapping[str, str], served: Iterable[str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Pure: ``(role -> the name the gateway should send, role -> every served name)`` given the
    names the node was launched with and the LoRA names vLLM lists now.

    A role's name is its launch name while that is served, else the highest version served for
    the role (so ``adapters load cleaner@2 --replace`` moves the gateway to ``cleaner@2``)."""
    loras: dict[str, list[str]] = {}
    for name in served:
        role = role_of(name, launched)
        if role is not None:
            loras.setdefault(role, []).append(name)
    adapters: dict[str, str] = {}
    for role, names in loras.items():
        launched_name = launched.get(role)
        adapters[role] = launched_name if launched_name in names else max(names, key=_version)
    return adapters, loras


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        if "message" in body:
            return str(body["message"])
    return response.text[:500]


def _post(url: str, path: str, body: Mapping[str, Any], timeout_s: float) -> httpx.Response:
    try:
        return httpx.post(url.rstrip("/") + path, json=dict(body), timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise HotLoadError(f"cannot reach vLLM at {url}: {type(exc).__name__}: {exc}") from None


def _not_enabled(url: str) -> HotLoadError:
    return HotLoadError(f"vLLM at {url} does not serve {LOAD_PATH}: it was started without "
                        "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (mpr-worker launch sets it unless the worker config "
                        "has runtime_lora_updating: false); restart it to load adapters at runtime")


def load_adapter(url: str, name: str, path: str, timeout_s: float = 300.0) -> str:
    """``POST {url}/v1/load_lora_adapter``; vLLM's answer, or :class:`HotLoadError`."""
    response = _post(url, LOAD_PATH, {"lora_name": name, "lora_path": path}, timeout_s)
    if response.status_code in (404, 405):
        raise _not_enabled(url)
    if response.status_code != 200:
        raise HotLoadError(f"vLLM refused to load {name} from {path}: HTTP {response.status_code}: {_error_text(response)}")
    return response.text


def unload_adapter(url: str, name: str, timeout_s: float = 60.0) -> str:
    """``POST {url}/v1/unload_lora_adapter``; vLLM's answer, or :class:`HotLoadError`."""
    response = _post(url, UNLOAD_PATH, {"lora_name": name}, timeout_s)
    if response.status_code == 405:
        raise _not_enabled(url)
    if response.status_code == 404 and "cannot be found" not in response.text:
        raise _not_enabled(url)
    if response.status_code != 200:
        raise HotLoadError(f"vLLM refused to unload {name}: HTTP {response.status_code}: {_error_text(response)}")
    return response.text


def fetch_served(url: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """``GET {url}/v1/models``; :class:`HotLoadError` when vLLM cannot be asked."""
    try:
        response = httpx.get(url.rstrip("/") + "/v1/models", timeout=timeout_s)
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise HotLoadError(f"cannot list the models of vLLM at {url}: {type(exc).__name__}: {exc}") from None
    return body if isinstance(body, dict) else {}

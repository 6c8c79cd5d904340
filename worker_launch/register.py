"""Announce this worker node to the gateway (``--register URL``) and keep it announced.

While vLLM is ready, a daemon thread posts the full registration to ``POST {gateway}/admin/workers``
every ``heartbeat_s`` (so a restarted gateway is whole again within one heartbeat); when vLLM goes
down or the launcher stops it deregisters (``DELETE /admin/workers/{node}``). Failures are logged
and retried at the next beat: registration never stops the worker.

Before each beat the announcer reads vLLM's ``/v1/models``, so a LoRA version loaded or unloaded at
runtime (``mpr-worker adapters load|unload``) is announced within one heartbeat: ``loras`` lists
every served name per role and ``adapters`` the one the gateway sends
(:func:`worker_launch.hotload.announced_adapters`).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx

from worker_launch.hotload import announced_adapters, served_lora_names
from worker_launch.logs import log
from worker_launch.plan import LaunchSpec
from worker_launch.probe import base_url

REGISTER_KEY_ENV = "MPR_REGISTER_KEY"


@dataclass(frozen=True)
class Registration:
    """What this node announces."""

    gateway: str  # the gateway's base URL, e.g. http://gw:8000
    node: str
    url: str  # this worker's OpenAI base URL (…/v1) as the gateway reaches it
    tier: str
    adapters: Mapping[str, str]  # role → LoRA name
    base_model: str
    heartbeat_s: float = 5.0
    key: str | None = None
    loras: Mapping[str, list[str]] | None = None  # role → every LoRA name served for it (hot-loaded versions too)

    def body(self) -> dict[str, Any]:
        body = {"node": self.node, "url": self.url, "tier": self.tier, "roles": sorted(self.adapters),
                "adapters": dict(self.adapters), "base_model": self.base_model, "heartbeat_s": self.heartbeat_s}
        if self.loras is not None:
            body["loras"] = {role: list(names) for role, names in self.loras.items()}
        return body

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"} if self.key else {}


def advertised_url(spec: LaunchSpec, advertise: str | None) -> str:
    """``--advertise`` (…/v1 added when missing), else this host's name and the port (a wildcard
    bind address is no address the gateway can reach), else the bind address."""
    if advertise:
        url = advertise.rstrip("/")
        return url if url.endswith("/v1") else url + "/v1"
    host = socket.gethostname() if spec.host in ("0.0.0.0", "::", "") else spec.host
    return base_url(host, spec.port) + "/v1"


def registration_for(spec: LaunchSpec, gateway: str, *, key: str | None = None, advertise: str | None = None,
                     heartbeat_s: float = 5.0, node: str | None = None,
                     env: Mapping[str, str] | None = None) -> Registration:
    """The registration of the node ``spec`` launches (pure but for the host name default)."""
    env = os.environ if env is None else env
    return Registration(
        gateway=gateway.rstrip("/"),
        node=node or socket.gethostname(),
        url=advertised_url(spec, advertise),
        tier=spec.device,
        adapters={lora.role: lora.name for lora in spec.loras},
        base_model=spec.model_name,
        heartbeat_s=heartbeat_s,
        key=key or env.get(REGISTER_KEY_ENV) or None,
    )


class Announcer:
    """Heartbeats ``registration`` while :meth:`up`; :meth:`down` and :meth:`close` deregister."""

    def __init__(self, registration: Registration, timeout_s: float = 5.0, vllm_url: str | None = None) -> None:
        self.registration = registration
        self.launched: dict[str, str] = dict(registration.adapters)  # role → the name launched with
        self.vllm_url = vllm_url  # read /v1/models before each beat (hot-loaded versions); None: announce as launched
        self.timeout_s = timeout_s
        self._active = threading.Event()
        self._wake = threading.Event()
        self._closed = False
        self._failing = False
        self._announced = False
        self._io = threading.Lock()  # a beat in flight and a deregistration never cross
        self._thread = threading.Thread(target=self._run, name="mpr-register", daemon=True)
        self._thread.start()

    def up(self) -> None:
        """vLLM is ready: announce now and every heartbeat."""
        self._active.set()
        self._wake.set()

    def down(self) -> None:
        """vLLM is gone (crashed, restarting): stop heartbeating and deregister."""
        if self._active.is_set():
            self._active.clear()
            with self._io:
                self._deregister()

    def close(self) -> None:
        """The launcher stops: deregister (when announced) and end the thread."""
        was_active = self._active.is_set()
        self._closed = True
        self._active.clear()
        self._wake.set()
        self._thread.join(timeout=self.timeout_s + 1)
        if was_active:
            with self._io:
                self._deregister()

    def refresh(self) -> None:
        """Bring the registration in step with what vLLM serves now (kept as it was when vLLM cannot say)."""
        if self.vllm_url is None:
            return
        try:
            response = httpx.get(f"{self.vllm_url}/v1/models", timeout=self.timeout_s)
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return
        adapters, loras = announced_adapters(self.launched, served_lora_names(body if isinstance(body, dict) else {}))
        if not adapters:
            return
        old = self.registration
        if adapters != dict(old.adapters) or old.loras is None or loras != {k: list(v) for k, v in old.loras.items()}:
            if old.loras is not None:
                log("adapters_changed", node=old.node, adapters=",".join(f"{r}={n}" for r, n in sorted(adapters.items())),
                    loras=",".join(n for names in loras.values() for n in names))
            self.registration = replace(old, adapters=adapters, loras=loras)

    def announce(self) -> bool:
        """One registration POST; True when the gateway took it."""
        self.refresh()
        reg = self.registration
        try:
            response = httpx.post(f"{reg.gateway}/admin/workers", json=reg.body(), headers=reg.headers(), timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            return self._failed(f"{type(exc).__name__}: {exc}")
        if response.status_code != 200:
            return self._failed(f"http_{response.status_code}: {response.text[:300]}")
        if self._failing or not self._announced:
            log("registered", gateway=reg.gateway, node=reg.node, url=reg.url, tier=reg.tier, roles=",".join(sorted(reg.adapters)))
        self._failing = False
        self._announced = True
        return True

    def _failed(self, error: str) -> bool:
        if not self._failing:  # once per outage, not once per beat
            log("register_failed", level="WARNING", gateway=self.registration.gateway, error=error,
                retry_every_s=self.registration.heartbeat_s)
        self._failing = True
        return False

    def _deregister(self) -> None:
        reg = self.registration
        self._announced = False
        try:
            response = httpx.delete(f"{reg.gateway}/admin/workers/{reg.node}", headers=reg.headers(), timeout=self.timeout_s)
            log("deregistered", gateway=reg.gateway, node=reg.node, status=response.status_code)
        except httpx.HTTPError as exc:
            log("deregister_failed", level="WARNING", gateway=reg.gateway, error=f"{type(exc).__name__}: {exc}")

    def _run(self) -> None:
        while not self._closed:
            self._active.wait(timeout=0.5)
            if self._closed:
                return
            if not self._active.is_set():
                continue
            self._wake.clear()
            with self._io:
                if self._active.is_set():
                    self.announce()
            self._wake.wait(timeout=self.registration.heartbeat_s)

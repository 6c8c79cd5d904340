"""The gateway's runtime: config plus the live objects built from it (pools, sessions, stages).

Built by :func:`build_runtime`; started and stopped by the app's lifespan, or by a reload
(:mod:`gateway.reload`), which starts a new one and stops the old one after its last request. No
globals: every request reaches the current one through the :class:`~gateway.reload.live.RuntimeRef`
of ``create_app``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any


from gateway.admin.auth import AdminAuth, admin_keys
from gateway.admin.events import EventBus, endpoint_announcer
from gateway.tenants.accounting import Accountant
from gateway.tenants.keyring import KeyRing, build_keyring
from gateway.config import GatewayConfig, Role, TargetConfig, load_api_keys
from gateway.config.models import ALL_ROLES, AdapterConfig
from gateway.refinement.canary import Canary
from gateway.refinement.fallback import FallbackStage
from gateway.refinement.gate import uses_language_model
from gateway.refinement.lexicon import lexicon
from gateway.refinement.ngram import trigram_model
from gateway.refinement.outcome_cache import OutcomeCache
from gateway.refinement.pipeline import Refiner
from gateway.refinement.prompts import load_template
from gateway.refinement.spelling import SpellingCleaner
from gateway.refinement.turn_store import TurnStore
from gateway.refinement.stages import StageBackend, VllmStage
from gateway.state import SharedState
from gateway.state.build import build_state
from gateway.state.local import LocalState
from gateway.telemetry import Telemetry
from gateway.upstream.health import Prober
from gateway.upstream.http import new_session
from gateway.upstream.wire import Session
from gateway.upstream.pool import Endpoint, EndpointPool
from gateway.upstream.router import TargetRouter
from gateway.upstream.target import TargetClient

if TYPE_CHECKING:
    from gateway.registry.registry import Registrations

log = logging.getLogger("gateway.runtime")

CANARY_SYNC_S = 1.0  # how often a process adopts the canary verdicts others stored
CANARY_VERDICT_TTL_S = 30 * 86400.0


@dataclass
class Runtime:
    config: GatewayConfig
    auth: KeyRing  # client keys → tenants (gateway.tenants)
    refiner: Refiner | None = None
    targets: dict[str, TargetClient] = field(default_factory=dict)
    target_pools: dict[str, EndpointPool] = field(default_factory=dict)
    adapter_pools: dict[Role, EndpointPool] = field(default_factory=dict)
    sessions: list[Session] = field(default_factory=list)
    prober: Prober | None = None
    builtin_stages: Mapping[Role, StageBackend] = field(default_factory=dict)
    draining: bool = False
    telemetry: Telemetry = field(default_factory=Telemetry)
    background: set[asyncio.Task[Any]] = field(default_factory=set)  # shadow refinements still running
    router: TargetRouter | None = None  # retries and fallbacks of target calls (built by start)
    state: SharedState = field(default_factory=LocalState)  # rate limits, cool-down verdicts, cache (shared with Redis)
    publishing: set[asyncio.Task[Any]] = field(default_factory=set)  # cool-down verdicts being published
    admin: AdminAuth = field(default_factory=lambda: AdminAuth(frozenset()))  # /admin/* (never client keys)
    turns: TurnStore | None = None  # conversations' refined user turns (built by start)
    events: EventBus = field(default_factory=EventBus)  # the operator's event stream (kept across reloads)
    registrations: Registrations | None = None  # registered workers (kept across reloads; joins the adapter pools)
    accountant: Accountant | None = None  # tenants' usage: metrics, usage buckets, usage log (built by build_runtime)

    def target(self, name: str) -> TargetClient | None:
        return self.targets.get(name)

    async def start(self) -> None:
        """Open sessions, build stage backends and start probing (needs a running loop)."""
        cfg = self.config
        vocabulary = lexicon()
        probe_sets = []
        for target_cfg in cfg.targets:
            pool = EndpointPool.of(f"target:{target_cfg.name}", target_cfg.base_urls, target_cfg.cooldown_s)
            pool.balance, pool.epsilon = target_cfg.balance, target_cfg.affinity_epsilon
            session = new_session(target_cfg.max_connections)
            self.sessions.append(session)
            client = TargetClient(target_cfg, pool, session)
            self.targets[target_cfg.name] = client
            self.target_pools[target_cfg.name] = pool
            auth_header = {"authorization": client._base_headers["authorization"]} if "authorization" in client._base_headers else None
            probe_sets.append((pool, session, auth_header))
        self.router = TargetRouter(self.targets, cfg, self.telemetry.metrics)
        backends: dict[Role, StageBackend] = dict(self.builtin_stages)
        for role in ALL_ROLES:
            adapter = cfg.adapters.get(role)
            if adapter is None or role in backends:
                continue
            pool = adapter_pool(role, adapter)
            session = new_session(adapter.max_connections, retry_stale=True)
            self.sessions.append(session)
            stage = backends[role] = VllmStage(role, adapter, load_template(adapter.prompt), pool, session)
            if adapter.canary is not None:
                stage.canary = self._canary(role, adapter)
            self.adapter_pools[role] = pool
            probe_sets.append((pool, session, None))
        if cfg.refinement.builtin_cleaner == "fallback" and Role.CLEANER not in self.builtin_stages:
            backends[Role.CLEANER] = FallbackStage(Role.CLEANER, backends.get(Role.CLEANER), SpellingCleaner())
        if uses_language_model(cfg.refinement.skip_gate, bool(backends)):
            trigram_model()  # the gate's language model (~35 MB, ~40 ms) now, not on some request's path
        cache = cfg.refinement.cache
        outcomes = OutcomeCache(self.state, cache.ttl_s, self.telemetry.metrics) if cache.enabled else None
        self.refiner = Refiner(cfg.refinement, backends, vocabulary, self.telemetry, outcomes)
        self.turns = TurnStore(self.state, cfg.refinement.conversations.ttl_s)
        self._share_cooldowns()
        self.prober = Prober(probe_sets, cfg.server.probe_interval_s)
        self.prober.start()
        if self.canaries:
            await self._sync_canaries()  # a verdict taken before a reload, or by another worker, holds
            self.background.add(asyncio.get_running_loop().create_task(self._follow_canaries()))
        if self.registrations is not None:
            self.registrations.attach(self)  # registered workers join the new pools before any request

    def _canary(self, role: Role, adapter: AdapterConfig) -> Canary:
        """``role``'s canary (its changes go to the operator's event stream)."""
        spec = adapter.canary
        assert spec is not None
        events = self.events

        def announce(canary: Canary, kind: str, adopted: bool) -> None:
            events.publish(kind, canary.as_dict())
            if not adopted:  # every other process (and the next runtime) adopts it from the shared state
                self._spawn(self.state.record_put(canary.record_key, canary.verdict(), CANARY_VERDICT_TTL_S))

        return Canary(
            role.value, adapter.model, spec.model, spec.share, spec.min_requests, spec.alpha, spec.auto_rollback, on_change=announce
        )

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.publishing.add(task)
        task.add_done_callback(self.publishing.discard)

    async def _sync_canaries(self) -> None:
        """Adopt the verdicts other processes (or this one before a reload) stored."""
        for canary in self.canaries.values():
            try:
                canary.adopt(await self.state.record_get(canary.record_key))
            except Exception as exc:  # noqa: BLE001 - a verdict is read again next second
                log.warning("canary verdict of %s not read (%s)", canary.role, type(exc).__name__)

    async def _follow_canaries(self) -> None:
        while True:
            await asyncio.sleep(CANARY_SYNC_S)
            await self._sync_canaries()

    @property
    def canaries(self) -> dict[str, Canary]:
        """The stages' canaries by role name (none without a refiner)."""
        return {role.value: canary for role, canary in self.refiner.canaries.items()} if self.refiner is not None else {}

    def _share_cooldowns(self) -> None:
        """Publish every pool's failures through :attr:`state`; apply other processes' verdicts."""
        pools = {pool.name: pool for pool in (*self.target_pools.values(), *self.adapter_pools.values())}

        def publish(pool: EndpointPool, endpoint: Endpoint, error: str) -> None:
            task = asyncio.get_running_loop().create_task(self.state.mark_down(pool.name, endpoint.url, pool.cooldown_s, error))
            self.publishing.add(task)
            task.add_done_callback(self.publishing.discard)

        def apply(pool_name: str, url: str, seconds: float, error: str) -> None:
            pool = pools.get(pool_name)
            if pool is not None and pool.apply_verdict(url, seconds, error):
                log.info("endpoint %s of %s out of rotation for %gs: %s (another gateway)", url, pool_name, seconds, error)

        announce = endpoint_announcer(self.events)  # endpoint.up / endpoint.down on the operator's stream
        for pool in pools.values():
            pool.on_failure = publish
            pool.on_change = announce
        self.state.watch_down(apply)

    async def stop(self) -> None:
        pending = [task for task in self.background if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self.prober is not None:
            await self.prober.stop()
        for session in self.sessions:
            await session.close()
        self.sessions.clear()
        if self.publishing:
            await asyncio.gather(*self.publishing, return_exceptions=True)
        if self.accountant is not None:
            await self.accountant.close()  # the buffered usage buckets, the last settlements
        await self.state.close()

    def readiness(self) -> tuple[bool, dict[str, object]]:
        """(ready, body) for ``/ready``: ready when at least one target endpoint is up."""
        targets = {name: pool.status() for name, pool in self.target_pools.items()}
        adapters = {role.value: pool.status() for role, pool in self.adapter_pools.items()}
        builtin = {role.value: [{"url": "builtin", "up": True}] for role in self.builtin_stages}
        ready = any(pool.any_up for pool in self.target_pools.values()) and not self.draining
        return ready, {
            "status": "ready" if ready else "unready",
            "draining": self.draining,
            "targets": targets,
            "adapters": {**adapters, **builtin},
            "state": self.state.status(),
        }


def adapter_pool(role: Role, adapter: AdapterConfig) -> EndpointPool:
    """The pool of ``role``'s configured endpoints, with their declared tiers and the tier policy."""
    endpoints = [Endpoint(url, tier=adapter.tier_of(url)) for url in adapter.base_urls]
    return EndpointPool(f"adapter:{role.value}", endpoints, adapter.cooldown_s, prefer=adapter.prefer, max_inflight=adapter.max_inflight)


def build_runtime(
    config: GatewayConfig,
    builtin_stages: Mapping[Role, StageBackend] | None = None,
    telemetry: Telemetry | None = None,
    events: EventBus | None = None,
    registrations: Registrations | None = None,
) -> Runtime:
    """A runtime for ``config`` (not started). ``builtin_stages`` replace adapters (demo), as does
    the built-in cleaner with ``refinement.builtin_cleaner: always``. ``telemetry``: the running
    one on a reload (tracer, metrics and audit log live as long as the process), as are ``events``
    and ``registrations`` (the registered workers, added to the adapter pools when it starts)."""
    keys = load_api_keys(config)
    keyring = build_keyring(config.server.keys, keys, config.server.keys_file)
    if not keyring.enabled:
        log.warning("no client API keys configured: the gateway accepts every caller")
    if telemetry is None:
        telemetry = Telemetry.from_config(config.telemetry)
    builtin = dict(builtin_stages or {})
    if config.refinement.builtin_cleaner == "always" and Role.CLEANER not in builtin:
        builtin[Role.CLEANER] = SpellingCleaner()
    runtime = Runtime(
        config=config,
        auth=keyring,
        admin=AdminAuth(admin_keys(config)),
        state=build_state(config.state),
        builtin_stages=builtin,
        telemetry=telemetry,
        events=events if events is not None else EventBus(),
        registrations=registrations,
    )
    runtime.accountant = Accountant(runtime.state, telemetry.metrics, config.telemetry.usage_log, [t.name for t in config.targets])
    return runtime


def target_config(runtime: Runtime, name: str) -> TargetConfig | None:
    client = runtime.targets.get(name)
    return client.config if client is not None else None

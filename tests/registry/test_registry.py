"""Registrations in one process, over a real LocalState: pools follow the store, events say what
happened, a new runtime (a reload) gets every known worker when it attaches."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import msgspec

from gateway.admin.events import EventBus
from gateway.config.models import Role
from gateway.registry.models import Announcement
from gateway.registry.registry import Registrations
from gateway.state.local import LocalState
from gateway.upstream.pool import Endpoint, EndpointPool


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _runtime(state: LocalState, *roles: Role) -> Any:
    pools = {role: EndpointPool(f"adapter:{role.value}", [Endpoint("http://configured/v1")]) for role in roles}
    return SimpleNamespace(adapter_pools=pools, state=state)


def _urls(runtime: Any, role: Role) -> list[tuple[str, str | None, str | None, str]]:
    return [(e.url, e.model, e.tier, e.source) for e in runtime.adapter_pools[role].endpoints]


ANNOUNCEMENT = Announcement(node="n1", url="http://w1/v1", tier="cpu", adapters={"cleaner": "lora-c", "describer": "lora-d"},
                            heartbeat_s=1.0)


async def test_a_registration_joins_the_pools_it_has_and_events_tell_each_change() -> None:
    clock = Clock()
    state = LocalState(clock=clock)
    events = EventBus()
    registrations = Registrations(events, wall=clock)
    runtime = _runtime(state, Role.CLEANER)  # no describer pool: that role is not used
    registrations.attach(runtime)
    record = await registrations.announce(ANNOUNCEMENT)
    assert registrations.pooled_roles(record) == ["cleaner"]
    assert _urls(runtime, Role.CLEANER) == [("http://configured/v1", None, None, "config"), ("http://w1/v1", "lora-c", "cpu", "registered")]
    await registrations.announce(ANNOUNCEMENT)  # a heartbeat: no change, no event
    moved = msgspec.structs.replace(ANNOUNCEMENT, url="http://w1b/v1")
    await registrations.announce(moved)
    assert [e.url for e in runtime.adapter_pools[Role.CLEANER].endpoints] == ["http://configured/v1", "http://w1b/v1"]
    clock.now += 2.9
    await registrations.sync()
    assert "n1" in registrations.known
    clock.now += 0.2  # three heartbeats missed
    await registrations.sync()
    assert registrations.known == {} and _urls(runtime, Role.CLEANER) == [("http://configured/v1", None, None, "config")]
    await registrations.announce(ANNOUNCEMENT)
    assert await registrations.withdraw("n1") and not await registrations.withdraw("n1")
    assert [e.kind for e in events.recent] == ["worker.registered", "worker.registered", "worker.expired", "worker.registered",
                                               "worker.deregistered"]
    assert events.recent[0].data == {"node": "n1", "roles": ["cleaner", "describer"], "tier": "cpu", "url": "http://w1/v1"}


async def test_a_new_runtime_gets_every_known_worker_when_it_attaches() -> None:
    state = LocalState()
    registrations = Registrations(EventBus())
    old = _runtime(state, Role.CLEANER)
    registrations.attach(old)
    await registrations.announce(ANNOUNCEMENT)
    new = _runtime(state, Role.CLEANER, Role.DESCRIBER)  # the reloaded config declares the describer too
    registrations.attach(new)
    assert [e.url for e in new.adapter_pools[Role.CLEANER].endpoints] == ["http://configured/v1", "http://w1/v1"]
    assert [e.model for e in new.adapter_pools[Role.DESCRIBER].endpoints] == [None, "lora-d"]
    await registrations.withdraw("n1")
    assert [e.url for e in new.adapter_pools[Role.DESCRIBER].endpoints] == ["http://configured/v1"]


async def test_another_process_registration_is_picked_up_by_a_sync() -> None:
    state = LocalState()  # shared by two registries, as Redis or the registry directory would be
    mine, theirs = Registrations(EventBus()), Registrations(EventBus())
    a, b = _runtime(state, Role.CLEANER), _runtime(state, Role.CLEANER)
    mine.attach(a)
    theirs.attach(b)
    await mine.announce(ANNOUNCEMENT)
    assert len(b.adapter_pools[Role.CLEANER].endpoints) == 1
    await theirs.sync()
    assert [e.url for e in b.adapter_pools[Role.CLEANER].endpoints] == ["http://configured/v1", "http://w1/v1"]
    await mine.withdraw("n1")
    await theirs.sync()
    assert [e.kind for e in theirs.events.recent] == ["worker.registered", "worker.deregistered"]

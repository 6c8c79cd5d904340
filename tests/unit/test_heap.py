"""The serving process's collector settings (gateway.serving.heap): start-up objects are frozen,
and a reload's resettle frees cycles that were frozen with them."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway.serving import heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.fixture
def restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settle_freezes_and_raises_the_young_threshold(restored: None) -> None:
    heap.settle()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == heap.GEN0_THRESHOLD


def test_resettle_frees_a_retired_runtimes_cycles(restored: None) -> None:
    old = Node()
    alive = weakref.ref(old)
    heap.settle()  # the "runtime" was built before start-up ended: frozen with it
    del old
    gc.collect()
    assert alive() is not None  # frozen objects are never scanned
    heap.resettle()
    assert alive() is None
    assert gc.get_freeze_count() > 0  # what is left is frozen again


def frozen(obj: object) -> bool:
    """Tracked by the collector yet in none of its generations: in the permanent one."""
    return gc.is_tracked(obj) and not any(o is obj for generation in range(3) for o in gc.get_objects(generation))


def test_preloaded_resources_stay_frozen_and_the_runtime_collectable(restored: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Resources frozen before the app is built (in a forked worker: by the supervisor, shared
    pages) are never unfrozen; what start-up builds later stays collectable, so a reload frees an
    old runtime with a plain collection."""
    monkeypatch.setattr(heap, "_preloaded", False)
    resource = Node()
    heap.freeze_preloaded()
    assert heap.preloaded() and frozen(resource)
    runtime = Node()
    alive = weakref.ref(runtime)
    heap.settle()
    assert not frozen(runtime)  # the runtime is not frozen
    del runtime
    heap.resettle()
    assert alive() is None and frozen(resource)  # freed; the resources stay frozen

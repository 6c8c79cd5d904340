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


def test_a_forked_worker_keeps_the_inherited_objects_frozen(restored: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a forked worker the frozen objects are the supervisor's (shared pages): settle and
    resettle never unfreeze them, and the worker's own objects stay collectable."""
    monkeypatch.setattr(heap, "_inherited", False)
    inherited = Node()
    gc.freeze()  # what the supervisor froze before the fork
    frozen = gc.get_freeze_count()
    heap.forked()
    own = Node()
    alive = weakref.ref(own)
    heap.settle()
    assert gc.get_freeze_count() == frozen  # its own objects are not frozen
    del own
    heap.resettle()
    assert alive() is None and gc.get_freeze_count() == frozen  # freed; the inherited stay frozen
    del inherited

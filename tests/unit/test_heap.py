"""heap.settle: garbage cycles are collected before the freeze, survivors are frozen, and frozen objects are still
freed by reference counting."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from lienthong import heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture(autouse=True)
def _unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test session runs with the collector as it was


def test_a_garbage_cycle_is_collected_not_frozen() -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    settled = heap.settle()
    assert gone() is None
    assert settled.collected >= 2


def test_survivors_are_frozen_and_freed_when_dropped() -> None:
    before = gc.get_freeze_count()
    kept = [_Node() for _ in range(1_000)]
    settled = heap.settle()
    assert settled.frozen == gc.get_freeze_count() >= before + 1_000
    young_and_old = [o for generation in range(3) for o in gc.get_objects(generation)]
    assert not any(o is kept[0] for o in young_and_old)  # in the permanent generation: collections skip it
    probe = weakref.ref(kept[0])
    del kept  # no cycle: reference counting frees them though they are frozen
    assert probe() is None


def test_only_a_router_running_alone_settles_the_heap(tmp_path: Path) -> None:
    from lienthong.settings import Settings
    from lienthong.wiring import Bus
    from router.service import Router

    bus = Bus(Settings(home=tmp_path))
    gc.unfreeze()
    Router(bus, "embedded")._heap.settle()
    assert gc.get_freeze_count() == 0  # a router inside another program (tests, the demo) leaves the collector be
    Router(bus, "alone", settle_heap=True)._heap.settle()
    assert gc.get_freeze_count() > 0


def test_a_router_that_closes_thaws_what_it_froze(tmp_path: Path) -> None:
    # Its Kafka clients, frozen while alive, form reference cycles once closed: the next settle must see them.
    from lienthong.settings import Settings
    from lienthong.wiring import Bus
    from router.service import Router

    router = Router(Bus(Settings(home=tmp_path)), "alone", settle_heap=True)
    router._heap.settle()
    assert gc.get_freeze_count() > 0
    router.close()
    assert gc.get_freeze_count() == 0


def test_a_keeper_settles_when_due_and_not_before() -> None:
    gc.unfreeze()
    heap.Keeper(True, every_s=3600).due()
    assert gc.get_freeze_count() == 0  # an hour has not passed since it was made
    heap.Keeper(False, every_s=0).due()
    assert gc.get_freeze_count() == 0  # disabled
    heap.Keeper(True, every_s=0).due()
    assert gc.get_freeze_count() > 0

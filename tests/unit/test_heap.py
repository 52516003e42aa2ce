"""The collector's tuning: the start-up heap frozen, the collections spaced out — and cycles still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from fcfs import heap


@pytest.fixture
def restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_settle_freezes_what_exists_and_spaces_collections(restored: None) -> None:
    gc.unfreeze()
    heap.settle()
    assert gc.get_threshold() == (heap.YOUNG, heap.MIDDLE, heap.OLD)
    assert gc.get_freeze_count() > 1000  # the modules and everything imported so far


def test_a_cycle_made_after_settle_is_still_collected(restored: None) -> None:
    heap.settle()
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    assert gone() is not None  # a cycle: reference counting alone does not free it
    kept: list[list[int]] = [
        [] for _ in range(heap.YOUNG + 1)
    ]  # more young containers than the threshold: a young collection runs
    assert gone() is None  # collected by that automatic collection, not by an explicit one
    assert len(kept) > heap.YOUNG

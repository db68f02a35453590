"""The collector is off during a run and what the run kept is frozen after it. A long-lived
process (a fleet worker running stack after stack) does not keep cyclic garbage frozen forever:
once the frozen objects have doubled since the last collection, the next run collects first."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from cloudorch.engine import collector
from cloudorch.engine.collector import collector_paused


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


@pytest.fixture(autouse=True)
def _thawed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    gc.unfreeze()  # what other tests' runs in this process froze
    gc.collect()
    monkeypatch.setattr(collector, "_baseline", 0)
    yield
    gc.unfreeze()
    gc.enable()


def test_off_during_a_run_and_frozen_after() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # nested: still off, and the inner end turns nothing on
            pass
        assert not gc.isenabled()
        kept = [_Node() for _ in range(10)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(kept)


def test_frozen_garbage_is_collected_once_it_has_doubled() -> None:
    with collector_paused():
        node = _Node()
        ref = weakref.ref(node)
        del node  # garbage now, but only a collection can free a cycle
    gc.collect()
    assert ref() is not None  # frozen with everything else the run left
    with collector_paused():
        pass
    assert ref() is not None  # one more run: the frozen objects did not grow, nothing is walked
    with collector_paused():
        garbage = [_Node() for _ in range(gc.get_freeze_count() + 10)]
        del garbage  # runs that leave much cyclic garbage behind
    assert ref() is not None
    with collector_paused():
        assert ref() is None  # the next run gave the frozen objects back and collected first


def test_a_collector_turned_off_by_the_caller_stays_off() -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()
    assert gc.get_freeze_count() == 0

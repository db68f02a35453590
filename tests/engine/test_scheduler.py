"""The scheduler: critical-path priority, limits, failure isolation, interrupts."""

from __future__ import annotations

import threading
import time

from cloudorch.engine.scheduler import Interrupt, Scheduler, Task


def _tasks(spec: dict[str, set[str]], group: str = "g", weight: float = 1.0) -> list[Task[None]]:
    return [Task(key=k, payload=None, group=group, weight=weight, after=set(v)) for k, v in spec.items()]


def test_longest_remaining_path_starts_first() -> None:
    # a chain c1 -> c2 -> c3 and three independent tasks; with one slot the chain head goes first
    spec = {"c1": set(), "c2": {"c1"}, "c3": {"c2"}, "x": set(), "y": set(), "z": set()}
    order: list[str] = []
    Scheduler(_tasks(spec), parallelism=1, group_limits={}).run(lambda t: order.append(t.key))
    assert order[0] == "c1"
    assert order.index("c1") < order.index("c2") < order.index("c3")


def test_chain_plus_wide_gives_every_freed_slot_to_the_chain() -> None:
    """Chain c0..c9 and 40 independent tasks on 5 slots: the chain (the critical path) takes each
    slot it frees, so the run meets its critical-path bound (timed in bench/library_bench.py).

    The wide tasks of the first wave block until the chain is done, so the chain can only finish
    if every freed slot went to its next link: a scheduler that handed one to another wide task
    would stall the chain behind it (bounded by the wait below) and start more wide tasks first."""
    chain: dict[str, set[str]] = {f"c{i}": ({f"c{i - 1}"} if i else set()) for i in range(10)}
    wide: dict[str, set[str]] = {f"w{i}": set() for i in range(40)}
    # wide tasks a little shorter than a link, so even the last link outranks them (no tie)
    tasks = _tasks(chain, weight=0.02) + _tasks(wide, weight=0.01)
    lock = threading.Lock()
    chain_done = threading.Event()
    started: list[str] = []
    wide_started_before_chain_end: list[int] = []

    def work(t: Task[None]) -> None:
        with lock:
            started.append(t.key)
            if t.key == "c9":
                wide_started_before_chain_end.append(sum(k.startswith("w") for k in started))
                chain_done.set()
        if t.key.startswith("w"):
            chain_done.wait(timeout=30)

    res = Scheduler(tasks, parallelism=5, group_limits={}).run(work)
    assert len(res.succeeded) == 50 and not res.failed
    assert [k for k in started if k.startswith("c")] == [f"c{i}" for i in range(10)]
    assert wide_started_before_chain_end == [4]  # only the first wave: 5 slots, one for the chain


def test_group_limit_is_respected() -> None:
    lock = threading.Lock()
    running = {"n": 0, "max": 0}

    def work(_t: Task[None]) -> None:
        with lock:
            running["n"] += 1
            running["max"] = max(running["max"], running["n"])
        time.sleep(0.01)
        with lock:
            running["n"] -= 1

    Scheduler(_tasks({f"t{i}": set() for i in range(30)}), parallelism=20, group_limits={"g": 3}).run(work)
    assert running["max"] == 3


def test_failure_skips_only_dependents() -> None:
    spec = {"a": set(), "b": {"a"}, "c": {"b"}, "d": set()}

    def work(t: Task[None]) -> None:
        if t.key == "a":
            raise RuntimeError("boom")

    res = Scheduler(_tasks(spec), parallelism=4, group_limits={}).run(work)
    assert set(res.failed) == {"a"}
    assert res.skipped == {"b": "a", "c": "a"}
    assert res.succeeded == ["d"]


def test_first_interrupt_stops_new_work_and_waits() -> None:
    intr = Interrupt()
    spec = {f"t{i}": set() for i in range(10)}

    def work(t: Task[None]) -> None:
        if t.key == "t0":
            intr.fire()
        time.sleep(0.05)

    res = Scheduler(_tasks(spec), parallelism=2, group_limits={}, interrupt=intr).run(work)
    assert res.interrupted
    assert 1 <= len(res.succeeded) <= 2  # the running ones finished
    assert len(res.not_started) >= 8
    assert not res.abandoned

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


def test_chain_plus_wide_meets_the_bound_with_limited_parallelism() -> None:
    spec: dict[str, set[str]] = {f"c{i}": ({f"c{i - 1}"} if i else set()) for i in range(10)}
    spec.update({f"w{i}": set() for i in range(40)})
    started = time.monotonic()
    Scheduler(_tasks(spec, weight=0.02), parallelism=5, group_limits={}).run(lambda t: time.sleep(0.02))
    took = time.monotonic() - started
    bound = max(10 * 0.02, 50 * 0.02 / 5)
    assert took < bound * 1.6, (took, bound)


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

"""The scheduler: a concurrent walk of an operation DAG.

It starts every ready operation it may, always the one with the longest remaining path first
(critical-path priority), bounded by a global `parallelism` and a limit per group (a provider
block). When an operation fails, everything downstream of it is skipped and independent work
finishes. A first interrupt stops new starts and waits for running work; a second stops waiting:
operations still running are left to their (daemon) worker threads, which the process does not
wait for at exit. `Interrupt.halt` stops new starts for another reason (a policy denial) without
counting as an interrupt. It knows nothing of clouds, state or journals: the caller's `run`
function does the work.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from cloudorch.graph import remaining_path

T = TypeVar("T")


@dataclass
class Task(Generic[T]):
    key: str
    payload: T
    group: str
    weight: float = 1.0
    after: set[str] = field(default_factory=set)  # keys that must succeed first


@dataclass
class Outcome:
    ok: bool
    error: BaseException | None = None


@dataclass
class ScheduleResult:
    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, BaseException] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # key -> why (the failed ancestor)
    not_started: list[str] = field(default_factory=list)  # left over after an interrupt
    abandoned: list[str] = field(default_factory=list)  # still running when the second interrupt came
    interrupted: bool = False
    stopped_by: str | None = None  # with stop_on_failure: the first failure, after which nothing new started
    halted: str | None = None  # why `Scheduler.halt` stopped new starts (no task failed)


class Interrupt:
    """A counter the caller bumps (from a signal handler); the scheduler polls it.

    `halt` is the other way to stop starting work (a policy denial, however many at once): it
    never counts as an interrupt, so it never abandons running operations."""

    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()
        self.halted: str | None = None

    def fire(self) -> None:
        self.count += 1
        self.event.set()

    def halt(self, reason: str) -> None:
        """Start nothing new; running work finishes. The first reason is kept; thread-safe."""
        if self.halted is None:
            self.halted = reason


class _Workers:
    """Daemon worker threads, started as work needs them up to `limit`.

    Unlike a `ThreadPoolExecutor`, whose threads the interpreter joins at exit, an operation
    abandoned by a second interrupt cannot hold the process up: it stops with the process and the
    journal records it as in flight."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._jobs: queue.SimpleQueue[tuple[Callable[[Task[Any]], None], Task[Any]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._queued = 0

    def submit(self, fn: Callable[[Task[Any]], None], task: Task[Any]) -> None:
        with self._lock:
            self._queued += 1
            start = self._queued > self._idle and self._threads < self.limit
            if start:
                self._threads += 1
        if start:
            threading.Thread(target=self._loop, name="cloudorch-op", daemon=True).start()
        self._jobs.put((fn, task))

    def _loop(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            job = self._jobs.get()
            with self._lock:
                self._idle -= 1
                if job is not None:
                    self._queued -= 1
            if job is None:
                return
            job[0](job[1])

    def shutdown(self) -> None:
        """Let every worker end once its current job is done; joins nothing."""
        with self._lock:
            threads = self._threads
        for _ in range(threads):
            self._jobs.put(None)


class Scheduler(Generic[T]):
    def __init__(
        self,
        tasks: Iterable[Task[T]],
        *,
        parallelism: int,
        group_limits: Mapping[str, int],
        interrupt: Interrupt | None = None,
        on_stop_starting: Callable[[int], None] | None = None,
        stop_on_failure: bool = False,
    ) -> None:
        self.tasks = {t.key: t for t in tasks}
        #: start nothing new after the first failure (running work still finishes)
        self.stop_on_failure = stop_on_failure
        self.parallelism = max(1, parallelism)
        self.group_limits = dict(group_limits)
        self.interrupt = interrupt or Interrupt()
        self.on_stop_starting = on_stop_starting
        self.dependents: dict[str, list[str]] = {k: [] for k in self.tasks}
        for t in self.tasks.values():
            t.after &= self.tasks.keys()  # work outside this run is already done
            for dep in t.after:
                self.dependents[dep].append(t.key)
        self._halt: str | None = None
        self.priority = remaining_path(
            self.tasks, self.dependents, {k: t.weight for k, t in self.tasks.items()}
        )

    def halt(self, reason: str) -> None:
        """Start nothing new (running work finishes) without failing any task; thread-safe."""
        self._halt = reason

    def run(self, work: Callable[[Task[T]], None]) -> ScheduleResult:
        """Run every task; `work` raises to fail a task. Returns what happened to each key."""
        result = ScheduleResult()
        waiting = {k: len(t.after) for k, t in self.tasks.items()}
        seq = itertools.count()
        # one heap per group, so a full group never blocks a ready task of another
        ready: dict[str, list[tuple[float, int, str]]] = {}
        running_by_group: dict[str, int] = {}
        running: set[str] = set()
        # the C queue: a put from each of thousands of fast operations, and no task_done/join needed
        done: queue.SimpleQueue[tuple[str, BaseException | None]] = queue.SimpleQueue()
        limit_of = self.group_limits

        def push(key: str) -> None:
            t = self.tasks[key]
            heapq.heappush(ready.setdefault(t.group, []), (-self.priority[key], next(seq), key))

        for k, n in waiting.items():
            if n == 0:
                push(k)

        def skip_downstream(key: str, why: str) -> None:
            stack = list(self.dependents[key])
            while stack:
                k = stack.pop()
                if k in result.skipped or k in result.failed:
                    continue
                result.skipped[k] = why
                waiting[k] = -1
                stack.extend(self.dependents[k])

        def runner(task: Task[T]) -> None:
            try:
                work(task)
            except BaseException as exc:  # reported, not swallowed: the main loop records it
                done.put((task.key, exc))
            else:
                done.put((task.key, None))

        stopped_starting = False
        pool = _Workers(self.parallelism)
        try:
            while True:
                if self.interrupt.count >= 1 and not stopped_starting:
                    stopped_starting = True
                    result.interrupted = True
                    if self.on_stop_starting:
                        self.on_stop_starting(len(running))
                halt = self._halt or self.interrupt.halted
                if halt is not None and not stopped_starting:
                    stopped_starting = True
                    result.halted = halt
                if not stopped_starting:
                    self._start_ready(ready, running, running_by_group, limit_of, pool, runner)
                if not running:
                    break
                if self.interrupt.count >= 2:
                    result.abandoned = sorted(running)
                    break
                try:
                    key, exc = done.get(timeout=0.05)
                except queue.Empty:
                    continue
                # drain everything that finished, then schedule in one go
                batch = [(key, exc)]
                while True:
                    try:
                        batch.append(done.get_nowait())
                    except queue.Empty:
                        break
                for key, exc in batch:
                    running.discard(key)
                    group = self.tasks[key].group
                    running_by_group[group] -= 1
                    if exc is None:
                        result.succeeded.append(key)
                        for d in self.dependents[key]:
                            if waiting[d] > 0:
                                waiting[d] -= 1
                                if waiting[d] == 0:
                                    push(d)
                    else:
                        result.failed[key] = exc
                        skip_downstream(key, key)
                        if self.stop_on_failure and not stopped_starting:
                            stopped_starting = True
                            result.stopped_by = key
        finally:
            # never joined: on abandon a worker may sit in a long cloud call
            pool.shutdown()
        settled = set(result.succeeded) | set(result.failed) | set(result.skipped) | set(result.abandoned)
        result.not_started = sorted(k for k in self.tasks if k not in settled)
        return result

    def _start_ready(
        self,
        ready: dict[str, list[tuple[float, int, str]]],
        running: set[str],
        running_by_group: dict[str, int],
        limit_of: Mapping[str, int],
        pool: _Workers,
        runner: Callable[[Task[T]], None],
    ) -> None:
        while len(running) < self.parallelism:
            best: tuple[float, int, str] | None = None
            best_group = ""
            for group, heap in ready.items():
                if not heap:
                    continue
                if running_by_group.get(group, 0) >= limit_of.get(group, self.parallelism):
                    continue
                if best is None or heap[0] < best:
                    best, best_group = heap[0], group
            if best is None:
                return
            heapq.heappop(ready[best_group])
            key = best[2]
            running.add(key)
            running_by_group[best_group] = running_by_group.get(best_group, 0) + 1
            pool.submit(runner, self.tasks[key])

"""The numbering of a provider's mutating calls that the conformance kit's fault, lost-response and
crash checks drive (`cloudorch/testing/conformance.py`). Each cloud's seam (`cloudorch_aws.faults`,
`cloudorch_gcp.faults`, `cloudorch_azure.faults`) subclasses `WriteFaultSeam` and hooks it into its
own transport; this class only keeps the count and what the current check asked for."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import ClassVar


class WriteFaultSeam:
    #: the environment variable that makes a process kill itself after that many mutating calls
    kill_after_env: ClassVar[str]

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.target: int | None = None
        self.lost = False
        self.fired = False

    def choose_error(self, rng: random.Random) -> None:
        """Pick the transient error the next failing call answers (a seam that has only one: nothing)."""

    @contextmanager
    def counting(self) -> Iterator[Callable[[], int]]:
        """Number the mutating calls made inside, failing none."""
        with self._lock:
            self.count, self.target = 0, None
        yield lambda: self.count

    @contextmanager
    def failing(self, call: int, *, lost: bool, rng: random.Random) -> Iterator[Callable[[], bool]]:
        """Fail mutating call number `call` (with `lost`: after the server acted on it)."""
        with self._lock:
            self.count, self.target, self.lost, self.fired = 0, call, lost, False
            self.choose_error(rng)
        try:
            yield lambda: self.fired
        finally:
            with self._lock:
                self.target = None

    def crash_env(self, call: int) -> Mapping[str, str]:
        return {self.kill_after_env: str(call)}

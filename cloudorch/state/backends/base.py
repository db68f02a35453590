"""The `StateBackend` interface every state store implements (local file now; S3, GCS, Azure later).

A backend stores one state document per key with compare-and-swap writes, keeps its history and
holds its lock. It does not bump serials, diff, or decide when to write: callers do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from cloudorch.state.lock import LockHandle, LockInfo
from cloudorch.state.model import State


@dataclass(frozen=True)
class HistoryEntry:
    """One stored version of a state document, as listed by `StateBackend.history()`."""

    serial: int
    lineage: str
    written_at: str
    resource_count: int
    checksum: str
    current: bool


class StateBackend(ABC):
    """Where one state document lives and how it is locked.

    Contract for implementations:
    - `read()` verifies the checksum; a document that does not verify raises StateError, never
      returns a partial State.
    - `write(state, expected_serial)` is compare-and-swap: it raises StateError unless the stored
      serial is `expected_serial` (None: nothing stored yet). The caller bumps `state.serial`
      (it must be greater than `expected_serial`). The previous version goes to history.
    - `lock(info, timeout)` waits up to `timeout` seconds, then raises StateLockedError naming the
      holder; a lock whose holder is provably dead or whose lease expired is taken over and the
      handle's `took_over` says so.
    """

    @abstractmethod
    def read(self) -> State | None:
        """The current state, verified; None if none has been written yet."""

    @abstractmethod
    def write(self, state: State, expected_serial: int | None) -> None:
        """Store `state` if the stored serial is `expected_serial`; stamps `state.written_at`."""

    @abstractmethod
    def history(self) -> list[HistoryEntry]:
        """Stored versions, newest first; the current one has `current=True`.

        Listed from each version's header without verifying its checksum (cheap for 20 versions
        of a large state); `read_version` verifies. Versions whose header is unreadable are left out.
        """

    @abstractmethod
    def read_version(self, serial: int) -> State:
        """One version by serial (current or from history), verified."""

    @abstractmethod
    def lock(self, info: LockInfo, timeout: float) -> LockHandle:
        """Take the lock for `info`, waiting up to `timeout` seconds."""

    @abstractmethod
    def force_unlock(self, lock_id: str) -> None:
        """Remove the lock whose id is `lock_id`; StateError if the current lock has another id."""

    @abstractmethod
    def current_lock(self) -> LockInfo | None:
        """Who holds the lock now, or None."""

    @abstractmethod
    def journal_path(self) -> Path:
        """The apply journal: always a local file under the working `.cloudorch/`."""

    @abstractmethod
    def describe(self) -> str:
        """For humans: `local .cloudorch/state/shop.json`."""

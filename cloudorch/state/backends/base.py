"""The `StateBackend` interface every state store implements (local file now; S3, GCS, Azure later).

A backend stores one state document per key with compare-and-swap writes, keeps its history and
holds its lock. It does not bump serials, diff, or decide when to write: callers do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cloudorch.errors import StateError
from cloudorch.state.lock import LockHandle, LockInfo
from cloudorch.state.model import State
from cloudorch.state.statefile import StateHeader

if TYPE_CHECKING:
    from cloudorch.state.crypto import StateCipher
    from cloudorch.state.journal import JournalStore, StateBinding


@dataclass(frozen=True)
class HistoryEntry:
    """One stored version of a state document, as listed by `StateBackend.history()`."""

    serial: int
    lineage: str
    written_at: str
    resource_count: int
    checksum: str
    current: bool


#: the hint when a compare-and-swap write finds that another writer got there first
RETRY_HINT = "Another process wrote this state since you read it: read it again (re-run plan) and retry."


def check_swap(where: str, state: State, stored: StateHeader | None, expected_serial: int) -> None:
    """The compare-and-swap rule every backend applies before replacing serial `expected_serial`."""
    if stored is None:
        raise StateError(
            f"refusing to write {where}: expected serial {expected_serial}, but no state is stored",
            hint="The state was removed since you read it; check its history before retrying.",
        )
    if stored.serial != expected_serial:
        raise StateError(
            f"refusing to write {where}: expected serial {expected_serial}, but it is at serial {stored.serial}",
            hint=RETRY_HINT,
        )
    if stored.lineage != state.lineage:
        raise StateError(
            f"refusing to write {where}: its lineage is {stored.lineage}, this state's is {state.lineage}",
            hint="This state belongs to a different plan or stage; check the backend and state key.",
        )
    if state.serial <= expected_serial:
        raise StateError(
            f"refusing to write {where}: new serial {state.serial} must be greater than {expected_serial}",
            hint="The caller bumps `serial` before writing (internal error; please report it).",
        )


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
      handle's `took_over` says so. The handle carries a fencing token (`fence`) greater than
      any earlier acquisition's; while it is held, every state write checks the lease and is
      refused when a later acquisition's token is stored.
    - `journal_store()` is where the journal of a run on this state lives (a local file, or
      objects beside remote state); `binding()` names the stored document a journal binds to.
    - `journal_binder`, when set (by an open journal), is called with the header of every state
      document about to be written, before it is written.
    """

    journal_binder: Callable[[StateHeader], None] | None = None

    @abstractmethod
    def read(self) -> State | None:
        """The current state, verified; None if none has been written yet."""

    @abstractmethod
    def write(self, state: State, expected_serial: int | None) -> None:
        """Store `state` if the stored serial is `expected_serial`; stamps `state.written_at`."""

    def write_next(self, state: State) -> None:
        """Store `state` as the version after the one it holds: bump its serial, then `write`
        compare-and-swap against the old one (nothing stored yet when it was 0)."""
        expected = state.serial
        state.serial += 1
        self.write(state, expected_serial=expected or None)

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
        """The local journal file of this state under the working `.cloudorch/` (remote state
        keeps its journal in the store: see `journal_store`)."""

    @abstractmethod
    def journal_store(self) -> JournalStore:
        """Where the journal of a run on this state lives."""

    @abstractmethod
    def binding(self) -> StateBinding | None:
        """Lineage, serial and checksum of the state document stored now (None: nothing stored)."""

    def journal_cipher(self) -> StateCipher | None:
        """The key that seals journals of this state: the state's own, when it is encrypted."""
        cipher: StateCipher | None = getattr(self, "cipher", None)
        return cipher

    def _bind_journal(self, header: StateHeader) -> None:
        """Called by `write` with the new document's header, before the document is stored."""
        if self.journal_binder is not None:
            self.journal_binder(header)

    @abstractmethod
    def describe(self) -> str:
        """For humans: `local .cloudorch/state/shop.json`."""

"""State: what cloudorch last saw and did, where it is stored, how it is locked and journaled.

Public names are re-exported here; the model is `model.py`, the on-disk encoding `statefile.py`,
locks `lock.py`, the apply journal `journal.py`, journal recovery `recovery.py`, stores under
`backends/`. Nothing here talks to providers or decides what to apply.
"""

from cloudorch.state.backends.base import HistoryEntry, StateBackend
from cloudorch.state.backends.local import LocalBackend
from cloudorch.state.journal import (
    Journal,
    JournalEntry,
    JournalReplay,
    JournalStats,
    read_journal,
    remove_journal,
)
from cloudorch.state.lock import DEFAULT_LEASE_SECONDS, LockHandle, LockHeldError, LockInfo
from cloudorch.state.model import ResourceRecord, State, StateEvent
from cloudorch.state.recovery import RecoveryReport, apply_replay
from cloudorch.state.statefile import CorruptStateError

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "CorruptStateError",
    "HistoryEntry",
    "Journal",
    "JournalEntry",
    "JournalReplay",
    "JournalStats",
    "LocalBackend",
    "LockHandle",
    "LockHeldError",
    "LockInfo",
    "RecoveryReport",
    "ResourceRecord",
    "State",
    "StateBackend",
    "StateEvent",
    "apply_replay",
    "read_journal",
    "remove_journal",
]

"""State: what cloudorch last saw and did (`model`, `statefile`), its locks (`lock`), the apply
journal (`journal`, folded back by `recovery`) and where it is stored (`backends/`).

Nothing here talks to providers or decides what to apply: of cloudorch it imports only the ground
floor (`errors`, the version), never `provider`, `planfile`, `policy`, `engine` or anything above.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudorch.state.backends.base import HistoryEntry, StateBackend
    from cloudorch.state.backends.local import LocalBackend
    from cloudorch.state.journal import Journal, JournalEntry, JournalReplay, JournalStats, read_journal, remove_journal
    from cloudorch.state.lock import DEFAULT_LEASE_SECONDS, LockHandle, LockHeldError, LockInfo
    from cloudorch.state.model import ResourceRecord, State, StateEvent
    from cloudorch.state.recovery import JournalFold, apply_replay
    from cloudorch.state.statefile import CorruptStateError

# The names are loaded on first use: a process that needs one corner of state (a store worker, the
# CLI deciding which store a plan uses) does not pay for the model and every backend at import.
_EXPORTS = {
    "HistoryEntry": "cloudorch.state.backends.base",
    "StateBackend": "cloudorch.state.backends.base",
    "LocalBackend": "cloudorch.state.backends.local",
    "Journal": "cloudorch.state.journal",
    "JournalEntry": "cloudorch.state.journal",
    "JournalReplay": "cloudorch.state.journal",
    "JournalStats": "cloudorch.state.journal",
    "read_journal": "cloudorch.state.journal",
    "remove_journal": "cloudorch.state.journal",
    "DEFAULT_LEASE_SECONDS": "cloudorch.state.lock",
    "LockHandle": "cloudorch.state.lock",
    "LockHeldError": "cloudorch.state.lock",
    "LockInfo": "cloudorch.state.lock",
    "ResourceRecord": "cloudorch.state.model",
    "State": "cloudorch.state.model",
    "StateEvent": "cloudorch.state.model",
    "JournalFold": "cloudorch.state.recovery",
    "apply_replay": "cloudorch.state.recovery",
    "CorruptStateError": "cloudorch.state.statefile",
}

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "CorruptStateError",
    "HistoryEntry",
    "Journal",
    "JournalEntry",
    "JournalFold",
    "JournalReplay",
    "JournalStats",
    "LocalBackend",
    "LockHandle",
    "LockHeldError",
    "LockInfo",
    "ResourceRecord",
    "State",
    "StateBackend",
    "StateEvent",
    "apply_replay",
    "read_journal",
    "remove_journal",
]


def lazy_exports(namespace: dict[str, Any], exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports each name of `exports` (name -> module) on first use."""

    def get(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return get


__getattr__ = lazy_exports(globals(), _EXPORTS)

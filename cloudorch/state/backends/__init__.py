"""State backends: where a state document lives and how it is locked (`base.StateBackend`).

`local` is the default (files under `.cloudorch/`); remote stores (S3, GCS, Azure Blob) implement
the same interface with their own compare-and-swap. Backends never interpret resources.
"""

from cloudorch.state.backends.base import HistoryEntry, StateBackend
from cloudorch.state.backends.local import LocalBackend

__all__ = ["HistoryEntry", "LocalBackend", "StateBackend"]

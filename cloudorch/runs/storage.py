"""Where a plan's runs live: a folder beside local state, or objects beside remote state.

Both go through what the state backend already has: the local backend's root directory, or the
remote backend's `ObjectStore` (S3, GCS, Azure Blob) with its conditional writes. `update` is a
read-modify-write that never loses a concurrent writer's change (a file lock locally, a
compare-and-swap on the object's version token remotely).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from cloudorch.errors import StateError

if TYPE_CHECKING:
    from cloudorch.state.backends.base import StateBackend
    from cloudorch.state.backends.store import ObjectStore

#: compare-and-swap attempts before an update gives up (each loser re-reads and retries at once)
CAS_ATTEMPTS = 20


class RunStorage(ABC):
    """A flat namespace of small JSON objects for one plan's runs."""

    @abstractmethod
    def describe(self) -> str:
        """A path or URL prefix, for messages."""

    @abstractmethod
    def read(self, name: str) -> bytes | None:
        """The object's bytes, or None when absent."""

    @abstractmethod
    def create(self, name: str, data: bytes) -> None:
        """Write a new object (run records: each name is written once)."""

    @abstractmethod
    def update(self, name: str, change: Callable[[bytes | None], bytes]) -> None:
        """Replace the object with `change(current)`, atomically against concurrent updates."""

    @abstractmethod
    def delete(self, names: list[str]) -> None:
        """Remove these objects (missing ones are fine)."""


class LocalRunStorage(RunStorage):
    """Files in one directory; updates under an exclusive `flock` of `.lock` there."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def create(self, name: str, data: bytes) -> None:
        self._write(self.root / name, data)

    def update(self, name: str, change: Callable[[bytes | None], bytes]) -> None:
        with self._locked():
            self._write(self.root / name, change(self.read(name)))

    def delete(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (self.root / name).unlink()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def _write(self, path: Path, data: bytes) -> None:
        # temp file + fsync + rename: a kill leaves the old index or the new one, never half of one
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


class ObjectRunStorage(RunStorage):
    """Objects named `<prefix>/<name>` in a remote backend's bucket or container."""

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix.rstrip("/") + "/"

    def describe(self) -> str:
        return self.store.url(self.prefix)

    def read(self, name: str) -> bytes | None:
        got = self.store.get(self.prefix + name)
        return None if got is None else got.data

    def create(self, name: str, data: bytes) -> None:
        self.store.put(self.prefix + name, data, if_token=None)

    def update(self, name: str, change: Callable[[bytes | None], bytes]) -> None:
        from cloudorch.state.backends.store import PreconditionFailed

        key = self.prefix + name
        for _ in range(CAS_ATTEMPTS):
            got = self.store.get(key)
            data = change(None if got is None else got.data)
            try:
                self.store.put(key, data, if_token=None if got is None else got.token)
                return
            except PreconditionFailed:
                continue  # another run wrote in between: apply the change to its version
        raise StateError(f"{self.store.url(key)} kept changing under {CAS_ATTEMPTS} attempts to update it")

    def delete(self, names: list[str]) -> None:
        if names:
            self.store.delete_many([self.prefix + n for n in names])


def storage_beside(backend: StateBackend) -> RunStorage:
    """The run storage that lives where `backend` keeps its document (opened with the runs key)."""
    from cloudorch.state.backends.local import LocalBackend

    if isinstance(backend, LocalBackend):
        return LocalRunStorage(backend.root / "runs" / backend.key)
    store = getattr(backend, "store", None)
    state_name = getattr(backend, "state_name", None)
    if store is None or not isinstance(state_name, str):
        raise StateError(f"runs cannot be kept beside {backend.describe()}")
    base = state_name[: -len(".json")] if state_name.endswith(".json") else state_name
    return ObjectRunStorage(store, base)

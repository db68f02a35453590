"""What a remote backend needs from a cloud's object store: the adapter interfaces and their values.

`ObjectStore` (conditional reads and writes of one bucket or container) and `LockSlot` (where a
state's lock lives: `ObjectLock` here, an Azure lease or a DynamoDB item next to their stores).
The cloud adapters (`s3.py`, `gcs.py`, `azblob.py`) implement them; `remote.RemoteBackend` builds
state semantics on them. Kept apart from `remote.py` and light to import (no state model, no
pydantic), because a store worker process (`worker.py`) hosts adapters and needs only this.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime

from cloudorch.errors import StateError
from cloudorch.state.lock import LockInfo


class PreconditionFailed(Exception):
    """The store refused a conditional write or delete: the object is not what we expected."""


@dataclass(frozen=True)
class StoredObject:
    """An object's bytes (or its first bytes) and the version token a conditional write names."""

    data: bytes
    token: str
    #: when the store last wrote it, on the store's clock
    modified: datetime | None = None
    #: the store's clock when it answered (the response's `Date`), when the SDK shows it
    server_now: datetime | None = None


def http_date(text: str | None) -> datetime | None:
    """An HTTP date header (`Date`, `Last-Modified`) as an aware datetime; None when absent or bad."""
    if not text:
        return None
    from email.utils import parsedate_to_datetime

    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ObjectVersion:
    version_id: str
    current: bool


class ObjectStore(ABC):
    """The few conditional operations a remote backend needs from a cloud's object store."""

    @classmethod
    def warm_up(cls) -> None:
        """Import the SDK and load what its first client needs (a store worker does it early)."""
        return None

    @abstractmethod
    def url(self, name: str) -> str:
        """`s3://bucket/name`, for messages."""

    @abstractmethod
    def get(self, name: str) -> StoredObject | None:
        """The current object, or None."""

    @abstractmethod
    def get_head(self, name: str, n: int, version_id: str | None = None) -> StoredObject | None:
        """The first `n` bytes of the current object (or of one version) and its token."""

    @abstractmethod
    def get_version(self, name: str, version_id: str) -> bytes:
        """One stored version, whole."""

    @abstractmethod
    def put(self, name: str, data: bytes, *, if_token: str | None) -> str:
        """Write if the current token is `if_token` (None: only if absent); the new token.
        Raises PreconditionFailed otherwise."""

    @abstractmethod
    def versions(self, name: str, limit: int) -> list[ObjectVersion]:
        """Up to `limit` stored versions, newest first."""

    @abstractmethod
    def require_history(self) -> None:
        """Raise StateError when the store keeps no versions (history and rollback need them)."""

    def before_overwrite(self, name: str, token: str) -> None:
        """Called before replacing version `token`; stores without versioning keep a copy here."""
        return None  # S3 and GCS keep the replaced version themselves

    def get_lock(self, name: str) -> StoredObject | None:
        """The lock object, or None; a failure says it was the lock being read."""
        return self.get(name)

    def delete(self, name: str, *, if_token: str) -> None:
        """Delete if the current token is `if_token`; PreconditionFailed otherwise.

        Only stores whose lock is an object of its own (`ObjectLock`) need it."""
        raise NotImplementedError(f"{type(self).__name__} keeps no lock object")

    @abstractmethod
    def list_names(self, prefix: str) -> list[str]:
        """Names of the current objects under `prefix` (journal segments)."""

    @abstractmethod
    def delete_many(self, names: list[str]) -> None:
        """Delete these objects, whatever their version (missing ones are fine)."""

    def delete_version(self, name: str, version_id: str) -> None:
        """Delete one older version of `name` for good (`state rekey --purge-remote-history`)."""
        raise StateError(f"{type(self).__name__} cannot delete object versions of {self.url(name)}")


@dataclass(frozen=True)
class SeenLock:
    """A lock as read: its holder, the token to replace or remove exactly it, its age."""

    info: LockInfo
    token: str
    readable: bool = True
    age_seconds: float = 0.0
    #: when the lock was last written (acquired or renewed), on the store's clock
    modified: datetime | None = None
    #: the store's clock when it was read, when known
    server_now: datetime | None = None


@dataclass(frozen=True)
class Acquired:
    token: str
    #: a lock this acquisition replaced without asking (an Azure lease that had run out)
    replaced: LockInfo | None = None


class LockSlot(ABC):
    """Where one state's lock lives, with atomic create / replace / remove."""

    @abstractmethod
    def create(self, info: LockInfo) -> Acquired | None:
        """Take the lock if nobody holds it; None if someone does."""

    @abstractmethod
    def read(self) -> SeenLock | None:
        """The current holder, or None when free."""

    @abstractmethod
    def take_over(self, info: LockInfo, seen: SeenLock) -> Acquired | None:
        """Replace exactly the stale lock `seen`; None if it changed meanwhile."""

    @abstractmethod
    def renew(self, info: LockInfo, token: str) -> str | None:
        """Store the renewed lease if the lock is still ours; the new token, or None if lost."""

    @abstractmethod
    def release(self, info: LockInfo, token: str) -> None:
        """Remove our lock (nothing if it is no longer ours)."""

    @abstractmethod
    def remove(self, seen: SeenLock) -> bool:
        """Force-unlock exactly `seen`; False if it changed meanwhile."""


class ObjectLock(LockSlot):
    """The lock as its own object next to the state: created only if absent, replaced and removed
    only by its version token (S3's ETag, GCS's generation)."""

    def __init__(self, store: ObjectStore, name: str) -> None:
        self.store = store
        self.name = name

    def _put(self, info: LockInfo, token: str | None) -> str | None:
        try:
            return self.store.put(self.name, info.to_json().encode(), if_token=token)
        except PreconditionFailed:
            return None

    def create(self, info: LockInfo) -> Acquired | None:
        token = self._put(info, None)
        return None if token is None else Acquired(token)

    def read(self) -> SeenLock | None:
        got = self.store.get_lock(self.name)
        return None if got is None else parse_lock(got.data, got.token, got.modified, got.server_now)

    def take_over(self, info: LockInfo, seen: SeenLock) -> Acquired | None:
        token = self._put(info, seen.token)
        return None if token is None else Acquired(token)

    def renew(self, info: LockInfo, token: str) -> str | None:
        return self._put(info, token)

    def release(self, info: LockInfo, token: str) -> None:
        with contextlib.suppress(PreconditionFailed):
            self.store.delete(self.name, if_token=token)

    def remove(self, seen: SeenLock) -> bool:
        try:
            self.store.delete(self.name, if_token=seen.token)
        except PreconditionFailed:
            return False
        return True


def unreadable_holder(token: str, modified: datetime | None, server_now: datetime | None = None) -> SeenLock:
    from cloudorch.state.lock import unknown_holder

    since = (modified or datetime.now(UTC)).isoformat(timespec="milliseconds")
    age = ((server_now or datetime.now(UTC)) - modified).total_seconds() if modified else 0.0
    return SeenLock(
        unknown_holder("unreadable", since),
        token,
        readable=False,
        age_seconds=age,
        modified=modified,
        server_now=server_now,
    )


def parse_lock(raw: bytes, token: str, modified: datetime | None, server_now: datetime | None = None) -> SeenLock:
    try:
        return SeenLock(LockInfo.from_json(raw), token, modified=modified, server_now=server_now)
    except ValueError:
        return unreadable_holder(token, modified, server_now)

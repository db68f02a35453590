"""State in an object store (S3, GCS, Azure Blob): one `RemoteBackend` over small store adapters.

Owns what every cloud shares: compare-and-swap of the state object on the store's own version
token (ETag or generation) remembered from our last read, so a write that lands between our read
and our write is refused, never overwritten; history listed from the store's object versions by
ranged reads of each version's header; optional client-side encryption (`cloudorch.state.crypto`);
and the lock protocol over a `LockSlot` (a lock object created with a precondition, an Azure
lease, or a DynamoDB item) with leases, fencing and takeover of stale locks. A lock is stale when
its holder is provably dead (this host, no such pid), or when it has not been renewed for its
lease as the *store's* clock says (the object's last-modified time against the response's Date),
or, where the store shows no server time, when the same lock stayed unchanged for a whole lease
of this process's monotonic clock: no machine's wall clock decides. A live process on this host
is never taken over. Each acquisition bumps a fencing counter object (`KEY.fence`); every state
write first checks the lease and refuses to write when a later acquisition's token is stored.
Lease renewal runs on a slot of its own (`renewal_slot`: its own client, in this process), so a
slow upload through the store worker cannot starve it. The journal of a run lives beside the
state (`journal_objects.py`). The adapters' interface is `store.py`; cloud SDK calls live in
`s3.py`, `gcs.py` and `azblob.py`; this module imports no SDK.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from cloudorch.errors import StateError
from cloudorch.state.backends.base import RETRY_HINT, HistoryEntry, StateBackend, check_swap
from cloudorch.state.backends.journal_objects import ObjectJournalStore
from cloudorch.state.backends.store import (
    Acquired,
    LockSlot,
    ObjectStore,
    ObjectVersion,
    PreconditionFailed,
    SeenLock,
)
from cloudorch.state.crypto import StateCipher, is_sealed, open_sealed, sealed_header, sealed_key_id
from cloudorch.state.journal import JournalStore, StateBinding
from cloudorch.state.lock import DEFAULT_LEASE_SECONDS, LockHandle, LockHeldError, LockInfo, LockLost, lock_mismatch
from cloudorch.state.model import State, now_iso
from cloudorch.state.statefile import (
    HEADER_PEEK,
    StateHeader,
    decode_header,
    decode_state,
    encode_state,
)

#: an unparseable lock document is normally one being written this instant (see local.py)
UNREADABLE_LOCK_GRACE_SECONDS = 5.0
#: how long a command with no --lock-timeout still waits for such a lock to show its holder
UNREADABLE_SETTLE_SECONDS = 1.0
#: how coarse the store's timestamps can be (HTTP dates, S3 LastModified): whole seconds
STORE_CLOCK_RESOLUTION = 1.0
#: `versions()` limit meaning "every version" (ids only: cheap to list)
ALL_VERSIONS = 1_000_000


class RemoteBackend(StateBackend):
    """One state document (`key`) in an object store, locked through `slot`."""

    def __init__(
        self,
        store: ObjectStore,
        slot: LockSlot,
        *,
        state_name: str,
        key: str,
        local_root: Path,
        cipher: StateCipher | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        history_limit: int = 20,
        poll_interval: float = 0.1,
        renewal_slot: Callable[[], LockSlot] | None = None,
    ) -> None:
        self.store = store
        self.slot = slot
        base = state_name[: -len(".json")] if state_name.endswith(".json") else state_name
        self.fence_name = base + ".fence"
        self.journal_prefix = base + ".journal/"
        self._renewal_factory = renewal_slot
        self._renewal: LockSlot | None = None
        self._renewal_mutex = threading.Lock()
        self._held: LockHandle | None = None
        self._write_mutex = threading.Lock()
        #: lock token -> when this process first saw it (monotonic): judges stores without server time
        self._watched: dict[str, float] = {}
        self.state_name = state_name
        self.key = key
        self.cipher = cipher
        self.lease_seconds = lease_seconds
        self.history_limit = history_limit
        self.poll_interval = poll_interval
        self._journal_path = Path(local_root) / "journal" / f"{key}.jsonl"
        self._seen: tuple[StateHeader, str] | None = None
        self._history_checked = False
        self.bytes_written = 0
        """Bytes of state documents this backend wrote (lock documents excluded)."""

    # -- state -----------------------------------------------------------------------------

    def read(self) -> State | None:
        obj = self.store.get(self.state_name)
        if obj is None:
            self._seen = None
            return None
        state = self._decode(obj.data, self.store.url(self.state_name))
        header = StateHeader(state.serial, state.lineage, state.written_at, len(state.resources), "")
        self._seen = (header, obj.token)
        return state

    def write(self, state: State, expected_serial: int | None) -> None:
        # one write at a time in this process (see local.py): the token remembered from the last
        # read or write is what the next write swaps against
        with self._write_mutex:
            self._write(state, expected_serial)

    def _write(self, state: State, expected_serial: int | None) -> None:
        where = self.store.url(self.state_name)
        self._check_fence(where)
        if not self._history_checked:
            self.store.require_history()
            self._history_checked = True
        token: str | None = None
        if expected_serial is not None:
            stored, token = self._stored_for(expected_serial)
            check_swap(where, state, stored, expected_serial)
        state.written_at = now_iso()
        data, header = self._encode(state)
        self._bind_journal(header)
        try:
            if token is not None:
                self.store.before_overwrite(self.state_name, token)
            new_token = self.store.put(self.state_name, data, if_token=token)
        except PreconditionFailed:
            landed = self._peek_current()
            if landed is None or landed[0].checksum != header.checksum:
                self._seen = None
                now = f"it holds serial {landed[0].serial}" if landed is not None else "it holds no state"
                if expected_serial is None:
                    why = f"expected no state yet, but {now}"
                else:
                    why = f"it changed since it was read (expected serial {expected_serial}; {now} now)"
                raise StateError(
                    f"refusing to write {where}: {why}; nothing was overwritten", hint=RETRY_HINT
                ) from None
            new_token = landed[1]  # a retried request of ours had already landed
        self._seen = (header, new_token)
        self.bytes_written += len(data)

    def history(self) -> list[HistoryEntry]:
        self.store.require_history()
        entries: dict[int, HistoryEntry] = {}
        for version in self.store.versions(self.state_name, self.history_limit):
            header = self._version_header(version)
            if header is None:
                continue
            if header.serial in entries and not version.current:
                continue
            entries[header.serial] = HistoryEntry(
                serial=header.serial,
                lineage=header.lineage,
                written_at=header.written_at,
                resource_count=header.resource_count,
                checksum=header.checksum,
                current=version.current,
            )
        return sorted(entries.values(), key=lambda e: (e.serial, e.current), reverse=True)

    def read_version(self, serial: int) -> State:
        self.store.require_history()
        versions = self.store.versions(self.state_name, ALL_VERSIONS)
        found = self._find_version(versions, serial)
        if found is not None:
            if found.current:
                state = self.read()
                if state is not None and state.serial == serial:
                    return state
            else:
                data = self.store.get_version(self.state_name, found.version_id)
                return self._decode(data, f"{self.store.url(self.state_name)} (version {found.version_id})")
        kept = [e.serial for e in self.history()]
        raise StateError(
            f"state {self.key} ({self.store.url(self.state_name)}) has no version with serial {serial}",
            hint=f"Versions kept: {', '.join(map(str, kept)) or 'none'} (the newest {self.history_limit} are listed).",
        )

    def _find_version(self, versions: list[ObjectVersion], serial: int) -> ObjectVersion | None:
        """Serials only grow from one version to the next, so a binary search over the versions
        (newest first) finds one in log2(n) ranged reads."""
        lo, hi = 0, len(versions) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            header = self._version_header(versions[mid])
            if header is None:
                break
            if header.serial == serial:
                return versions[mid]
            if header.serial > serial:
                lo = mid + 1
            else:
                hi = mid - 1
        # not found that way (an unreadable header, or a listing out of order): look at each
        for version in versions:
            header = self._version_header(version)
            if header is not None and header.serial == serial:
                return version
        return None

    def sealed_with(self) -> str | None:
        """The id of the key the current document is encrypted with; None if it is plaintext."""
        obj = self.store.get_head(self.state_name, HEADER_PEEK)
        return sealed_key_id(obj.data) if obj is not None and is_sealed(obj.data) else None

    # -- lock ------------------------------------------------------------------------------

    def lock(self, info: LockInfo, timeout: float) -> LockHandle:
        deadline = time.monotonic() + max(timeout, 0.0)
        settle = time.monotonic() + UNREADABLE_SETTLE_SECONDS
        delay = self.poll_interval
        took_over: LockInfo | None = None
        while True:
            mine = info.with_lease(self.lease_seconds)
            got = self.slot.create(mine)
            if got is not None:
                return self._handle(mine, got, took_over or got.replaced)
            took_over = None
            seen = self.slot.read()
            if seen is not None and seen.info.id == mine.id:
                # our create landed but its answer was lost and retried: the lock is ours
                return self._handle(mine, Acquired(seen.token), None)
            if seen is not None and self._is_stale(seen):
                got = self.slot.take_over(mine, seen)
                if got is not None:
                    return self._handle(mine, got, seen.info)
                continue
            remaining = deadline - time.monotonic()
            if seen is not None and not seen.readable and time.monotonic() < settle:
                # a lock being written right now (an Azure lease taken a moment ago): name its holder
                remaining = max(remaining, 0.05)
            if seen is not None and remaining <= 0:
                err = LockHeldError(f"state {self.key} ({self.store.url(self.state_name)})", seen.info)
                # the id alone only finds local locks: a remote one needs the plan to find its backend
                err.hint = (
                    "Wait for that command to finish (or pass --lock-timeout). If you are sure it is gone, "
                    f"release the lock with: cloudorch force-unlock {seen.info.id} PLAN_FILE"
                )
                raise err
            time.sleep(max(min(delay, remaining), 0.01))
            delay = min(delay * 1.5, 1.0)

    def force_unlock(self, lock_id: str) -> None:
        what = f"state {self.key} ({self.store.url(self.state_name)})"
        seen = self.slot.read()
        if seen is None or seen.info.id != lock_id:
            raise lock_mismatch(what, lock_id, None if seen is None else seen.info)
        if not self.slot.remove(seen):
            raise lock_mismatch(what, lock_id, self.current_lock())

    def current_lock(self) -> LockInfo | None:
        seen = self.slot.read()
        return None if seen is None else seen.info

    # -- misc ------------------------------------------------------------------------------

    def journal_path(self) -> Path:
        return self._journal_path

    def journal_store(self) -> JournalStore:
        return ObjectJournalStore(self.store, self.journal_prefix)

    def binding(self) -> StateBinding | None:
        peeked = self._peek_current()
        return None if peeked is None else StateBinding.of(peeked[0])

    def describe(self) -> str:
        sealed = f", encrypted (key {self.cipher.key_id})" if self.cipher else ""
        return f"{self.store.url(self.state_name)}{sealed}"

    # -- internals -------------------------------------------------------------------------

    def _handle(self, mine: LockInfo, got: Acquired, took_over: LockInfo | None) -> LockHandle:
        token = [got.token]
        fence = self._bump_fence()
        mine = replace(mine, fence=fence)

        def renew(renewed: LockInfo) -> bool:
            new = self._renewal_slot().renew(renewed, token[0])
            if new is None:
                return False
            token[0] = new
            return True

        def release(info: LockInfo) -> None:
            self.slot.release(info, token[0])

        self._held = LockHandle(
            mine,
            took_over=took_over,
            lease_seconds=self.lease_seconds,
            renew=renew,
            release=release,
            fence=fence,
            what=f"state {self.key} ({self.store.url(self.state_name)})",
        )
        return self._held

    def _renewal_slot(self) -> LockSlot:
        """The slot renewals go through: built on first use, with its own client, so renewals never
        wait behind a state upload in the store worker (which answers one call at a time)."""
        if self._renewal_factory is None:
            return self.slot
        with self._renewal_mutex:
            if self._renewal is None:
                self._renewal = self._renewal_factory()
            return self._renewal

    def _is_stale(self, seen: SeenLock) -> bool:
        info = seen.info
        if seen.readable and info.holder_is_alive_here():
            return False  # a live process on this host keeps its lock, whatever its lease says
        if seen.readable and info.holder_is_dead():
            return True
        if not seen.readable:
            lease = UNREADABLE_LOCK_GRACE_SECONDS
        else:
            lease = info.lease_seconds if info.lease_seconds else self.lease_seconds
        if seen.modified is not None and seen.server_now is not None:
            # the store's clock only; HTTP dates have whole seconds, so one second of margin
            age = (seen.server_now - seen.modified).total_seconds()
            return age >= lease + STORE_CLOCK_RESOLUTION
        first = self._watched.setdefault(seen.token, time.monotonic())
        return time.monotonic() - first >= lease

    def _bump_fence(self) -> int:
        """The next fencing token: one more than any acquisition's before (compare-and-swap)."""
        for _ in range(50):
            got = self.store.get(self.fence_name)
            current = _fence_value(None if got is None else got.data)
            try:
                token = None if got is None else got.token
                self.store.put(self.fence_name, f"{current + 1}\n".encode(), if_token=token)
            except PreconditionFailed:
                continue  # another acquisition bumped it meanwhile (a lock being taken over): read again
            return current + 1
        raise StateError(
            f"could not take a fencing token from {self.store.url(self.fence_name)}: it keeps changing",
            hint="Another process is taking the lock in a loop; check for runaway jobs, then retry.",
        )

    def _check_fence(self, where: str) -> None:
        """A write under a lock we lost, or that a later acquisition superseded, is refused."""
        held = self._held
        if held is None or held.released:
            return
        held.check()
        got = self.store.get(self.fence_name)
        newest = _fence_value(None if got is None else got.data)
        if held.fence is not None and newest > held.fence:
            raise LockLost(
                f"refusing to write {where}: the lock was taken again since this command took it "
                f"(fencing token {held.fence}, newest {newest}); nothing was written",
                hint="Another command holds the state now; run `cloudorch plan` to see where things stand.",
            )

    def _stored_for(self, expected_serial: int) -> tuple[StateHeader | None, str | None]:
        """The stored header and token to swap against: from our own read when it saw this serial
        (so a write by anyone since then fails the precondition), else read now."""
        if self._seen is not None and self._seen[0].serial == expected_serial:
            return self._seen
        peeked = self._peek_current()
        return (None, None) if peeked is None else peeked

    def _peek_current(self) -> tuple[StateHeader, str] | None:
        obj = self.store.get_head(self.state_name, HEADER_PEEK)
        if obj is None:
            return None
        return self._header(obj.data, None, self.store.url(self.state_name)), obj.token

    def _version_header(self, version: ObjectVersion) -> StateHeader | None:
        """For listings: an unreadable version is left out (reading it by serial raises)."""
        try:
            vid = None if version.current else version.version_id
            obj = self.store.get_head(self.state_name, HEADER_PEEK, vid)
            if obj is None:
                return None
            return self._header(obj.data, vid, self.store.url(self.state_name))
        except StateError:
            return None

    def _header(self, prefix: bytes, version_id: str | None, source: str) -> StateHeader:
        if is_sealed(prefix):
            return sealed_header(prefix, source)

        def rest() -> bytes:
            if version_id is None:
                obj = self.store.get(self.state_name)
                return b"" if obj is None else obj.data[len(prefix) :]
            return self.store.get_version(self.state_name, version_id)[len(prefix) :]

        return decode_header(prefix, rest, source)

    def _encode(self, state: State) -> tuple[bytes, StateHeader]:
        data, header = encode_state(state)
        if self.cipher is not None:
            data = self.cipher.seal(data, header)
        return data, header

    def _decode(self, data: bytes, source: str) -> State:
        if is_sealed(data[:HEADER_PEEK]):
            return open_sealed(
                data,
                self.cipher,
                source,
                no_key_hint="Add `encryption: {key_env: NAME}` (or key_file) to the plan's backend block.",
            )
        return decode_state(data, source)


def _fence_value(data: bytes | None) -> int:
    if not data:
        return 0
    try:
        return int(data.strip() or 0)
    except ValueError:
        raise StateError(
            "the state's fencing counter object is damaged",
            hint="Delete the `.fence` object beside the state only when no command holds the lock.",
        ) from None

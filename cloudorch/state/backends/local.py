"""The default state backend: files under the plan's `.cloudorch/` directory.

Layout: `state/<key>.json` (current), `history/<key>/<serial>.json` (previous versions, last N),
`locks/<key>.lock` (O_CREAT|O_EXCL lock with a lease; `.guard` serialises takeovers),
`locks/<key>.fence` (the fencing counter, bumped by a takeover or force-unlock), `journal/<key>.jsonl`
(apply journal). A lock held by a live process of this host is never taken over.
With a cipher (`backend.encryption`) every state document it writes is sealed (`cloudorch.state.crypto`):
the header stays readable, so history, compare-and-swap and pruning work without the key. The
journal is sealed with the same key (`cloudorch.state.journal`).
Writes never copy old bytes: the previous version enters history by hard link (rename where
links are unsupported), and the new one lands by temp file, fsync, rename, directory fsync.
Compare-and-swap here is a guard against stale writers; mutual exclusion is the lock's job.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Concatenate, ParamSpec, TypeVar

from cloudorch.errors import StateError
from cloudorch.state.backends.base import RETRY_HINT, HistoryEntry, StateBackend, check_swap
from cloudorch.state.crypto import StateCipher, is_sealed, open_sealed, sealed_header, sealed_key_id
from cloudorch.state.durable import atomic_write, create_exclusive, fsync_dir, write_temp
from cloudorch.state.journal import JournalStore, LocalJournalStore, StateBinding
from cloudorch.state.lock import (
    DEFAULT_LEASE_SECONDS,
    LockHandle,
    LockHeldError,
    LockInfo,
    LockLost,
    lock_mismatch,
    unknown_holder,
)
from cloudorch.state.model import State, now_iso
from cloudorch.state.statefile import (
    HEADER_PEEK,
    CorruptStateError,
    StateHeader,
    decode_header,
    decode_state,
    encode_state,
)

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; O_EXCL alone still guards creation
    fcntl = None

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_HISTORY_LIMIT = 20
# A lock file that cannot be parsed is normally one being written this instant; after this long
# its writer died between create and write, and the lock is stale.
UNREADABLE_LOCK_GRACE_SECONDS = 5.0
UNREADABLE_LOCK_ID = "unreadable"

_NO_KEY_HINT = (
    "Configure the key it was written with in the plan: `backend: {encryption: {key_env: NAME}}` "
    "(or key_file: PATH; earlier keys under encryption.old_keys)."
)

_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")
_HISTORY_NAME_RE = re.compile(r"^(\d+)\.json$")
# Filesystems without hard links make us fall back to rename (still zero bytes copied).
_NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def _os_errors(
    doing: str,
) -> Callable[[Callable[Concatenate[LocalBackend, P], R]], Callable[Concatenate[LocalBackend, P], R]]:
    """Turn a filesystem failure (permissions, full disk) into a StateError with a hint."""

    def decorate(
        method: Callable[Concatenate[LocalBackend, P], R],
    ) -> Callable[Concatenate[LocalBackend, P], R]:
        @functools.wraps(method)
        def wrapper(self: LocalBackend, /, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(self, *args, **kwargs)
            except OSError as exc:
                raise StateError(
                    f"could not {doing} {self._show(self.root)}: {exc.strerror or exc}",
                    hint="Check that the directory is writable by you and its disk has free space.",
                ) from exc

        return wrapper

    return decorate


@dataclass
class HistoryReseal:
    """What re-sealing the kept history with the current key did: serials re-sealed, removed
    (plaintext that could not be decoded, so not re-sealed), and left as they were with why."""

    resealed: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    remaining: dict[int, str] = field(default_factory=dict)


class LocalBackend(StateBackend):
    """State for one key in a local `.cloudorch/` directory (`root`)."""

    def __init__(
        self,
        root: Path,
        key: str,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        poll_interval: float = 0.05,
        cipher: StateCipher | None = None,
    ) -> None:
        if not _KEY_RE.match(key):
            raise StateError(
                f"state key {key!r} cannot name a file",
                hint="Use letters, digits, '_', '-' and '.', not starting with '.' (`shop`, `shop.prod`).",
            )
        if history_limit < 0:
            raise StateError(f"history limit must be 0 or more, not {history_limit}")
        self.root = Path(root)
        self.key = key
        self.history_limit = history_limit
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.cipher = cipher
        self.state_path = self.root / "state" / f"{key}.json"
        self.history_dir = self.root / "history" / key
        self.lock_path = self.root / "locks" / f"{key}.lock"
        self.guard_path = self.root / "locks" / f"{key}.lock.guard"
        self.fence_path = self.root / "locks" / f"{key}.fence"
        self._held: LockHandle | None = None
        self._write_mutex = threading.Lock()
        self._journal_path = self.root / "journal" / f"{key}.jsonl"
        #: set by a write that sealed over a version not sealed with this key (see `write`)
        self.last_reseal: HistoryReseal | None = None
        self.bytes_written = 0
        """Bytes of state documents this backend wrote (lock files and the journal excluded)."""

    # -- state -----------------------------------------------------------------------------

    @_os_errors("read state in")
    def read(self) -> State | None:
        data = _read_or_none(self.state_path)
        if data is None:
            serials = self._history_serials()
            if serials:
                raise StateError(
                    f"state file {self._show(self.state_path)} is missing but its history holds "
                    f"serials up to {serials[-1]}; a write was interrupted or the file was deleted",
                    hint=self._restore_hint(),
                )
            return None
        return self._decode(data, self.state_path)

    @_os_errors("write state in")
    def write(self, state: State, expected_serial: int | None) -> None:
        # one write at a time in this process: two threads (an abandoned operation's checkpoint and
        # the final write of a run) could both pass the serial check and the older snapshot land
        # last; one after the other, the second is refused by the check instead
        with self._write_mutex:
            self._write(state, expected_serial)

    def _write(self, state: State, expected_serial: int | None) -> None:
        self._ensure_dirs()
        self._check_fence()
        stored = self._stored_header()
        self._check_swap(state, stored, expected_serial)
        state.written_at = now_iso()
        data, header = encode_state(state)
        resealing = False
        if self.cipher is not None:
            data = self.cipher.seal(data, header)
            # the first sealed write over plaintext (encryption just enabled) or over another
            # key's version: the versions kept in history must not stay readable without this key
            resealing = stored is not None and self.sealed_with() != self.cipher.key_id
        self._bind_journal(header)
        tmp = write_temp(self.state_path.parent, self.state_path.name, data)
        try:
            if stored is not None and self.history_limit > 0:
                self._archive_current(stored.serial)
            os.replace(tmp, self.state_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(self.state_path.parent)
        self.bytes_written += len(data)
        self._prune_history()
        if resealing:
            self.last_reseal = self.reseal_history()

    @_os_errors("re-seal state history in")
    def reseal_history(self) -> HistoryReseal:
        """Seal every kept history version with the current key (call under the lock).

        Plaintext versions and versions sealed with a key the cipher holds (an `old_keys` entry,
        `--old-key-env`) are decoded and rewritten sealed; plaintext that cannot be decoded is
        removed; a version sealed with a key not given is left as it is and reported.
        """
        cipher = self.cipher
        report = HistoryReseal()
        if cipher is None:
            return report
        for serial in self._history_serials():
            path = self.history_dir / f"{serial}.json"
            data = _read_or_none(path)
            if data is None:
                continue
            sealed = is_sealed(data[:HEADER_PEEK])
            if sealed and sealed_key_id(data[:HEADER_PEEK]) == cipher.key_id:
                continue
            try:
                state = self._decode(data, path)
            except StateError as exc:
                if sealed:
                    report.remaining[serial] = f"sealed with key {sealed_key_id(data[:HEADER_PEEK])}: {exc.message}"
                    continue
                os.unlink(path)  # plaintext nobody can restore from: removing it loses nothing usable
                report.removed.append(serial)
                continue
            plain, header = encode_state(state)
            tmp = write_temp(self.history_dir, path.name, cipher.seal(plain, header))
            os.replace(tmp, path)
            report.resealed.append(serial)
        # hard-link leftovers of an archive interrupted by a crash are copies of old versions too
        for name in os.listdir(self.history_dir) if self.history_dir.exists() else []:
            if name.startswith(".") and ".json.link-" in name:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.history_dir / name)
        fsync_dir(self.history_dir)
        return report

    @_os_errors("list state history in")
    def history(self) -> list[HistoryEntry]:
        entries: list[HistoryEntry] = []
        current = self._header_or_none(self.state_path)
        if current is not None:
            entries.append(_entry(current, current=True))
        for serial in self._history_serials():
            if current is not None and serial == current.serial:
                continue
            header = self._header_or_none(self.history_dir / f"{serial}.json")
            if header is not None:
                entries.append(_entry(header, current=False))
        entries.sort(key=lambda e: (e.serial, e.current), reverse=True)
        return entries

    @_os_errors("read state history in")
    def read_version(self, serial: int) -> State:
        path = self.history_dir / f"{serial}.json"
        data = _read_or_none(path)
        if data is None:
            current = self._header_or_none(self.state_path)
            if current is not None and current.serial == serial:
                state = self.read()
                assert state is not None
                return state
            available = ", ".join(str(e.serial) for e in self.history()) or "none"
            raise StateError(
                f"state {self.key} has no version with serial {serial}",
                hint=f"Versions kept: {available} (the last {self.history_limit} are kept).",
            )
        return self._decode(data, path)

    # -- lock ------------------------------------------------------------------------------

    @_os_errors("lock state in")
    def lock(self, info: LockInfo, timeout: float) -> LockHandle:
        self._ensure_dirs()
        deadline = time.monotonic() + max(timeout, 0.0)
        delay = self.poll_interval
        took_over: LockInfo | None = None
        while True:
            mine = info.with_lease(self.lease_seconds)
            if create_exclusive(self.lock_path, mine.to_json().encode()):
                # A lock taken from a free slot follows a holder that released it: no earlier holder
                # can still write, so the token stays. Taking over (or force-unlocking) bumps it:
                # the holder pushed out may still be running, and its writes carry the old token.
                # (So a command that only reads leaves `.cloudorch/` as it found it.)
                fence = self._bump_fence() if took_over is not None else self._stored_fence()
                self._held = LockHandle(
                    replace(mine, fence=fence),
                    took_over=took_over,
                    lease_seconds=self.lease_seconds,
                    renew=self._renew_lock,
                    release=self._release_lock,
                    what=f"state {self.key}",
                )
                return self._held
            took_over = None
            found = self._read_lock()
            if found is None:  # released between our create and our read: try again now
                continue
            holder, raw = found
            if self._is_stale(holder, raw) and self._remove_lock_if(raw.__eq__):
                took_over = holder
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockHeldError(f"state {self.key} ({self._show(self.state_path)})", holder)
            time.sleep(min(delay, remaining))
            delay = min(delay * 1.5, 0.5)

    @_os_errors("unlock state in")
    def force_unlock(self, lock_id: str) -> None:
        current = self.current_lock()
        what = f"state {self.key}"
        if current is None or current.id != lock_id:
            raise lock_mismatch(what, lock_id, current)
        if not self._remove_lock_if(lambda raw: (_lock_id(raw) or UNREADABLE_LOCK_ID) == lock_id):
            raise lock_mismatch(what, lock_id, self.current_lock())
        self._bump_fence()  # the holder may still be running: its writes are refused from now on

    @_os_errors("read the state lock in")
    def current_lock(self) -> LockInfo | None:
        found = self._read_lock()
        return None if found is None else found[0]

    # -- misc ------------------------------------------------------------------------------

    def journal_path(self) -> Path:
        return self._journal_path

    def journal_store(self) -> JournalStore:
        return LocalJournalStore(self._journal_path)

    @_os_errors("read state in")
    def binding(self) -> StateBinding | None:
        return StateBinding.of(self._stored_header())

    def describe(self) -> str:
        sealed = f", encrypted (key {self.cipher.key_id})" if self.cipher else ""
        return f"local {self._show(self.state_path)}{sealed}"

    @_os_errors("read state in")
    def sealed_with(self) -> str | None:
        """The id of the key that sealed the current state (None: plaintext or no state)."""
        try:
            with open(self.state_path, "rb") as fh:
                prefix = fh.read(HEADER_PEEK)
        except FileNotFoundError:
            return None
        return sealed_key_id(prefix) if is_sealed(prefix) else None

    # -- internals: state ------------------------------------------------------------------

    def _ensure_dirs(self) -> None:
        for directory in (
            self.state_path.parent,
            self.history_dir,
            self.lock_path.parent,
            self._journal_path.parent,
        ):
            directory.mkdir(parents=True, exist_ok=True)

    def _decode(self, data: bytes, path: Path) -> State:
        source = self._show(path)
        try:
            if is_sealed(data[:HEADER_PEEK]):
                # a wrong key (WrongKeyError) is not corruption: no restore hint, the file is fine
                return open_sealed(data, self.cipher, source, no_key_hint=_NO_KEY_HINT)
            return decode_state(data, source)
        except CorruptStateError as exc:
            raise CorruptStateError(exc.message, hint=self._restore_hint()) from exc

    def _restore_hint(self) -> str:
        serials = self._history_serials()
        if not serials:
            return (
                "cloudorch never uses a state it cannot verify, and this state has no history to restore "
                "from. Put back a backup of the file, or move it aside and re-import the resources."
            )
        kept = f"serial {serials[0]}" if len(serials) == 1 else f"serials {serials[0]}..{serials[-1]}"
        return (
            "cloudorch never uses a state it cannot verify. Restore a previous version from "
            f"{self._show(self.history_dir)}/ ({kept}; "
            "`cloudorch state history` lists them), or put back a backup of the file."
        )

    def _stored_header(self) -> StateHeader | None:
        try:
            return self._read_header(self.state_path)
        except FileNotFoundError:
            return None
        except CorruptStateError as exc:
            raise CorruptStateError(exc.message, hint=self._restore_hint()) from exc

    def _header_or_none(self, path: Path) -> StateHeader | None:
        """For listings: an unreadable file is left out (reading it by serial raises)."""
        try:
            return self._read_header(path)
        except (OSError, StateError):
            return None

    def _read_header(self, path: Path) -> StateHeader:
        with open(path, "rb") as fh:
            prefix = fh.read(HEADER_PEEK)
            if is_sealed(prefix):
                return sealed_header(prefix, self._show(path))
            return decode_header(prefix, fh.read, self._show(path))

    def _check_swap(self, state: State, stored: StateHeader | None, expected_serial: int | None) -> None:
        where = self._show(self.state_path)
        if expected_serial is not None:
            check_swap(where, state, stored, expected_serial)
        elif stored is not None:
            raise StateError(
                f"refusing to write {where}: expected no state yet, but it holds serial {stored.serial}",
                hint=RETRY_HINT,
            )

    def _archive_current(self, serial: int) -> None:
        """Move the current version into history without copying its bytes."""
        target = self.history_dir / f"{serial}.json"
        staged = self.history_dir / f".{serial}.json.link-{uuid.uuid4().hex[:8]}"
        try:
            os.link(self.state_path, staged)
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRNOS:
                raise
            # No hard links here: rename instead. A crash before the new file lands leaves no
            # current state, which `read()` reports (never mistaking it for "no state yet").
            os.replace(self.state_path, target)
        else:
            os.replace(staged, target)
        fsync_dir(self.history_dir)

    def _history_serials(self) -> list[int]:
        try:
            names = os.listdir(self.history_dir)
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for name in names if (m := _HISTORY_NAME_RE.match(name)))

    def _prune_history(self) -> None:
        serials = self._history_serials()
        excess = len(serials) - self.history_limit
        for serial in serials[: max(excess, 0)]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.history_dir / f"{serial}.json")

    # -- internals: lock -------------------------------------------------------------------

    def _read_lock(self) -> tuple[LockInfo, bytes] | None:
        try:
            raw = self.lock_path.read_bytes()
            mtime = self.lock_path.stat().st_mtime
        except FileNotFoundError:
            return None
        try:
            return LockInfo.from_json(raw), raw
        except ValueError:
            since = datetime.fromtimestamp(mtime, UTC).isoformat(timespec="milliseconds")
            return unknown_holder(UNREADABLE_LOCK_ID, since), raw

    def _is_stale(self, holder: LockInfo, raw: bytes) -> bool:
        if holder.id == UNREADABLE_LOCK_ID and _lock_id(raw) is None:
            try:
                age = time.time() - self.lock_path.stat().st_mtime
            except FileNotFoundError:
                return False
            return age > UNREADABLE_LOCK_GRACE_SECONDS
        if holder.on_this_host():
            return holder.holder_is_dead()  # a live process here keeps its lock, lease or not
        return holder.lease_expired()

    def _bump_fence(self) -> int:
        """The next fencing token: one more than any acquisition's before (under the guard)."""
        with self._guard():
            token = self._stored_fence() + 1
            atomic_write(self.fence_path, f"{token}\n".encode())
        return token

    def _stored_fence(self) -> int:
        try:
            return int(self.fence_path.read_text().strip() or 0)
        except FileNotFoundError:
            return 0
        except ValueError:
            raise StateError(
                f"the fencing counter {self._show(self.fence_path)} is damaged",
                hint="Remove it only when no command holds the state lock; the next lock starts it again.",
            ) from None

    def _check_fence(self) -> None:
        """A write under a lock we no longer hold, or that a later acquisition superseded, is refused."""
        held = self._held
        if held is None or held.released:
            return
        held.check()
        newest = self._stored_fence()
        if held.fence is not None and newest > held.fence:
            raise LockLost(
                f"refusing to write state {self.key}: the lock was taken again since this command took it "
                f"(fencing token {held.fence}, newest {newest}); nothing was written",
                hint="Another command holds the state now; run `cloudorch plan` to see where things stand.",
            )

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Serialise every change to an *existing* lock file (takeover, renewal, release,
        force-unlock) across threads and processes. Creation needs no guard: O_EXCL only succeeds
        when the file is absent. The guard is a kernel flock on a side file, so a process that
        dies inside the section cannot leave it held (no staleness problem of its own)."""
        fd = os.open(self.guard_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _remove_lock_if(self, still_wanted: Callable[[bytes], bool]) -> bool:
        """Remove the lock file if its current bytes are still the ones we judged (stale, ours,
        or the id being force-unlocked); under the guard nobody can swap it in between."""
        with self._guard():
            try:
                raw = self.lock_path.read_bytes()
            except FileNotFoundError:
                return False
            if not still_wanted(raw):
                return False
            os.unlink(self.lock_path)
        fsync_dir(self.lock_path.parent)
        return True

    def _renew_lock(self, renewed: LockInfo) -> bool:
        with self._guard():
            found = self._read_lock()
            if found is None or found[0].id != renewed.id:
                return False
            atomic_write(self.lock_path, renewed.to_json().encode())
            return True

    def _release_lock(self, info: LockInfo) -> None:
        self._remove_lock_if(lambda raw: _lock_id(raw) == info.id)

    def _show(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            return str(path)


def _lock_id(raw: bytes) -> str | None:
    try:
        return LockInfo.from_json(raw).id
    except ValueError:
        return None


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _entry(header: StateHeader, *, current: bool) -> HistoryEntry:
    return HistoryEntry(
        serial=header.serial,
        lineage=header.lineage,
        written_at=header.written_at,
        resource_count=header.resource_count,
        checksum=header.checksum,
        current=current,
    )

"""The apply journal: an append-only record of one run's intents and results, bound to its state.

Each call returns only once its line is durable, with group commit: concurrent callers queue
their lines and one leader writes the whole batch at once (one fsync, or one conditional object
write), so thousands of fast operations cost far fewer writes. Where the lines go is a
`JournalStore`: a local file next to local state (`LocalJournalStore`), or objects beside remote
state (`backends/journal_objects.py`), so any machine that next takes the lock finds them. The
engine writes through `Journal` and never asks which.

Line format: `{"at": "...", "event": "run"|"inverse"|"rollback"|"started"|"finished"|"failed"|
"bind"|"end"|"closed", "op": {...}, "prev": "<sha256 of the previous line>"}`. The first line
(`run`) also carries `journal`: format, run id, and the state it started from (lineage, serial,
the stored document's checksum) and the lock's fencing token. Before each state write a `bind`
line names the serial and checksum about to be written, so a journal matches exactly the states
its run wrote. `pending()` reads a journal and refuses (StateError, nothing written) one whose
header is missing, whose chain is broken, or that does not match the stored state. With an
encrypted state every line is sealed with the state's key. Payloads are opaque dicts chosen by the
engine; this module never interprets them beyond `op`, `address` and `action` (folding into State
is `recovery.py`). Before any operation starts, an apply writes one `inverse` line per planned
change (what would undo it); a `rollback` line marks where the undo of a failed apply began.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from cloudorch.errors import CloudorchError, StateError
from cloudorch.state.durable import fsync_dir

if TYPE_CHECKING:
    from cloudorch.state.backends.base import StateBackend
    from cloudorch.state.crypto import StateCipher
    from cloudorch.state.model import ResourceRecord
    from cloudorch.state.statefile import StateHeader

JOURNAL_FORMAT = 2
#: test seam, "N:MARKER:RELEASE": once N `finished` lines are stored, each later `finished` call
#: creates the file MARKER and waits until the file RELEASE exists, so a test can kill or stop the
#: process at that exact point instead of sleeping and hoping
HOLD_ENV = "CLOUDORCH_TEST_JOURNAL_HOLD"
REQUIRED_KEYS = ("op", "address", "action")
_DISK_HINT = "Check that the directory is writable by you and its disk has free space."
_fsync = getattr(os, "fdatasync", os.fsync)  # the data and the file size; not the mtime
_SEAL_AAD = b"cloudorch-journal-v2"
#: how long deferred result lines wait for an intent's batch to carry them (see `_flush_loop`)
DEFERRED_DELAY = 0.05
#: events after which a run has nothing left to fold
_DONE_EVENTS = ("end", "closed")


def refused_hint(where: str) -> str:
    return (
        f"Nothing was folded into state and nothing was written. Inspect {where}: if it is a stale or "
        "foreign journal (copied from another checkout or machine, or edited), move it aside; if it holds "
        "the operations of a run killed on another machine, run `cloudorch recover` on the machine that wrote it."
    )


class LeaseCheck(Protocol):
    """What the journal asks of the state lock before each write (`lock.LockHandle`)."""

    def check(self) -> None: ...


@dataclass(frozen=True)
class StateBinding:
    """Which stored state document a journal belongs to."""

    lineage: str | None
    serial: int
    state_hash: str | None

    @classmethod
    def of(cls, header: StateHeader | None) -> StateBinding | None:
        return None if header is None else cls(header.lineage, header.serial, header.checksum)

    def describe(self) -> str:
        if self.state_hash is None:
            return "no state yet"
        return f"serial {self.serial} (hash {self.state_hash[:19]}..., lineage {self.lineage})"


@dataclass(frozen=True)
class JournalStats:
    """Counters for benchmarks: lines appended, writes (fsyncs or object writes) issued, bytes written."""

    lines: int
    fsyncs: int
    bytes: int


# -- where a journal lives ----------------------------------------------------------------------


@dataclass
class StoredRun:
    """One run's journal as stored: its bytes (segments joined) and where to append next."""

    run_id: str
    data: bytes
    where: str
    cursor: int = 0


class JournalStore(ABC):
    """Where one state's journal lives. Appends are durable (and, remotely, conditional) on return."""

    writes = 0
    #: seconds a flush waits for more lines to join its batch (a remote write costs a round trip)
    batch_window = 0.0
    #: `finished`/`failed` lines return before they are stored (they go with the next batch, which
    #: every intent, bind and end line waits for): a crash in between reads as an operation still
    #: in flight, exactly as a crash just before the line was written would
    defer_results = False

    @abstractmethod
    def describe(self) -> str:
        """For messages: a path or an object URL prefix."""

    @abstractmethod
    def runs(self) -> list[StoredRun]:
        """Every run's journal found here (normally none or one)."""

    @abstractmethod
    def begin(self, run_id: str, data: bytes) -> StoredRun:
        """Start a new run's journal with `data`; StateError if that journal exists already.
        Returns the run to append to."""

    @abstractmethod
    def append(self, run: StoredRun, data: bytes) -> None:
        """Add `data` to `run` durably; StateError when the store refuses (another writer)."""

    @abstractmethod
    def remove(self, run: StoredRun, *, closing: bytes | None = None) -> None:
        """Delete a run's journal. `closing` (a `closed` line) is first appended where another
        writer of that run would append next, so a late writer is refused, never resurrected."""

    def release(self) -> None:  # noqa: B027  (most stores hold nothing open)
        """Free what the store holds open (file descriptors)."""


class LocalJournalStore(JournalStore):
    """The journal as one local file (`.cloudorch/journal/KEY.jsonl`), appended and fdatasync'ed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self.writes = 0

    def describe(self) -> str:
        return str(self.path)

    def runs(self) -> list[StoredRun]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StateError(f"could not read the journal {self.path}: {exc.strerror or exc}", hint=_DISK_HINT) from exc
        return [StoredRun("", data, str(self.path))]

    def begin(self, run_id: str, data: bytes) -> StoredRun:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        except FileExistsError as exc:
            raise StateError(
                f"journal {self.path} was created by another apply at the same moment",
                hint="Another apply is running; it should hold the state lock.",
            ) from exc
        except OSError as exc:
            why = exc.strerror or exc
            raise StateError(f"could not create the journal {self.path}: {why}", hint=_DISK_HINT) from exc
        fsync_dir(self.path.parent)
        self._fd = fd
        self._write(data)
        return StoredRun(run_id, b"", str(self.path))

    def append(self, run: StoredRun, data: bytes) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._write(data)

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        _fsync(self._fd)
        self.writes += 1

    def remove(self, run: StoredRun, *, closing: bytes | None = None) -> None:
        # one host, one lock file judged by pid: no late writer to fence out here
        self.release()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        fsync_dir(self.path.parent)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


# -- writing ------------------------------------------------------------------------------------


class Journal:
    """An open journal for one run. Thread-safe; create it with `Journal.start` or `start_journal`."""

    def __init__(
        self,
        store: JournalStore,
        run: StoredRun,
        *,
        last_hash: str,
        cipher: StateCipher | None = None,
        lease: LeaseCheck | None = None,
    ) -> None:
        self.store = store
        self.run = run
        self.path: Path | None = store.path if isinstance(store, LocalJournalStore) else None
        self.run_id = run.run_id
        self.cipher = cipher
        self.lease = lease
        self._last_hash = last_hash
        self._lock = lock = threading.Lock()
        #: for the flusher, close and the test seam; threads waiting for their own lines to be
        #: stored wait on a batch's condition instead (same lock), so the end of a write wakes
        #: only the threads it covers, and one thread to lead the next write
        self._cond = threading.Condition(lock)
        self._batch_cond = threading.Condition(lock)  # waiters whose lines the write under way carries
        self._next_cond = threading.Condition(lock)  # waiters whose lines wait for the next write
        self._flush_target = 0  # the last line the write under way carries
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._appended = 0  # lines handed to us
        self._durable = 0  # lines known to be stored
        self._flushing = False
        self._closed = False
        self._error: BaseException | None = None
        self._lines = 1
        self._fsyncs = 1
        self._bytes = 0
        self._detach: Callable[[], None] | None = None
        self._finished = 0
        self._hold = _hold_seam()
        self._hold_claimed = 0
        self._flushed_at = time.monotonic()
        self._flusher: threading.Thread | None = None
        if store.defer_results:
            self._flusher = threading.Thread(target=self._flush_loop, name="cloudorch-journal-flush", daemon=True)
            self._flusher.start()

    @classmethod
    def start(
        cls,
        target: Path | JournalStore,
        run: dict[str, Any],
        *,
        binding: StateBinding | None = None,
        fence: int | None = None,
        cipher: StateCipher | None = None,
        lease: LeaseCheck | None = None,
    ) -> Journal:
        """Begin a journal with a run header (plan, command, actor...) bound to `binding`.

        A previous journal that ended cleanly is replaced; one that did not (a killed apply)
        makes this raise StateError, since its finished operations are not in state yet.
        """
        store = LocalJournalStore(target) if isinstance(target, Path) else target
        for previous in store.runs():
            replay = parse_journal(previous.data, previous.where, cipher)
            if replay.closed:
                continue  # a recovered run's marker: it stays
            if not replay.ended_cleanly:
                raise StateError(
                    f"journal {previous.where} is from an apply that did not finish "
                    f"({len(replay.completed)} operations done, {len(replay.in_flight)} in flight)",
                    hint="Recover it into state first (cloudorch recovers on the next apply), then remove the journal.",
                )
            store.remove(previous)
        run_id = uuid.uuid4().hex
        meta: dict[str, Any] = {"format": JOURNAL_FORMAT, "run_id": run_id, "fence": fence}
        if binding is not None:
            meta.update(lineage=binding.lineage, serial=binding.serial, state_hash=binding.state_hash)
        else:
            meta.update(lineage=run.get("lineage"), serial=run.get("serial", 0), state_hash=None)
        line = _encode_line({"at": _timestamp(), "event": "run", "op": run, "journal": meta, "prev": ""}, cipher)
        if lease is not None:
            lease.check()
        stored = store.begin(run_id, line)
        journal = cls(store, stored, last_hash=_line_hash(line), cipher=cipher, lease=lease)
        journal._bytes = len(line)
        return journal

    # -- appending -------------------------------------------------------------------------

    def check_lease(self) -> None:
        """Raise `lock.LockLost` unless the state lock is still certainly this run's."""
        if self.lease is not None:
            self.lease.check()

    def started(self, record: dict[str, Any]) -> None:
        """Record that an operation is about to call the cloud; durable when this returns.

        The lease is checked first: a holder that lost its lock starts nothing."""
        self.check_lease()
        self._append("started", _checked(record))

    def finished(self, record: dict[str, Any]) -> None:
        """Record a finished operation (create/update/replace carry `record`); durable on return."""
        hold = self._hold
        if hold is not None:
            with self._cond:
                # claimed under the lock: two threads finishing together cannot both pass as the Nth
                reached = self._hold_claimed >= hold[0]
                if not reached:
                    self._hold_claimed += 1
            if reached:
                with self._cond:  # the Nth may still be on its way: wait until N have been appended
                    self._cond.wait_for(lambda: self._finished >= hold[0], timeout=60)
                self.flush()  # the point is "N finished lines are stored", deferred ones too
                _wait_at_hold(hold)
        self._append_many([("finished", _checked(record))], wait=not self.store.defer_results)
        if hold is not None:
            # only the seam waits for this count: a notify per operation would wake every thread
            # waiting for its line to be stored, for nothing
            with self._cond:
                self._finished += 1
                self._cond.notify_all()

    def failed(self, record: dict[str, Any]) -> None:
        """Record a failed operation (e.g. with `error`); durable on return."""
        self._append_many([("failed", _checked(record))], wait=not self.store.defer_results)

    def inverses(self, records: list[dict[str, Any]]) -> None:
        """Record how to undo each planned change, all in one batch (one write); durable on return."""
        if records:
            self._append_many([("inverse", _checked(r)) for r in records])

    def rollback(self, record: dict[str, Any]) -> None:
        """Mark that the undo of this apply begins (its operations follow); durable on return."""
        self._append("rollback", record)

    def bind(self, header: StateHeader) -> None:
        """Record the state document about to be written (before it is): the journal then also
        matches that state, if the process dies between the write and the end line."""
        self._append("bind", {"serial": header.serial, "state_hash": header.checksum, "lineage": header.lineage})

    def close(self, summary: dict[str, Any] | None = None) -> None:
        """Write the end line (the run ended cleanly). Write state *before* this."""
        if self._closed:
            return
        self._append("end", summary or {})
        self._close()

    def discard(self) -> None:
        """Close with an end line and delete the journal: everything it says is in state now."""
        self.close()
        self.store.remove(self.run)

    def abandon(self) -> None:
        """Close without an end line: the next command will treat this run as unfinished."""
        self._close()

    def replay(self) -> JournalReplay:
        """Read this journal back as stored (for an undo that must not depend on memory)."""
        self.flush()
        for stored in self.store.runs():
            if stored.run_id in ("", self.run_id):
                return parse_journal(stored.data, stored.where, self.cipher)
        raise StateError(f"journal {self.store.describe()} of run {self.run_id} is gone", hint="internal error")

    def attach(self, backend: StateBackend) -> None:
        """Have every state write of `backend` bound into this journal first (see `bind`)."""
        backend.journal_binder = self.bind

        def detach() -> None:
            if backend.journal_binder == self.bind:
                backend.journal_binder = None

        self._detach = detach

    def stats(self) -> JournalStats:
        with self._cond:
            return JournalStats(lines=self._lines, fsyncs=self._fsyncs, bytes=self._bytes)

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()

    # -- group commit ----------------------------------------------------------------------

    def _append(self, event: str, payload: dict[str, Any]) -> None:
        self._append_many([(event, payload)])

    def _append_many(self, items: list[tuple[str, dict[str, Any]]], *, wait: bool = True) -> None:
        with self._cond:
            if self._closed:
                raise StateError(f"journal {self.store.describe()} is closed", hint="internal error; please report it")
            self._pending.extend(items)
            self._appended += len(items)
            mine = self._appended
            if not wait:
                self._cond.notify_all()  # the flusher takes it with the next batch
                return
            self._wait_durable(mine)

    def flush(self) -> None:
        """Return once every line handed over so far is stored (deferred results included)."""
        with self._cond:
            self._wait_durable(self._appended)

    def _wait_durable(self, mine: int) -> None:
        """Called with the condition held."""
        while self._durable < mine:
            if self._error is not None:
                if isinstance(self._error, CloudorchError):
                    raise self._error
                raise StateError(
                    f"could not write the journal {self.store.describe()}: {self._error}",
                    hint=_DISK_HINT + " The apply stops to keep state safe.",
                ) from self._error
            if self._flushing:
                (self._batch_cond if mine <= self._flush_target else self._next_cond).wait()
                continue
            self._lead_flush()

    def _lead_flush(self) -> None:
        """Called with the condition held: write every pending line as one batch.

        Lines are encoded (and chained) by the leader, in the order they will be stored."""
        self._flushing = True
        self._flush_target = self._durable  # nothing taken yet: who comes now waits for the next batch
        if self.store.batch_window > 0:
            self._cond.release()
            try:
                time.sleep(self.store.batch_window)  # let the lines of concurrent operations join
            finally:
                self._cond.acquire()
        items = list(self._pending)
        self._pending.clear()
        target = self._flush_target = self._appended
        covered, self._next_cond = self._next_cond, threading.Condition(self._lock)
        self._batch_cond = covered
        self._cond.release()
        error: BaseException | None = None
        chunks: list[bytes] = []
        last = self._last_hash
        try:
            if self.lease is not None:
                self.lease.check()
            at = _timestamp()
            for event, payload in items:
                line = _encode_line({"at": at, "event": event, "op": payload, "prev": last}, self.cipher)
                last = _line_hash(line)
                chunks.append(line)
            batch = b"".join(chunks)
            self.store.append(self.run, batch)
        except BaseException as exc:
            error = exc
        finally:
            self._cond.acquire()
        self._flushing = False
        self._flushed_at = time.monotonic()
        if error is None:
            self._last_hash = last
            self._durable = target
            self._lines += len(items)
            self._fsyncs += 1
            self._bytes += sum(len(c) for c in chunks)
        else:
            self._error = error
        covered.notify_all()
        if error is not None:
            self._next_cond.notify_all()  # every waiter learns of the error
        elif self._pending:
            self._next_cond.notify()  # one of those whose lines came meanwhile writes them
        self._cond.notify_all()

    def _flush_loop(self) -> None:
        """For stores that defer results: store lines nobody waits for. While operations keep
        starting, their intents' batches carry these lines; they are written on their own only
        once no batch went out for `DEFERRED_DELAY`, so an intent never waits behind a write of
        results (each remote write is a round trip, one at a time)."""
        with self._cond:
            while not self._closed:
                if self._pending and not self._flushing and self._error is None:
                    idle = time.monotonic() - self._flushed_at
                    if idle >= DEFERRED_DELAY:
                        self._lead_flush()
                    else:
                        self._cond.wait(DEFERRED_DELAY - idle)
                else:
                    self._cond.wait(0.05)

    def _close(self) -> None:
        with self._cond:
            if self._closed:
                return
            while self._flushing:
                self._cond.wait()
            if self._pending and self._error is None:
                self._lead_flush()  # deferred results are facts: store them even when abandoning
            self._closed = True
            self._cond.notify_all()
        if self._detach is not None:
            self._detach()
        self.store.release()


def start_journal(
    backend: StateBackend, run: dict[str, Any], *, lease: LeaseCheck | None = None, fence: int | None = None
) -> Journal:
    """A new journal for a run on `backend`'s state: stored where the backend keeps journals,
    bound to the state document stored now, sealed with the state's key, and bound again before
    each state write the backend makes while it is open."""
    journal = Journal.start(
        backend.journal_store(),
        run,
        binding=backend.binding(),
        fence=fence if fence is not None else getattr(lease, "fence", None),
        cipher=backend.journal_cipher(),
        lease=lease,
    )
    journal.attach(backend)
    return journal


# -- replay ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalEntry:
    """One finished or failed operation as read back."""

    event: str
    at: str
    op: dict[str, Any]
    #: for a failed operation, its "started" payload (properties a rollback can `find` it by)
    started: dict[str, Any] | None = None
    #: `op["record"]` as validated while the journal was read; None when absent or not a valid record
    record: ResourceRecord | None = None


@dataclass
class JournalReplay:
    """What a journal says happened. `completed` keeps journal order (finished and failed)."""

    path: Path | str
    header: dict[str, Any] | None
    completed: list[JournalEntry] = field(default_factory=list)
    in_flight: list[dict[str, Any]] = field(default_factory=list)
    ended_cleanly: bool = False
    torn_tail: bool = False
    lines: int = 0
    #: address -> how to undo the change planned for it (the `inverse` lines, written before any operation)
    inverses: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the `rollback` line, when the undo of this apply began
    rollback: dict[str, Any] | None = None
    #: the header's `journal` block: format, run id, the state it started from, fencing token
    meta: dict[str, Any] | None = None
    #: (serial, state hash) of every state the run wrote or was about to write (`bind` lines)
    binds: list[tuple[int, str]] = field(default_factory=list)
    #: the chain hash of the last intact line (what the next line's `prev` must be)
    last_hash: str = ""
    #: the chain was verified line by line (journals of format 2)
    chained: bool = False
    #: what is left of a run another process recovered (`closed`): kept so its writer stays fenced out
    closed: bool = False

    @property
    def finished(self) -> list[dict[str, Any]]:
        return [e.op for e in self.completed if e.event == "finished"]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [e.op for e in self.completed if e.event == "failed"]

    @property
    def run_id(self) -> str:
        return str((self.meta or {}).get("run_id", ""))


def read_journal(path: Path, cipher: StateCipher | None = None) -> JournalReplay:
    """Replay a local journal file. A torn tail (a line cut by a kill or a crash) is ignored and
    flagged; an unreadable line followed by readable ones is corruption and raises StateError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise StateError(f"no journal at {path}", hint="Nothing to recover.") from exc
    except OSError as exc:
        raise StateError(f"could not read the journal {path}: {exc.strerror or exc}", hint=_DISK_HINT) from exc
    replay = parse_journal(data, str(path), cipher)
    replay.path = path
    return replay


def parse_journal(data: bytes, where: str, cipher: StateCipher | None = None) -> JournalReplay:
    """Replay a journal's bytes, verifying the hash chain of a format-2 journal. Linear in its size.

    The chain is checked on the raw bytes of each line; the lines are read in one validator pass
    (`journal_lines.py`), which also validates each operation's record, so a fold builds none twice."""
    from cloudorch.state.journal_lines import paused_gc

    with paused_gc():
        return _parse_journal(data, where, cipher)


def _parse_journal(data: bytes, where: str, cipher: StateCipher | None) -> JournalReplay:
    from cloudorch.state.journal_lines import read_lines, split_record

    numbers: list[int] = []
    raws: list[bytes] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if raw.strip(b"\x00 \t\r"):
            numbers.append(number)
            raws.append(raw)
    # one parser call for the whole journal; line by line only when some line is torn or bad
    parsed = read_lines(raws)
    whole = parsed is not None and len(parsed) == len(raws)
    docs: list[dict[str, Any] | None] = list(parsed) if parsed is not None and whole else list(map(_parse_line, raws))
    # Unreadable lines are tolerated only after the last readable one (the unsynced tail).
    last_good = max((i for i, doc in enumerate(docs) if doc is not None), default=-1)
    for number, doc in zip(numbers[: last_good + 1], docs[: last_good + 1], strict=True):
        if doc is None:
            raise StateError(
                f"journal {where}:{number} is corrupted (later lines are intact)",
                hint="Inspect the file; recover the readable operations by hand or restore state history.",
            )
    replay = JournalReplay(path=where, header=None, torn_tail=last_good < len(docs) - 1)
    started: dict[str, dict[str, Any]] = {}
    completed = replay.completed
    prev = ""
    chained = False
    sha256 = hashlib.sha256
    for index in range(last_good + 1):
        doc = docs[index]
        raw = raws[index]
        assert doc is not None
        if "sealed" in doc:
            doc = _open_line(doc, cipher, f"{where}:{numbers[index]}")
        if index == 0:
            chained = replay.chained = isinstance(doc.get("journal"), dict)
        if chained and doc.get("prev") != prev:
            raise StateError(
                f"journal {where}:{numbers[index]}: its hash chain is broken (the line does not follow line "
                f"{numbers[index - 1] if index else 0}): lines were inserted, removed or edited",
                hint=refused_hint(where),
            )
        digest = sha256(raw)
        digest.update(b"\n")
        prev = digest.hexdigest()
        event = doc.get("event")
        op = doc.get("op")
        if not isinstance(op, dict):
            raise StateError(f"journal {where}:{numbers[index]} has no operation payload", hint="The file was edited?")
        record = split_record(op) if "record" in op else None
        if event == "finished" or event == "failed":
            began = started.pop(str(op.get("op")), None)
            completed.append(
                JournalEntry(
                    event=event,
                    at=str(doc.get("at", "")),
                    op=op,
                    started=began if event == "failed" else None,
                    record=record,
                )
            )
        elif event == "started":
            started[str(op.get("op"))] = op
        elif event == "run":
            if index != 0:
                raise StateError(f"journal {where}:{numbers[index]}: a second header line", hint=refused_hint(where))
            replay.header = op
            meta = doc.get("journal")
            replay.meta = meta if isinstance(meta, dict) else None
        elif event in _DONE_EVENTS:
            replay.ended_cleanly = True
            replay.closed = replay.closed or event == "closed"
        elif event == "bind":
            replay.binds.append((int(op.get("serial", -1)), str(op.get("state_hash", ""))))
        elif event == "inverse":
            replay.inverses[str(op.get("address"))] = op
        elif event == "rollback":
            replay.rollback = op
    replay.lines = last_good + 1
    replay.last_hash = prev
    replay.in_flight = list(started.values())
    return replay


def remove_journal(path: Path) -> None:
    """Delete a local journal once its operations are in state (after recovery or a finished apply)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    fsync_dir(path.parent)


# -- a journal waiting to be folded -------------------------------------------------------------


@dataclass
class PendingRun:
    """A journal left by a run that did not finish, verified against the stored state.

    Reading one writes nothing (`pending`); folding it is the caller's, under the lock:
    `bind` before writing the folded state, then `discard`."""

    store: JournalStore
    stored: StoredRun
    replay: JournalReplay
    cipher: StateCipher | None
    #: runs that ended cleanly but were not removed (a crash between the end line and removal)
    leftovers: list[StoredRun] = field(default_factory=list)

    @property
    def where(self) -> str:
        return self.stored.where

    @property
    def ended_cleanly(self) -> bool:
        return self.replay.ended_cleanly

    def describe(self) -> str:
        """`journal PATH (cloudorch apply by ann at T: 12 operations done, 1 in flight)`."""
        header = self.replay.header or {}
        who = " ".join(str(header[k]) for k in ("command", "actor") if header.get(k))
        return (
            f"journal {self.where} ({who + ': ' if who else ''}{len(self.replay.completed)} operation(s) done, "
            f"{len(self.replay.in_flight)} in flight)"
        )

    def bind(self, header: StateHeader) -> None:
        """Append a `bind` line for the state about to be written from this journal."""
        self._append("bind", {"serial": header.serial, "state_hash": header.checksum, "lineage": header.lineage})

    def settle(self, records: list[tuple[str, dict[str, Any]]]) -> None:
        """Record how recovery settled the operations that were in flight (`finished` with what was
        adopted, `failed` for what made nothing), in one write: a journal that goes on (an undo
        resumed in it) is folded again later, and must not judge them a second time."""
        if not records:
            return
        lines: list[bytes] = []
        for event, payload in records:
            line = self._line(event, _checked(payload))
            lines.append(line)
            self.replay.last_hash = _line_hash(line)
        self.store.append(self.stored, b"".join(lines))

    def resume(self, backend: StateBackend, lease: LeaseCheck | None = None) -> Journal:
        """Go on writing this run's journal: an undo cut short by a kill is finished in the journal
        that holds its inverse records and everything it already undid, so a kill of the finishing
        undo leaves a journal the next `recover` resumes again. Bound to `backend`'s state writes."""
        journal = Journal(self.store, self.stored, last_hash=self.replay.last_hash, cipher=self.cipher, lease=lease)
        journal.attach(backend)
        return journal

    def attach(self, backend: StateBackend) -> Callable[[], None]:
        """Bind every state write of `backend` into this journal until the returned call."""
        backend.journal_binder = self.bind

        def detach() -> None:
            if backend.journal_binder == self.bind:
                backend.journal_binder = None

        return detach

    def discard(self) -> None:
        """Remove the journal (and ended leftovers): its operations are in state now."""
        closing = self._line("closed", {"at": _timestamp()})
        self.store.remove(self.stored, closing=closing)
        for run in self.leftovers:
            self.store.remove(run)
        self.store.release()

    def _line(self, event: str, payload: dict[str, Any]) -> bytes:
        return _encode_line(
            {"at": _timestamp(), "event": event, "op": payload, "prev": self.replay.last_hash}, self.cipher
        )

    def _append(self, event: str, payload: dict[str, Any]) -> None:
        line = self._line(event, payload)
        self.store.append(self.stored, line)
        self.replay.last_hash = _line_hash(line)


def pending(backend: StateBackend) -> PendingRun | None:
    """The journal waiting beside `backend`'s state, verified, or None. Writes nothing.

    Raises StateError, naming what does not match, for a journal without a header, with a
    broken chain, sealed with another key, or bound to another state than the stored one."""
    store = backend.journal_store()
    cipher = backend.journal_cipher()
    runs = store.runs()
    if not runs:
        return None
    open_runs: list[tuple[StoredRun, JournalReplay]] = []
    done: list[tuple[StoredRun, JournalReplay]] = []
    for run in runs:
        replay = parse_journal(run.data, run.where, cipher)
        if replay.closed:
            continue  # recovered already; its marker keeps a late writer out
        (done if replay.ended_cleanly else open_runs).append((run, replay))
    if len(open_runs) > 1:
        names = ", ".join(r.where for r, _ in open_runs)
        raise StateError(
            f"{len(open_runs)} unfinished journals wait beside state {backend.describe()}: {names}",
            hint="Only one run holds the lock at a time: inspect them, and recover each on the machine that wrote it.",
        )
    if not open_runs and not done:
        return None
    if not open_runs:
        first, replay = done[0]
        return PendingRun(store, first, replay, cipher, leftovers=[r for r, _ in done[1:]])
    run, replay = open_runs[0]
    verify_binding(replay, backend.binding(), run.where)
    return PendingRun(store, run, replay, cipher, leftovers=[r for r, _ in done])


def verify_binding(replay: JournalReplay, stored: StateBinding | None, where: str) -> None:
    """Refuse a journal that is not bound to exactly the stored state (or one its run wrote)."""
    meta = replay.meta
    if replay.header is None or meta is None or meta.get("format") != JOURNAL_FORMAT or not replay.chained:
        raise StateError(
            f"journal {where} has no header binding it to a state (lineage, serial, state hash, run id): "
            "it was written by hand or by an older cloudorch, and is refused",
            hint=refused_hint(where),
        )
    serial = meta.get("serial")
    state_hash = meta.get("state_hash")
    lineage = meta.get("lineage")
    started = StateBinding(lineage if isinstance(lineage, str) else None, int(serial or 0), state_hash or None)
    if stored is None:
        if started.state_hash is None and started.serial == 0:
            return
        raise StateError(
            f"journal {where} started from state {started.describe()}, but no state is stored",
            hint=refused_hint(where),
        )
    if started.lineage is not None and started.lineage != stored.lineage:
        raise StateError(
            f"journal {where} belongs to state lineage {started.lineage}, not {stored.lineage}",
            hint=refused_hint(where),
        )
    known = {(started.serial, started.state_hash)} | set(replay.binds)
    if (stored.serial, stored.state_hash) in known:
        return
    wrote = sorted({s for s, _ in replay.binds if s >= 0})
    if stored.serial in wrote or stored.serial == started.serial:
        why = f"the state at serial {stored.serial} has hash {stored.state_hash}, not the one the journal names"
    else:
        also = f" and wrote serial {', '.join(map(str, wrote))}" if wrote else ""
        why = f"it started from serial {started.serial}{also}, but the stored state is at serial {stored.serial}"
    raise StateError(f"journal {where} does not match the stored state: {why}", hint=refused_hint(where))


# -- lines --------------------------------------------------------------------------------------


def _encode_line(doc: dict[str, Any], cipher: StateCipher | None) -> bytes:
    text = json.dumps(doc, separators=(",", ":"), default=str).encode()
    if cipher is not None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = cipher.keys[0]
        nonce = os.urandom(12)
        sealed = AESGCM(key.secret).encrypt(nonce, text, _SEAL_AAD)
        envelope = {
            "sealed": key.key_id,
            "nonce": base64.b64encode(nonce).decode(),
            "data": base64.b64encode(sealed).decode(),
        }
        text = json.dumps(envelope, separators=(",", ":")).encode()
    return text + b"\n"


def _open_line(doc: dict[str, Any], cipher: StateCipher | None, where: str) -> dict[str, Any]:
    if cipher is None:
        raise StateError(
            f"journal {where} is encrypted (key {doc.get('sealed')}), and no key is configured",
            hint="Add `encryption: {key_env: NAME}` (or key_file) to the plan's backend block.",
        )
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = next((k for k in cipher.keys if k.key_id == doc.get("sealed")), None)
    if key is None:
        raise StateError(
            f"journal {where} is encrypted with key {doc.get('sealed')}, not the configured {cipher.key_id}",
            hint="Use the key it was written with (list earlier keys under backend.encryption.old_keys).",
        )
    try:
        plain = AESGCM(key.secret).decrypt(
            base64.b64decode(str(doc["nonce"])), base64.b64decode(str(doc["data"])), _SEAL_AAD
        )
        opened = json.loads(plain)
    except (InvalidTag, KeyError, ValueError) as exc:
        raise StateError(
            f"journal {where} could not be decrypted with key {key.key_id}: it was changed", hint=refused_hint(where)
        ) from exc
    if not isinstance(opened, dict):
        raise StateError(f"journal {where} holds a sealed line that is not an object", hint=refused_hint(where))
    return opened


def _hold_seam() -> tuple[int, Path, Path] | None:
    value = os.environ.get(HOLD_ENV)
    if not value:
        return None
    count, marker, release = value.split(":", 2)
    return int(count), Path(marker), Path(release)


def _wait_at_hold(hold: tuple[int, Path, Path]) -> None:
    _, marker, release = hold
    with contextlib.suppress(OSError):
        marker.touch()
    while not release.exists():
        time.sleep(0.01)


def _line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _parse_line(raw: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _checked(record: dict[str, Any]) -> dict[str, Any]:
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise ValueError(f"journal record lacks {', '.join(missing)}: {record!r}")
    return record


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"

"""The apply journal: an append-only JSON-lines file, one line per operation started, finished or failed.

Each call returns only once its line is durable, with group commit: concurrent callers queue
their lines and one leader writes the whole batch and fsyncs once for all of them, so thousands
of fast operations cost far fewer fsyncs. `read_journal` replays a journal left by a killed
apply (tolerating a torn last line). Payloads are opaque dicts chosen by the engine; this module
never interprets them beyond `op`, `address` and `action` (folding into State is `recovery.py`).

Line format: `{"at": "...", "event": "run"|"inverse"|"rollback"|"started"|"finished"|"failed"|"end", "op": {...}}`.
Before any operation starts, an apply writes one `inverse` line per planned change: what would
undo it (the previous record of an update, replace or delete), so a rollback, even one run by
the next process after a crash, never depends on memory. A `rollback` line marks where the undo
of a failed apply began; the undo's own operations follow as ordinary started/finished lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from cloudorch.errors import StateError
from cloudorch.state.durable import fsync_dir

REQUIRED_KEYS = ("op", "address", "action")
_DISK_HINT = "Check that the directory is writable by you and its disk has free space."
_fsync = getattr(os, "fdatasync", os.fsync)  # the data and the file size; not the mtime


@dataclass(frozen=True)
class JournalStats:
    """Counters for benchmarks: lines appended, fsyncs issued, bytes written."""

    lines: int
    fsyncs: int
    bytes: int


class Journal:
    """An open journal for one apply. Thread-safe; create it with `Journal.start`."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[bytes] = []
        self._appended = 0  # lines handed to us
        self._durable = 0  # lines known to be on disk
        self._flushing = False
        self._closed = False
        self._error: BaseException | None = None
        self._lines = 0
        self._fsyncs = 0
        self._bytes = 0

    @classmethod
    def start(cls, path: Path, run: dict[str, Any]) -> Journal:
        """Begin a journal at `path` with a run header (plan, lineage, serial, command...).

        A previous journal that ended cleanly is replaced; one that did not (a killed apply)
        makes this raise StateError, since its finished operations are not in state yet.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"could not create {path.parent}: {exc.strerror or exc}", hint=_DISK_HINT) from exc
        if path.exists():
            previous = read_journal(path)
            if not previous.ended_cleanly:
                raise StateError(
                    f"journal {path} is from an apply that did not finish "
                    f"({len(previous.completed)} operations done, {len(previous.in_flight)} in flight)",
                    hint="Recover it into state first (cloudorch recovers on the next apply), then remove the journal.",
                )
            os.unlink(path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        except FileExistsError as exc:
            raise StateError(
                f"journal {path} was created by another apply at the same moment",
                hint="Another apply is running; it should hold the state lock.",
            ) from exc
        except OSError as exc:
            raise StateError(f"could not create the journal {path}: {exc.strerror or exc}", hint=_DISK_HINT) from exc
        fsync_dir(path.parent)
        journal = cls(path, fd)
        journal._append("run", run)
        return journal

    # -- appending -------------------------------------------------------------------------

    def started(self, record: dict[str, Any]) -> None:
        """Record that an operation is about to call the cloud; durable when this returns."""
        self._append("started", _checked(record))

    def finished(self, record: dict[str, Any]) -> None:
        """Record a finished operation (create/update/replace carry `record`); durable on return."""
        self._append("finished", _checked(record))

    def failed(self, record: dict[str, Any]) -> None:
        """Record a failed operation (e.g. with `error`); durable on return."""
        self._append("failed", _checked(record))

    def inverses(self, records: list[dict[str, Any]]) -> None:
        """Record how to undo each planned change, all in one batch (one fsync); durable on return."""
        if records:
            self._append_many([("inverse", _checked(r)) for r in records])

    def rollback(self, record: dict[str, Any]) -> None:
        """Mark that the undo of this apply begins (its operations follow); durable on return."""
        self._append("rollback", record)

    def close(self, summary: dict[str, Any] | None = None) -> None:
        """Write the end line (the run ended cleanly) and close. Write state *before* this."""
        if self._closed:
            return
        self._append("end", summary or {})
        self._close_fd()

    def abandon(self) -> None:
        """Close without an end line: the next apply will treat this run as unfinished."""
        self._close_fd()

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

    def _append_many(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        at = _timestamp()
        lines = [
            (json.dumps({"at": at, "event": event, "op": payload}, separators=(",", ":"), default=str) + "\n").encode()
            for event, payload in items
        ]
        with self._cond:
            if self._closed:
                raise StateError(f"journal {self.path} is closed", hint="internal error; please report it")
            self._pending.extend(lines)
            self._appended += len(lines)
            mine = self._appended
            while self._durable < mine:
                if self._error is not None:
                    raise StateError(
                        f"could not write the journal {self.path}: {self._error}",
                        hint=_DISK_HINT + " The apply stops to keep state safe.",
                    ) from self._error
                if self._flushing:
                    self._cond.wait()  # the current leader's fsync may not cover us; re-check
                    continue
                self._lead_flush()

    def _lead_flush(self) -> None:
        """Called with the condition held: write and fsync every pending line as one batch."""
        self._flushing = True
        batch = b"".join(self._pending)
        count = len(self._pending)
        self._pending.clear()
        target = self._appended
        self._cond.release()
        error: BaseException | None = None
        try:
            view = memoryview(batch)
            while view:
                view = view[os.write(self._fd, view) :]
            _fsync(self._fd)
        except BaseException as exc:
            error = exc
        finally:
            self._cond.acquire()
        self._flushing = False
        if error is None:
            self._durable = target
            self._lines += count
            self._fsyncs += 1
            self._bytes += len(batch)
        else:
            self._error = error
        self._cond.notify_all()

    def _close_fd(self) -> None:
        with self._cond:
            if self._closed:
                return
            while self._flushing:
                self._cond.wait()
            self._closed = True
            with contextlib.suppress(OSError):
                os.close(self._fd)


# -- replay ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalEntry:
    """One finished or failed operation as read back."""

    event: str
    at: str
    op: dict[str, Any]
    #: for a failed operation, its "started" payload (properties a rollback can `find` it by)
    started: dict[str, Any] | None = None


@dataclass
class JournalReplay:
    """What a journal says happened. `completed` keeps journal order (finished and failed)."""

    path: Path
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

    @property
    def finished(self) -> list[dict[str, Any]]:
        return [e.op for e in self.completed if e.event == "finished"]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [e.op for e in self.completed if e.event == "failed"]


def read_journal(path: Path) -> JournalReplay:
    """Replay a journal. A torn tail (a line cut by a kill or a crash) is ignored and flagged;
    an unreadable line followed by readable ones is corruption and raises StateError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise StateError(f"no journal at {path}", hint="Nothing to recover.") from exc
    except OSError as exc:
        raise StateError(f"could not read the journal {path}: {exc.strerror or exc}", hint=_DISK_HINT) from exc
    raw_lines = data.split(b"\n")
    parsed: list[tuple[int, dict[str, Any] | None]] = []
    for number, raw in enumerate(raw_lines, start=1):
        if raw.strip(b"\x00 \t\r"):
            parsed.append((number, _parse_line(raw)))
    # Unreadable lines are tolerated only after the last readable one (the unsynced tail).
    last_good = max((i for i, (_, doc) in enumerate(parsed) if doc is not None), default=-1)
    for number, doc in parsed[: last_good + 1]:
        if doc is None:
            raise StateError(
                f"journal {path}:{number} is corrupted (later lines are intact)",
                hint="Inspect the file; recover the readable operations by hand or restore state history.",
            )
    replay = JournalReplay(path=path, header=None, torn_tail=last_good < len(parsed) - 1)
    started: dict[str, dict[str, Any]] = {}
    for number, doc in parsed[: last_good + 1]:
        assert doc is not None
        replay.lines += 1
        event = doc.get("event")
        op = doc.get("op")
        if not isinstance(op, dict):
            raise StateError(f"journal {path}:{number} has no operation payload", hint="The file was edited?")
        if event == "run":
            replay.header = op
        elif event == "end":
            replay.ended_cleanly = True
        elif event == "inverse":
            replay.inverses[str(op.get("address"))] = op
        elif event == "rollback":
            replay.rollback = op
        elif event == "started":
            started[str(op.get("op"))] = op
        elif event in ("finished", "failed"):
            began = started.pop(str(op.get("op")), None)
            replay.completed.append(
                JournalEntry(
                    event=event, at=str(doc.get("at", "")), op=op, started=began if event == "failed" else None
                )
            )
    replay.in_flight = list(started.values())
    return replay


def remove_journal(path: Path) -> None:
    """Delete a journal once its operations are in state (after recovery or a finished apply)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    fsync_dir(path.parent)


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

"""The apply journal: durable-on-return appends, group commit, replay of torn and killed runs."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloudorch.errors import StateError
from cloudorch.state import Journal, read_journal, remove_journal
from cloudorch.state import journal as journal_module

RunChild = Callable[[str, list[str]], subprocess.Popen[str]]


def _op(op: str, action: str = "create", **extra: Any) -> dict[str, Any]:
    return {"op": op, "address": f"prod.{op}", "action": action, **extra}


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / ".cloudorch" / "journal" / "shop.jsonl"


def test_lines_replay_in_order(journal_path: Path) -> None:
    journal = Journal.start(journal_path, {"plan": "shop", "serial": 3})
    journal.started(_op("a"))
    journal.finished(_op("a", record={"id": "1"}))
    journal.started(_op("b", "delete"))
    journal.failed(_op("b", "delete", error="AccessDenied"))
    journal.started(_op("c"))
    journal.close({"ok": False})

    replay = read_journal(journal_path)
    assert replay.header == {"plan": "shop", "serial": 3}
    assert [(e.event, e.op["op"]) for e in replay.completed] == [("finished", "a"), ("failed", "b")]
    assert replay.finished == [_op("a", record={"id": "1"})]
    assert replay.failed == [_op("b", "delete", error="AccessDenied")]
    assert replay.in_flight == [_op("c")]
    assert replay.ended_cleanly
    assert not replay.torn_tail
    assert replay.lines == 7
    assert journal.stats().lines == 7


def test_unclosed_journal_did_not_end_cleanly(journal_path: Path) -> None:
    journal = Journal.start(journal_path, {})
    journal.started(_op("a"))
    journal.abandon()
    replay = read_journal(journal_path)
    assert not replay.ended_cleanly
    assert replay.in_flight == [_op("a")]


def test_records_need_op_address_action(journal_path: Path) -> None:
    with Journal.start(journal_path, {}) as journal, pytest.raises(ValueError, match="address, action"):
        journal.started({"op": "x"})


def test_every_call_is_durable_when_it_returns(journal_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each return is preceded by an fsync that covered the returned line's bytes."""
    synced_size = 0

    def recording_fsync(fd: int) -> None:
        nonlocal synced_size
        os.fsync(fd)
        synced_size = os.fstat(fd).st_size

    monkeypatch.setattr(journal_module, "_fsync", recording_fsync)
    journal = Journal.start(journal_path, {})
    for i in range(5):
        journal.started(_op(f"op{i}"))
        assert synced_size == journal_path.stat().st_size
        journal.finished(_op(f"op{i}"))
        assert synced_size == journal_path.stat().st_size
    journal.close()


def test_group_commit_shares_fsyncs(journal_path: Path) -> None:
    journal = Journal.start(journal_path, {})
    threads_n, per_thread = 200, 25

    def work(worker: int) -> None:
        for i in range(per_thread):
            journal.started(_op(f"{worker}-{i}"))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = journal.stats()
    journal.close()
    assert stats.lines == 1 + threads_n * per_thread
    assert stats.bytes == journal_path.stat().st_size - len(journal_path.read_bytes().splitlines()[-1]) - 1
    # Each fsync covers every line queued while the previous one ran.
    assert stats.fsyncs < stats.lines / 5, stats
    assert len(read_journal(journal_path).in_flight) == threads_n * per_thread


def test_torn_last_line_is_ignored(journal_path: Path) -> None:
    journal = Journal.start(journal_path, {"plan": "shop"})
    journal.started(_op("a"))
    journal.finished(_op("a"))
    journal.started(_op("b"))
    journal.abandon()
    with open(journal_path, "ab") as fh:
        fh.write(b'{"at":"2024-01-01T00:00:00.000Z","event":"finished","op":{"op":"b","addr')
    replay = read_journal(journal_path)
    assert replay.torn_tail
    assert replay.finished == [_op("a")]
    assert replay.in_flight == [_op("b")]


def test_zero_filled_tail_is_torn_not_corrupt(journal_path: Path) -> None:
    journal = Journal.start(journal_path, {})
    journal.finished(_op("a"))
    journal.abandon()
    with open(journal_path, "ab") as fh:
        fh.write(b"\x00" * 100 + b"\n" + b"garbage")
    replay = read_journal(journal_path)
    assert replay.torn_tail
    assert replay.finished == [_op("a")]


def test_corrupt_middle_line_is_an_error(journal_path: Path) -> None:
    journal = Journal.start(journal_path, {})
    journal.finished(_op("a"))
    journal.finished(_op("b"))
    journal.close()
    lines = journal_path.read_bytes().splitlines(keepends=True)
    lines[1] = b"{not json\n"
    journal_path.write_bytes(b"".join(lines))
    with pytest.raises(StateError, match=r"shop\.jsonl:2 is corrupted"):
        read_journal(journal_path)


def test_start_refuses_unfinished_journal_and_replaces_finished_one(journal_path: Path) -> None:
    journal = Journal.start(journal_path, {"run": 1})
    journal.started(_op("a"))
    journal.abandon()
    with pytest.raises(StateError, match="did not finish") as excinfo:
        Journal.start(journal_path, {"run": 2})
    assert excinfo.value.hint is not None and "Recover" in excinfo.value.hint

    remove_journal(journal_path)
    Journal.start(journal_path, {"run": 2}).close()
    Journal.start(journal_path, {"run": 3}).close()
    assert read_journal(journal_path).header == {"run": 3}


def test_missing_journal_is_a_state_error(journal_path: Path) -> None:
    with pytest.raises(StateError, match="no journal"):
        read_journal(journal_path)


CHILD_APPENDS = """
import sys, threading
from pathlib import Path
from cloudorch.state import Journal
journal = Journal.start(Path(sys.argv[1]), {"plan": "shop"})
out = threading.Lock()
def work(worker):
    i = 0
    while True:
        op = {"op": f"{worker}-{i}", "address": f"prod.r{worker}-{i}", "action": "create"}
        journal.started(op)
        with out:
            print("started", op["op"], flush=True)
        journal.finished({**op, "record": {"i": i, "pad": "x" * (i % 300)}})
        with out:
            print("finished", op["op"], flush=True)
        i += 1
threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def test_sigkilled_writer_loses_no_acknowledged_line(journal_path: Path, run_child: RunChild) -> None:
    child = run_child(CHILD_APPENDS, [str(journal_path)])
    assert child.stdout is not None
    acknowledged: list[tuple[str, str]] = []
    deadline = time.monotonic() + 20
    while len(acknowledged) < 2000 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        parts = line.split()
        if len(parts) != 2:
            continue  # a line the child was writing when the reader caught up
        acknowledged.append((parts[0], parts[1]))
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate(timeout=10)
    # the last line may be torn by the kill ("finished " with no op): only whole lines count
    acknowledged += [(p[0], p[1]) for p in (line.split() for line in rest.splitlines()) if len(p) == 2]
    assert len(acknowledged) >= 2000, "child did not get going"

    replay = read_journal(journal_path)
    assert replay.header == {"plan": "shop"}
    assert not replay.ended_cleanly
    finished = {op["op"] for op in replay.finished}
    seen = finished | {op["op"] for op in replay.in_flight}
    for event, op in acknowledged:
        if event == "finished":
            assert op in finished, op
        else:
            assert op in seen, op


def test_a_failed_write_reaches_the_callers_waiting_for_the_next_one(
    journal_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Callers whose lines came while a write was under way wait for the next write, not for every
    write's end: when the one under way fails, each of them still learns it, none waits forever."""
    journal = Journal.start(journal_path, {})
    writing, fail = threading.Event(), threading.Event()

    def failing_fsync(fd: int) -> None:
        writing.set()
        assert fail.wait(30)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(journal_module, "_fsync", failing_fsync)
    errors: list[BaseException] = []

    def append(op: str) -> None:
        try:
            journal.started(_op(op))
        except StateError as exc:
            errors.append(exc)

    leader = threading.Thread(target=append, args=("lead",), daemon=True)
    leader.start()
    assert writing.wait(30)
    others = [threading.Thread(target=append, args=(f"w{i}",), daemon=True) for i in range(20)]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 30
    while len(journal._pending) < len(others):  # every line queued behind the write under way
        assert time.monotonic() < deadline, "the callers never queued their lines"
        time.sleep(0.001)
    fail.set()
    for thread in [leader, *others]:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a caller still waits for a write that failed"
    assert len(errors) == 1 + len(others)
    assert all("could not write the journal" in str(e) for e in errors)
    journal.abandon()


def test_fsync_failure_stops_every_caller(journal_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal.start(journal_path, {})

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal_module, "_fsync", broken_fsync)
    with pytest.raises(StateError, match="could not write the journal") as excinfo:
        journal.started(_op("a"))
    assert excinfo.value.hint is not None and "free space" in excinfo.value.hint
    monkeypatch.undo()
    with pytest.raises(StateError, match="could not write the journal"):
        journal.started(_op("b"))  # durability is unknown now: never pretend otherwise
    journal.abandon()

"""Inverse records and the rollback marker in the journal: written in one batch, read back by replay."""

from __future__ import annotations

from pathlib import Path

from cloudorch.state.journal import Journal, read_journal


def _inverse(address: str, action: str, undo: str, after: list[str]) -> dict[str, object]:
    return {
        "op": f"inverse:{address}",
        "address": address,
        "action": action,
        "undo": undo,
        "type": "core.null",
        "provider": "core",
        "after": after,
    }


def test_inverses_are_one_fsync_and_replay_by_address(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal.start(path, {"lineage": "L"})
    records = [_inverse(f"r{i}", "create", "delete", [f"r{i - 1}"] if i else []) for i in range(100)]
    before = journal.stats()
    journal.inverses(records)
    after = journal.stats()
    assert after.lines - before.lines == 100
    assert after.fsyncs - before.fsyncs == 1
    journal.started({"op": "r0", "address": "r0", "action": "create"})
    journal.finished({"op": "r0", "address": "r0", "action": "create", "record": None})
    journal.abandon()

    replay = read_journal(path)
    assert len(replay.inverses) == 100
    assert replay.inverses["r5"]["undo"] == "delete" and replay.inverses["r5"]["after"] == ["r4"]
    assert replay.rollback is None
    # inverse lines are not operations: nothing is in flight, one finished
    assert replay.in_flight == [] and [e.op["op"] for e in replay.completed] == ["r0"]


def test_rollback_marker_and_undo_operations_replay_after_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal.start(path, {"lineage": "L"})
    journal.inverses([_inverse("x", "update", "update", [])])
    journal.finished({"op": "x", "address": "x", "action": "update", "record": None})
    journal.rollback({"op": "rollback", "address": "*", "action": "rollback", "undo": ["x"]})
    journal.started({"op": "undo:x", "address": "x", "action": "update"})
    journal.abandon()
    with open(path, "ab") as fh:
        fh.write(b'{"at": "2026-01-01", "event": "fini')  # a line cut by the kill
    replay = read_journal(path)
    assert replay.torn_tail and not replay.ended_cleanly
    assert replay.rollback is not None and replay.rollback["undo"] == ["x"]
    assert [op["op"] for op in replay.in_flight] == ["undo:x"]


def test_an_empty_inverse_batch_writes_nothing(tmp_path: Path) -> None:
    journal = Journal.start(tmp_path / "j.jsonl", {"lineage": "L"})
    lines = journal.stats().lines
    journal.inverses([])
    assert journal.stats().lines == lines
    journal.close()

"""Recovery: folding a killed apply's journal into state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloudorch.errors import StateError
from cloudorch.state import Journal, LocalBackend, ResourceRecord, State, apply_replay, read_journal

MakeState = Callable[..., State]
MakeRecord = Callable[..., ResourceRecord]


def _op(op: str, address: str, action: str, record: ResourceRecord | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"op": op, "address": address, "action": action}
    if record is not None:
        payload["record"] = record.model_dump(mode="json")
    return payload


def test_finished_ops_fold_into_state(
    backend: LocalBackend, make_state: MakeState, make_record: MakeRecord
) -> None:
    state = make_state(3)  # prod.r0, prod.r1, prod.r2
    backend.write(state, None)
    journal = Journal.start(backend.journal_path(), {"lineage": state.lineage, "serial": 1})
    new = make_record("prod.new")
    updated = make_record("prod.r0", n_props=2)
    replaced = make_record("prod.r1", n_props=1)
    journal.started(_op("1", "prod.new", "create"))
    journal.finished(_op("1", "prod.new", "create", new))
    journal.started(_op("2", "prod.r0", "update"))
    journal.finished(_op("2", "prod.r0", "update", updated))
    journal.started(_op("3", "prod.r2", "delete"))
    journal.finished(_op("3", "prod.r2", "delete"))
    journal.started(_op("4", "prod.r1", "replace"))
    journal.finished(_op("4", "prod.r1", "replace", replaced))
    journal.started(_op("5", "prod.broken", "create"))
    journal.failed({**_op("5", "prod.broken", "create"), "error": "quota"})
    journal.started(_op("6", "prod.pending", "create"))
    journal.abandon()  # killed here

    loaded = backend.read()
    assert loaded is not None
    report = apply_replay(loaded, read_journal(backend.journal_path()))
    assert report.recovered == ["prod.new", "prod.r0", "prod.r1"]
    assert report.removed == ["prod.r2"]
    assert [op["op"] for op in report.failed] == ["5"]
    assert [op["address"] for op in report.in_flight] == ["prod.pending"]
    assert not report.ended_cleanly
    assert report.changed
    assert loaded.resources["prod.new"] == new
    assert loaded.resources["prod.r0"] == updated
    assert loaded.resources["prod.r1"] == replaced
    assert "prod.r2" not in loaded.resources
    assert "prod.pending" not in loaded.resources
    assert loaded.serial == 1  # the caller bumps serial and writes

    loaded.serial = 2
    backend.write(loaded, 1)
    assert set(backend.read_version(2).resources) == {"prod.new", "prod.r0", "prod.r1"}


def test_create_then_delete_of_same_address(
    make_state: MakeState, make_record: MakeRecord, tmp_path: Path
) -> None:
    state = make_state(0)
    path = tmp_path / "j.jsonl"
    with Journal.start(path, {}) as journal:
        journal.finished(_op("1", "prod.tmp", "create", make_record("prod.tmp")))
        journal.finished(_op("2", "prod.tmp", "delete"))
    report = apply_replay(state, read_journal(path))
    assert report.recovered == []
    assert report.removed == ["prod.tmp"]
    assert report.ended_cleanly
    assert state.resources == {}


def test_other_lineage_is_refused(make_state: MakeState, tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    Journal.start(path, {"lineage": "someone-else"}).close()
    with pytest.raises(StateError, match="lineage someone-else"):
        apply_replay(make_state(1), read_journal(path))


def test_invalid_record_is_refused(make_state: MakeState, tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal.start(path, {}) as journal:
        journal.finished({"op": "1", "address": "prod.x", "action": "create", "record": {"nope": 1}})
    with pytest.raises(StateError, match="invalid record"):
        apply_replay(make_state(1), read_journal(path))


def test_records_read_in_one_pass_fold_like_records_validated_at_the_fold(
    make_state: MakeState, make_record: MakeRecord, tmp_path: Path
) -> None:
    """The journal's records are validated as its lines are read (cloudorch/state/journal_lines.py);
    one that is not a valid record then stays as written: only the record an address ends with
    counts, so an invalid one that a later operation superseded is no reason to refuse, and the
    payloads read back are plain dicts either way."""
    path = tmp_path / "j.jsonl"
    good = make_record("prod.x", n_props=2)
    with Journal.start(path, {}) as journal:
        journal.finished({"op": "1", "address": "prod.x", "action": "create", "record": {"nope": 1}})
        journal.finished({"op": "2", "address": "prod.x", "action": "update", "record": good.model_dump(mode="json")})
        journal.finished({"op": "3", "address": "prod.y", "action": "create", "record": None})
    replay = read_journal(path)
    assert [e.op["record"] for e in replay.completed] == [{"nope": 1}, good.model_dump(mode="json"), None]
    state = make_state(0)
    report = apply_replay(state, replay)
    assert report.recovered == ["prod.x"]
    assert state.resources["prod.x"] == good
    assert "prod.y" not in state.resources

"""The undo of a failed apply (`engine.undo`), driven through `api.apply` on core resources."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from cloudorch import api
from cloudorch.changes import Change
from cloudorch.engine.applier import ApplyObserver


class Recorder(ApplyObserver):
    """Records the order in which undo operations finish."""

    def __init__(self) -> None:
        self.undoing = False
        self.undo_order: list[str] = []
        self.undo_total = 0
        self._lock = threading.Lock()

    def undo_started(self, total: int) -> None:
        self.undoing, self.undo_total = True, total

    def op_finished(self, change: Change, seconds: float) -> None:
        with self._lock:
            if self.undoing:
                self.undo_order.append(change.address)


def _opts(plan: Path, on_failure: str = "rollback", **vars: str) -> api.RunOptions:
    return api.RunOptions(plan_file=plan, vars=vars, on_failure=on_failure)


def test_undo_runs_in_reverse_dependency_order(fixture_plan: Any) -> None:
    plan = fixture_plan("rollback_chain.yaml")
    rec = Recorder()
    result = api.apply(_opts(plan), observer=rec)
    assert result is not None and list(result.failed) == ["boom"]
    assert rec.undo_total == 6
    chain = [a for a in rec.undo_order if a in "abcd"]
    assert chain == ["d", "c", "b", "a"]
    assert result.undo.complete
    assert not (plan.parent / "out" / "a.txt").exists()
    assert api.state_list(_opts(plan)) == []


def test_a_failing_undo_is_reported_and_what_it_left_stays_in_state(fixture_plan: Any) -> None:
    plan = fixture_plan("rollback_chain.yaml")
    result = api.apply(_opts(plan, sticky="true"))
    assert result is not None and not result.ok
    undo = result.undo
    assert not undo.complete
    assert "sticky" in undo.not_undone and "fail_on_delete" in undo.not_undone["sticky"]
    assert set(undo.undone) == {"a", "b", "c", "d", "token"}
    # state keeps the truth: sticky still exists
    assert [r.address for r in api.state_list(_opts(plan))] == ["sticky"]


def test_a_replace_is_undone_by_a_new_object_with_the_previous_properties(fixture_plan: Any) -> None:
    plan = fixture_plan("rollback_chain.yaml")
    first = api.apply(_opts(plan, fail="false"))
    assert first is not None and first.ok
    before = {r.address: r for r in api.state_list(_opts(plan))}
    result = api.apply(_opts(plan, rev="2"))
    assert result is not None and result.undo is not None and result.undo.complete
    after = {r.address: r for r in api.state_list(_opts(plan))}
    assert after.keys() == before.keys()
    assert after["token"].properties == before["token"].properties
    assert after["token"].id != before["token"].id  # a core.null cannot get its old id back...
    assert any(w.startswith("token: the replaced object cannot be brought back") for w in result.undo.warnings)
    for address in "abcd":  # ...a file can: same path, same content
        assert after[address].id == before[address].id
        assert after[address].properties == before[address].properties
    assert (plan.parent / "out" / "a.txt").read_text() == "a 1"


def test_stop_does_not_roll_back(fixture_plan: Any) -> None:
    plan = fixture_plan("rollback_chain.yaml")
    result = api.apply(_opts(plan, on_failure="stop"))
    assert result is not None and result.undo is None
    assert (plan.parent / "out" / "d.txt").exists()


def test_on_failure_is_validated_before_anything_runs(fixture_plan: Any) -> None:
    from cloudorch.errors import ConfigError

    plan = fixture_plan("rollback_chain.yaml")
    with pytest.raises(ConfigError, match="expected one of stop, continue, rollback"):
        api.apply(_opts(plan, on_failure="Rollback"))
    assert not (plan.parent / ".cloudorch" / "state").exists()


def test_a_sensitive_previous_value_cannot_be_restored_and_says_so(tmp_path: Path) -> None:
    from cloudorch.engine.undo import build_undo
    from cloudorch.state.journal import JournalEntry, JournalReplay
    from cloudorch.state.model import ResourceRecord, State, sensitive_marker

    before = ResourceRecord(
        address="db", type="core.null", provider="core", id="1", properties={"password": sensitive_marker("old")}
    )
    now = before.model_copy(update={"properties": {"password": sensitive_marker("new")}})
    replay = JournalReplay(
        path=tmp_path / "j.jsonl",
        header={},
        completed=[JournalEntry("finished", "", {"op": "db", "address": "db", "action": "update"})],
        inverses={
            "db": {
                "op": "inverse:db",
                "address": "db",
                "action": "update",
                "undo": "update",
                "type": "core.null",
                "provider": "core",
                "after": [],
                "previous": before.model_dump(mode="json"),
            }
        },
    )
    plan = build_undo(replay, State(resources={"db": now}))
    assert plan.changes == {}
    assert "sensitive property password is kept only as a hash" in plan.report.not_undone["db"]


def test_a_replace_that_failed_after_deleting_the_old_object_is_put_back(fixture_plan: Any) -> None:
    plan = fixture_plan("rollback_replace.yaml")
    assert api.apply(_opts(plan, on_failure="stop")) is not None
    old = plan.parent / "out" / "doc.txt"
    (plan.parent / "blocked").write_text("a file, so nothing can be created under it")
    result = api.apply(_opts(plan, where="blocked/doc.txt"))
    assert result is not None and list(result.failed) == ["doc"]
    assert result.undo.undone == {"doc": "re-created from its previous properties"}
    assert old.read_text() == "keep me"
    assert [r.properties["path"] for r in api.state_list(_opts(plan))] == ["out/doc.txt"]

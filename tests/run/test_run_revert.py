"""`cloudorch.run.revert`: the cloud goes back to an earlier state serial through the normal apply,
and state records a `rollback` event naming both serials."""

from __future__ import annotations

from typing import Any

from cloudorch import api


def test_revert_restores_an_earlier_serial(fixture_plan: Any) -> None:
    plan = fixture_plan("lifecycle.yaml")
    first = api.RunOptions(plan_file=plan, vars={"owner": "web"})
    assert api.apply(first) is not None
    note = plan.parent / "out" / "note.txt"
    assert note.read_text().startswith("owner=web ")
    assert api.apply(api.RunOptions(plan_file=plan, vars={"owner": "ops"})) is not None
    assert note.read_text().startswith("owner=ops ")
    serials = [e.serial for e in api.state_history(first)]

    result = api.revert(first, steps=1)

    assert result is not None and result.ok
    assert note.read_text().startswith("owner=web ")
    assert result.changeset.inputs["rollback"]["to_serial"] in serials
    from cloudorch.run.session import session

    with session(first, fold=False) as sess:
        last = sess.state.events[-1]
    assert last.kind == "rollback" and last.detail["to_serial"] == result.changeset.inputs["rollback"]["to_serial"]

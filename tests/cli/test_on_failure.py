"""`apply --on-failure=stop|continue|rollback` through the CLI, on core plans whose effects are files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _world(root: Path) -> dict[str, str]:
    out = root / "out"
    if not out.exists():
        return {}
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*")) if p.is_file()}


def _state(cli: Any, plan: Path) -> dict[str, tuple[str, Any, list[str]]]:
    """Address -> (id, properties, dependencies), read from the state document itself."""
    path = plan.parent / ".cloudorch" / "state" / "rb30.json"
    if not path.exists():
        return {}
    doc = json.loads(path.read_text())
    resources = doc.get("state", doc)["resources"]
    return {a: (r["id"], r["properties"], r["dependencies"]) for a, r in resources.items()}


def test_unknown_on_failure_value_is_a_config_error(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("rollback_30.yaml")
    r = cli("apply", str(plan), "--auto-approve", "--on-failure=undo")
    assert r.code == 1
    assert "--on-failure=undo" in r.err and "stop, continue, rollback" in r.err
    assert "Traceback" not in r.err
    assert not (plan.parent / "out").exists()  # refused before anything ran


def test_stop_starts_nothing_new_after_a_failure_continue_does(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("rollback_stop.yaml")
    r = cli("apply", str(plan), "--auto-approve", "--json")  # default: stop
    assert r.code == 1
    res = r.json()["result"]
    assert res["stopped_by"] == "broken"
    assert res["succeeded"] == ["slow"]  # it was already running: it finishes
    assert res["not_started"] == ["later"]
    assert "after_broken" in res["skipped"]
    cli("state", "rm", str(plan), "slow")
    text = cli("apply", str(plan), "--auto-approve")
    assert "1 operation(s) not started: --on-failure=stop starts nothing new after broken failed" in text.out

    cli("state", "rm", str(plan), "slow")
    r = cli("apply", str(plan), "--auto-approve", "--json", "--on-failure=continue")
    assert r.code == 1
    res = r.json()["result"]
    assert res["stopped_by"] is None
    assert sorted(res["succeeded"]) == ["later", "slow"]
    assert res["not_started"] == [] and "after_broken" in res["skipped"]


def test_apply_after_a_failure_is_a_repair_run(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("rollback_stop.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 1
    r = cli("apply", str(plan), "--auto-approve", "--var", "fail=false")
    assert r.code == 0, r.err
    assert "Repair run: the previous apply failed (broken)" in r.out
    assert "re-runs only the 3 operation(s) that did not finish" in r.out
    r = cli("apply", str(plan), "--auto-approve", "--var", "fail=false", "--json")
    assert r.code == 0 and r.json()["result"]["repair"] is None  # nothing to repair any more


def test_rollback_of_a_first_apply_leaves_no_trace(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("rollback_30.yaml")
    r = cli("apply", str(plan), "--auto-approve", "--var", "fail=true", "--on-failure=rollback", "--json")
    assert r.code == 1
    res = r.json()["result"]
    assert list(res["failed"]) == ["gate"]
    undo = res["rolled_back"]
    assert undo["complete"] and undo["not_undone"] == {}
    assert sorted(undo["undone"]) == sorted(res["succeeded"]) and len(undo["undone"]) >= 15
    assert _world(tmp_path) == {}
    assert _state(cli, plan) == {}
    assert not (tmp_path / ".cloudorch" / "journal" / "rb30.jsonl").exists()


def test_rollback_puts_updates_replaces_and_deletes_back(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("rollback_30.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    world, state = _world(tmp_path), _state(cli, plan)
    assert len(state) == 30 and len(world) == 28  # all but `cfg` and `gate` (core.null) are files

    r = cli(
        "apply",
        str(plan),
        "--auto-approve",
        "--on-failure=rollback",
        "--var",
        "fail=true",
        "--var",
        "rev=2",
        "--var",
        "extras=[a]",
    )
    assert r.code == 1
    assert "Apply failed and was rolled back." in r.out
    assert "gate failed: rolling back the" in r.err and "Rolling back: " in r.err  # progress says so
    assert "doc: replaced back" in r.out and "extra[b]: re-created from its previous properties" in r.out
    assert "data that was inside it cannot come back" in r.out
    assert "base: updated back to its previous properties" in r.out
    assert _world(tmp_path) == world
    assert _state(cli, plan) == state
    assert cli("plan", str(plan), "--detailed-exitcode").code == 0

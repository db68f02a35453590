"""`cloudorch rollback PLAN --to SERIAL` / `--steps N` across creates, updates and deletes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ADDED = """
  added:
    type: core.file
    properties: {path: out/added.txt, content: "added\\n"}
"""


def _history(cli: Any, fixture_plan: Any, root: Path) -> Path:
    """serial 1: keep, cfg, derived at gen 1; serial 2: gen 2, derived deleted, added created."""
    plan = fixture_plan("drift_history.yaml")
    r = cli("apply", str(plan), "--auto-approve")
    assert r.code == 0, r.out + r.err
    text = plan.read_text()
    start = text.index("  derived:")
    plan.write_text(text[:start] + ADDED.lstrip("\n"))
    r = cli("apply", str(plan), "--auto-approve", "--var", "gen=2")
    assert r.code == 0, r.out + r.err
    assert sorted(p.name for p in (root / "out").iterdir()) == ["added.txt", "keep.txt"]
    return plan


def _state(root: Path) -> dict[str, Any]:
    raw = json.loads((root / ".cloudorch" / "state" / "drift_history.json").read_text())
    doc = raw.get("state", raw)
    return json.loads(doc) if isinstance(doc, str) else doc  # type: ignore[no-any-return]


def test_rollback_to_an_earlier_serial(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _history(cli, fixture_plan, tmp_path)
    r = cli("rollback", str(plan), "--to", "1", "--auto-approve", "--var", "gen=2")
    assert r.code == 0, r.out + r.err
    assert "- added (core.file) will be destroyed  # not in serial 1" in r.out
    assert "+ derived (core.file) will be created  # rollback to serial 1" in r.out
    assert '~ content = "gen 2\\n" -> "gen 1\\n"' in r.out
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["derived.txt", "keep.txt"]
    assert (out / "keep.txt").read_text() == "gen 1\n"
    assert (out / "derived.txt").read_text() == "cfg=1\n"
    state = _state(tmp_path)
    assert state["serial"] == 3  # history only grows
    assert sorted(state["resources"]) == ["cfg", "derived", "keep"]
    assert state["resources"]["cfg"]["properties"]["values"] == {"gen": "1"}
    [event] = [e for e in state["events"] if e["kind"] == "rollback"]
    assert (event["detail"]["from_serial"], event["detail"]["to_serial"]) == (2, 1)
    assert event["detail"]["counts"] == {"create": 1, "update": 2, "delete": 1}
    history = cli("state", "history", str(plan), "--json")
    assert history.code == 0


def test_rollback_steps_and_nothing_to_do(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _history(cli, fixture_plan, tmp_path)
    assert cli("rollback", str(plan), "--steps", "1", "--auto-approve").code == 0  # back to serial 1
    r = cli("rollback", str(plan), "--steps", "1", "--auto-approve", "--json")  # back to serial 2
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["applied"] is True and doc["result"]["state_serial"] == 4
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["added.txt", "keep.txt"]
    assert (tmp_path / "out" / "keep.txt").read_text() == "gen 2\n"
    # serial 2 and serial 4 hold the same resources: rolling back to 2 again changes nothing
    again = cli("rollback", str(plan), "--to", "2", "--json")
    assert again.code == 0 and again.json()["applied"] is False
    assert _state(tmp_path)["serial"] == 4


def test_rollback_asks_and_checks_its_arguments(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _history(cli, fixture_plan, tmp_path)
    r = cli("rollback", str(plan), "--to", "1")
    assert r.code == 1 and "needs confirmation" in r.err
    assert (tmp_path / "out" / "added.txt").exists() and _state(tmp_path)["serial"] == 2
    r = cli("rollback", str(plan), "--to", "7")
    assert r.code == 1 and "--to 7: no such earlier version" in r.err and "earlier serials kept: 1" in r.err
    r = cli("rollback", str(plan), "--to", "2")
    assert r.code == 1 and "is the current serial" in r.err
    r = cli("rollback", str(plan), "--to", "1", "--steps", "1")
    assert r.code == 1 and "exactly one of --to SERIAL or --steps N" in r.err
    r = cli("rollback", str(plan), "--steps", "5")
    assert r.code == 1 and "history holds 1 earlier version(s)" in r.err


def test_rollback_is_judged_by_policies(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _history(cli, fixture_plan, tmp_path)
    plan.write_text(
        plan.read_text().replace(
            "resources:",
            "policies:\n  - {id: gen-two-only, rule: naming, level: hard, property: content,"
            ' pattern: "(?s)gen 2.*|added.*", match: {type: core.file}}\nresources:',
        )
    )
    r = cli("rollback", str(plan), "--to", "1", "--auto-approve")
    assert r.code == 3, r.out + r.err
    assert "gen-two-only" in r.out + r.err
    assert (tmp_path / "out" / "keep.txt").read_text() == "gen 2\n" and _state(tmp_path)["serial"] == 2

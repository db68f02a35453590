"""`cloudorch drift` on core.file through the CLI: three-way reports, exit codes, reconcile, policies."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _applied(cli: Any, fixture_plan: Any) -> Path:
    plan = fixture_plan("drift_files.yaml")
    r = cli("apply", str(plan), "--auto-approve")
    assert r.code == 0, r.out + r.err
    return plan


def _tamper(root: Path) -> None:
    """Edit one file, chmod it, delete another, and edit one whose content drift is ignored."""
    notes = root / "out" / "notes.txt"
    notes.write_text("edited by hand\n")
    os.chmod(notes, 0o600)
    (root / "out" / "index.txt").unlink()
    (root / "out" / "scratch.txt").write_text("scribbles\n")


def test_no_drift_exits_0(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = _applied(cli, fixture_plan)
    r = cli("drift", str(plan))
    assert r.code == 0, r.out + r.err
    assert "No drift. 3 resource(s) match" in r.out
    doc = cli("drift", str(plan), "--json").json()
    assert doc["drift"] is False and doc["resources"] == [] and doc["counts"]["checked"] == 3


def test_three_way_report_for_edit_chmod_and_delete(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _applied(cli, fixture_plan)
    _tamper(tmp_path)
    r = cli("drift", str(plan), "--json")
    assert r.code == 2, r.err
    doc = r.json()
    notes_id = str((tmp_path / "out" / "notes.txt").resolve())
    index_id = str((tmp_path / "out" / "index.txt").resolve())
    assert doc["counts"] == {"deleted": 1, "changed": 1, "created_outside": 0, "checked": 3}
    assert doc["resources"] == [
        {
            "address": "index",
            "type": "core.file",
            "provider": "core",
            "status": "deleted",
            "id": index_id,
            "cloud_id": None,
            "in_plan": True,
            "properties": [
                {"path": "content", "plan": "notes=out/notes.txt\n", "state": "notes=out/notes.txt\n", "cloud": None},
                {"path": "mode", "plan": None, "state": None, "cloud": None},
                {"path": "path", "plan": "out/index.txt", "state": "out/index.txt", "cloud": None},
            ],
        },
        {
            "address": "notes",
            "type": "core.file",
            "provider": "core",
            "status": "changed",
            "id": notes_id,
            "cloud_id": notes_id,
            "in_plan": True,
            "properties": [
                {"path": "content", "plan": "hello\n", "state": "hello\n", "cloud": "edited by hand\n"},
                {"path": "mode", "plan": "0644", "state": "0644", "cloud": "0600"},
            ],
        },
    ]
    # scratch's content changed too, but lifecycle.ignore_changes says that drift is wanted
    assert doc["ignored"] == {"scratch": ["content"]}
    assert doc["calls"]["refresh"] == 3  # core.file has no read_many: one read per file
    text = cli("drift", str(plan))
    assert text.code == 2
    assert 'content: plan "hello\\n" | state "hello\\n" | cloud "edited by hand\\n"' in text.out
    assert "- index (core.file) deleted outside cloudorch" in text.out
    assert "scratch: drift of content ignored (lifecycle.ignore_changes)" in text.out


def test_markdown_is_stable_and_collapsible(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _applied(cli, fixture_plan)
    _tamper(tmp_path)
    first = cli("drift", str(plan), "--markdown")
    second = cli("drift", str(plan), "--format", "markdown")  # the same switch plan has
    assert first.code == second.code == 2
    assert first.out == second.out
    assert first.out.startswith("### cloudorch drift: `drift_files`")
    assert first.out.count("<details>") == 2 and first.out.count("</details>") == 2
    assert '| `mode` | <code>"0644"</code> | <code>"0644"</code> | <code>"0600"</code> |' in first.out
    assert first.out.index("<code>index</code>") < first.out.index("<code>notes</code>")  # sorted by address


def test_reconcile_brings_files_back(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _applied(cli, fixture_plan)
    _tamper(tmp_path)
    refused = cli("drift", str(plan), "--reconcile")  # no terminal to ask on, no --auto-approve
    assert refused.code == 1 and "needs confirmation" in refused.err
    assert not (tmp_path / "out" / "index.txt").exists()
    r = cli("drift", str(plan), "--reconcile", "--auto-approve", "--json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["drift"] is True and doc["reconcile"]["applied"] is True
    assert doc["reconcile"]["result"]["ok"] is True
    notes = tmp_path / "out" / "notes.txt"
    assert notes.read_text() == "hello\n" and oct(notes.stat().st_mode & 0o777) == "0o644"
    assert (tmp_path / "out" / "index.txt").read_text() == "notes=out/notes.txt\n"
    assert (tmp_path / "out" / "scratch.txt").read_text() == "scribbles\n"  # ignored: left as it is
    after = cli("drift", str(plan), "--json")
    assert after.code == 0 and after.json()["resources"] == []


def test_policies_judge_the_live_state(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _applied(cli, fixture_plan)
    notes = tmp_path / "out" / "notes.txt"
    notes.write_text("x" * 50)  # breaks the advisory rule only
    r = cli("drift", str(plan), "--json")
    assert r.code == 2, r.err  # advisory: reported, drift decides the exit code
    assert [(v["policy_id"], v["address"], v["blocking"]) for v in r.json()["policy_results"]] == [
        ("short-content", "notes", False)
    ]
    os.chmod(notes, 0o777)  # breaks a hard rule on the live state
    r = cli("drift", str(plan), "--json")
    assert r.code == 3, r.err
    doc = r.json()
    assert doc["policy_blocking"] == 1
    assert {(v["policy_id"], v["blocking"]) for v in doc["policy_results"]} == {
        ("no-world-writable", True),
        ("short-content", False),
    }
    text = cli("drift", str(plan))
    assert text.code == 3 and "no-world-writable" in text.out


def test_target_reads_only_what_it_needs(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _applied(cli, fixture_plan)
    _tamper(tmp_path)
    r = cli("drift", str(plan), "--target", "scratch", "--json")
    assert r.code == 0, r.err  # scratch's only drift is ignored; the others were not read
    doc = r.json()
    assert doc["counts"]["checked"] == 1 and doc["calls"]["refresh"] == 1
    r = cli("drift", str(plan), "--target", "index", "--json")
    assert r.code == 2
    # index depends on notes (a reference), so notes is read too, as plan --target would
    assert [x["address"] for x in r.json()["resources"]] == ["index", "notes"]


def test_object_created_outside_is_reported(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("drift_files.yaml")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("made by someone else\n")
    r = cli("drift", str(plan), "--json")
    assert r.code == 2, r.err
    doc = r.json()
    [found] = doc["resources"]
    assert (found["address"], found["status"], found["id"]) == ("notes", "created_outside", None)
    assert {"path": "content", "plan": "hello\n", "state": None, "cloud": "made by someone else\n"} in found[
        "properties"
    ]
    assert doc["not_created"] == ["index", "scratch"]
    assert doc["calls"]["find"] == 3


def test_a_mandatory_policy_on_live_state_can_be_overridden(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _applied(cli, fixture_plan)
    plan.write_text(plan.read_text().replace("level: hard", "level: mandatory"))
    os.chmod(tmp_path / "out" / "notes.txt", 0o777)
    r = cli("drift", str(plan), "--markdown")
    assert r.code == 3
    assert "<summary>Policies on live state: 1 violation(s), 1 blocking</summary>" in r.out
    r = cli("drift", str(plan), "--json", "--override", "no-world-writable", "--reason", "INC-7: being fixed")
    assert r.code == 2, r.err  # waived: the drift itself still counts
    [result] = r.json()["policy_results"]
    assert result["blocking"] is False and result["overridden"]["reason"] == "INC-7: being fixed"

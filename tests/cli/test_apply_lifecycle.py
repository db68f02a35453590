"""plan / apply / no-op / update / replace / destroy on core types, through the CLI."""

from __future__ import annotations

from pathlib import Path

import yaml


def _edit(plan: Path, fn) -> None:  # type: ignore[no-untyped-def]
    doc = yaml.safe_load(plan.read_text())
    fn(doc)
    plan.write_text(yaml.safe_dump(doc))


def test_full_lifecycle(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("lifecycle.yaml")

    r = cli("plan", str(plan), "--detailed-exitcode")
    assert r.code == 2, r.err
    assert "Plan: 5 to create, 0 to update, 0 to replace, 0 to destroy." in r.out
    assert "(known after apply)" in r.out

    r = cli("apply", str(plan), "--auto-approve", "--json")
    assert r.code == 0, r.out + r.err
    doc = r.json()
    assert doc["result"]["ok"] and len(doc["result"]["succeeded"]) == 5
    note = plan.parent / "out" / "note.txt"
    config_id = (
        doc["result"]["state_serial"] and cli("state", "show", str(plan), "config", "--json").json()["id"]
    )
    assert note.read_text() == f"owner=web id={config_id}\n"
    assert doc["outputs"]["owner"] == "web"

    # applying again changes nothing
    r = cli("plan", str(plan), "--detailed-exitcode", "--json")
    assert r.code == 0, r.out
    assert r.json()["summary"]["has_changes"] is False

    # an in-place update: a var feeding `values` and, through a reference, the file's content
    r = cli("apply", str(plan), "--auto-approve", "--var", "owner=data", "--json")
    assert r.code == 0, r.out + r.err
    actions = {c["address"]: c["action"] for c in r.json()["changeset"]["changes"]}
    assert actions["config"] == "update"
    assert actions["note"] == "update"
    assert note.read_text().startswith("owner=data ")
    assert cli("state", "show", str(plan), "config", "--json").json()["id"] == config_id

    # a force-new change (triggers) replaces, and the new id flows into the file
    r = cli("apply", str(plan), "--auto-approve", "--var", "owner=data", "--var", "generation=2", "--json")
    assert r.code == 0, r.out + r.err
    actions = {c["address"]: c["action"] for c in r.json()["changeset"]["changes"]}
    assert actions["config"] == "replace"
    new_id = cli("state", "show", str(plan), "config", "--json").json()["id"]
    assert new_id != config_id
    assert note.read_text() == f"owner=data id={new_id}\n"

    # removing a for_each key deletes only that instance
    r = cli(
        "apply",
        str(plan),
        "--auto-approve",
        "--var",
        "owner=data",
        "--var",
        "generation=2",
        "--var",
        "regions=[eu]",
        "--json",
    )
    assert r.code == 0, r.out + r.err
    changed = {c["address"]: c["action"] for c in r.json()["changeset"]["changes"] if c["action"] != "no-op"}
    assert changed == {"per_region[us]": "delete"}

    r = cli("destroy", str(plan), "--auto-approve", "--var", "regions=[eu]", "--json")
    assert r.code == 0, r.out + r.err
    assert not note.exists()
    assert cli("state", "list", str(plan), "--json").json() == {"resources": []}


def test_drift_on_core_file(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("lifecycle.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    note = plan.parent / "out" / "note.txt"
    note.write_text("edited by hand\n")

    r = cli("plan", str(plan), "--detailed-exitcode")
    assert r.code == 2
    assert "Changed outside cloudorch" in r.out
    assert '"edited by hand\\n" ->' in r.out

    # deleted outside: planned as a re-create
    note.unlink()
    r = cli("plan", str(plan), "--json")
    change = next(c for c in r.json()["changes"] if c["address"] == "note")
    assert change["action"] == "create" and "deleted outside cloudorch" in change["reasons"]

    assert cli("apply", str(plan), "--auto-approve").code == 0
    assert note.read_text().startswith("owner=web")


def test_saved_plan_is_refused_after_state_moved(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("lifecycle.yaml")
    saved = tmp_path / "changes.plan"
    assert cli("plan", str(plan), "-o", str(saved)).code == 0
    # someone else applies first
    assert cli("apply", str(plan), "--auto-approve").code == 0
    r = cli("apply", str(saved))
    assert r.code == 1
    assert "stale" in r.err and "serial 0" in r.err
    assert "cloudorch plan -o FILE" in r.err


def test_saved_plan_applies_exactly(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("lifecycle.yaml")
    saved = tmp_path / "changes.plan"
    assert cli("plan", str(plan), "-o", str(saved), "--var", "owner=ops").code == 0
    r = cli("apply", str(saved), "--json")
    assert r.code == 0, r.out + r.err
    assert r.json()["outputs"]["owner"] == "ops"
    # the plan file changed after saving: refused
    assert cli("plan", str(plan), "-o", str(saved)).code == 0
    _edit(plan, lambda d: d["resources"]["config"]["properties"]["values"].update(extra="1"))
    r = cli("apply", str(saved))
    assert r.code == 1 and "changed since the plan was saved" in r.err


def test_failure_skips_dependents_and_keeps_the_rest(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("failing.yaml")
    r = cli("apply", str(plan), "--auto-approve", "--json")
    assert r.code == 1
    res = r.json()["result"]
    assert res["succeeded"] == ["fine"]
    assert "broken" in res["failed"] and "fail_on_create" in res["failed"]["broken"]
    assert "after_broken" in res["skipped"]
    assert [x["address"] for x in cli("state", "list", str(plan), "--json").json()["resources"]] == ["fine"]
    # text mode says how to continue
    r = cli("apply", str(plan), "--auto-approve")
    assert r.code == 1
    assert "broken" in r.out and "run `cloudorch apply` again" in r.out


def test_prevent_destroy_blocks_destroy(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("protected.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    r = cli("destroy", str(plan), "--auto-approve")
    assert r.code == 1
    assert "prevent_destroy" in r.err and "protected.yaml:" in r.err
    assert len(cli("state", "list", str(plan), "--json").json()["resources"]) == 1


def test_target_and_exclude(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("lifecycle.yaml")
    r = cli("plan", str(plan), "--target", "note", "--json")
    assert sorted(c["address"] for c in r.json()["changes"]) == ["config", "note"]
    r = cli("plan", str(plan), "--exclude", "note", "--json")
    assert sorted(c["address"] for c in r.json()["changes"]) == ["config"]


def test_apply_without_terminal_refuses_rather_than_hangs(cli, fixture_plan, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import io

    plan = fixture_plan("lifecycle.yaml")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    r = cli("apply", str(plan))
    assert r.code == 1
    assert "--auto-approve" in r.err
    assert cli("state", "list", str(plan), "--json").json() == {"resources": []}


def test_state_mv_rm_and_history(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("lifecycle.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    assert cli("state", "mv", str(plan), "pause", "pause2").code == 0
    addrs = [x["address"] for x in cli("state", "list", str(plan), "--json").json()["resources"]]
    assert "pause2" in addrs and "pause" not in addrs
    assert cli("state", "rm", str(plan), "pause2").code == 0
    r = cli("state", "show", str(plan), "pause2")
    assert r.code == 1 and "not in state" in r.err
    hist = cli("state", "history", str(plan), "--json").json()["history"]
    assert len(hist) >= 3 and hist[0]["serial"] > hist[-1]["serial"]


def test_import_adopts_an_existing_file(cli, fixture_plan) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("lifecycle.yaml")
    note = plan.parent / "out" / "note.txt"
    note.parent.mkdir()
    note.write_text("made by hand\n")
    r = cli("state", "import", str(plan), "note", str(note), "--json")
    assert r.code == 0, r.err
    r = cli("plan", str(plan), "--json")
    change = next(c for c in r.json()["changes"] if c["address"] == "note")
    assert change["action"] == "update"

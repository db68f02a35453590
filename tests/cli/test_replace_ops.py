"""A replace as a create and a delete (issue 16): deposed old objects, kills between the two,
undo that re-resolves references, and a state store that cannot be written. Core plans only."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cloudorch.state import LocalBackend, State
from cloudorch.state.model import ResourceRecord


def _doc(root: Path, key: str) -> dict[str, Any]:
    raw = json.loads((root / ".cloudorch" / "state" / f"{key}.json").read_text())
    return raw["state"]  # type: ignore[no-any-return]


def test_a_failed_old_delete_keeps_both_objects_and_the_next_apply_deletes_the_old(  # type: ignore[no-untyped-def]
    cli, fixture_plan, tmp_path
) -> None:
    plan = fixture_plan("replace_cbd.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    old = tmp_path / "out" / "v1.txt"
    old_id = str(old.resolve())
    # the old file cannot be deleted while a directory stands in its place
    old.unlink()
    old.mkdir()
    (old / "keep").write_text("x")

    r = cli("apply", str(plan), "--auto-approve", "--json", "--refresh=false", "--var", "where=out/v2.txt")
    assert r.code == 1
    res = r.json()["result"]
    assert list(res["failed"]) == ["doc"] and "deposed" in res["failed"]["doc"]
    assert res["succeeded"] == ["user"]  # updated to the new object before the old delete was tried
    new_id = str((tmp_path / "out" / "v2.txt").resolve())
    assert (tmp_path / "out" / "user.txt").read_text() == f"uses {new_id}\n"
    state = _doc(tmp_path, "cbd")
    assert state["resources"]["doc"]["id"] == new_id  # the new object is never lost
    assert [d["id"] for d in state["deposed"]["doc"]] == [old_id]
    listed = cli("state", "list", str(plan), "--json").json()
    assert [(d["address"], d["id"]) for d in listed["deposed"]] == [("doc", old_id)]
    assert "(deposed " in cli("state", "list", str(plan)).out

    text = cli("plan", str(plan), "--var", "where=out/v2.txt").out
    assert "delete (deposed " in text and "Plan: 0 to create, 0 to update, 0 to replace, 1 to destroy." in text

    shutil.rmtree(old)
    r = cli("apply", str(plan), "--auto-approve", "--json", "--var", "where=out/v2.txt")
    assert r.code == 0, r.out
    assert _doc(tmp_path, "cbd")["deposed"] == {}
    assert cli("plan", str(plan), "--detailed-exitcode", "--var", "where=out/v2.txt").code == 0


def test_default_replace_deletes_the_old_object_before_making_the_new_one(  # type: ignore[no-untyped-def]
    cli, fixture_plan, tmp_path
) -> None:
    plan = fixture_plan("replace_cbd.yaml")
    plan.write_text(plan.read_text().replace("    lifecycle: {create_before_destroy: true}\n", ""))
    assert cli("apply", str(plan), "--auto-approve").code == 0
    old = tmp_path / "out" / "v1.txt"
    old.unlink()
    old.mkdir()
    (old / "keep").write_text("x")
    r = cli("apply", str(plan), "--auto-approve", "--json", "--refresh=false", "--var", "where=out/v2.txt")
    assert r.code == 1
    res = r.json()["result"]
    assert list(res["failed"]) == ["doc"] and "user" in res["skipped"]
    assert not (tmp_path / "out" / "v2.txt").exists()  # destroy first: nothing new was made
    assert _doc(tmp_path, "cbd")["deposed"] == {}


def _cloudorch(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cloudorch", *args],
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _journal(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip().endswith("}")]


def test_a_kill_between_create_and_delete_then_recover_adopts_the_new_object(  # type: ignore[no-untyped-def]
    cli, fixture_plan, tmp_path
) -> None:
    plan = fixture_plan("replace_kill.yaml")
    # the old object's delete sleeps (core.wait sleeps its own `seconds`): the hold the kill needs
    backend = LocalBackend(tmp_path / ".cloudorch", "killcbd")
    old = ResourceRecord(
        address="w", type="core.wait", provider="core", id="old-wait", properties={"seconds": 600},
        attributes={"id": "old-wait"},
    )
    backend.write(State(plan_name="killcbd", serial=1, resources={"w": old}), expected_serial=None)

    journal = tmp_path / ".cloudorch" / "journal" / "killcbd.jsonl"
    proc = _cloudorch("apply", str(plan), "--auto-approve", "--replace", "w", cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not any(x["event"] == "started" and x["op"]["op"] == "w#destroy" for x in _journal(journal)):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    made = next(x["op"]["record"]["id"] for x in _journal(journal) if x["event"] == "finished")
    assert made != "old-wait"

    r = cli("recover", str(plan), "--json")
    assert r.code == 0, r.err
    state = _doc(tmp_path, "killcbd")
    assert state["resources"]["w"]["id"] == made  # the new object, not the old one
    assert [d["id"] for d in state["deposed"]["w"]] == ["old-wait"]
    changes = cli("plan", str(plan), "--json").json()["changes"]
    todo = [(c["address"], c["action"], c["id"], c["deposed"] is not None) for c in changes if c["action"] != "no-op"]
    assert todo == [("w", "delete", "old-wait", True)]


def test_undo_after_a_replace_re_resolves_references(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("replace_refs.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    before = _doc(tmp_path, "refs")["resources"]
    failing = ("--auto-approve", "--on-failure=rollback", "--var", "fail=true")
    r = cli("apply", str(plan), *failing, "--json", "--var", "gen=2")
    assert r.code == 1
    undo = r.json()["result"]["rolled_back"]
    after = _doc(tmp_path, "refs")["resources"]
    b_id = after["b"]["id"]
    assert b_id != before["b"]["id"]  # a replaced object cannot come back: b is a new one
    assert after["a"]["properties"]["values"]["ref"] == b_id  # never the deleted one
    assert after["a"]["attributes"]["ref"] == b_id
    assert undo["as_before"] is False
    assert set(undo["differences"]) == {"a", "b"}
    text = cli("apply", str(plan), *failing, "--var", "gen=3").out
    assert "not as before" in text and "State and the cloud are as they were before" not in text


def test_rollback_to_a_serial_re_resolves_references(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("replace_refs.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    assert cli("apply", str(plan), "--auto-approve", "--var", "gen=2").code == 0
    replaced = _doc(tmp_path, "refs")["resources"]["b"]["id"]
    r = cli("rollback", str(plan), "--to", "1", "--auto-approve", "--var", "gen=2")
    assert r.code == 0, r.out + r.err
    state = _doc(tmp_path, "refs")["resources"]
    assert state["b"]["properties"]["triggers"] == {"gen": "1"}
    assert state["b"]["id"] != replaced
    assert state["a"]["properties"]["values"]["ref"] == state["b"]["id"]


def test_a_state_store_that_cannot_be_written_never_fails_what_succeeded(  # type: ignore[no-untyped-def]
    cli, fixture_plan, tmp_path
) -> None:
    plan = fixture_plan("replace_refs.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    # a directory where the current version is to be archived: every state write fails, even
    # as root, while reading state and taking the lock still work
    history = tmp_path / ".cloudorch" / "history" / "refs" / "1.json"
    history.mkdir(parents=True)
    (history / "in-the-way").write_text("x")
    r = cli("apply", str(plan), "--auto-approve", "--json", "--on-failure=rollback", "--var", "gen=2")
    assert r.code != 0
    err = r.json()
    assert err["error"] == "StateError" and "could not write state to" in err["message"], err
    assert ".cloudorch" in err["message"] and "3 operation(s) succeeded" in err["message"]
    journal = _journal(tmp_path / ".cloudorch" / "journal" / "refs.jsonl")
    assert not [x for x in journal if x["event"] in ("failed", "rollback")]  # nothing reported failed, nothing undone
    assert {x["op"]["address"] for x in journal if x["event"] == "finished"} >= {"a", "b"}

    shutil.rmtree(history)
    r = cli("recover", str(plan), "--json")
    assert r.code == 0, r.err
    state = _doc(tmp_path, "refs")["resources"]
    assert state["b"]["properties"]["triggers"] == {"gen": "2"}
    assert state["a"]["properties"]["values"]["ref"] == state["b"]["id"]
    assert cli("plan", str(plan), "--detailed-exitcode", "--var", "gen=2").code == 0

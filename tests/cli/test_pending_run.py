"""A killed apply's journal is folded only by commands that change the world.

`plan`, `state list` and the other reads say that it waits and write nothing; `state mv` refuses;
the next `apply` folds it and creates nothing twice. The apply is stopped at an exact point by
the journal's hold seam (`CLOUDORCH_TEST_JOURNAL_HOLD`, cloudorch/state/journal.py), then killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloudorch.state.journal import HOLD_ENV


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudorch", *args],
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the apply ended ({proc.returncode}) before reaching the hold: {proc.stderr!r}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)


def kill_at_hold(plan: Path, cwd: Path, after: int, *args: str) -> None:
    """Run `apply PLAN ARGS`, let `after` operations finish, and SIGKILL it at the next one."""
    marker, release = cwd / "held", cwd / "never-released"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloudorch", "apply", str(plan), "--auto-approve", *args],
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", HOLD_ENV: f"{after}:{marker}:{release}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        _wait_for(marker, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    marker.unlink()


def snapshot(root: Path) -> dict[str, bytes]:
    """Every state and journal file under `.cloudorch/` (locks aside: a dead holder's is taken over)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not {"locks", "runs"} & set(p.relative_to(root).parts)  # runs: the run history
    }


def finished_in(journal: Path) -> list[str]:
    lines = [json.loads(x) for x in journal.read_text().splitlines() if x.strip()]
    return [x["op"]["address"] for x in lines if x.get("event") == "finished"]


@pytest.mark.slow
def test_reads_leave_a_waiting_journal_alone_and_apply_folds_it(fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("fold_files.yaml")
    # state exists before the killed apply, so "unchanged" is about bytes, not absence
    first = _run("apply", str(plan), "--auto-approve", "--target", "f00", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    kill_at_hold(plan, tmp_path, 4, "--parallelism", "2")
    root = tmp_path / ".cloudorch"
    journal = root / "journal" / "foldfiles.jsonl"
    done = finished_in(journal)
    assert len(done) == 4
    before = snapshot(root)
    assert any(k.startswith("state") for k in before) and journal.exists()

    r = _run("plan", str(plan), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "unfinished run waits" in r.stderr and f"cloudorch recover {plan}" in r.stderr
    doc = json.loads(r.stdout)
    assert doc["pending_run"]["operations_done"] == 4
    assert doc["pending_run"]["recover"] == f"cloudorch recover {plan}"
    # planned against state as stored: what the journal says finished is still to create
    creates = {c["address"] for c in doc["changes"] if c["action"] == "create"}
    assert set(done) <= creates
    assert snapshot(root) == before  # nothing written, the journal still there

    r = _run("plan", str(plan), cwd=tmp_path)
    assert r.returncode == 0 and "unfinished run waits" in r.stderr
    r = _run("drift", str(plan), "--json", cwd=tmp_path)
    assert "unfinished run waits" in r.stderr, r.stderr

    r = _run("state", "list", str(plan), cwd=tmp_path)
    assert r.returncode == 0 and "unfinished run waits" in r.stderr
    assert r.stdout.split()[0] == "f00"
    r = _run("state", "list", str(plan), "--json", cwd=tmp_path)
    assert json.loads(r.stdout)["pending_run"]["journal"] == str(journal)
    r = _run("output", str(plan), cwd=tmp_path)
    assert r.returncode == 0 and "unfinished run waits" in r.stderr
    r = _run("state", "history", str(plan), cwd=tmp_path)
    assert r.returncode == 0 and "unfinished run waits" in r.stderr
    r = _run("state", "show", str(plan), "f00", cwd=tmp_path)
    assert r.returncode == 0 and "unfinished run waits" in r.stderr
    r = _run("policy", "check", str(plan), cwd=tmp_path)  # it declares no policies: says so after
    assert "unfinished run waits" in r.stderr, r.stderr
    assert snapshot(root) == before

    for surgery in (("mv", "f00", "g00"), ("rm", "f00"), ("import", "f15", "out/f15.txt")):
        r = _run("state", surgery[0], str(plan), *surgery[1:], cwd=tmp_path)
        assert r.returncode == 1, r.stderr
        assert "unfinished run waits" in r.stderr and "cloudorch recover" in r.stderr
    assert snapshot(root) == before

    r = _run("apply", str(plan), "--auto-approve", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "recovered 4 finished operation(s)" in r.stderr
    applied = json.loads(r.stdout)["result"]["succeeded"]
    assert set(applied).isdisjoint(done)  # nothing the killed apply finished is created twice
    assert not journal.exists()
    listed = json.loads(_run("state", "list", str(plan), "--json", cwd=tmp_path).stdout)
    assert "pending_run" not in listed
    assert sorted(r["address"] for r in listed["resources"]) == [f"f{i:02d}" for i in range(16)]
    # the in-flight ones held at the seam were adopted, not created again
    assert len(applied) == len(set(applied)) <= 16 - 1 - len(done)
    r = _run("plan", str(plan), "--json", cwd=tmp_path)
    assert json.loads(r.stdout)["summary"]["has_changes"] is False and "waits" not in r.stderr

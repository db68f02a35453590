"""An undo killed at any point is finished by `recover`, however many times it is killed.

tests/fixtures/crash_rollback.yaml creates a chain of twelve waits and files, then fails
(`boom`): `--on-failure=rollback` undoes the twelve, one at a time. The undo is stopped at a
seeded number of undone operations by the journal hold seam (cloudorch/state/journal.py) and
killed; so is the undo `recover` goes on with, twice; then a plain `recover` finishes it.
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

FORWARD = 12  # finished forward operations before `boom` fails


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudorch", *args],
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def kill_at(cwd: Path, after: int, *args: str) -> None:
    """Run `cloudorch ARGS`; once `after` operations are finished, SIGKILL it at the next one."""
    marker, release = cwd / "held", cwd / "never-released"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloudorch", *args],
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", HOLD_ENV: f"{after}:{marker}:{release}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 90
    try:
        while not marker.exists():
            if proc.poll() is not None:
                why = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"{args[0]} ended ({proc.returncode}) before the seeded kill: {why}")
            assert time.monotonic() < deadline, "never reached the hold"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    marker.unlink()


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not {"locks", "runs"} & set(p.relative_to(root).parts)  # runs: the run history
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("in_apply", "in_recover", "in_recover_again"), [(0, 0, 2), (2, 2, 1), (4, 1, 1), (5, 0, 1), (7, 1, 0)]
)
def test_an_undo_killed_three_times_is_finished_by_recover(  # type: ignore[no-untyped-def]
    fixture_plan, tmp_path, in_apply: int, in_recover: int, in_recover_again: int
) -> None:
    plan = fixture_plan("crash_rollback.yaml")
    root = tmp_path / ".cloudorch"
    journal = root / "journal" / "crashundo.jsonl"
    kill_at(tmp_path, FORWARD + in_apply, "apply", str(plan), "--auto-approve", "--on-failure=rollback")
    assert any(json.loads(x).get("event") == "rollback" for x in journal.read_text().splitlines() if x.strip())

    # reads leave the cut-short undo alone; an apply refuses to fold it (that would drop the undo)
    before = snapshot(root)
    r = _run("plan", str(plan), cwd=tmp_path)
    assert r.returncode == 0 and "unfinished undo waits" in r.stderr, r.stderr
    r = _run("apply", str(plan), "--auto-approve", cwd=tmp_path)
    assert r.returncode == 1 and "undo of a failed apply was cut short" in r.stderr, r.stderr
    assert snapshot(root) == before

    kill_at(tmp_path, in_recover, "recover", str(plan))
    kill_at(tmp_path, in_recover_again, "recover", str(plan))
    assert journal.exists()

    r = _run("recover", str(plan), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["recovered"] and doc["rolled_back"] is not None
    assert doc["rolled_back"]["as_before"], doc["rolled_back"]
    # the world is as before the failed apply: nothing left that the undo should have removed
    assert sorted(p.name for p in (tmp_path / "out").glob("*")) == []
    listed = json.loads(_run("state", "list", str(plan), "--json", cwd=tmp_path).stdout)
    assert listed["resources"] == [] and "pending_run" not in listed
    assert not journal.exists()

    r = _run("recover", str(plan), cwd=tmp_path)
    assert r.returncode == 0 and "Nothing to recover" in r.stdout, r.stdout

"""Real processes: lock contention, SIGKILL in the middle of an apply, corrupted state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _cloudorch(*args: str, cwd: Path, barrier: Path | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    if barrier is not None:
        env["CLOUDORCH_TEST_BARRIER"] = str(barrier)
    return subprocess.Popen(
        [sys.executable, "-m", "cloudorch", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)


@pytest.mark.slow
def test_second_apply_waits_then_fails_with_exit_4(fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("lock_hold.yaml")
    # the first apply stops at the test barrier right after taking the lock (cloudorch/state/lock.py)
    # and stays there until released, so the second one meets the lock however slow the machine is
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    first = _cloudorch("apply", str(plan), "--auto-approve", cwd=tmp_path, barrier=barrier)
    _wait_for(barrier / f"{first.pid}.arrived", timeout=60)
    second = subprocess.run(
        [sys.executable, "-m", "cloudorch", "apply", str(plan), "--auto-approve", "--lock-timeout", "0.3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert second.returncode == 4, second.stderr
    assert f"pid {first.pid}" in second.stderr
    assert "force-unlock" in second.stderr
    assert first.poll() is None  # still held at the barrier: the refusal was not luck
    (barrier / "release").touch()
    # with a long enough timeout the next one waits for the first and then has nothing to do
    third = subprocess.run(
        [sys.executable, "-m", "cloudorch", "plan", str(plan), "--lock-timeout", "30", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert first.wait(timeout=30) == 0, first.stderr
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["summary"]["has_changes"] is False


@pytest.mark.slow
def test_sigkill_mid_apply_loses_nothing_and_duplicates_nothing(fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("slow_waits.yaml")
    journal = tmp_path / ".cloudorch" / "journal" / "slow.jsonl"
    proc = _cloudorch("apply", str(plan), "--auto-approve", cwd=tmp_path)
    # kill it once some, but not all, operations have finished
    deadline = time.monotonic() + 20
    finished: list[str] = []
    while time.monotonic() < deadline:
        if journal.exists():
            lines = [json.loads(x) for x in journal.read_text().splitlines() if x.strip().endswith("}")]
            finished = [x["op"]["address"] for x in lines if x.get("event") == "finished"]
            if len(finished) >= 12:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    lines = [json.loads(x) for x in journal.read_text().splitlines() if x.strip().endswith("}")]
    finished = [x["op"]["address"] for x in lines if x.get("event") == "finished"]
    assert 12 <= len(finished) < 30

    # a plan only reads: it says the journal waits and plans against state as stored
    r = subprocess.run(
        [sys.executable, "-m", "cloudorch", "plan", str(plan), "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "took over a stale state lock" in r.stderr
    assert "unfinished run waits" in r.stderr
    assert journal.exists()

    # the apply folds the journal, and applies only the rest
    r = subprocess.run(
        [sys.executable, "-m", "cloudorch", "apply", str(plan), "--auto-approve", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert f"recovered {len(finished)} finished operation(s)" in r.stderr
    applied = json.loads(r.stdout)["result"]["succeeded"]
    assert set(applied).isdisjoint(finished)  # no duplicate create
    assert len(applied) == len(set(applied)) <= 30 - len(finished)
    assert not journal.exists()
    state = json.loads(
        subprocess.run(
            [sys.executable, "-m", "cloudorch", "state", "list", str(plan), "--json"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert len(state["resources"]) == 30


def test_corrupted_state_is_detected_not_used(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("lifecycle.yaml")
    assert cli("apply", str(plan), "--auto-approve").code == 0
    state_file = tmp_path / ".cloudorch" / "state" / "lifecycle.json"
    data = bytearray(state_file.read_bytes())
    i = data.index(b'"owner"')
    data[i + 2] ^= 0x01  # one flipped bit inside the document
    state_file.write_bytes(bytes(data))
    r = cli("plan", str(plan))
    assert r.code == 1
    assert "lifecycle.json" in r.err
    assert "history" in r.err.lower()
    # nothing was written over it
    assert state_file.read_bytes() == bytes(data)

"""SIGKILL at scale: an apply of 240 resources killed at five seeded random moments, a rollback
killed mid-undo, and locks left by dead or silent holders. Real processes, real files."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cloudorch.state.backends.local import LocalBackend
from cloudorch.state.lock import LockInfo

CHAINS, DEPTH, FILE_STEPS = 20, 10, (3, 7)
PLAN_ADDRESSES = {f"w{i}_{k}" for i in range(CHAINS) for k in range(DEPTH)} | {
    f"f{i}_{k}" for i in range(CHAINS) for k in FILE_STEPS
}


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudorch", *args],
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cloudorch", *args],
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _journal_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip().endswith("}")]


def _wait_until(cond: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.005)


def _world(root: Path) -> dict[str, str]:
    out = root / "out"
    return {p.name: p.read_text() for p in out.iterdir()} if out.exists() else {}


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(5))
def test_sigkill_at_a_random_moment_then_recover_and_apply_converge(
    round_: int, fixture_plan: Any, tmp_path: Path
) -> None:
    plan = fixture_plan("crash_200.yaml")
    journal = tmp_path / ".cloudorch" / "journal" / "crash.jsonl"
    delay = random.Random(20261126 + round_).uniform(0.0, 0.6)
    proc = _start("apply", str(plan), "--auto-approve", cwd=tmp_path)
    _wait_until(journal.exists)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    lines = _journal_lines(journal)
    finished = {x["op"]["address"] for x in lines if x["event"] == "finished"}
    assert len(finished) < len(PLAN_ADDRESSES), "the kill came after the apply ended; shorten the delay"

    r = _run("recover", str(plan), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["took_over_lock"] is not None and f"pid {proc.pid}" in doc["took_over_lock"]
    report = doc["report"]
    assert report is not None and set(report["recovered"]) == finished
    # core.file can be looked up: an in-flight file create is adopted or recorded absent, never unknown
    assert not [a for a in report["lost"] if a.startswith("f")]
    in_state = {
        r["address"] for r in json.loads(_run("state", "list", str(plan), "--json", cwd=tmp_path).stdout)["resources"]
    }
    assert finished | set(report["adopted"]) == in_state
    assert not journal.exists()

    r = _run("apply", str(plan), "--auto-approve", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)["result"]
    assert set(result["succeeded"]).isdisjoint(in_state)  # nothing recovered was made twice
    assert set(result["succeeded"]) | in_state == PLAN_ADDRESSES
    assert result["repair"] is not None  # the run said it was a repair run

    # the world is exactly the plan: every file, with the id of the wait it follows, and nothing else
    state = LocalBackend(tmp_path / ".cloudorch", "crash").read()  # verifies the checksum
    assert state is not None and set(state.resources) == PLAN_ADDRESSES
    expected = {
        f"f{i}_{k}.txt": f"chain {i} step {k} {state.resources[f'w{i}_{k}'].id}"
        for i in range(CHAINS)
        for k in FILE_STEPS
    }
    assert _world(tmp_path) == expected
    assert _run("plan", str(plan), "--detailed-exitcode", cwd=tmp_path).returncode == 0


@pytest.mark.slow
def test_a_rollback_killed_mid_undo_is_finished_by_recover(fixture_plan: Any, tmp_path: Path) -> None:
    plan = fixture_plan("crash_rollback.yaml")
    journal = tmp_path / ".cloudorch" / "journal" / "crashundo.jsonl"
    proc = _start("apply", str(plan), "--auto-approve", "--on-failure=rollback", cwd=tmp_path)

    def undo_underway() -> bool:
        return any(x["event"] == "finished" and x["op"]["op"] == "undo:w5" for x in _journal_lines(journal))

    _wait_until(undo_underway)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert _world(tmp_path)  # files of the chain's first links are still there

    r = _run("recover", str(plan), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Finished the rollback the crash interrupted" in r.stdout
    assert _world(tmp_path) == {}
    state = LocalBackend(tmp_path / ".cloudorch", "crashundo").read()
    assert state is not None and state.resources == {}
    assert not journal.exists()
    r = _run("recover", str(plan), cwd=tmp_path)
    assert "Nothing to recover" in r.stdout


def _plant_lock(root: Path, key: str, *, host: str, lease_seconds: float) -> LockInfo:
    info = LockInfo(
        id="abc-123", user="ghost", host=host, pid=999_999, command="cloudorch apply", started_at="2026-01-01T00:00:00"
    ).with_lease(lease_seconds)
    (root / "locks").mkdir(parents=True, exist_ok=True)
    (root / "locks" / f"{key}.lock").write_text(info.to_json())
    return info


def test_lock_of_a_silent_holder_is_taken_over_once_its_lease_expires(fixture_plan: Any, tmp_path: Path) -> None:
    plan = fixture_plan("crash_rollback.yaml")
    root = tmp_path / ".cloudorch"
    # another host, lease still running: locked (exit 4), no hand-editing guessed at
    _plant_lock(root, "crashundo", host="elsewhere", lease_seconds=60)
    r = _run("recover", str(plan), cwd=tmp_path)
    assert r.returncode == 4 and "ghost@elsewhere" in r.stderr
    # the holder stopped renewing: the next command reports it and takes over
    _plant_lock(root, "crashundo", host="elsewhere", lease_seconds=-1)
    r = _run("recover", str(plan), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Took over a stale state lock held by ghost@elsewhere pid 999999" in r.stdout
    # same host, dead pid: taken over even with a long lease left
    _plant_lock(root, "crashundo", host=socket.gethostname(), lease_seconds=600)
    r = _run("recover", str(plan), "--json", cwd=tmp_path)
    assert r.returncode == 0 and "pid 999999" in json.loads(r.stdout)["took_over_lock"]
    assert not (root / "locks" / "crashundo.lock").exists()


def test_recover_adopts_what_exists_and_records_absent_what_does_not(fixture_plan: Any, tmp_path: Path) -> None:
    from cloudorch.state.journal import start_journal

    plan = fixture_plan("crash_adopt.yaml")
    assert _run("apply", str(plan), "--auto-approve", cwd=tmp_path).returncode == 0
    for address in ("made", "never"):
        assert _run("state", "rm", str(plan), address, cwd=tmp_path).returncode == 0
    backend = LocalBackend(tmp_path / ".cloudorch", "adopt")
    state = backend.read()
    assert state is not None
    # what a killed apply leaves: `made` created but not journaled as finished, `never` not created,
    # `keep` deleted but not journaled as finished
    (tmp_path / "out" / "never.txt").unlink()
    (tmp_path / "out" / "keep.txt").unlink()
    journal = start_journal(backend, {"lineage": state.lineage, "plan_name": "adopt"})
    for address in ("made", "never"):
        props = {"path": f"out/{address}.txt", "content": address, "mode": None}
        journal.started(
            {"op": address, "address": address, "action": "create", "type": "core.file", "provider": "core",
             "properties": props, "depends_on": []}
        )  # fmt: skip
    journal.started({"op": "keep", "address": "keep", "action": "delete", "type": "core.file", "provider": "core"})
    journal.abandon()

    r = _run("recover", str(plan), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "adopted made: an in-flight create had made it" in r.stdout
    assert "absent never: an in-flight create made nothing" in r.stdout
    assert "deleted keep: an in-flight delete had finished" in r.stdout
    recovered = backend.read()
    assert recovered is not None and set(recovered.resources) == {"made"}

    r = _run("apply", str(plan), "--auto-approve", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)["result"]
    assert sorted(result["succeeded"]) == ["keep", "never"]  # `made` is not created twice
    assert "was killed and its journal was recovered" in r.stderr

"""Interrupts through a real process: a second Ctrl-C stops waiting for running operations, and
policy denials stop new work without counting as Ctrl-C. The wall-clock figure (exit within 2 s of
the second signal) is measured in bench/interrupt_bench.py; here a bound only guards against a hang."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

HANG_GUARD = 8.0  # far below the 12 s operation: the process did not wait for it


def _poll(predicate: Any, what: str, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the apply ended ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}")
        time.sleep(0.02)


def _events(journal: Path) -> list[dict[str, Any]]:
    if not journal.exists():
        return []
    return [json.loads(x) for x in journal.read_text().splitlines() if x.strip().endswith("}")]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudorch", *args],
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_second_ctrl_c_ends_the_apply_without_waiting_and_nothing_is_made_twice(fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("slow_one.yaml")
    journal = tmp_path / ".cloudorch" / "journal" / "slowone.jsonl"
    err_path = tmp_path / "stderr.txt"
    with err_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cloudorch", "apply", str(plan), "--auto-approve"],
            cwd=tmp_path,
            env={**os.environ, "NO_COLOR": "1"},
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
        try:
            _poll(
                lambda: any(e["event"] == "started" and e["op"]["address"] == "slow" for e in _events(journal)),
                "the wait start",
                proc,
            )
            proc.send_signal(signal.SIGINT)
            # two signals before the handler runs would count once: wait until the first was taken
            _poll(lambda: "Interrupt received" in err_path.read_text(), "the first interrupt handled", proc)
            assert proc.poll() is None  # the first Ctrl-C waits for the running wait
            proc.send_signal(signal.SIGINT)
            second = time.monotonic()
            code = proc.wait(timeout=60)
            took = time.monotonic() - second
        finally:
            if proc.poll() is None:
                proc.kill()
    stderr = err_path.read_text()
    assert code == 130, stderr
    assert took < HANG_GUARD, f"{took:.1f}s after the second Ctrl-C: the process waited for the operation"
    assert "interrupted" in stderr
    events = _events(journal)
    assert not any(e["event"] in ("end", "closed") for e in events)  # the next command recovers it
    finished = [e["op"]["address"] for e in events if e["event"] == "finished"]
    assert finished == ["quick"]
    started = [e["op"]["address"] for e in events if e["event"] == "started"]
    assert "slow" in started  # left recorded as in flight

    r = _run("apply", str(plan), "--auto-approve", "--json", "--var", "seconds=0", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "recovered" in r.stderr
    assert "quick" not in json.loads(r.stdout)["result"]["succeeded"]  # finished before: not made again
    listed = json.loads(_run("state", "list", str(plan), "--json", cwd=tmp_path).stdout)["resources"]
    assert sorted(x["address"] for x in listed) == ["quick", "slow"]
    assert not journal.exists()


def test_two_policy_denials_at_once_are_a_denial_not_an_interrupt(cli, fixture_plan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = fixture_plan("policy_two_late.yaml")
    r = cli("apply", str(plan), "--auto-approve", "--json")
    assert r.code == 3, r.err
    doc = r.json()
    assert sorted(doc["result"]["failed"]) == ["late1", "late2", "late3"]
    assert "interrupt" not in r.err.lower() and "abandoned" not in r.err
    assert not (tmp_path / "tmp").exists() or not any((tmp_path / "tmp").iterdir())

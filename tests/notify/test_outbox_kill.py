"""A process killed after it recorded its events and before it delivered them: the next command
on that state delivers them, with the same delivery id."""

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


def _wait_for(pattern: str, where: Path, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not list(where.glob(pattern)):
        if proc.poll() is not None:
            raise AssertionError(f"the command ended ({proc.returncode}) before recording: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern} never appeared in {where}")
        time.sleep(0.02)


@pytest.mark.slow
def test_killed_between_recording_and_delivery_is_delivered_by_the_next_command(
    plan_copy: Any, hook_env: Any, tmp_path: Path, cli: Any
) -> None:
    plan = plan_copy("notify_failing.yaml")
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "NO_COLOR": "1", "CLOUDORCH_TEST_NOTIFY_BARRIER": str(barrier)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloudorch", "apply", str(plan), "--auto-approve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for("*.recorded", barrier, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert hook_env.hits == []  # killed before any delivery was tried

    status = cli("notifications", "status", str(plan), "--json")
    (pending,) = status.json()["pending"]
    assert pending["event"] == "apply.failed" and pending["attempts"] == 0
    runs = cli("runs", "list", str(plan), "--json").json()["runs"]
    assert runs[0]["id"] == pending["run_id"] and runs[0]["result"] == "failed"

    # the next command on this state (a plan, which changes nothing) delivers it
    assert cli("plan", str(plan), "--json").code == 0
    (hit,) = hook_env.delivered()
    assert hit.event == "apply.failed" and hit.delivery == pending["delivery_id"]
    assert json.loads(hit.body)["run_id"] == pending["run_id"]
    assert cli("notifications", "status", str(plan), "--json").json()["pending"] == []
    assert cli("plan", str(plan), "--json").code == 0
    assert len(hook_env.delivered()) == 1  # delivered once, never again

"""A state store that stops accepting writes in the middle of an apply (issue 16, item 7)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cloudorch import api
from cloudorch.engine import applier as applier_module
from cloudorch.errors import StateError

PLAN = """version: 1
name: ckpt
resources:
  seed:
    type: core.null
    properties: {values: {n: 0}}
"""


def test_a_failing_checkpoint_starts_nothing_new_and_fails_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = tmp_path / "ckpt.yaml"
    plan.write_text(PLAN)
    assert api.apply(api.RunOptions(plan_file=plan)) is not None
    plan.write_text(
        PLAN + "".join(f"  r{i}:\n    type: core.null\n    properties: {{values: {{n: {i}}}}}\n" for i in range(8))
    )
    # a checkpoint after every operation, tried twice without waiting
    policy = applier_module.CheckpointPolicy
    monkeypatch.setattr(
        applier_module, "CheckpointPolicy", lambda: policy(every_seconds=0.0, write_attempts=2, write_first_delay=0.0)
    )
    # a directory where the current version is to be archived: every state write fails
    blocker = tmp_path / ".cloudorch" / "history" / "ckpt" / "1.json"
    blocker.mkdir(parents=True)
    (blocker / "x").write_text("x")
    with pytest.raises(StateError, match="could not write state to") as info:
        api.apply(api.RunOptions(plan_file=plan, on_failure="rollback", parallelism=1))
    assert "1 operation(s) succeeded" in info.value.message
    lines = [json.loads(x) for x in (tmp_path / ".cloudorch" / "journal" / "ckpt.jsonl").read_text().splitlines()]
    finished = [x["op"]["address"] for x in lines if x["event"] == "finished"]
    assert len(finished) == 1  # the first checkpoint failed: nothing new was started
    assert not [x for x in lines if x["event"] in ("failed", "rollback")]  # nothing failed, nothing undone

    shutil.rmtree(blocker)
    outcome = api.recover(api.RunOptions(plan_file=plan))
    assert outcome.report is not None and outcome.report.recovered == finished
    assert sorted(r.address for r in api.state_list(api.RunOptions(plan_file=plan))) == sorted(["seed", *finished])

"""plans/release-demo.yaml runs as its comments say, with the clock moved instead of waiting."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

Result = Any  # the `run` fixture's result (tests/release/conftest.py)

DEMO = Path(__file__).resolve().parents[2] / "plans" / "release-demo.yaml"


def test_release_demo_walkthrough(run: Callable[..., Result], tmp_path: Path) -> None:
    plan = tmp_path / "release-demo.yaml"
    shutil.copy(DEMO, plan)
    p = str(plan)
    assert run("validate", p).code == 0
    got = run(
        "release", "deploy", p, "--stage", "dev", "--version", "1.0.0", "--auto-approve", at="2026-11-23T10:00:00Z"
    )
    assert got.code == 0, got.err
    early = run("release", "promote", p, "--to", "staging", "--auto-approve", at="2026-11-23T10:00:30Z")
    assert early.code == 3 and "soak" in early.err
    assert run("release", "promote", p, "--to", "staging", "--auto-approve", at="2026-11-23T10:01:00Z").code == 0
    for actor in ("alice", "bob"):
        assert run("release", "approve", p, "--stage", "prod", "--version", "1.0.0", actor=actor).code == 0
    got = run("release", "promote", p, "--to", "prod", "--auto-approve", at="2026-11-23T10:03:00Z")
    assert got.code == 0, got.err
    manifest = tmp_path / "out/release-demo/prod/manifest.txt"
    assert manifest.read_text() == "app 1.0.0 on prod with 3 replica(s) \n"
    assert "prod: 1.0.0" in run("release", "status", p).out

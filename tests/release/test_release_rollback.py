"""Rollback re-deploys an earlier version through the engine; a rejected version is never promoted."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Result = Any  # the `run` fixture's result (tests/release/conftest.py)


def _values(run: Callable[..., Result], plan: Path, stage: str) -> dict[str, Any]:
    got = run("state", "show", str(plan), "app", "--stage", stage, "--json")
    assert got.code == 0, got.err
    return dict(got.json()["properties"]["values"])


def _deploy(run: Callable[..., Result], plan: Path, version: str, at: str = "2026-11-23T10:00:00Z") -> None:
    got = run("release", "deploy", str(plan), "--stage", "dev", "--version", version, "--auto-approve", at=at)
    assert got.code == 0, got.err


def test_rollback_redeploys_the_previous_version(
    run: Callable[..., Result], release_plan: Callable[[str], Path]
) -> None:
    plan = release_plan("release_two_stage.yaml")
    _deploy(run, plan, "1.0.0")
    _deploy(run, plan, "2.0.0")
    assert _values(run, plan, "dev")["version"] == "2.0.0"

    got = run("release", "rollback", str(plan), "--stage", "dev", "--reason", "bad config", "--auto-approve", "--json")
    assert got.code == 0, got.err
    assert got.json()["version"] == "1.0.0" and got.json()["previous"] == "2.0.0"
    assert _values(run, plan, "dev") == {"version": "1.0.0", "replicas": 1, "label": "dev-1.0.0"}
    assert run("output", str(plan), "label", "--stage", "dev").out.strip() == "dev-1.0.0"
    assert run("plan", str(plan), "--stage", "dev", "--var", "version=1.0.0", "--detailed-exitcode").code == 0

    last = run("release", "history", str(plan), "--stage", "dev", "--json").json()["events"][-1]
    assert (last["kind"], last["version"], last["reason"], last["actor"]) == ("rollback", "1.0.0", "bad config", "ci")
    # the stage's own state document records the release beside its apply events
    doc = json.loads((plan.parent / ".cloudorch/state/app.dev.json").read_text())
    doc = doc.get("state", doc)
    marks = [(e["detail"]["action"], e["detail"]["version"]) for e in doc["events"] if e["kind"] == "release"]
    assert marks == [("deploy", "1.0.0"), ("deploy", "2.0.0"), ("rollback", "1.0.0")]

    # --to-version must name a version that ran there; the current one is refused too
    wrong = run("release", "rollback", str(plan), "--stage", "dev", "--to-version", "9.9.9", "--auto-approve")
    assert wrong.code == 1 and "9.9.9 never ran in dev" in wrong.err
    same = run("release", "rollback", str(plan), "--stage", "dev", "--to-version", "1.0.0", "--auto-approve")
    assert same.code == 1 and "already runs 1.0.0" in same.err
    forward = run("release", "rollback", str(plan), "--stage", "dev", "--to-version", "2.0.0", "--auto-approve")
    assert forward.code == 0 and _values(run, plan, "dev")["version"] == "2.0.0"


def test_rejected_version_cannot_be_promoted_or_picked(
    run: Callable[..., Result], release_plan: Callable[[str], Path]
) -> None:
    plan = release_plan("release_two_stage.yaml")
    _deploy(run, plan, "1.0.1")
    _deploy(run, plan, "1.0.2")
    got = run("release", "reject", str(plan), "--version", "1.0.2", "--reason", "INC-42 corrupts carts", actor="dana")
    assert got.code == 0 and "still runs in dev" in got.out

    refused = run("release", "promote", str(plan), "--to", "prod", "--version", "1.0.2", "--dry-run", "--json")
    assert refused.code == 3 and "rejected by dana" in refused.out  # no document was printed: the error is it
    again = run("release", "deploy", str(plan), "--stage", "dev", "--version", "1.0.2", "--auto-approve")
    assert again.code == 3

    # auto-promotion skips the rejected version running in dev and takes the last good one
    dry = run("release", "promote", str(plan), "--to", "prod", "--dry-run", "--json", at="2026-11-23T10:00:00Z")
    assert dry.json()["version"] == "1.0.1"

    history = run("release", "history", str(plan), "--json").json()["events"]
    reject = next(e for e in history if e["kind"] == "reject")
    assert (reject["version"], reject["actor"], reject["reason"]) == ("1.0.2", "dana", "INC-42 corrupts carts")


def test_deploy_into_a_later_stage_goes_through_promotion(
    run: Callable[..., Result], release_plan: Callable[[str], Path]
) -> None:
    plan = release_plan("release_two_stage.yaml")
    got = run("release", "deploy", str(plan), "--stage", "prod", "--version", "1.0.0", "--auto-approve")
    assert got.code == 1 and "release promote" in got.err
    none = run("release", "promote", str(plan), "--to", "prod", "--auto-approve")
    assert none.code == 1 and "nothing to promote" in none.err
    unknown = run("release", "promote", str(plan), "--to", "dev", "--auto-approve")
    assert unknown.code == 1 and "release deploy" in unknown.err

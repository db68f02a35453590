"""A three-stage release on `core` resources, with the prod health gate reading CloudWatch
alarms in moto through the AWS provider: every gate refuses once, then the promotion passes;
a failing verify check rolls prod back by itself; history shows every step and who took it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

Result = Any  # the `run` fixture's result (tests/release/conftest.py)


AT = {
    "deploy": "2026-11-23T10:00:00Z",
    "staging": "2026-11-23T10:20:00Z",
    "prod_early": "2026-11-23T10:50:00Z",
    "prod_late": "2026-11-23T12:00:00Z",
}


def _state(run: Callable[..., Result], plan: Path, stage: str) -> dict[str, Any]:
    got = run("state", "show", str(plan), "config", "--stage", stage, "--json")
    assert got.code == 0, got.err
    return dict(got.json()["properties"]["values"])


def _alarm(endpoint: str, state: str) -> None:
    cw = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=endpoint)
    cw.put_metric_alarm(
        AlarmName="shop-staging-5xx",
        Namespace="Shop",
        MetricName="Errors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cw.set_alarm_state(AlarmName="shop-staging-5xx", StateValue=state, StateReason="test")


def test_three_stage_release_through_every_gate(
    run: Callable[..., Result], release_plan: Callable[[], Path], moto: str
) -> None:
    plan = str(release_plan())
    aws = ("--var", f"aws_endpoint={moto}")

    got = run(
        "release", "deploy", plan, "--stage", "dev", "--version", "1.0.0", "--auto-approve", *aws, at=AT["deploy"]
    )
    assert got.code == 0, got.err
    assert _state(run, Path(plan), "dev") == {"env": "dev", "stage": "dev", "version": "1.0.0"}
    assert (Path(plan).parent / "out/dev/build.txt").read_text() == "version 1.0.0 in dev\n"

    got = run("release", "promote", plan, "--to", "staging", "--auto-approve", "--json", *aws, at=AT["staging"])
    assert got.code == 0, got.err
    doc = got.json()
    assert doc["version"] == "1.0.0" and doc["applied"] and [g["gate"] for g in doc["gates"]] == ["soak"]
    assert _state(run, Path(plan), "staging")["env"] == "staging"

    # prod: no approvals yet, and 1.0.0 has soaked only 30 minutes in staging
    got = run("release", "promote", plan, "--to", "prod", "--auto-approve", "--json", *aws, at=AT["prod_early"])
    assert got.code == 3
    verdicts = {g["gate"]: g["passed"] for g in got.json()["gates"]}
    assert verdicts == {"policy": True, "approval": False, "soak": False, "health.aws_alarms": True}
    assert json.loads(got.err)["gates"] == ["approval", "soak"]

    # approvals: two listed actors count once each; an unlisted actor is refused
    assert run("release", "approve", plan, "--stage", "prod", "--version", "1.0.0", actor="alice").code == 0
    again = run("release", "approve", plan, "--stage", "prod", "--version", "1.0.0", "--json", actor="alice")
    assert again.code == 0 and again.json()["already_approved"] and again.json()["approvals"] == ["alice"]
    bob = run(
        "release", "approve", plan, "--stage", "prod", "--version", "1.0.0", "--comment", "lgtm", "--json", actor="bob"
    )
    assert bob.json()["approvals"] == ["alice", "bob"] and bob.json()["satisfied"]
    mallory = run("release", "approve", plan, "--stage", "prod", "--version", "1.0.0", actor="mallory")
    assert mallory.code == 3 and "mallory may not approve" in mallory.err

    # approvals are in; soak still is not (the injectable clock says 30 minutes)
    got = run("release", "promote", plan, "--to", "prod", "--auto-approve", *aws, at=AT["prod_early"])
    assert got.code == 3
    assert "refused by gate(s): soak" in got.err and "needs 1h00m" in got.out

    # two hours later soak passes, but an alarm of the previous stage is firing
    _alarm(moto, "ALARM")
    got = run("release", "promote", plan, "--to", "prod", "--auto-approve", "--json", *aws, at=AT["prod_late"])
    assert got.code == 3
    assert json.loads(got.err)["gates"] == ["health.aws_alarms"]
    assert "shop-staging-5xx" in {g["gate"]: g["detail"] for g in got.json()["gates"]}["health.aws_alarms"]
    assert run("state", "list", plan, "--stage", "prod").out == ""  # nothing was applied to prod

    _alarm(moto, "OK")
    dry = run("release", "promote", plan, "--to", "prod", "--dry-run", "--json", *aws, at=AT["prod_late"])
    assert dry.code == 0 and dry.json()["passed"] and not dry.json()["applied"]
    assert run("state", "list", plan, "--stage", "prod").out == ""
    got = run("release", "promote", plan, "--to", "prod", "--auto-approve", *aws, at=AT["prod_late"])
    assert got.code == 0, got.err
    assert "prod now runs 1.0.0" in got.out
    assert _state(run, Path(plan), "prod") == {"env": "prod", "stage": "prod", "version": "1.0.0"}

    history = run("release", "history", plan, "--json").json()["events"]
    steps = [(e["kind"], e["stage"], e["actor"]) for e in history]
    assert steps == [
        ("deploy", "dev", "ci"),
        ("promote", "staging", "ci"),
        ("refused", "prod", "ci"),
        ("approve", "prod", "alice"),
        ("approve", "prod", "bob"),
        ("refused", "prod", "ci"),
        ("refused", "prod", "ci"),
        ("promote", "prod", "ci"),
    ]
    assert history[2]["reason"] == "failed gate(s): approval, soak" and history[2]["at"] == "2026-11-23T10:50:00+00:00"
    assert history[4]["reason"] == "lgtm"

    status = run("release", "status", plan, "--json").json()
    assert [(s["stage"], s["version"]) for s in status["stages"]] == [
        ("dev", "1.0.0"),
        ("staging", "1.0.0"),
        ("prod", "1.0.0"),
    ]

    # 1.1.0 reaches prod but fails its verify check: prod goes back to 1.0.0 by itself
    run(
        "release",
        "deploy",
        plan,
        "--stage",
        "dev",
        "--version",
        "1.1.0",
        "--auto-approve",
        *aws,
        at="2026-11-24T09:00:00Z",
    )
    got = run("release", "promote", plan, "--to", "staging", "--auto-approve", *aws, at="2026-11-24T10:00:00Z")
    assert got.code == 0, got.err
    for actor in ("bob", "carol"):
        assert run("release", "approve", plan, "--stage", "prod", "--version", "1.1.0", actor=actor).code == 0
    (Path(plan).parent / "verify-fails").touch()
    got = run("release", "promote", plan, "--to", "prod", "--auto-approve", "--json", *aws, at="2026-11-24T12:00:00Z")
    assert got.code == 3, got.err
    doc = got.json()
    assert doc["applied"] and doc["rolled_back_to"] == "1.0.0"
    assert [v["passed"] for v in doc["verification"]] == [False]
    assert _state(run, Path(plan), "prod")["version"] == "1.0.0"
    assert (Path(plan).parent / "out/prod/build.txt").read_text() == "version 1.0.0 in prod\n"
    tail = run("release", "history", plan, "--stage", "prod", "--json").json()["events"][-3:]
    assert [(e["kind"], e["version"]) for e in tail] == [
        ("promote", "1.1.0"),
        ("verify_failed", "1.1.0"),
        ("rollback", "1.0.0"),
    ]
    assert tail[2]["reason"].startswith("verification of 1.1.0 failed: health.command")

    # the release history lives in state documents, beside the stages' own
    names = sorted(p.name for p in (Path(plan).parent / ".cloudorch/state").iterdir())
    assert names == ["shop..release.json", "shop.dev.json", "shop.prod.json", "shop.staging.json"]

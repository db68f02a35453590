"""SIGKILL in the middle of an apply of 50 S3 buckets against moto, then `recover` and `apply`:
exactly the plan's buckets exist in moto, each once, all in state, none orphaned."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FIXTURE = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "crash_s3_50.yaml"
CLI = [sys.executable, "-m", "cloudorch"]
PLANNED = {f"crash-bucket-{i:02d}" for i in range(50)}


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], cwd=cwd, env=dict(os.environ), capture_output=True, text=True, timeout=120
    )


def _finished(journal: Path) -> list[str]:
    if not journal.exists():
        return []
    lines = [json.loads(x) for x in journal.read_text().splitlines() if x.strip().endswith("}")]
    return [x["op"]["address"] for x in lines if x["event"] == "finished"]


@pytest.fixture(autouse=True)
def _leave_moto_empty(moto_url: str) -> Iterator[None]:
    """moto's backends are per process: fifty buckets left behind would show up in another module's
    in-process moto server on the same pytest worker."""
    yield
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")).read()


@pytest.mark.slow
def test_sigkill_mid_apply_of_50_buckets_leaves_no_duplicate_and_no_orphan(tmp_path: Path, aws: Any) -> None:
    plan = tmp_path / "crash_s3_50.yaml"
    shutil.copy(FIXTURE, plan)
    journal = tmp_path / ".cloudorch" / "journal" / "crashs3.jsonl"
    proc = subprocess.Popen(
        [*CLI, "apply", str(plan), "--auto-approve"],
        cwd=tmp_path,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(_finished(journal)) < 10:
        assert time.monotonic() < deadline and proc.poll() is None, "the apply ended before it could be killed"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    done_before_kill = set(_finished(journal))
    assert 10 <= len(done_before_kill) < 50

    made = {b["Name"] for b in aws("s3").list_buckets()["Buckets"]}
    assert made < PLANNED  # some, not all, and nothing else

    r = _run("recover", plan, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)["report"]
    assert set(report["recovered"]) == done_before_kill
    assert report["lost"] == []  # every in-flight bucket create was looked up by name and tag
    recovered = done_before_kill | set(report["adopted"])

    r = _run("apply", plan, "--auto-approve", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    action = {c["address"]: c["action"] for c in doc["changeset"]["changes"]}
    created = {a for a in doc["result"]["succeeded"] if action[a] == "create"}
    assert created.isdisjoint(recovered) and len(created | recovered) == 50  # nothing created twice
    # an adopted bucket may have been caught between its create call and its tags/versioning
    # calls: the apply finishes configuring it in place
    assert {a for a, act in action.items() if act == "update"} <= set(report["adopted"])

    buckets = [b["Name"] for b in aws("s3").list_buckets()["Buckets"]]
    assert sorted(buckets) == sorted(PLANNED)  # exactly the plan's: no duplicate, no orphan
    state = json.loads(_run("state", "list", plan, "--json", cwd=tmp_path).stdout)["resources"]
    assert {r["id"] for r in state} == PLANNED
    for name in ("crash-bucket-00", "crash-bucket-49"):
        tags = {t["Key"]: t["Value"] for t in aws("s3").get_bucket_tagging(Bucket=name)["TagSet"]}
        assert tags["cloudorch:address"] == f"b{name[-2:]}"
    assert _run("plan", plan, "--detailed-exitcode", cwd=tmp_path).returncode == 0


ROLLBACK_FIXTURE = FIXTURE.with_name("rollback_s3_30.yaml")


def _world(aws: Any) -> dict[str, tuple[dict[str, str], str | None]]:
    """Every bucket in moto: its tags and its versioning status."""
    s3 = aws("s3")
    out: dict[str, tuple[dict[str, str], str | None]] = {}
    for b in s3.list_buckets()["Buckets"]:
        tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=b["Name"])["TagSet"]}
        out[b["Name"]] = (tags, s3.get_bucket_versioning(Bucket=b["Name"]).get("Status"))
    return out


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, Any]:
    from cloudorch.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.lstrip().startswith("{") else out


def _records(plan: Path) -> dict[str, tuple[str, Any]]:
    doc = json.loads((plan.parent / ".cloudorch" / "state" / "rbs3.json").read_text())
    return {a: (r["id"], r["properties"]) for a, r in doc["state"]["resources"].items()}


def test_rollback_with_a_fault_in_the_middle_leaves_moto_and_state_as_before(
    tmp_path: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloudorch_aws import AwsProvider
    from cloudorch_aws.faults import Fault

    plan = tmp_path / "rollback_s3_30.yaml"
    shutil.copy(ROLLBACK_FIXTURE, plan)
    refused = Fault("s3", "PutBucketVersioning", 403, "AccessDenied", "not allowed to s3:PutBucketVersioning")
    AwsProvider.client_hooks.append(refused)
    # a first apply: `mid` is created and tagged, then refused; everything is undone, `mid` too
    code, doc = _cli(capsys, "apply", plan, "--auto-approve", "--json", "--on-failure=rollback")
    assert code == 1
    result = doc["result"]
    assert list(result["failed"]) == ["mid"] and refused.injected == 1
    assert result["rolled_back"]["complete"], result["rolled_back"]
    assert result["rolled_back"]["undone"]["mid"] == "its failed create had left it behind"
    assert _world(aws) == {}
    assert _records(plan) == {}
    AwsProvider.client_hooks.remove(refused)

    code, doc = _cli(capsys, "apply", plan, "--auto-approve", "--json")
    assert code == 0, doc
    world, records = _world(aws), _records(plan)
    assert len(world) == 30 and world["rb-mid"] == ({"rev": "1", "cloudorch:address": "mid"}, "Enabled")

    # an update of all thirty: `mid` gets its new tags, then its versioning change is refused once
    once = Fault("s3", "PutBucketVersioning", 403, "AccessDenied", "not allowed", times=1)
    AwsProvider.client_hooks.append(once)
    code, text = _cli(
        capsys,
        "apply",
        plan,
        "--auto-approve",
        "--on-failure=rollback",
        "--var",
        "rev=2",
        "--var",
        "mid_versioned=false",
    )
    assert code == 1
    assert "Apply failed and was rolled back." in text
    assert "mid: its failed update was reverted" in text
    assert _world(aws) == world
    assert _records(plan) == records
    assert _cli(capsys, "plan", plan, "--detailed-exitcode")[0] == 0

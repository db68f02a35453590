"""plans/aws-webapp.yaml through the real CLI against moto: apply, clean re-plan, destroy, faults.

The clean path runs the `cloudorch` console script in a subprocess. The fault paths run the CLI
in this process (`cloudorch.cli.main`) so a botocore `before-send` hook registered through
`AwsProvider.client_hooks` sits on the wire of the clients the provider creates.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cloudorch_aws import AwsProvider
from cloudorch_aws.faults import CallCounter, Fault

PLAN = Path(__file__).resolve().parents[3] / "plans" / "aws-webapp.yaml"
CLI = [sys.executable, "-m", "cloudorch"]
APP_ADDRESSES = {"site", "index_page", "dead_letters", "jobs", "orders", "api_role", "api_code", "api"}


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    target = tmp_path / "aws-webapp.yaml"
    shutil.copy(PLAN, target)
    return target


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], cwd=cwd, env=dict(os.environ), capture_output=True, text=True, timeout=120
    )


def run_here(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, Any, str]:
    from cloudorch.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    try:
        doc = json.loads(captured.out)
    except json.JSONDecodeError:
        doc = None
    return code, doc, captured.out + captured.err


def test_apply_replan_destroy_through_the_cli(plan: Path, aws: Any) -> None:
    applied = run("apply", plan, "--auto-approve", cwd=plan.parent)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply complete" in applied.stdout

    # it is really there, wired by references
    queues = aws("sqs").list_queues()["QueueUrls"]
    assert sorted(q.rsplit("/", 1)[1] for q in queues) == [
        "cloudorch-webapp-demo-jobs",
        "cloudorch-webapp-demo-jobs-dlq",
    ]
    fn = aws("lambda").get_function(FunctionName="cloudorch-webapp-demo-api")["Configuration"]
    assert fn["Role"].endswith(":role/cloudorch-webapp-demo-api")
    assert fn["Environment"]["Variables"]["TABLE"] == "cloudorch-webapp-demo-orders"
    tags = aws("s3").get_bucket_tagging(Bucket="cloudorch-webapp-demo-site")["TagSet"]
    assert {"Key": "cloudorch:address", "Value": "site"} in tags
    assert {"Key": "app", "Value": "webapp"} in tags

    replanned = run("plan", plan, "--detailed-exitcode", cwd=plan.parent)
    assert replanned.returncode == 0, replanned.stdout + replanned.stderr

    as_json = run("plan", plan, "--json", cwd=plan.parent)
    doc = json.loads(as_json.stdout)
    assert {c["address"] for c in doc["changes"]} == APP_ADDRESSES
    assert {c["action"] for c in doc["changes"]} == {"no-op"}
    assert "s3cr3t" not in as_json.stdout

    destroyed = run("destroy", plan, "--auto-approve", cwd=plan.parent)
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert aws("s3").list_buckets()["Buckets"] == []
    assert aws("sqs").list_queues().get("QueueUrls", []) == []
    assert aws("lambda").list_functions()["Functions"] == []
    assert aws("dynamodb").list_tables()["TableNames"] == []
    assert [r["RoleName"] for r in aws("iam").list_roles()["Roles"]] == []


def test_throttling_is_retried_and_reported(plan: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slowdown = Fault("s3", "CreateBucket", 503, "SlowDown", "Please reduce your request rate.", times=2)
    AwsProvider.client_hooks.append(slowdown)
    code, doc, text = run_here(capsys, "apply", plan, "--auto-approve", "--json")
    assert code == 0, text
    assert slowdown.injected == 2
    result = doc["result"]
    assert result["ok"] is True
    assert result["retries"] >= 2
    assert set(result["succeeded"]) == APP_ADDRESSES


def test_access_denied_fails_clearly_and_keeps_what_succeeded(
    plan: Path, capsys: pytest.CaptureFixture[str], aws: Any
) -> None:
    denied = Fault("lambda", "CreateFunction", 403, "AccessDeniedException", "not authorized to lambda:CreateFunction")
    AwsProvider.client_hooks.append(denied)
    code, doc, text = run_here(capsys, "apply", plan, "--auto-approve", "--json")
    assert code == 1, text
    assert denied.injected == 1, "a fatal error is not retried"
    result = doc["result"]
    assert set(result["failed"]) == {"api"}
    message = result["failed"]["api"]
    assert "AccessDeniedException" in message and "CreateFunction" in message and "not authorized" in message
    assert set(result["succeeded"]) == APP_ADDRESSES - {"api"}

    code, listed, text = run_here(capsys, "state", "list", plan, "--json")
    assert code == 0, text
    names = {
        r["address"] if isinstance(r, dict) else r
        for r in (listed["resources"] if isinstance(listed, dict) else listed)
    }
    assert names == APP_ADDRESSES - {"api"}

    # the permission is granted: the next apply does only what is left
    AwsProvider.client_hooks.remove(denied)
    counter = CallCounter()
    AwsProvider.client_hooks.append(counter)
    code, doc, text = run_here(capsys, "apply", plan, "--auto-approve", "--json")
    assert code == 0, text
    assert doc["result"]["succeeded"] == ["api"]
    assert aws("lambda").get_function(FunctionName="cloudorch-webapp-demo-api")


def test_help_does_not_import_boto3() -> None:
    code = "import sys; from cloudorch.cli import main; main(['--help']); print('boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "False"

"""`cloudorch drift` against moto: tags changed and a queue deleted with boto3 behind cloudorch's back.

The CLI runs in this process (`cloudorch.cli.main`) on tests/fixtures/drift_aws.yaml; the real
boto3 clients of the provider talk HTTP to the session's moto server.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

FIXTURE = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "drift_aws.yaml"


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    target = tmp_path / "drift_aws.yaml"
    shutil.copy(FIXTURE, target)
    return target


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, Any, str]:
    from cloudorch.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    try:
        doc = json.loads(captured.out)
    except json.JSONDecodeError:
        doc = None
    return code, doc, captured.out + captured.err


def _tags(aws: Any, bucket: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in aws("s3").get_bucket_tagging(Bucket=bucket)["TagSet"]}


def test_tags_changed_and_queue_deleted_then_reconciled(
    plan: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, text = cli(capsys, "apply", plan, "--auto-approve")
    assert code == 0, text
    code, doc, text = cli(capsys, "drift", plan, "--json")
    assert code == 0 and doc["resources"] == [], text

    s3, sqs = aws("s3"), aws("sqs")
    queue_url = sqs.get_queue_url(QueueName="drift-test-jobs")["QueueUrl"]
    site_tags = _tags(aws, "drift-test-site")
    site_tags.pop("env")
    site_tags["owner"] = "someone-else"
    s3.put_bucket_tagging(
        Bucket="drift-test-site", Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in site_tags.items()]}
    )
    logs_tags = {**_tags(aws, "drift-test-logs"), "cost": "cc-42"}  # drift the plan ignores
    s3.put_bucket_tagging(
        Bucket="drift-test-logs", Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in logs_tags.items()]}
    )
    sqs.delete_queue(QueueUrl=queue_url)

    code, doc, text = cli(capsys, "drift", plan, "--json")
    assert code == 2, text
    assert doc["counts"] == {"deleted": 1, "changed": 1, "created_outside": 0, "checked": 3}
    jobs, site = doc["resources"]
    assert (jobs["address"], jobs["status"], jobs["id"], jobs["cloud_id"]) == ("jobs", "deleted", queue_url, None)
    jobs_props = {p["path"]: p for p in jobs["properties"]}
    assert jobs_props["visibility_timeout"] == {"path": "visibility_timeout", "plan": 45, "state": 45, "cloud": None}
    assert jobs_props["tags"] == {"path": "tags", "plan": {"owner": "web"}, "state": {"owner": "web"}, "cloud": None}
    assert all(p["cloud"] is None for p in jobs["properties"])
    assert site == {
        "address": "site",
        "type": "aws.s3_bucket",
        "provider": "aws",
        "status": "changed",
        "id": "drift-test-site",
        "cloud_id": "drift-test-site",
        "in_plan": True,
        "properties": [
            {
                "path": "tags",
                "plan": {"env": "dev", "owner": "web"},
                "state": {"env": "dev", "owner": "web"},
                "cloud": {"owner": "someone-else"},
            }
        ],
    }
    assert doc["ignored"] == {"logs": ["tags.cost"]}
    # one read_many per type: S3 lists buckets once, SQS lists queues once
    assert doc["calls"]["refresh"] == 2

    code, doc, text = cli(capsys, "drift", plan, "--reconcile", "--auto-approve", "--json")
    assert code == 0, text
    assert doc["reconcile"]["result"]["ok"] is True
    changes = doc["reconcile"]["changeset"]["changes"]
    assert {(c["address"], c["action"]) for c in changes if c["action"] != "no-op"} == {
        ("site", "update"),
        ("jobs", "create"),
    }
    assert _tags(aws, "drift-test-site") == {"owner": "web", "env": "dev", "team": "web", "cloudorch:address": "site"}
    assert _tags(aws, "drift-test-logs")["cost"] == "cc-42"  # ignored: left alone by the update
    attrs = sqs.get_queue_attributes(
        QueueUrl=sqs.get_queue_url(QueueName="drift-test-jobs")["QueueUrl"], AttributeNames=["VisibilityTimeout"]
    )
    assert attrs["Attributes"]["VisibilityTimeout"] == "45"
    code, doc, text = cli(capsys, "drift", plan, "--json")
    assert code == 0 and doc["resources"] == [], text


def test_bucket_created_outside_is_found_by_its_address_tag(
    plan: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = aws("s3")
    s3.create_bucket(Bucket="drift-test-site")
    s3.put_bucket_tagging(Bucket="drift-test-site", Tagging={"TagSet": [{"Key": "cloudorch:address", "Value": "site"}]})
    code, doc, text = cli(capsys, "drift", plan, "--json")
    assert code == 2, text
    [site] = doc["resources"]
    assert (site["address"], site["status"], site["cloud_id"]) == ("site", "created_outside", "drift-test-site")
    tags = next(p for p in site["properties"] if p["path"] == "tags")
    assert tags == {"path": "tags", "plan": {"env": "dev", "owner": "web"}, "state": None, "cloud": {}}
    assert doc["not_created"] == ["jobs", "logs"]
    code, _, text = cli(capsys, "drift", plan, "--markdown")
    assert code == 2 and "<code>site</code> (aws.s3_bucket): created outside cloudorch (not in state)" in text


def test_rollback_restores_a_sensitive_value_only_from_a_matching_plan_value(
    tmp_path: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "drift_lambda.yaml"
    shutil.copy(FIXTURE.with_name("drift_lambda.yaml"), plan)
    code, _, text = cli(capsys, "apply", plan, "--auto-approve", "--var", "greeting=hello")  # serial 1
    assert code == 0, text
    code, _, text = cli(capsys, "apply", plan, "--auto-approve")  # serial 2: greeting=bonjour
    assert code == 0, text

    def greeting() -> str:
        cfg = aws("lambda").get_function_configuration(FunctionName="drift-lambda-fn")
        return str(cfg["Environment"]["Variables"]["GREETING"])

    assert greeting() == "bonjour"
    code, _, text = cli(capsys, "rollback", plan, "--to", "1", "--auto-approve")
    assert code == 1
    assert "cannot restore sensitive value(s) of serial 1: fn.environment" in text
    assert greeting() == "bonjour"
    code, _, text = cli(capsys, "rollback", plan, "--to", "1", "--auto-approve", "--var", "greeting=hello")
    assert code == 0, text
    assert "hello" not in text and "bonjour" not in text  # masked in the plan shown
    assert greeting() == "hello"


def test_rollback_repairs_drift_of_a_resource_it_restores(
    plan: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, text = cli(capsys, "apply", plan, "--auto-approve")  # serial 1
    assert code == 0, text
    plan.write_text(plan.read_text().replace("visibility_timeout: 45", "visibility_timeout: 60"))
    code, _, text = cli(capsys, "apply", plan, "--auto-approve")  # serial 2: only the queue changed
    assert code == 0, text
    s3 = aws("s3")
    s3.put_bucket_tagging(Bucket="drift-test-site", Tagging={"TagSet": [{"Key": "owner", "Value": "intruder"}]})
    code, _, text = cli(capsys, "rollback", plan, "--to", "1", "--auto-approve")
    assert code == 0, text
    assert _tags(aws, "drift-test-site") == {"owner": "web", "env": "dev", "team": "web", "cloudorch:address": "site"}
    sqs = aws("sqs")
    url = sqs.get_queue_url(QueueName="drift-test-jobs")["QueueUrl"]
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"]
    assert got["VisibilityTimeout"] == "45"

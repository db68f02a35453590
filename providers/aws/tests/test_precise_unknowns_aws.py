"""Precise unknowns on moto through the CLI: a tag change updates the tagged resource only.

Changing a VPC's tags once planned `-/+ subnet (vpc_id forces replacement)`: the VPC's id was
made unknown by its update. An object's etag is recomputed by an update; after a tag-only update
it is the same again, so the dependent planned as an update is a no-op at apply.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

FIXTURE = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "vpc_tags.yaml"


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, Any, str]:
    from cloudorch.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    try:
        doc = json.loads(captured.out)
    except json.JSONDecodeError:
        doc = None
    return code, doc, captured.out + captured.err


def _changed(changeset: dict[str, Any]) -> dict[str, str]:
    return {c["address"]: c["action"] for c in changeset["changes"] if c["action"] != "no-op"}


def test_a_vpc_tag_change_updates_the_vpc_only(tmp_path: Path, aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / FIXTURE.name
    shutil.copy(FIXTURE, plan)
    code, doc, text = run(capsys, "apply", plan, "--auto-approve", "--json")
    assert code == 0, text
    subnet_id = doc["result"] and run(capsys, "state", "show", plan, "subnet", "--json")[1]["id"]
    etag = run(capsys, "state", "show", plan, "page", "--json")[1]["attributes"]["etag"]

    code, doc, text = run(capsys, "plan", plan, "--var", "stage=prod", "--json")
    assert code == 0, text
    assert _changed(doc) == {"vpc": "update", "page": "update", "page_etag": "update"}
    assert doc["summary"]["update"] == 3 and doc["summary"]["replace"] == 0
    vpc = next(c for c in doc["changes"] if c["address"] == "vpc")
    assert [d["path"] for d in vpc["diff"]] == ["tags"]

    code, doc, text = run(capsys, "apply", plan, "--auto-approve", "--var", "stage=prod", "--json")
    assert code == 0, text
    assert doc["result"]["unchanged_after_resolve"] == ["page_etag"]
    subnets = aws("ec2").describe_subnets(SubnetIds=[subnet_id])["Subnets"]
    assert len(subnets) == 1  # the subnet is the same object
    assert run(capsys, "state", "show", plan, "subnet", "--json")[1]["id"] == subnet_id
    vpc_tags = {t["Key"]: t["Value"] for t in aws("ec2").describe_vpcs(VpcIds=[subnets[0]["VpcId"]])["Vpcs"][0]["Tags"]}
    assert vpc_tags["stage"] == "prod"
    assert run(capsys, "state", "show", plan, "page", "--json")[1]["attributes"]["etag"] == etag

    code, _doc, text = run(capsys, "plan", plan, "--var", "stage=prod", "--detailed-exitcode")
    assert code == 0, text


def test_a_check_across_properties_runs_again_once_values_are_known(
    tmp_path: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """`content` is unknown at plan, so "exactly one of content and source" waits for it; at
    apply, once the bucket's ARN is known, the check runs before any call and stops the object."""
    import yaml

    plan = tmp_path / "object_from_arn.yaml"
    doc = yaml.safe_load((FIXTURE.parent / "s3_object_from_arn.yaml").read_text())
    doc["resources"]["o"]["properties"]["source"] = "body.txt"
    plan.write_text(yaml.safe_dump(doc))
    (tmp_path / "body.txt").write_text("x")

    code, doc, text = run(capsys, "plan", plan, "--json")
    assert code == 0, text
    assert "Internal error" not in text

    code, doc, text = run(capsys, "apply", plan, "--auto-approve", "--json")
    assert code == 1, text
    why = doc["result"]["failed"]["o"]
    assert "set exactly one of `content` and `source`" in why
    assert "Internal error" not in text
    assert aws("s3").list_objects_v2(Bucket="cloudorch-arn-test").get("KeyCount", 0) == 0
    # the plan itself succeeded in full: the bucket exists
    assert doc["result"]["succeeded"] == ["b"]


def test_a_queue_update_leaves_its_subscription_alone(
    tmp_path: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "queue_subscription.yaml"
    shutil.copy(FIXTURE.parent / "queue_subscription.yaml", plan)
    code, doc, text = run(capsys, "apply", plan, "--auto-approve", "--json")
    assert code == 0, text
    sub_arn = run(capsys, "state", "show", plan, "subscription", "--json")[1]["id"]

    code, doc, text = run(capsys, "plan", plan, "--var", "visibility=120", "--json")
    assert code == 0, text
    assert _changed(doc) == {"queue": "update"}

    code, doc, text = run(capsys, "apply", plan, "--auto-approve", "--var", "visibility=120", "--json")
    assert code == 0, text
    subs = aws("sns").list_subscriptions()["Subscriptions"]
    assert [s["SubscriptionArn"] for s in subs] == [sub_arn]
    queue_url = aws("sqs").get_queue_url(QueueName="cloudorch-precise-jobs")["QueueUrl"]
    attrs = aws("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])
    assert attrs["Attributes"]["VisibilityTimeout"] == "120"

"""A fleet of 50 stacks on `core` and moto: a VPC stack read by 24 bucket stacks and 25 core stacks
(and one stack reading a service): planned, applied in order, then drift found where boto3 changed
a bucket behind cloudorch's back, and nowhere else."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from cloudorch.cli import main


@pytest.mark.slow
def test_fifty_stacks_on_moto(moto: str, make_fleet: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    root = make_fleet(services=25, buckets=24, aws_network=True)

    capsys.readouterr()
    assert main(["fleet", "plan", str(root), "--json"]) == 2
    planned = json.loads(capsys.readouterr().out)
    assert len(planned["stacks"]) == 51 and planned["counts"] == {"changes": 51}

    assert main(["fleet", "apply", str(root), "--auto-approve", "--json"]) == 0
    applied = json.loads(capsys.readouterr().out)
    assert applied["counts"] == {"ok": 51}
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto)
    named = {"Key": "Name", "Value": "fleet-net"}
    vpcs = [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if named in v.get("Tags", [])]
    assert len(vpcs) == 1
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto)
    tags = s3.get_bucket_tagging(Bucket="fleet-bucket-3")["TagSet"]
    assert {"Key": "vpc", "Value": vpcs[0]} in tags  # read from the network stack's state

    s3.put_bucket_tagging(Bucket="fleet-bucket-3", Tagging={"TagSet": [{"Key": "vpc", "Value": "changed"}]})
    assert main(["fleet", "drift", str(root), "--json"]) == 2
    drift = json.loads(capsys.readouterr().out)
    drifted = [s["name"] for s in drift["stacks"] if s["status"] == "drifted"]
    assert drifted == ["bucket3"] and drift["counts"] == {"ok": 50, "drifted": 1}

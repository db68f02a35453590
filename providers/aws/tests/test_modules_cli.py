"""A two-level module used with for_each over three regions, applied on moto through the CLI.

`tests/fixtures/modules/regions`: the `region` module (VPC, security group, and a nested `subnet`
module per zone) is used once per region, each instance on its own provider block
(`providers: {aws: "aws.${each.key}"}`); a root security group reads two instances' outputs.
What landed is read back per region with plain boto3 clients.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "modules"
REGIONS = {"eu": "eu-west-1", "us": "us-east-1", "ap": "ap-southeast-2"}
CIDRS = {"eu": "10.10", "us": "10.20", "ap": "10.30"}


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, Any]:
    from cloudorch.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    out = captured.out
    return code, json.loads(out) if out.lstrip().startswith("{") else out + captured.err


@pytest.fixture
def plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(FIXTURES / "regions", tmp_path / "regions")
    monkeypatch.chdir(tmp_path / "regions")
    return tmp_path / "regions" / "plan.yaml"


def _ec2(moto_url: str, region: str) -> Any:
    import boto3

    return boto3.client("ec2", region_name=region, endpoint_url=moto_url)


def test_a_module_per_region_lands_in_each_region(
    plan: Path, moto_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = _cli(capsys, "apply", plan, "--auto-approve", "--json")
    assert code == 0, doc
    state = json.loads((plan.parent / ".cloudorch" / "state" / "regions.json").read_text())["state"]["resources"]
    for key, region in REGIONS.items():
        ec2 = _ec2(moto_url, region)
        vpc_id = state[f"module.net[{key}].vpc"]["id"]
        (vpc,) = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"]
        assert vpc["CidrBlock"] == f"{CIDRS[key]}.0.0/16"
        assert {t["Key"]: t["Value"] for t in vpc.get("Tags", [])}["Name"] == f"net-{key}"
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
        assert sorted((s["CidrBlock"], s["AvailabilityZone"]) for s in subnets) == [
            (f"{CIDRS[key]}.1.0/24", f"{region}a"),
            (f"{CIDRS[key]}.2.0/24", f"{region}b"),
        ]
        groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
        names = sorted(g["GroupName"] for g in groups if g["GroupName"] != "default")
        assert names == (["to-us", f"web-{key}"] if key == "eu" else [f"web-{key}"])
        # nothing of this instance leaked into another region
        other = [r for r in REGIONS.values() if r != region]
        for o in other:
            assert vpc_id not in {v["VpcId"] for v in _ec2(moto_url, o).describe_vpcs()["Vpcs"]}
    to_us = next(
        g for g in _ec2(moto_url, "eu-west-1").describe_security_groups()["SecurityGroups"] if g["GroupName"] == "to-us"
    )
    assert to_us["VpcId"] == state["module.net[eu].vpc"]["id"]
    assert to_us["IpPermissions"][0]["IpRanges"][0]["CidrIp"] == "10.20.0.0/16"

    code, outputs = _cli(capsys, "output", plan, "--json")
    assert code == 0
    assert outputs["vpcs"] == {k: state[f"module.net[{k}].vpc"]["id"] for k in REGIONS}
    assert outputs["ap_subnets"]["b"] == state["module.net[ap].module.subnet[b].subnet"]["id"]

    code, again = _cli(capsys, "plan", plan, "--detailed-exitcode")
    assert code == 0, again

"""Replacement order and creates that never duplicate, against moto through the real CLI.

The order is what AWS sees: every call the provider's boto3 clients make is recorded through
botocore's `before-call` event (`cloudorch_aws.faults.CallLog`); faults are answered on the wire.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures"


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, Any]:
    from cloudorch.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.lstrip().startswith("{") else out


@pytest.fixture
def net(tmp_path: Path) -> Path:
    plan = tmp_path / "replace_net.yaml"
    shutil.copy(FIXTURES / "replace_net.yaml", plan)
    return plan


def _ours(aws: Any, kind: str) -> list[str]:
    """Ids of the VPCs or subnets that carry a cloudorch address tag."""
    ec2 = aws("ec2")
    tag = [{"Name": "tag-key", "Values": ["cloudorch:address"]}]
    if kind == "vpc":
        return sorted(v["VpcId"] for v in ec2.describe_vpcs(Filters=tag)["Vpcs"])
    return sorted(s["SubnetId"] for s in ec2.describe_subnets(Filters=tag)["Subnets"])


def _state(plan: Path) -> dict[str, Any]:
    return json.loads((plan.parent / ".cloudorch" / "state" / "replnet.json").read_text())["state"]  # type: ignore[no-any-return]


ORDERED = ("ec2.CreateVpc", "ec2.DeleteVpc", "ec2.CreateSubnet", "ec2.DeleteSubnet")


def test_default_replace_deletes_the_dependent_old_object_first(
    net: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloudorch_aws import AwsProvider
    from cloudorch_aws.faults import CallLog

    assert _cli(capsys, "apply", net, "--auto-approve")[0] == 0
    log = CallLog()
    AwsProvider.client_hooks.append(log)
    code, doc = _cli(capsys, "apply", net, "--auto-approve", "--json", "--var", "cidr=10.2")
    assert code == 0, doc
    # the subnet and the group use the VPC: their old objects go first, then the VPC's; new ones after
    calls = log.named(*ORDERED, "ec2.DeleteSecurityGroup", "ec2.CreateSecurityGroup")
    assert sorted(calls[:2]) == ["ec2.DeleteSecurityGroup", "ec2.DeleteSubnet"], calls
    assert calls[2:4] == ["ec2.DeleteVpc", "ec2.CreateVpc"], calls
    assert sorted(calls[4:]) == ["ec2.CreateSecurityGroup", "ec2.CreateSubnet"], calls
    assert len(_ours(aws, "vpc")) == 1 and len(_ours(aws, "subnet")) == 1


def test_create_before_destroy_makes_new_then_moves_dependents_then_deletes_old(
    net: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloudorch_aws import AwsProvider
    from cloudorch_aws.faults import CallLog

    text = net.read_text().replace(
        "enable_dns_hostnames: true}\n", "enable_dns_hostnames: true}\n    lifecycle: {create_before_destroy: true}\n"
    )
    net.write_text(text)
    assert _cli(capsys, "apply", net, "--auto-approve")[0] == 0
    old_vpc = _state(net)["resources"]["vpc"]["id"]
    log = CallLog()
    AwsProvider.client_hooks.append(log)
    code, doc = _cli(capsys, "apply", net, "--auto-approve", "--json", "--var", "cidr=10.2")
    assert code == 0, doc
    calls = log.named(*ORDERED)
    # new VPC first; the old VPC is deleted last, after its subnet moved to the new one
    assert calls[-1] == "ec2.DeleteVpc", calls
    assert calls.index("ec2.CreateVpc") < calls.index("ec2.CreateSubnet") < calls.index("ec2.DeleteVpc")
    assert calls.index("ec2.DeleteSubnet") < calls.index("ec2.DeleteVpc")
    deleted = [p["VpcId"] for name, p in log.calls if name == "ec2.DeleteVpc"]
    assert deleted == [old_vpc]
    assert _ours(aws, "vpc") == [_state(net)["resources"]["vpc"]["id"]] and _state(net)["deposed"] == {}


def test_one_503_inside_a_vpc_create_makes_exactly_one_vpc(
    net: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloudorch_aws import AwsProvider
    from cloudorch_aws.faults import CallLog, Fault

    once = Fault("ec2", "ModifyVpcAttribute", 503, "ServiceUnavailable", "injected", times=1)
    log = CallLog()
    AwsProvider.client_hooks.extend([once, log])
    code, doc = _cli(capsys, "apply", net, "--auto-approve", "--json")
    assert code == 0, doc
    assert once.injected == 1
    assert log.named("ec2.CreateVpc") == ["ec2.CreateVpc"]  # the step was retried, never the create
    assert _ours(aws, "vpc") == [_state(net)["resources"]["vpc"]["id"]]


def test_a_create_whose_later_step_keeps_failing_is_recorded_tainted_and_replaced(
    net: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloudorch_aws import AwsProvider
    from cloudorch_aws.faults import Fault

    refused = Fault("ec2", "ModifyVpcAttribute", 403, "UnauthorizedOperation", "not allowed")
    AwsProvider.client_hooks.append(refused)
    code, doc = _cli(capsys, "apply", net, "--auto-approve", "--json")
    assert code == 1
    assert list(doc["result"]["failed"]) == ["vpc"] and "subnet" in doc["result"]["skipped"]
    made = _ours(aws, "vpc")
    assert len(made) == 1  # one object, and state knows it
    rec = _state(net)["resources"]["vpc"]
    assert rec["id"] == made[0] and rec["tainted"] is True
    AwsProvider.client_hooks.remove(refused)

    code, text = _cli(capsys, "plan", net)
    assert "replace (tainted)" in text, text
    code, doc = _cli(capsys, "apply", net, "--auto-approve", "--json")
    assert code == 0, doc
    rec = _state(net)["resources"]["vpc"]
    assert not rec["tainted"] and _ours(aws, "vpc") == [rec["id"]] and rec["id"] != made[0]


VPC_CBD = """version: 1
name: vpcbd
variables:
  cidr: {type: string, default: 10.5.0.0/16}
providers:
  aws: {region: us-east-1}
resources:
  net:
    type: aws.vpc
    properties: {cidr_block: "${var.cidr}"}
    lifecycle: {create_before_destroy: true}
"""


def test_recover_after_a_kill_inside_a_replace_adopts_the_new_vpc_not_the_old(
    tmp_path: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed after AWS made the new VPC and before the journal said so: both VPCs carry the
    address tag; recovery tells them apart by the ids state and the journal already know."""
    from cloudorch.state.backends.local import LocalBackend
    from cloudorch.state.journal import start_journal

    plan = tmp_path / "vpcbd.yaml"
    plan.write_text(VPC_CBD)
    assert _cli(capsys, "apply", plan, "--auto-approve")[0] == 0
    doc = json.loads((tmp_path / ".cloudorch" / "state" / "vpcbd.json").read_text())["state"]
    old = doc["resources"]["net"]["id"]
    # what the killed apply had done: the started line of the replace's create, then the cloud call
    journal = start_journal(
        LocalBackend(tmp_path / ".cloudorch", "vpcbd"),
        {"plan_name": "vpcbd", "state_key": "default", "lineage": doc["lineage"], "serial": doc["serial"]},
    )
    props = {**doc["resources"]["net"]["properties"], "cidr_block": "10.6.0.0/16"}
    journal.started(
        {
            "op": "net",
            "address": "net",
            "action": "replace",
            "type": "aws.vpc",
            "provider": "aws",
            "deposed_key": "0000abcd",
            "known_ids": [old],
            "properties": props,
            "depends_on": [],
        }
    )
    journal.abandon()
    made = aws("ec2").create_vpc(
        CidrBlock="10.6.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "cloudorch:address", "Value": "net"}]}],
    )["Vpc"]["VpcId"]
    assert sorted([old, made]) == _ours(aws, "vpc")

    code, out = _cli(capsys, "recover", plan, "--json")
    assert code == 0, out
    assert out["report"]["adopted"] == ["net"]
    doc = json.loads((tmp_path / ".cloudorch" / "state" / "vpcbd.json").read_text())["state"]
    assert doc["resources"]["net"]["id"] == made  # the new one
    assert [(d["id"], d["key"]) for d in doc["deposed"]["net"]] == [(old, "0000abcd")]

    code, out = _cli(capsys, "apply", plan, "--auto-approve", "--json", "--var", "cidr=10.6.0.0/16")
    assert code == 0, out
    assert _ours(aws, "vpc") == [made]  # the old one deleted, no third one made


def test_a_failed_create_is_retried_only_after_find_shows_it_made_nothing(
    net: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloudorch_aws import AwsProvider
    from cloudorch_aws.faults import CallLog, Fault

    once = Fault("ec2", "CreateVpc", 503, "ServiceUnavailable", "injected", times=1)
    log = CallLog()
    AwsProvider.client_hooks.extend([once, log])
    code, doc = _cli(capsys, "apply", net, "--auto-approve", "--json")
    assert code == 0, doc
    assert doc["result"]["retries"] == 1
    calls = log.named("ec2.CreateVpc", "ec2.DescribeVpcs")
    # the retry came after a look for a VPC carrying the address tag
    assert calls[:3] == ["ec2.CreateVpc", "ec2.DescribeVpcs", "ec2.CreateVpc"], calls
    assert _ours(aws, "vpc") == [_state(net)["resources"]["vpc"]["id"]]


def _cbd(net: Path) -> None:
    net.write_text(
        net.read_text().replace(
            "enable_dns_hostnames: true}\n",
            "enable_dns_hostnames: true}\n    lifecycle: {create_before_destroy: true}\n",
        )
    )


@pytest.mark.parametrize("order", ["default", "create_before_destroy"])
def test_a_vpc_whose_old_delete_meets_its_subnet_once_still_converges(
    order: str, net: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """AWS answers DeleteVpc with DependencyViolation while a deleted subnet is still being torn
    down: the replace of a VPC with subnets retries it and converges."""
    from cloudorch_aws import AwsProvider
    from cloudorch_aws.faults import Fault

    if order == "create_before_destroy":
        _cbd(net)
    assert _cli(capsys, "apply", net, "--auto-approve")[0] == 0
    busy = Fault("ec2", "DeleteVpc", 400, "DependencyViolation", "has dependencies and cannot be deleted", times=1)
    AwsProvider.client_hooks.append(busy)
    code, doc = _cli(capsys, "apply", net, "--auto-approve", "--json", "--var", "cidr=10.2")
    assert code == 0, doc
    assert busy.injected == 1
    state = _state(net)
    assert _ours(aws, "vpc") == [state["resources"]["vpc"]["id"]]
    assert _ours(aws, "subnet") == [state["resources"]["subnet"]["id"]]
    assert state["deposed"] == {}
    code, text = _cli(capsys, "plan", net, "--var", "cidr=10.2")
    assert code == 0 and "No changes" in text, text


@pytest.mark.parametrize("subnet_cbd", [False, True], ids=["vpc_cbd", "both_cbd"])
def test_a_replace_of_a_vpc_with_subnets_left_half_done_converges_on_the_next_apply(
    subnet_cbd: bool, net: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """create_before_destroy on the VPC, and the old subnet cannot be deleted (refused): the old
    VPC stays deposed behind it (and the old subnet too, when it is create_before_destroy as
    well). The next apply deletes the old subnet before the deposed VPC (else DeleteVpc meets
    DependencyViolation forever) and converges on one VPC and one subnet."""
    from cloudorch_aws import AwsProvider
    from cloudorch_aws.faults import CallLog, Fault

    _cbd(net)
    if subnet_cbd:
        subnet = 'cidr_block: "${var.cidr}.1.0/24"}\n'
        net.write_text(net.read_text().replace(subnet, subnet + "    lifecycle: {create_before_destroy: true}\n"))
    assert _cli(capsys, "apply", net, "--auto-approve")[0] == 0
    old_vpc = _state(net)["resources"]["vpc"]["id"]
    refused = Fault("ec2", "DeleteSubnet", 403, "UnauthorizedOperation", "not allowed")
    AwsProvider.client_hooks.append(refused)
    code, doc = _cli(capsys, "apply", net, "--auto-approve", "--json", "--var", "cidr=10.2")
    assert code == 1, doc
    AwsProvider.client_hooks.remove(refused)
    assert old_vpc in _ours(aws, "vpc") and len(_ours(aws, "vpc")) == 2
    deposed = _state(net)["deposed"]
    assert [d["id"] for d in deposed.get("vpc", [])] == [old_vpc]
    assert ("subnet" in deposed) == subnet_cbd, deposed
    assert len(_ours(aws, "subnet")) >= 1

    log = CallLog()
    AwsProvider.client_hooks.append(log)
    code, doc = _cli(capsys, "apply", net, "--auto-approve", "--json", "--var", "cidr=10.2")
    assert code == 0, doc
    calls = log.named("ec2.DeleteSubnet", "ec2.DeleteVpc")
    # in order, and once each: a DeleteVpc sent before its subnet was gone would meet DependencyViolation
    assert calls == ["ec2.DeleteSubnet", "ec2.DeleteVpc"], calls
    state = _state(net)
    assert _ours(aws, "vpc") == [state["resources"]["vpc"]["id"]] != [old_vpc]
    assert _ours(aws, "subnet") == [state["resources"]["subnet"]["id"]]
    assert state["deposed"] == {}
    code, text = _cli(capsys, "plan", net, "--var", "cidr=10.2")
    assert code == 0 and "No changes" in text, text

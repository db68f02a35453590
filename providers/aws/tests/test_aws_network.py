"""What the conformance kit does not cover for the EventBridge and EC2 routing types, against moto:
a security group and its standalone rules managing one group without undoing each other, a rule
naming another group, a route table association moved in place (a new id), a gateway whose attach
failed kept tainted and never made twice, event patterns compared as JSON, and the cross-field
check of a rule's trigger. Plans go through `cloudorch.run` on plan files written to `tmp_path`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cloudorch.errors import CloudorchError
from cloudorch.provider.contract import ReadRequest
from cloudorch.run.options import RunOptions
from cloudorch_aws.resource import ADDRESS_TAG

Aws = Callable[[str], Any]


def _write(path: Path, resources: dict[str, Any]) -> RunOptions:
    doc = {"version": 1, "name": "network", "providers": {"aws": {"region": "us-east-1"}}, "resources": resources}
    path.write_text(json.dumps(doc, indent=2))  # JSON is YAML
    return RunOptions(plan_file=path, command="test")


def _changes(opts: RunOptions) -> list[Any]:
    from cloudorch.run.plan import plan

    return [c for c in plan(opts).changeset.changes if c.is_change]


def _apply(opts: RunOptions, *, ok: bool = True) -> Any:
    from cloudorch.run.apply import apply

    result = apply(opts)
    assert result is not None
    if ok:
        assert result.ok, "; ".join(f"{a}: {e}" for a, e in result.failed.items())
    return result


def _records(opts: RunOptions) -> dict[str, Any]:
    from cloudorch.run.state_ops import state_list

    return {r.address: r for r in state_list(opts)}


def _destroy(opts: RunOptions) -> None:
    _apply(replace(opts, destroy=True))


# ----------------------------------------------------------------------------- security groups


def _rule(group: str, **kw: Any) -> dict[str, Any]:
    return {"type": "aws.security_group_rule", "properties": {"security_group_id": f"${{resources.{group}.id}}", **kw}}


def _db_group(ingress_port: int) -> dict[str, Any]:
    return {
        "type": "aws.security_group",
        "properties": {
            "name": "db",
            "vpc_id": "${resources.vpc.id}",
            "ingress": [
                {"protocol": "tcp", "from_port": ingress_port, "to_port": ingress_port, "cidr_blocks": ["10.0.0.0/8"]}
            ],
            "egress": [{"protocol": "-1", "cidr_blocks": ["0.0.0.0/0"]}],
        },
    }


def _groups_plan(ingress_port: int) -> dict[str, Any]:
    return {
        "vpc": {"type": "aws.vpc", "properties": {"cidr_block": "10.20.0.0/16"}},
        "app": {"type": "aws.security_group", "properties": {"name": "app", "vpc_id": "${resources.vpc.id}"}},
        "db": _db_group(ingress_port),
        "ssh": _rule("db", type="ingress", protocol="tcp", from_port=22, to_port=22, cidr_blocks=["192.168.0.0/16"]),
        "from_app": _rule(
            "db",
            type="ingress",
            protocol="tcp",
            from_port=5432,
            to_port=5432,
            source_security_group_id="${resources.app.id}",
        ),
        "out_v6": _rule("db", type="egress", protocol="tcp", from_port=443, to_port=443, ipv6_cidr_blocks=["::/0"]),
        "out_vpn": _rule(
            "db", type="egress", protocol="udp", from_port=500, to_port=500, cidr_blocks=["172.16.0.0/12"]
        ),
    }


def _rule_keys(aws: Aws, group_id: str) -> set[tuple[Any, ...]]:
    rules = aws("ec2").describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])
    return {
        (
            r["IsEgress"],
            r["IpProtocol"],
            r["FromPort"],
            r.get("CidrIpv4") or r.get("CidrIpv6") or r.get("ReferencedGroupInfo", {}).get("GroupId"),
        )
        for r in rules["SecurityGroupRules"]
    }


def test_a_group_and_its_standalone_rules_do_not_fight(tmp_path: Path, aws: Aws) -> None:
    opts = _write(tmp_path / "groups.yaml", _groups_plan(443))
    _apply(opts)
    assert _changes(opts) == [], "a standalone rule shows as drift of its group (or the other way round)"
    recs = _records(opts)
    db, app = recs["db"].id, recs["app"].id
    standalone = {
        (False, "tcp", 22, "192.168.0.0/16"),
        (False, "tcp", 5432, app),
        (True, "tcp", 443, "::/0"),
        (True, "udp", 500, "172.16.0.0/12"),
    }
    assert standalone <= _rule_keys(aws, db)
    assert recs["from_app"].properties["source_security_group_id"] == app
    assert all(recs[a].id.startswith("sgr-") for a in ("ssh", "from_app", "out_v6", "out_vpn"))

    # the group's own rules change: its update must leave the standalone rules alone
    opts = _write(tmp_path / "groups.yaml", _groups_plan(8443))
    changes = _changes(opts)
    assert [(c.address, c.action.value) for c in changes] == [("db", "update")]
    assert changes[0].before is not None
    assert changes[0].before["ingress"] == [
        {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["10.0.0.0/8"]}
    ], "the group reads the standalone rules as its own"
    _apply(opts)
    keys = _rule_keys(aws, db)
    assert standalone <= keys, f"the group's update revoked standalone rules: {standalone - keys}"
    assert (False, "tcp", 8443, "10.0.0.0/8") in keys and (False, "tcp", 443, "10.0.0.0/8") not in keys
    assert _changes(opts) == []

    # a standalone rule revoked out of band is drift of the rule, not of the group
    aws("ec2").revoke_security_group_ingress(GroupId=db, SecurityGroupRuleIds=[_records(opts)["ssh"].id])
    assert [(c.address, c.action.value) for c in _changes(opts)] == [("ssh", "create")]
    _apply(opts)
    _destroy(opts)


def test_a_rule_is_one_source(tmp_path: Path) -> None:
    rule = {"security_group_id": "sg-1", "type": "ingress", "protocol": "tcp", "from_port": 1, "to_port": 1}
    opts = _write(
        tmp_path / "two.yaml",
        {"r": {"type": "aws.security_group_rule", "properties": {**rule, "cidr_blocks": ["10.0.0.0/8", "1.2.3.4/32"]}}},
    )
    with pytest.raises(CloudorchError, match="exactly one source"):
        _changes(opts)


def test_a_rule_found_after_its_answer_was_lost(provider: Any, aws: Aws) -> None:
    """`find` names the rule by its tuple (what a lost AuthorizeSecurityGroupIngress made), even
    without the address tag: a rule the group holds once cannot be made twice."""
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]
    made = ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "10.1.0.0/16"}]}],
    )["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    rt = provider.resource_type("aws.security_group_rule")
    props = rt.Properties.model_validate(
        {
            "security_group_id": group,
            "type": "ingress",
            "protocol": "6",
            "from_port": 80,
            "to_port": 80,
            "cidr_blocks": ["10.1.0.0/16"],
        }
    )
    found = rt.find("web.http", props)
    assert found is not None and found.id == made
    assert rt.find("web.http", props.model_copy(update={"type": "egress"})) is None
    with pytest.raises(CloudorchError, match=r"InvalidPermission\.Duplicate") as err:
        rt.create("web.http", props)
    assert "import it" in (err.value.hint or "")


def test_the_description_of_a_rule_naming_a_group_reads_back(provider: Any, aws: Aws) -> None:
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.31.0.0/16")["Vpc"]["VpcId"]
    a = ec2.create_security_group(GroupName="a", Description="a", VpcId=vpc)["GroupId"]
    b = ec2.create_security_group(GroupName="b", Description="b", VpcId=vpc)["GroupId"]
    rt = provider.resource_type("aws.security_group_rule")
    props = rt.Properties.model_validate(
        {
            "security_group_id": a,
            "type": "ingress",
            "protocol": "tcp",
            "from_port": 1,
            "to_port": 1,
            "source_security_group_id": b,
            "description": "b to a",
        }
    )
    # moto 5.2 leaves the description out of DescribeSecurityGroupRules for a rule naming another
    # group (real EC2 returns it); the type reads it from DescribeSecurityGroups then
    made = rt.create("r", props)
    assert made.properties["description"] == "b to a"
    assert rt.read("r", made.id, props).properties["description"] == "b to a"
    [bulk] = rt.read_many([ReadRequest("r", made.id, props)])
    assert bulk is not None and bulk.properties["description"] == "b to a"


# ----------------------------------------------------------------------------- routing


def _routing_plan(table: str) -> dict[str, Any]:
    return {
        "vpc": {"type": "aws.vpc", "properties": {"cidr_block": "10.40.0.0/16"}},
        "subnet": {
            "type": "aws.subnet",
            "properties": {"vpc_id": "${resources.vpc.id}", "cidr_block": "10.40.1.0/24"},
        },
        "gw": {"type": "aws.internet_gateway", "properties": {"vpc_id": "${resources.vpc.id}"}},
        "public": {
            "type": "aws.route_table",
            "properties": {
                "vpc_id": "${resources.vpc.id}",
                "routes": [{"destination_cidr_block": "0.0.0.0/0", "gateway_id": "${resources.gw.id}"}],
            },
        },
        "private": {"type": "aws.route_table", "properties": {"vpc_id": "${resources.vpc.id}"}},
        "assoc": {
            "type": "aws.route_table_association",
            "properties": {"route_table_id": f"${{resources.{table}.id}}", "subnet_id": "${resources.subnet.id}"},
        },
    }


def _table_of(aws: Aws, subnet: str) -> list[tuple[str, str]]:
    got = aws("ec2").describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])
    return [
        (t["RouteTableId"], a["RouteTableAssociationId"])
        for t in got["RouteTables"]
        for a in t["Associations"]
        if a.get("SubnetId") == subnet
    ]


def test_an_association_moves_to_another_table_in_place(tmp_path: Path, aws: Aws) -> None:
    opts = _write(tmp_path / "routing.yaml", _routing_plan("public"))
    _apply(opts)
    assert _changes(opts) == []
    recs = _records(opts)
    before = recs["assoc"].id
    assert _table_of(aws, recs["subnet"].id) == [(recs["public"].id, before)]

    opts = _write(tmp_path / "routing.yaml", _routing_plan("private"))
    assert [(c.address, c.action.value) for c in _changes(opts)] == [("assoc", "update")]
    _apply(opts)
    recs = _records(opts)
    after = recs["assoc"].id
    assert after != before, "ReplaceRouteTableAssociation gives a new id, which state must record"
    assert _table_of(aws, recs["subnet"].id) == [(recs["private"].id, after)]
    assert recs["assoc"].properties["route_table_id"] == recs["private"].id
    assert _changes(opts) == []
    _destroy(opts)
    assert _table_of(aws, recs["subnet"].id) == []


def test_a_gateway_whose_attach_failed_is_tainted_and_never_made_twice(tmp_path: Path, aws: Aws) -> None:
    vpc = aws("ec2").create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]

    def gateways() -> list[dict[str, Any]]:
        got = aws("ec2").describe_internet_gateways(Filters=[{"Name": f"tag:{ADDRESS_TAG}", "Values": ["gw"]}])
        return list(got["InternetGateways"])

    opts = _write(
        tmp_path / "gw.yaml",
        {"gw": {"type": "aws.internet_gateway", "properties": {"vpc_id": "vpc-0123456789abcdef0"}}},
    )
    result = _apply(opts, ok=False)
    assert "gw" in result.failed
    made = gateways()
    assert len(made) == 1 and made[0]["Attachments"] == []
    rec = _records(opts)["gw"]
    assert rec.tainted and rec.id == made[0]["InternetGatewayId"]

    opts = _write(tmp_path / "gw.yaml", {"gw": {"type": "aws.internet_gateway", "properties": {"vpc_id": vpc}}})
    assert [c.action.value for c in _changes(opts)] == ["replace"]
    _apply(opts)
    made = gateways()
    assert len(made) == 1 and made[0]["InternetGatewayId"] != rec.id
    assert [a["VpcId"] for a in made[0]["Attachments"]] == [vpc]
    assert _changes(opts) == []
    _destroy(opts)
    assert gateways() == []


# ----------------------------------------------------------------------------- EventBridge


def _events_plan(pattern: Any, **rule: Any) -> dict[str, Any]:
    return {
        "q": {"type": "aws.sqs_queue", "properties": {"name": "orders-in"}},
        "orders": {"type": "aws.eventbridge_rule", "properties": {"name": "orders", "event_pattern": pattern, **rule}},
        "to_q": {
            "type": "aws.eventbridge_target",
            "properties": {"rule": "${resources.orders.name}", "target_id": "q", "arn": "${resources.q.arn}"},
        },
    }


def test_event_patterns_are_compared_as_json(tmp_path: Path, aws: Aws) -> None:
    text = '{ "detail-type": ["OrderPlaced"],   "source": ["app.orders"] }'
    opts = _write(tmp_path / "events.yaml", _events_plan(text))
    _apply(opts)
    assert _changes(opts) == []
    # AWS hands the pattern back as text of its own; the same JSON written otherwise is no drift
    pattern = {"source": ["app.orders"], "detail-type": ["OrderPlaced"]}
    aws("events").put_rule(Name="orders", EventPattern=json.dumps(pattern, indent=4))
    opts = _write(tmp_path / "events.yaml", _events_plan(pattern))
    assert _changes(opts) == []
    # a real change of the pattern is an in-place update
    aws("events").put_rule(Name="orders", EventPattern=json.dumps({"source": ["other"]}))
    assert [(c.address, c.action.value) for c in _changes(opts)] == [("orders", "update")]
    _apply(opts)
    assert json.loads(aws("events").describe_rule(Name="orders")["EventPattern"]) == pattern
    targets = aws("events").list_targets_by_rule(Rule="orders")["Targets"]
    assert [t["Id"] for t in targets] == ["q"]
    assert _records(opts)["to_q"].id == "orders/q"
    _destroy(opts)  # the target goes before its rule (AWS refuses to delete a rule with targets)
    assert aws("events").list_rules(NamePrefix="orders")["Rules"] == []


@pytest.mark.parametrize(
    "rule",
    [
        {"event_pattern": {"source": ["a"]}, "schedule_expression": "rate(5 minutes)"},
        {},
    ],
    ids=["both", "neither"],
)
def test_a_rule_has_exactly_one_trigger(tmp_path: Path, rule: dict[str, Any]) -> None:
    opts = _write(tmp_path / "r.yaml", {"r": {"type": "aws.eventbridge_rule", "properties": {"name": "r", **rule}}})
    with pytest.raises(CloudorchError, match="exactly one of `event_pattern` and `schedule_expression`"):
        _changes(opts)


def test_the_trigger_check_waits_for_values_unknown_at_plan(tmp_path: Path) -> None:
    """A schedule computed from another resource is not known at plan: the check across the two
    properties runs at apply, not against the half-known plan."""
    opts = _write(
        tmp_path / "r.yaml",
        {
            "n": {"type": "core.null", "properties": {"values": {"every": "rate(5 minutes)"}}},
            "r": {
                "type": "aws.eventbridge_rule",
                "properties": {"name": "r", "schedule_expression": "${resources.n.id}"},
            },
        },
    )
    changes = _changes(opts)
    assert [(c.address, c.action.value) for c in changes] == [("n", "create"), ("r", "create")]
    assert "schedule_expression" in changes[1].after_unknown


# ----------------------------------------------------------------------------- refresh in bulk


def test_refresh_lists_in_bulk(tmp_path: Path) -> None:
    """A no-change plan reads these types with list calls answering many objects at once."""
    from cloudorch_aws import AwsProvider
    from cloudorch_aws.faults import CallLog

    resources: dict[str, Any] = {
        "vpc": {"type": "aws.vpc", "properties": {"cidr_block": "10.60.0.0/16"}},
        "sg": {"type": "aws.security_group", "properties": {"name": "sg", "vpc_id": "${resources.vpc.id}"}},
        "q": {"type": "aws.sqs_queue", "properties": {"name": "bulk"}},
    }
    for i in range(2):
        resources[f"gw{i}"] = {"type": "aws.internet_gateway", "properties": {"tags": {"n": str(i)}}}
        resources[f"rt{i}"] = {"type": "aws.route_table", "properties": {"vpc_id": "${resources.vpc.id}"}}
        resources[f"sn{i}"] = {
            "type": "aws.subnet",
            "properties": {"vpc_id": "${resources.vpc.id}", "cidr_block": f"10.60.{i}.0/24"},
        }
        resources[f"as{i}"] = {
            "type": "aws.route_table_association",
            "properties": {"route_table_id": f"${{resources.rt{i}.id}}", "subnet_id": f"${{resources.sn{i}.id}}"},
        }
        resources[f"sr{i}"] = _rule(
            "sg", type="ingress", protocol="tcp", from_port=i + 1, to_port=i + 1, cidr_blocks=["10.0.0.0/8"]
        )
        resources[f"ev{i}"] = {
            "type": "aws.eventbridge_rule",
            "properties": {"name": f"ev{i}", "schedule_expression": "rate(1 hour)"},
        }
        resources[f"tg{i}"] = {
            "type": "aws.eventbridge_target",
            "properties": {"rule": "${resources.ev0.name}", "target_id": f"t{i}", "arn": "${resources.q.arn}"},
        }
    opts = _write(tmp_path / "bulk.yaml", resources)
    _apply(opts)
    log = CallLog()
    AwsProvider.client_hooks.append(log)  # conftest's `moto_url` restores the list after the test
    assert _changes(opts) == []
    ops = [name for name, _ in log.calls]
    assert ops.count("ec2.DescribeInternetGateways") == 1
    assert ops.count("ec2.DescribeRouteTables") == 2  # the tables, and the associations
    assert ops.count("events.ListTargetsByRule") == 1  # the two targets of one rule
    assert ops.count("events.ListRules") == 1 and "events.DescribeRule" not in ops
    # the rules of one group: one call, plus the group's own look at which rules are standalone
    assert ops.count("ec2.DescribeSecurityGroupRules") == 2
    assert len(ops) <= 2 * len(resources), ops


# ----------------------------------------------------------------------------- data sources


def test_lookup_reads_objects_cloudorch_does_not_manage(provider: Any, aws: Aws) -> None:
    from cloudorch.provider.contract import LookupQuery

    ec2, events = aws("ec2"), aws("events")
    vpc = ec2.create_vpc(CidrBlock="10.70.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.70.1.0/24")["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway(
        TagSpecifications=[{"ResourceType": "internet-gateway", "Tags": [{"Key": "Name", "Value": "shared"}]}]
    )["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    rtb = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    assoc = ec2.associate_route_table(RouteTableId=rtb, SubnetId=subnet)["AssociationId"]
    group = ec2.create_security_group(GroupName="shared", Description="shared", VpcId=vpc)["GroupId"]
    rule = ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.9.0.0/16"}]}],
    )["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    events.put_rule(Name="nightly", ScheduleExpression="cron(0 3 * * ? *)")
    events.put_targets(Rule="nightly", Targets=[{"Id": "t", "Arn": "arn:aws:sqs:us-east-1:123456789012:q"}])

    def ids(type_name: str, **query: Any) -> list[str]:
        return [o.id for o in provider.resource_type(type_name).lookup("data.x", LookupQuery(**query))]

    assert ids("aws.internet_gateway", filter={"tags": {"Name": "shared"}}) == [igw]
    assert ids("aws.internet_gateway", filter={"vpc_id": vpc}) == [igw]
    assert ids(
        "aws.route_table",
        filter={
            "vpc_id": vpc,
            "routes": [
                {
                    "destination_cidr_block": "0.0.0.0/0",
                    "gateway_id": igw,
                    "nat_gateway_id": None,
                    "vpc_peering_connection_id": None,
                }
            ],
        },
    ) == [rtb]
    assert ids("aws.route_table_association", filter={"subnet_id": subnet}) == [assoc]
    assert ids("aws.route_table_association", id=assoc) == [assoc]
    assert ids("aws.security_group_rule", filter={"security_group_id": group, "from_port": 22}) == [rule]
    assert ids("aws.eventbridge_rule", filter={"name": "nightly"}) == ["nightly"]
    assert ids("aws.eventbridge_target", filter={"rule": "nightly"}) == ["nightly/t"]
    assert ids("aws.eventbridge_rule", id="missing") == []


def test_a_create_never_takes_over_a_rule_or_target_made_by_someone_else(provider: Any, aws: Aws) -> None:
    """PutRule and PutTargets are upserts: without a look first, a create would silently adopt and
    rewrite a foreign rule or target of the same name."""
    aws("events").put_rule(Name="theirs", ScheduleExpression="rate(1 hour)", Description="not ours")
    aws("events").put_targets(Rule="theirs", Targets=[{"Id": "t", "Arn": "arn:aws:sqs:us-east-1:123456789012:a"}])
    rules, targets = provider.resource_type("aws.eventbridge_rule"), provider.resource_type("aws.eventbridge_target")
    with pytest.raises(CloudorchError, match="already exists") as err:
        rules.create(
            "mine", rules.Properties.model_validate({"name": "theirs", "schedule_expression": "rate(5 minutes)"})
        )
    assert "cloudorch import mine theirs" in (err.value.hint or "")
    assert aws("events").describe_rule(Name="theirs")["Description"] == "not ours"
    arn = "arn:aws:sqs:us-east-1:123456789012:b"
    with pytest.raises(CloudorchError, match="already has a target t"):
        targets.create("mine", targets.Properties.model_validate({"rule": "theirs", "target_id": "t", "arn": arn}))
    assert aws("events").list_targets_by_rule(Rule="theirs")["Targets"][0]["Arn"].endswith(":a")

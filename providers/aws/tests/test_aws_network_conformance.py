"""The conformance kit on the EventBridge and EC2 routing types (rule, target, internet gateway,
route table and its associations, security group rule), against moto; the seam and `Made` are
those of test_aws_conformance.py. Censuses count with plain boto3 clients."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from test_aws_conformance import PROVIDER, SEAM, Made, _client, _tagged

from cloudorch.provider.contract import Observed, ResourceType
from cloudorch.testing.conformance import ConformanceEnv, ConformanceExample, ConformanceSuite
from cloudorch_aws import AwsProvider
from cloudorch_aws.events import split_rule_id, split_target_id


def _rules(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    got = _client("events").list_rules(NamePrefix=props["name"], EventBusName=props.get("event_bus_name", "default"))
    return sum(r["Name"] == props["name"] for r in got["Rules"])


def _targets(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    got = _client("events").list_targets_by_rule(Rule=props["rule"])
    return sum(t["Id"] == props["target_id"] for t in got["Targets"])


def _gateways(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    return sum(_tagged(g.get("Tags"), address) for g in _client("ec2").describe_internet_gateways()["InternetGateways"])


def _tables(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    got = _client("ec2").describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [props["vpc_id"]]}])
    return sum(_tagged(t.get("Tags"), address) for t in got["RouteTables"])


def _associations(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    got = _client("ec2").describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [props["subnet_id"]]}]
    )
    return sum(a.get("SubnetId") == props["subnet_id"] for t in got["RouteTables"] for a in t["Associations"])


def _sg_rules(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    got = _client("ec2").describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [props["security_group_id"]]}]
    )["SecurityGroupRules"]
    return sum(
        r.get("CidrIpv4") in props.get("cidr_blocks", [])
        and r["FromPort"] == props["from_port"]
        and bool(r["IsEgress"]) == (props["type"] == "egress")
        for r in got
    )


def _drift_rule(rt: ResourceType[Any], seen: Observed) -> None:
    bus, name = split_rule_id(seen.id)
    _client("events").disable_rule(Name=name, EventBusName=bus)


def _drift_target(rt: ResourceType[Any], seen: Observed) -> None:
    bus, rule, tid = split_target_id(seen.id)
    _client("events").put_targets(
        Rule=rule, EventBusName=bus, Targets=[{"Id": tid, "Arn": seen.properties["arn"], "Input": "{}"}]
    )


def _drift_gateway(rt: ResourceType[Any], seen: Observed) -> None:
    _client("ec2").detach_internet_gateway(InternetGatewayId=seen.id, VpcId=seen.properties["vpc_id"])


def _drift_table(rt: ResourceType[Any], seen: Observed) -> None:
    _client("ec2").delete_route(RouteTableId=seen.id, DestinationCidrBlock="0.0.0.0/0")


def _drift_association(rt: ResourceType[Any], seen: Observed) -> None:
    _client("ec2").disassociate_route_table(AssociationId=seen.id)


def _drift_sg_rule(rt: ResourceType[Any], seen: Observed) -> None:
    # DescribeSecurityGroupRules shows the new text; the rule's tuple stays, so it is an update
    p = seen.properties
    _client("ec2").update_security_group_rule_descriptions_ingress(
        GroupId=p["security_group_id"],
        IpPermissions=[
            {
                "IpProtocol": p["protocol"],
                "FromPort": p["from_port"],
                "ToPort": p["to_port"],
                "IpRanges": [{"CidrIp": p["cidr_blocks"][0], "Description": "changed out of band"}],
            }
        ],
    )


def _routes(prop: str, value: Any) -> Any:
    """Routes as a set of their set fields (a route read back names every target field)."""
    if prop == "routes" and isinstance(value, list):
        return sorted(sorted((k, v) for k, v in r.items() if v is not None) for r in value)
    return value


PATTERN = {"source": ["app.orders"], "detail-type": ["OrderPlaced"]}
RULE_443 = {
    "security_group_id": "{sg_id}",
    "type": "ingress",
    "protocol": "tcp",
    "from_port": 443,
    "to_port": 443,
    "cidr_blocks": ["10.0.0.0/8"],
}

NETWORK_EXAMPLES = (
    ConformanceExample(
        type="aws.eventbridge_rule",
        minimal={"name": "r-{run}", "event_pattern": PATTERN},
        full={
            "name": "r-{run}",
            "event_pattern": PATTERN,
            "description": "orders",
            "state": "ENABLED",
            "tags": {"owner": "web"},
        },
        updates={
            "event_pattern": {"source": ["app.orders", "app.refunds"]},
            "state": "DISABLED",
            "description": "orders v2",
            "tags": {"owner": "data"},
        },
        force_new={"name": "r2-{run}"},
        drift=_drift_rule,
        census=_rules,
        provider_config=PROVIDER,
    ),
    ConformanceExample(
        type="aws.eventbridge_target",
        minimal={"rule": "{rule_name}", "target_id": "t-{run}", "arn": "{queue_arn}"},
        full={"rule": "{rule_name}", "target_id": "t-{run}", "arn": "{queue_arn}", "input_path": "$.detail"},
        updates={"arn": "{queue2_arn}", "input_path": "$.detail.order"},
        force_new={"target_id": "t2-{run}"},
        drift=_drift_target,
        census=_targets,
        provider_config=PROVIDER,
    ),
    ConformanceExample(
        type="aws.internet_gateway",
        minimal={"vpc_id": "{vpc_id}"},
        full={"vpc_id": "{vpc_id}", "tags": {"Name": "gw-{run}"}},
        updates={"vpc_id": "{vpc2_id}", "tags": {"Name": "gw2-{run}"}},
        drift=_drift_gateway,
        census=_gateways,
        provider_config=PROVIDER,
    ),
    ConformanceExample(
        type="aws.route_table",
        minimal={"vpc_id": "{vpc_id}"},
        full={
            "vpc_id": "{vpc_id}",
            "routes": [{"destination_cidr_block": "0.0.0.0/0", "gateway_id": "{igw_id}"}],
            "tags": {"Name": "rt-{run}"},
        },
        updates={
            "routes": [
                {"destination_cidr_block": "0.0.0.0/0", "gateway_id": "{igw2_id}"},
                {"destination_cidr_block": "192.168.0.0/16", "gateway_id": "{igw_id}"},
            ],
            "tags": {"Name": "rt2-{run}"},
        },
        force_new={"vpc_id": "{vpc2_id}"},
        drift=_drift_table,
        normalise=_routes,
        census=_tables,
        provider_config=PROVIDER,
    ),
    # changing route_table_id is in place but gives the association a new id (AWS's
    # ReplaceRouteTableAssociation), which the kit's update check forbids: test_aws_network.py
    # covers that update
    ConformanceExample(
        type="aws.route_table_association",
        minimal={"route_table_id": "{rtb_id}", "subnet_id": "{subnet_id}"},
        force_new={"subnet_id": "{subnet2_id}"},
        drift=_drift_association,
        census=_associations,
        provider_config=PROVIDER,
    ),
    ConformanceExample(
        type="aws.security_group_rule",
        minimal=RULE_443,
        full={**RULE_443, "description": "https from the office"},
        updates={"description": "https from the VPN"},
        force_new={"cidr_blocks": ["172.16.0.0/12"]},
        drift=_drift_sg_rule,
        census=_sg_rules,
        provider_config=PROVIDER,
    ),
)


def _vpc(cidr: str) -> str:
    return str(_client("ec2").create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"])


def _queue_arn(name: str) -> str:
    url = _client("sqs").create_queue(QueueName=name)["QueueUrl"]
    return str(_client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def _makers() -> dict[str, Any]:
    made: dict[str, str] = {}

    def once(key: str, fn: Any) -> Any:
        def make() -> str:
            if key not in made:
                made[key] = fn()
            return made[key]

        return make

    ec2 = _client("ec2")
    vpc = once("vpc", lambda: _vpc("10.7.0.0/16"))
    return {
        "vpc_id": vpc,
        "vpc2_id": lambda: _vpc("10.8.0.0/16"),
        "igw_id": lambda: ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"],
        "igw2_id": lambda: ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"],
        "rtb_id": lambda: ec2.create_route_table(VpcId=vpc())["RouteTable"]["RouteTableId"],
        "subnet_id": lambda: ec2.create_subnet(VpcId=vpc(), CidrBlock="10.7.1.0/24")["Subnet"]["SubnetId"],
        "subnet2_id": lambda: ec2.create_subnet(VpcId=vpc(), CidrBlock="10.7.2.0/24")["Subnet"]["SubnetId"],
        "sg_id": lambda: ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc())["GroupId"],
        "rule_name": lambda: _client("events").put_rule(Name="orders", ScheduleExpression="rate(5 minutes)")
        and "orders",
        "queue_arn": lambda: _queue_arn("events-a"),
        "queue2_arn": lambda: _queue_arn("events-b"),
    }


@pytest.fixture
def conformance_env(moto_url: str) -> ConformanceEnv:
    """The seam on every client, and what the examples refer to, each made on first use."""
    AwsProvider.client_hooks.append(SEAM)  # conftest's `moto_url` restores the list after the test
    return ConformanceEnv(seam=SEAM, values=Made(_makers()))


class TestAwsNetworkConformance(ConformanceSuite):
    # one sampled mutating call per operation (always the last) keeps these EC2 checks short; every
    # run draws another, and `--conformance-max-calls 0` hits every call
    max_calls = 1
    examples = NETWORK_EXAMPLES

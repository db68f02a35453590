"""The conformance kit on the ELBv2 types (`aws.lb`, `aws.lb_target_group`, `aws.lb_listener`),
against moto; the fault seam and the lazily made values are those of test_aws_conformance.py.

What the examples refer to (a VPC with subnets in three zones, security groups, a load balancer
and target groups for the listener) is made with plain boto3 clients, each on first use only.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import pytest
from test_aws_conformance import SEAM, Made

from cloudorch.provider.contract import Observed, ResourceType
from cloudorch.testing.conformance import ConformanceEnv, ConformanceExample, ConformanceSuite
from cloudorch_aws import AwsProvider

REGION = "us-east-1"
PROVIDER = {"region": REGION}


@functools.cache
def _client(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION)


def _lbs(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    # by name and scheme: a replace for the scheme makes a balancer of the same name
    scheme = "internal" if props.get("internal") else "internet-facing"
    got = _client("elbv2").describe_load_balancers()["LoadBalancers"]
    return sum(lb["LoadBalancerName"] == props["name"] and lb["Scheme"] == scheme for lb in got)


def _tgs(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    got = _client("elbv2").describe_target_groups()["TargetGroups"]
    return sum(tg["TargetGroupName"] == props["name"] and tg["Port"] == props["port"] for tg in got)


def _listeners(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    got = _client("elbv2").describe_listeners(LoadBalancerArn=props["load_balancer_arn"])["Listeners"]
    return sum(int(x["Port"]) == int(props["port"]) for x in got)


def _drift_lb(rt: ResourceType[Any], seen: Observed) -> None:
    _client("elbv2").modify_load_balancer_attributes(
        LoadBalancerArn=seen.id, Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "99"}]
    )


def _drift_tg(rt: ResourceType[Any], seen: Observed) -> None:
    _client("elbv2").modify_target_group(TargetGroupArn=seen.id, HealthCheckPath="/changed-outside")


def _drift_listener(rt: ResourceType[Any], seen: Observed) -> None:
    _client("elbv2").modify_listener(
        ListenerArn=seen.id,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}}],
    )


def _normalise(prop: str, value: Any) -> Any:
    """Sets compare sorted; a block compares without the options left unset (None)."""
    if prop in ("subnets", "security_groups") and isinstance(value, list):
        return sorted(value)
    if isinstance(value, dict):
        return {k: _normalise(k, v) for k, v in value.items() if v is not None}
    return value


HEALTH = {
    "enabled": True,
    "protocol": "HTTP",
    "port": "traffic-port",
    "path": "/health",
    "matcher": "200-299",
    "interval": 15,
    "timeout": 5,
    "healthy_threshold": 3,
    "unhealthy_threshold": 2,
}
NOT_FOUND = {"type": "fixed-response", "fixed_response": {"content_type": "text/plain", "message_body": "no",
                                                            "status_code": "404"}}

REDIRECT = {"status_code": "HTTP_301", "protocol": "HTTPS", "port": "443", "host": "#{host}", "path": "/#{path}",
            "query": "#{query}"}

EXAMPLES = (
    ConformanceExample(
        type="aws.lb",
        minimal={"name": "lb-{run}", "subnets": ["{subnet_a}", "{subnet_b}"]},
        full={
            "name": "lb-{run}",
            "subnets": ["{subnet_a}", "{subnet_b}"],
            "security_groups": ["{sg_a}"],
            "idle_timeout": 120,
            "tags": {"owner": "web"},
        },
        updates={
            "subnets": ["{subnet_a}", "{subnet_c}"],
            "security_groups": ["{sg_a}", "{sg_b}"],
            "idle_timeout": 300,
        },
        # the scheme; the name is force-new the same way (one replace check per type keeps CI short)
        force_new={"internal": True},
        drift=_drift_lb,
        normalise=_normalise,
        census=_lbs,
        provider_config=PROVIDER,
    ),
    ConformanceExample(
        type="aws.lb_target_group",
        minimal={"name": "tg-{run}", "port": 80, "protocol": "HTTP", "vpc_id": "{vpc_id}"},
        full={"name": "tg-{run}", "port": 80, "protocol": "HTTP", "vpc_id": "{vpc_id}", "health_check": HEALTH,
              "tags": {"owner": "web"}},
        updates={"health_check": {**HEALTH, "path": "/ready", "interval": 20}, "tags": {"owner": "data"}},
        force_new={"port": 8080},
        drift=_drift_tg,
        normalise=_normalise,
        census=_tgs,
        provider_config=PROVIDER,
    ),
    ConformanceExample(
        type="aws.lb_listener",
        minimal={"load_balancer_arn": "{lb_arn}", "port": 80, "default_action": NOT_FOUND},
        full={
            "load_balancer_arn": "{lb_arn}",
            "port": 80,
            "protocol": "HTTP",
            "default_action": {"type": "forward", "target_group_arn": "{tg_arn}"},
            "tags": {"owner": "web"},
        },
        updates={
            "port": 8080,
            "default_action": {"type": "redirect", "redirect": REDIRECT},
        },
        force_new={"load_balancer_arn": "{lb2_arn}"},
        drift=_drift_listener,
        normalise=_normalise,
        census=_listeners,
        provider_config=PROVIDER,
    ),
)


class TestAwsElbv2Conformance(ConformanceSuite):
    max_calls = 1
    examples = EXAMPLES


def _network() -> dict[str, str]:
    ec2 = _client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    out = {"vpc_id": vpc}
    for i, zone in enumerate("abc"):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.8.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")
        out[f"subnet_{zone}"] = subnet["Subnet"]["SubnetId"]
    for name in ("a", "b"):
        out[f"sg_{name}"] = ec2.create_security_group(GroupName=f"elb-{name}", Description="elb", VpcId=vpc)["GroupId"]
    return out


def made_values() -> Made:
    """The values of one test, each made on first use (the server is reset before every test)."""
    network = functools.cache(_network)

    def balancer(name: str) -> str:
        net = network()
        got = _client("elbv2").create_load_balancer(Name=name, Subnets=[net["subnet_a"], net["subnet_b"]])
        return str(got["LoadBalancers"][0]["LoadBalancerArn"])

    def group(name: str) -> str:
        got = _client("elbv2").create_target_group(Name=name, Port=80, Protocol="HTTP", VpcId=network()["vpc_id"])
        return str(got["TargetGroups"][0]["TargetGroupArn"])

    makers = {k: (lambda k=k: network()[k]) for k in ("vpc_id", "subnet_a", "subnet_b", "subnet_c", "sg_a", "sg_b")}
    makers.update(
        lb_arn=lambda: balancer("shared"), lb2_arn=lambda: balancer("shared2"), tg_arn=lambda: group("shared")
    )
    return Made(makers)


@pytest.fixture
def conformance_env(moto_url: str) -> ConformanceEnv:
    AwsProvider.client_hooks.append(SEAM)  # conftest's `moto_url` restores the list after the test
    return ConformanceEnv(seam=SEAM, values=made_values())

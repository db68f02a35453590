"""The conformance kit on the ECS and RDS types, against moto in server mode.

What the examples refer to (a cluster, two task definition revisions, subnets in two AZs, a
security group, a target group) is made on first use with plain boto3 clients, as are the
censuses and the out-of-band changes; the fault seam is test_aws_conformance.py's.
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


# ---------------------------------------------------------------- what the examples refer to


def _vpc() -> dict[str, str]:
    ec2 = _client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    a = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]
    b = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.2.0/24", AvailabilityZone=f"{REGION}b")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="svc", Description="svc", VpcId=vpc)["GroupId"]
    return {"vpc": vpc, "subnet_a": a, "subnet_b": b, "sg": sg}


def _task(image: str) -> str:
    got = _client("ecs").register_task_definition(
        family="conformance-app",
        containerDefinitions=[{"name": "web", "image": image, "memory": 512, "portMappings": [{"containerPort": 80}]}],
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
    )
    return str(got["taskDefinition"]["taskDefinitionArn"])


def _target_group(net: Mapping[str, str]) -> str:
    got = _client("elbv2").create_target_group(
        Name="conformance-tg", Protocol="HTTP", Port=80, VpcId=net["vpc"], TargetType="ip"
    )
    return str(got["TargetGroups"][0]["TargetGroupArn"])


def _made() -> Made:
    cache: dict[str, dict[str, str]] = {}  # the VPC and its parts, made once on first use

    def vpc() -> dict[str, str]:
        if "v" not in cache:
            cache["v"] = _vpc()
        return cache["v"]

    return Made(
        {
            "cluster": lambda: str(_client("ecs").create_cluster(clusterName="conformance")["cluster"]["clusterName"]),
            "td1": lambda: _task("nginx:1.27"),
            "td2": lambda: _task("nginx:1.28"),
            "subnet_a": lambda: vpc()["subnet_a"],
            "subnet_b": lambda: vpc()["subnet_b"],
            "sg": lambda: vpc()["sg"],
            "target_group": lambda: _target_group(vpc()),
        }
    )


@pytest.fixture
def conformance_env(moto_url: str) -> ConformanceEnv:
    AwsProvider.client_hooks.append(SEAM)  # conftest's fixture restores the list after the test
    return ConformanceEnv(seam=SEAM, values=_made())


# ---------------------------------------------------------------- censuses (plain boto3)


def _clusters(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    got = _client("ecs").describe_clusters(clusters=[props["name"]])["clusters"]
    return sum(c["status"] != "INACTIVE" for c in got)


def _revisions(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    """Active revisions of the family running the first container's image (a replace registers
    the next revision of the same family, with another image, and deregisters the old one)."""
    ecs = _client("ecs")
    arns = ecs.list_task_definitions(familyPrefix=props["family"], status="ACTIVE")["taskDefinitionArns"]
    image = props["container_definitions"][0]["image"]
    count = 0
    for arn in arns:
        td = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        count += td["family"] == props["family"] and td["containerDefinitions"][0]["image"] == image
    return count


def _services(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    got = _client("ecs").describe_services(cluster=props["cluster"], services=[props["name"]])["services"]
    return sum(s["status"] == "ACTIVE" for s in got)


def _subnet_groups(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    groups = _client("rds").describe_db_subnet_groups()["DBSubnetGroups"]
    return sum(g["DBSubnetGroupName"] == props["name"] for g in groups)


def _instances(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    got = _client("rds").describe_db_instances()["DBInstances"]
    return sum(d["DBInstanceIdentifier"] == props["identifier"] and d["DBInstanceStatus"] != "deleting" for d in got)


# ---------------------------------------------------------------- out-of-band changes


def _drift_cluster(rt: ResourceType[Any], seen: Observed) -> None:
    _client("ecs").update_cluster(cluster=seen.id, settings=[{"name": "containerInsights", "value": "disabled"}])


def _drift_task(rt: ResourceType[Any], seen: Observed) -> None:
    _client("ecs").tag_resource(resourceArn=seen.id, tags=[{"key": "owner", "value": "someone-else"}])


def _drift_service(rt: ResourceType[Any], seen: Observed) -> None:
    _client("ecs").update_service(cluster=seen.attributes["cluster_arn"], service=seen.id, desiredCount=7)


def _drift_subnet_group(rt: ResourceType[Any], seen: Observed) -> None:
    _client("rds").add_tags_to_resource(ResourceName=seen.attributes["arn"], Tags=[{"Key": "owner", "Value": "x"}])


def _drift_instance(rt: ResourceType[Any], seen: Observed) -> None:
    # a class, not storage: RDS cannot shrink storage, so that drift could not be repaired in place
    _client("rds").modify_db_instance(
        DBInstanceIdentifier=seen.id, DBInstanceClass="db.m5.large", ApplyImmediately=True
    )


def _normalise(prop: str, value: Any) -> Any:
    """Sets as sorted lists, and a network block with its defaults filled in."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sorted(set(value))
    if prop == "network_configuration" and isinstance(value, Mapping):
        return {
            "subnets": sorted(value.get("subnets") or []),
            "security_groups": sorted(value.get("security_groups") or []),
            "assign_public_ip": bool(value.get("assign_public_ip", False)),
        }
    return value


CONTAINER = {"name": "web", "image": "nginx:1.27", "memory": 512, "portMappings": [{"containerPort": 80}]}
NETWORK = {"subnets": ["{subnet_a}", "{subnet_b}"], "security_groups": ["{sg}"]}
DB = {
    "identifier": "db-{run}",
    "engine": "postgres",
    "engine_version": "16.3",
    "instance_class": "db.t3.micro",
    "allocated_storage": 20,
    "username": "app",
    "password": "pw-{run}-secret",
    "skip_final_snapshot": True,
}

EXAMPLES = (
    ConformanceExample(
        type="aws.ecs_cluster",
        minimal={"name": "c-{run}"},
        full={"name": "c-{run}", "container_insights": "enabled", "tags": {"owner": "web"}},
        updates={"container_insights": "disabled", "tags": {"owner": "data"}},
        force_new={"name": "c2-{run}"},
        drift=_drift_cluster,
        census=_clusters,
        provider_config=PROVIDER,
    ),
    ConformanceExample(
        type="aws.ecs_task_definition",
        minimal={"family": "f-{run}", "container_definitions": [CONTAINER]},
        full={
            "family": "f-{run}",
            "container_definitions": [CONTAINER],
            "cpu": 256,
            "memory": "512",
            "network_mode": "awsvpc",
            "requires_compatibilities": ["FARGATE"],
            "tags": {"owner": "web"},
        },
        updates={"tags": {"owner": "data"}},
        # a new image: the next revision of the same family replaces this one
        force_new={"container_definitions": [{**CONTAINER, "image": "nginx:1.28"}]},
        drift=_drift_task,
        census=_revisions,
        normalise=lambda p, v: str(v) if p in ("cpu", "memory") else v,
        provider_config=PROVIDER,
    ),
    ConformanceExample(
        type="aws.ecs_service",
        minimal={"name": "s-{run}", "cluster": "{cluster}", "task_definition": "{td1}",
                 "network_configuration": NETWORK},
        full={
            "name": "s-{run}",
            "cluster": "{cluster}",
            "task_definition": "{td1}",
            "desired_count": 2,
            "network_configuration": NETWORK,
            "load_balancers": [{"target_group_arn": "{target_group}", "container_name": "web", "container_port": 80}],
            "tags": {"owner": "web"},
        },
        # tags change in place through the code the cluster's example covers (EcsResource.retag)
        updates={"desired_count": 3, "task_definition": "{td2}"},
        force_new={"name": "s2-{run}"},
        drift=_drift_service,
        census=_services,
        normalise=_normalise,
        provider_config=PROVIDER,
    ),
    ConformanceExample(
        type="aws.db_subnet_group",
        minimal={"name": "g-{run}", "subnet_ids": ["{subnet_a}", "{subnet_b}"]},
        full={"name": "g-{run}", "subnet_ids": ["{subnet_a}", "{subnet_b}"], "tags": {"owner": "web"}},
        # description and subnet_ids change in place too, but moto's ModifyDBSubnetGroup loses
        # the group: test_modify_subnet_group below marks exactly that case
        updates={"tags": {"owner": "data"}},
        force_new={"name": "g2-{run}"},
        drift=_drift_subnet_group,
        census=_subnet_groups,
        normalise=_normalise,
        provider_config=PROVIDER,
    ),
    ConformanceExample(
        type="aws.rds_instance",
        minimal=DB,
        full={**DB, "vpc_security_group_ids": ["{sg}"], "db_name": "app", "tags": {"owner": "web"}},
        # allocated_storage goes through the same ModifyDBInstance mapping as instance_class, and
        # tags through the code the subnet group's example covers (RdsResource.retag)
        updates={"instance_class": "db.t3.small", "password": "pw-{run}-rotated"},
        force_new={"identifier": "db2-{run}"},
        drift=_drift_instance,
        census=_instances,
        normalise=_normalise,
        import_ignore=("skip_final_snapshot", "final_snapshot_identifier"),
        provider_config=PROVIDER,
    ),
)


class TestAwsEcsRdsConformance(ConformanceSuite):
    max_calls = 1
    examples = EXAMPLES

"""plans/aws-service.yaml through the real CLI against moto: a container service behind a load
balancer with a database and its secret, applied, re-planned clean, changed, and destroyed.

It is the check that the new AWS types work together through references, not only one by one
(each type's own behaviour is in the conformance files): an ECS service wired to a target group
and a task definition revision, a task definition reading the secret's ARN and the database's
address, group-referencing security group rules, and a DNS alias to the load balancer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

PLAN = Path(__file__).resolve().parents[3] / "plans" / "aws-service.yaml"
PASSWORD = "pw-9f3c1e77d2"


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    target = tmp_path / "aws-service.yaml"
    shutil.copy(PLAN, target)
    return target


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    from cloudorch.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_service_applies_replans_clean_changes_one_revision_and_destroys(
    plan: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = ("--var", f"db_password={PASSWORD}")
    code, out = cli(capsys, "apply", plan, *secret, "--auto-approve")
    assert code == 0, out
    assert PASSWORD not in out

    # wired by references: the service runs the task's revision behind the target group
    cluster = aws("ecs").describe_clusters(clusters=["cloudorch-svc"])["clusters"][0]
    service = aws("ecs").describe_services(cluster=cluster["clusterArn"], services=["app"])["services"][0]
    groups = aws("elbv2").describe_target_groups(Names=["cloudorch-svc-app"])["TargetGroups"]
    assert service["loadBalancers"][0]["targetGroupArn"] == groups[0]["TargetGroupArn"]
    task = aws("ecs").describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    container = task["containerDefinitions"][0]
    db = aws("rds").describe_db_instances(DBInstanceIdentifier="cloudorch-svc-db")["DBInstances"][0]
    assert {"name": "DB_HOST", "value": db["Endpoint"]["Address"]} in container["environment"]
    secret_arn = aws("secretsmanager").describe_secret(SecretId="cloudorch-svc/db-password")["ARN"]
    assert container["secrets"] == [{"name": "DB_PASSWORD", "valueFrom": secret_arn}]
    assert aws("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"] == PASSWORD
    assert db["DBSubnetGroup"]["DBSubnetGroupName"] == "cloudorch-svc-db"

    # the database admits only the service's group, the service only the load balancer's
    rules = aws("ec2").describe_security_group_rules()["SecurityGroupRules"]
    referencing = {(r["FromPort"], r.get("ReferencedGroupInfo", {}).get("GroupId")) for r in rules}
    sg = {g["GroupName"]: g["GroupId"] for g in aws("ec2").describe_security_groups()["SecurityGroups"]}
    assert (5432, sg["cloudorch-svc-app"]) in referencing
    assert (8080, sg["cloudorch-svc-lb"]) in referencing

    # the DNS name aliases the load balancer
    lb = aws("elbv2").describe_load_balancers(Names=["cloudorch-svc"])["LoadBalancers"][0]
    zone = aws("route53").list_hosted_zones_by_name(DNSName="svc.cloudorch.example")["HostedZones"][0]
    records = aws("route53").list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    www = next(r for r in records if r["Name"].startswith("www."))
    assert www["AliasTarget"]["DNSName"].rstrip(".").lower() == lb["DNSName"].lower()

    # a second plan finds nothing to do, and shows no secret
    code, out = cli(capsys, "plan", plan, *secret, "--detailed-exitcode")
    assert code == 0, out
    code, out = cli(capsys, "plan", plan, *secret, "--json")
    doc = json.loads(out)
    assert {c["action"] for c in doc["changes"]} == {"no-op"}, [
        (c["address"], c["action"]) for c in doc["changes"] if c["action"] != "no-op"
    ]
    assert PASSWORD not in out

    # a new image is a new task definition revision and an in-place service update, nothing else
    code, out = cli(capsys, "plan", plan, *secret, "--var", "image_tag=1.1.0", "--json")
    changed = {c["address"]: c["action"] for c in json.loads(out)["changes"] if c["action"] != "no-op"}
    assert changed == {"task": "replace", "service": "update"}, changed
    code, out = cli(capsys, "apply", plan, *secret, "--var", "image_tag=1.1.0", "--auto-approve")
    assert code == 0, out
    service = aws("ecs").describe_services(cluster=cluster["clusterArn"], services=["app"])["services"][0]
    assert service["taskDefinition"].endswith(":2")
    assert aws("ecs").describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"][
        "containerDefinitions"
    ][0]["image"].endswith(":1.1.0")

    for path in plan.parent.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path

    code, out = cli(capsys, "destroy", plan, *secret, "--var", "image_tag=1.1.0", "--auto-approve")
    assert code == 0, out
    # a deleted service stays visible as INACTIVE for a while, as on AWS
    gone = aws("ecs").describe_services(cluster=cluster["clusterArn"], services=["app"])["services"]
    assert [s["status"] for s in gone] in ([], ["INACTIVE"])
    assert aws("ecs").describe_clusters(clusters=["cloudorch-svc"])["clusters"] in (
        [],
        [{**aws("ecs").describe_clusters(clusters=["cloudorch-svc"])["clusters"][0], "status": "INACTIVE"}],
    )
    assert aws("elbv2").describe_load_balancers()["LoadBalancers"] == []
    snapshots = aws("rds").describe_db_snapshots()["DBSnapshots"]
    assert [s["DBSnapshotIdentifier"] for s in snapshots] == ["cloudorch-svc-db-final"]
    assert aws("rds").describe_db_instances()["DBInstances"] == []

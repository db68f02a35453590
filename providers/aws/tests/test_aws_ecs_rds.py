"""What the conformance kit does not cover for the ECS and RDS types, on moto through the real CLI.

A task definition change is a replace (the next revision) that moves the service in place; a
destroy scales a service to zero before deleting it and takes an instance's final snapshot; a
plan that would take a final snapshot without naming it is refused when it is loaded; deletion
protection stops a delete with a hint; throttling on a create is retried without a second object.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from cloudorch.provider.contract import ProviderError

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "aws_ecs_rds"


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, Any]:
    from cloudorch.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    out = captured.out
    return code, json.loads(out) if out.lstrip().startswith("{") else out + captured.err


@pytest.fixture
def plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(FIXTURES / "service.yaml", tmp_path / "service.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "service.yaml"


def _state(plan: Path) -> dict[str, Any]:
    doc = json.loads((plan.parent / ".cloudorch" / "state" / "ecs_rds.json").read_text())
    return doc["state"]["resources"]  # type: ignore[no-any-return]


def test_a_plan_that_would_take_an_unnamed_final_snapshot_is_a_located_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = _cli(capsys, "validate", FIXTURES / "rds_no_final_snapshot.yaml")
    assert code != 0
    assert "rds_no_final_snapshot.yaml:9:" in out and "resources.db.properties" in out, out
    assert "final_snapshot_identifier is required" in out and "skip_final_snapshot: true" in out, out


def test_an_image_change_registers_the_next_revision_and_moves_the_service_in_place(
    plan: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloudorch_aws import AwsProvider
    from cloudorch_aws.faults import CallCounter, CallLog, Fault

    # throttled and unavailable answers on the first calls of three creates: retried, never doubled
    faults = [
        Fault("ecs", "RegisterTaskDefinition", 429, "ThrottlingException", times=1),
        Fault("ecs", "CreateService", 503, "ServerException", times=1),
        Fault("rds", "CreateDBInstance", 429, "Throttling", times=1),
    ]
    AwsProvider.client_hooks.extend(faults)
    code, doc = _cli(capsys, "apply", plan, "--auto-approve", "--json")
    assert code == 0, doc
    assert [f.injected for f in faults] == [1, 1, 1]
    ecs, rds = aws("ecs"), aws("rds")
    first = _state(plan)["task"]
    assert first["attributes"]["revision"] == 1
    assert ecs.list_task_definitions(familyPrefix="app")["taskDefinitionArns"] == [first["id"]]
    (db,) = rds.describe_db_instances()["DBInstances"]
    assert _state(plan)["db"]["attributes"]["endpoint"] == f"{db['Endpoint']['Address']}:{db['Endpoint']['Port']}"
    assert "correct-horse-battery" not in (plan.parent / ".cloudorch" / "state" / "ecs_rds.json").read_text()

    code, doc = _cli(capsys, "plan", plan, "--json", "--var", "image=nginx:1.28")
    assert code == 0, doc
    actions = {c["address"]: c["action"] for c in doc["changes"] if c["action"] != "no-op"}
    assert actions == {"task": "replace", "service": "update"}, actions

    code, doc = _cli(capsys, "apply", plan, "--auto-approve", "--json", "--var", "image=nginx:1.28")
    assert code == 0, doc
    second = _state(plan)["task"]
    assert second["attributes"]["revision"] == 2 and second["id"] != first["id"]
    assert ecs.describe_task_definition(taskDefinition=first["id"])["taskDefinition"]["status"] == "INACTIVE"
    (svc,) = ecs.describe_services(cluster="app", services=["app"])["services"]
    assert svc["taskDefinition"] == second["id"] and svc["serviceArn"] == _state(plan)["service"]["id"]

    counter = CallCounter()
    AwsProvider.client_hooks.append(counter)
    code, doc = _cli(capsys, "plan", plan, "--json", "--var", "image=nginx:1.28")
    assert code == 0 and not [c for c in doc["changes"] if c["action"] != "no-op"], doc
    # refresh: one call each, two for the subnet group (its tags are a call of their own)
    assert counter.total("ecs") + counter.total("rds") <= 6, counter.counts

    log = CallLog()
    AwsProvider.client_hooks.append(log)
    code, doc = _cli(capsys, "destroy", plan, "--auto-approve", "--json", "--var", "image=nginx:1.28")
    assert code == 0, doc
    # the service is scaled to zero before it is deleted; the instance leaves its final snapshot
    scaled = [p for name, p in log.calls if name == "ecs.UpdateService"]
    assert scaled == [{"cluster": "app", "service": "app", "desiredCount": 0}], scaled
    calls = log.named("ecs.UpdateService", "ecs.DeleteService")
    assert calls == ["ecs.UpdateService", "ecs.DeleteService"], calls
    (snap,) = rds.describe_db_snapshots(DBSnapshotIdentifier="app-db-final")["DBSnapshots"]
    assert snap["DBInstanceIdentifier"] == "app-db"
    assert rds.describe_db_instances()["DBInstances"] == []
    assert ecs.describe_task_definition(taskDefinition=second["id"])["taskDefinition"]["status"] == "INACTIVE"
    assert ecs.describe_clusters(clusters=["app"])["clusters"][0]["status"] == "INACTIVE"


DB = {
    "identifier": "locked-db",
    "engine": "postgres",
    "instance_class": "db.t3.micro",
    "allocated_storage": 20,
    "username": "app",
    "password": "correct-horse-battery",
    "skip_final_snapshot": True,
}


def test_deletion_protection_stops_a_delete_with_a_hint_until_it_is_turned_off(provider: Any, aws: Any) -> None:
    from cloudorch_aws.rds import InstanceProperties

    rt = provider.resource_type("aws.rds_instance")
    on = InstanceProperties.model_validate({**DB, "deletion_protection": True})
    made = rt.create("db", on)
    with pytest.raises(ProviderError) as refused:
        rt.delete("db", made.id, on)
    assert "deletion_protection" in refused.value.message and "deletion_protection: false" in str(refused.value.hint)
    assert len(aws("rds").describe_db_instances()["DBInstances"]) == 1
    off = InstanceProperties.model_validate({**DB, "deletion_protection": False})
    assert rt.update("db", made.id, on, off).properties["deletion_protection"] is False
    rt.delete("db", made.id, off)
    assert aws("rds").describe_db_instances()["DBInstances"] == []
    assert aws("rds").describe_db_snapshots()["DBSnapshots"] == []  # skip_final_snapshot: none taken


@pytest.mark.xfail(
    strict=True,
    reason="moto 5.2.6 ModifyDBSubnetGroup pops the group from its store and never puts it back "
    "(moto/rds/models.py modify_db_subnet_group), so the group is gone after any change of "
    "description or subnet_ids",
)
def test_a_subnet_group_changes_its_description_and_subnets_in_place(provider: Any, aws: Any) -> None:
    from cloudorch_aws.rds import SubnetGroupProperties

    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.5.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.5.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"), (3, "c"))
    ]
    rt = provider.resource_type("aws.db_subnet_group")
    old = SubnetGroupProperties.model_validate({"name": "grp", "subnet_ids": subnets[:2]})
    made = rt.create("grp", old)
    new = SubnetGroupProperties.model_validate({"name": "grp", "description": "v2", "subnet_ids": subnets[1:]})
    rt.update("grp", made.id, old, new)
    seen = rt.read("grp", made.id, new)
    assert seen is not None
    assert (seen.properties["description"], seen.properties["subnet_ids"]) == ("v2", sorted(subnets[1:]))


def test_each_type_looks_up_objects_it_does_not_manage(provider: Any, aws: Any) -> None:
    """`data:` sources: by id, and by a filter over what `import` reports."""
    from cloudorch.provider.contract import LookupQuery

    ec2, ecs, rds = aws("ec2"), aws("ecs"), aws("rds")
    vpc = ec2.create_vpc(CidrBlock="10.6.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.6.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"))
    ]
    ecs.create_cluster(clusterName="shared", tags=[{"key": "env", "value": "prod"}])
    ecs.create_cluster(clusterName="other")
    td = ecs.register_task_definition(
        family="shared-app", containerDefinitions=[{"name": "web", "image": "nginx", "memory": 256}]
    )["taskDefinition"]["taskDefinitionArn"]
    svc = ecs.create_service(
        cluster="shared", serviceName="web", taskDefinition=td, desiredCount=1, launchType="EC2"
    )["service"]["serviceArn"]
    rds.create_db_subnet_group(DBSubnetGroupName="shared-db", DBSubnetGroupDescription="d", SubnetIds=subnets)
    rds.create_db_instance(
        DBInstanceIdentifier="shared-db", Engine="postgres", DBInstanceClass="db.t3.micro", AllocatedStorage=20,
        MasterUsername="app", MasterUserPassword="correct-horse", DBSubnetGroupName="shared-db",
    )

    def ids(type_name: str, **query: Any) -> list[str]:
        return sorted(o.id for o in provider.resource_type(type_name).lookup("data.x", LookupQuery(**query)))

    assert ids("aws.ecs_cluster", filter={"tags": {"env": "prod"}}) == ["shared"]
    assert ids("aws.ecs_cluster", id="nope") == []
    assert ids("aws.ecs_task_definition", filter={"family": "shared-app"}) == [td]
    assert ids("aws.ecs_service", filter={"cluster": "shared", "name": "web"}) == [svc]
    assert ids("aws.ecs_service", id=svc) == [svc]
    assert ids("aws.db_subnet_group", id="shared-db") == ["shared-db"]
    (db,) = provider.resource_type("aws.rds_instance").lookup("data.db", LookupQuery(filter={"engine": "postgres"}))
    assert db.id == "shared-db" and db.attributes["port"] == 5432 and "password" not in db.properties

"""RDS: `aws.db_subnet_group`, `aws.rds_instance`.

Both are named by the user (the subnet group's name, the instance's identifier), so `find` looks
them up by that name, and a create whose answer was lost is found rather than repeated. An
instance's master password is write-only: it is sent, never read back (state keeps a hash).

An instance takes minutes to become available, to apply a modification and to be deleted; waits
use botocore's RDS waiters, whose first poll is immediate (moto makes instances available at once).
Modifications are applied immediately (`ApplyImmediately`), so what is read back after an update
is what was asked. A delete takes a final snapshot named `final_snapshot_identifier` unless
`skip_final_snapshot`; a plan that would take one without a name is refused when it is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import field_validator, model_validator

from cloudorch.provider.contract import (
    ErrorKind,
    LookupQuery,
    Observed,
    ProviderError,
    ReadRequest,
    ResourceProperties,
    prop,
)
from cloudorch_aws.ecs import BusyAware
from cloudorch_aws.resource import tag_dict, tag_list

GROUP_GONE = ("DBSubnetGroupNotFoundFault",)
INSTANCE_GONE = ("DBInstanceNotFound", "DBInstanceNotFoundFault")
#: RDS's "the object is busy" codes: a modify while another is applied, a group its instance still holds
RDS_BUSY = frozenset(
    {"InvalidDBInstanceState", "InvalidDBInstanceStateFault", "InvalidDBSubnetGroupStateFault",
     "InvalidDBSubnetGroupState"}
)


class RdsResource(BusyAware):
    service = "rds"
    busy_codes = RDS_BUSY

    def retag(self, address: str, arn: str, old: dict[str, str] | None, new: dict[str, str]) -> None:
        removed = [k for k in (old or {}) if k not in new]
        if removed:
            self.call(address, "remove_tags_from_resource", ResourceName=arn, TagKeys=removed)
        self.call(address, "add_tags_to_resource", ResourceName=arn, Tags=tag_list(self.tags_to_apply(address, new)))


# ============================================================================ subnet group


class SubnetGroupProperties(ResourceProperties):
    """A DB subnet group: the subnets (in two or more AZs) an RDS instance may be placed in."""

    name: str = prop(
        force_new=True,
        pattern=r"^[a-z0-9][a-z0-9 ._-]{0,254}$",
        description="Group name (lower case; RDS stores names in lower case).",
    )
    description: str = prop("Managed by cloudorch", description="Free text.")
    subnet_ids: list[str] = prop(min_length=1, description="Subnet ids (a set), e.g. `${resources.a.id}`.")
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")

    @field_validator("subnet_ids")
    @classmethod
    def _set(cls, value: list[str]) -> list[str]:
        return sorted(set(value))


class SubnetGroupResource(RdsResource):
    """A DB subnet group; the id is its name."""

    type_name = "aws.db_subnet_group"
    Properties = SubnetGroupProperties
    description = "An RDS DB subnet group."
    attributes = {"arn": "The group ARN.", "name": "The group name.", "vpc_id": "The VPC of its subnets."}
    recomputed_on_update = frozenset()

    def plan_create(self, desired: Any) -> dict[str, Any]:
        name = desired.get("name")
        return {"name": name} if isinstance(name, str) else {}

    def create(self, address: str, props: SubnetGroupProperties) -> Observed:
        self.call(
            address,
            "create_db_subnet_group",
            DBSubnetGroupName=props.name,
            DBSubnetGroupDescription=props.description,
            SubnetIds=props.subnet_ids,
            Tags=tag_list(self.tags_to_apply(address, props.tags)),
        )

        def settle() -> Observed:
            seen = self.read(address, props.name, props)
            if seen is None:
                raise ProviderError(f"DB subnet group {props.name} vanished after create",
                                    kind=ErrorKind.TRANSIENT, address=address)
            return seen

        return self.finish_create(address, props.name, settle)

    def _observed(self, address: str | None, g: dict[str, Any], props: SubnetGroupProperties | None) -> Observed | None:
        arn = g["DBSubnetGroupArn"]
        tags = self.call(address, "list_tags_for_resource", ResourceName=arn, missing=GROUP_GONE)
        if tags is None:
            return None
        out = {
            "name": g["DBSubnetGroupName"],
            "description": g.get("DBSubnetGroupDescription", ""),
            "subnet_ids": sorted({s["SubnetIdentifier"] for s in g.get("Subnets") or []}),
            "tags": self.observed_tags(tag_dict(tags.get("TagList")), props.tags if props else None),
        }
        return Observed(g["DBSubnetGroupName"], out, {"arn": arn, "name": g["DBSubnetGroupName"],
                                                      "vpc_id": g.get("VpcId")})

    def _group(self, address: str | None, name: str) -> dict[str, Any] | None:
        got = self.call(address, "describe_db_subnet_groups", DBSubnetGroupName=name, missing=GROUP_GONE)
        groups = (got or {}).get("DBSubnetGroups", [])
        return groups[0] if groups else None

    def _observe(self, address: str | None, name: str, props: SubnetGroupProperties | None) -> Observed | None:
        g = self._group(address, name)
        return None if g is None else self._observed(address, g, props)

    def read(self, address: str, id: str, props: SubnetGroupProperties) -> Observed | None:
        return self._observe(address, id, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        return self.read_listed(
            requests,
            lambda: {
                g["DBSubnetGroupName"]: g
                for g in self.paginate(None, "describe_db_subnet_groups", "DBSubnetGroups")
            },
            lambda r, g: self._observed(r.address, g, r.properties),  # type: ignore[arg-type]
        )

    def update(self, address: str, id: str, old: SubnetGroupProperties, new: SubnetGroupProperties) -> Observed:
        current = self._observe(address, id, new)
        if current is None:
            raise ProviderError(f"DB subnet group {id} is gone", kind=ErrorKind.FATAL, address=address)
        if (current.properties["description"], current.properties["subnet_ids"]) != (new.description, new.subnet_ids):
            self.call(
                address,
                "modify_db_subnet_group",
                DBSubnetGroupName=id,
                DBSubnetGroupDescription=new.description,
                SubnetIds=new.subnet_ids,
            )
        if dict(old.tags) != dict(new.tags) or current.properties["tags"] != dict(sorted(new.tags.items())):
            self.retag(address, current.attributes["arn"], old.tags, new.tags)
        seen = self.read(address, id, new)
        if seen is None:
            raise ProviderError(f"DB subnet group {id} is gone", kind=ErrorKind.FATAL, address=address)
        return seen

    def delete(self, address: str, id: str, props: SubnetGroupProperties) -> None:
        self.call(address, "delete_db_subnet_group", DBSubnetGroupName=id, missing=GROUP_GONE)

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no DB subnet group {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        def listed() -> list[str]:
            return [g["DBSubnetGroupName"] for g in self.paginate(address, "describe_db_subnet_groups",
                                                                   "DBSubnetGroups")]

        return self.lookup_listed(query, lambda i: self._observe(address, i, None), listed)

    def find(self, address: str, props: SubnetGroupProperties) -> Observed | None:
        return self._observe(address, props.name, props)

    def estimate_seconds(self, props: SubnetGroupProperties) -> float:
        return 1.0


# ============================================================================ instance


class InstanceProperties(ResourceProperties):
    """An RDS DB instance. Changes to the class, storage, version, password, security groups and
    deletion protection are applied in place and at once (`ApplyImmediately`)."""

    identifier: str = prop(
        force_new=True,
        pattern=r"^[a-z][a-z0-9-]{0,62}$",
        description="DB instance identifier (lower case letters, digits, hyphens; unique in the region).",
    )
    engine: str = prop(force_new=True, description="Engine: postgres, mysql, mariadb, ...")
    engine_version: str | None = prop(
        None,
        description="Engine version; a prefix (`16`) accepts what RDS picks within it. None: RDS's default, "
        "unmanaged. Raised in place (a major upgrade is allowed).",
    )
    instance_class: str = prop(description="Instance class, e.g. db.t3.micro.")
    allocated_storage: int = prop(ge=5, le=65536, description="Storage in GiB (it can grow in place, not shrink).")
    username: str = prop(force_new=True, description="Master user name.")
    password: str = prop(
        sensitive=True, min_length=8, description="Master password (sensitive: masked, stored hashed; write-only)."
    )
    db_name: str | None = prop(None, force_new=True, description="Name of a database created with the instance.")
    db_subnet_group_name: str | None = prop(
        None, force_new=True, description="DB subnet group, e.g. `${resources.dbnet.name}`."
    )
    vpc_security_group_ids: list[str] | None = prop(
        None, description="VPC security group ids (a set); None leaves RDS's default group unmanaged."
    )
    deletion_protection: bool = prop(False, description="RDS refuses to delete the instance while true.")
    skip_final_snapshot: bool = prop(
        False, description="Delete without a final snapshot (otherwise `final_snapshot_identifier` is taken)."
    )
    final_snapshot_identifier: str | None = prop(
        None,
        description="Name of the snapshot taken when the instance is deleted; required unless skip_final_snapshot.",
    )
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")

    @field_validator("identifier")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if "--" in value or value.endswith("-"):
            raise ValueError("an identifier cannot hold two hyphens in a row or end with one")
        return value

    @field_validator("vpc_security_group_ids")
    @classmethod
    def _set(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else sorted(set(value))

    @model_validator(mode="after")
    def _final_snapshot(self) -> InstanceProperties:
        if not self.skip_final_snapshot and not self.final_snapshot_identifier:
            raise ValueError(
                "final_snapshot_identifier is required: deleting this instance takes a final snapshot "
                "(skip_final_snapshot is false); name it, or set skip_final_snapshot: true"
            )
        return self


def imported_snapshot_name(identifier: str) -> str:
    """The final snapshot an imported instance gets until its plan names one: `IDENTIFIER-final`."""
    return f"{identifier}-final"


#: property -> ModifyDBInstance parameter, for the settings changed in place
MODIFIABLE = {
    "instance_class": "DBInstanceClass",
    "allocated_storage": "AllocatedStorage",
    "engine_version": "EngineVersion",
    "vpc_security_group_ids": "VpcSecurityGroupIds",
    "deletion_protection": "DeletionProtection",
}


class InstanceResource(RdsResource):
    """An RDS DB instance; the id is its identifier."""

    type_name = "aws.rds_instance"
    Properties = InstanceProperties
    description = "An RDS database instance (a final snapshot on delete unless skip_final_snapshot)."
    attributes = {
        "arn": "The instance ARN.",
        "identifier": "The DB instance identifier.",
        "endpoint": "`ADDRESS:PORT` to connect to.",
        "address": "The DNS name to connect to.",
        "port": "The port it listens on.",
        "resource_id": "The instance's immutable resource id (db-...).",
    }
    # ApplyImmediately keeps the endpoint; the ARN and identifier never change in place
    recomputed_on_update = frozenset()

    def plan_create(self, desired: Any) -> dict[str, Any]:
        ident = desired.get("identifier")
        return {"identifier": ident} if isinstance(ident, str) else {}

    def create(self, address: str, props: InstanceProperties) -> Observed:
        kwargs: dict[str, Any] = {}
        if props.engine_version:
            kwargs["EngineVersion"] = props.engine_version
        if props.db_name:
            kwargs["DBName"] = props.db_name
        if props.db_subnet_group_name:
            kwargs["DBSubnetGroupName"] = props.db_subnet_group_name
        if props.vpc_security_group_ids is not None:
            kwargs["VpcSecurityGroupIds"] = props.vpc_security_group_ids
        self.call(
            address,
            "create_db_instance",
            DBInstanceIdentifier=props.identifier,
            Engine=props.engine,
            DBInstanceClass=props.instance_class,
            AllocatedStorage=props.allocated_storage,
            MasterUsername=props.username,
            MasterUserPassword=props.password,
            DeletionProtection=props.deletion_protection,
            Tags=tag_list(self.tags_to_apply(address, props.tags)),
            **kwargs,
        )

        def settle() -> Observed:
            self._available(address, props.identifier)
            seen = self.read(address, props.identifier, props)
            if seen is None:
                raise ProviderError(f"DB instance {props.identifier} vanished after create",
                                    kind=ErrorKind.TRANSIENT, address=address)
            return seen

        return self.finish_create(address, props.identifier, settle)

    def _available(self, address: str, ident: str) -> None:
        # RDS takes 5-15 minutes to create or modify an instance: poll every 10 s for an hour
        self.wait(address, "db_instance_available", delay=10, max_attempts=360, DBInstanceIdentifier=ident)

    def _observed(self, d: dict[str, Any], props: InstanceProperties | None) -> Observed:
        version = d.get("EngineVersion")
        if props is not None:
            asked = props.engine_version
            if asked is None:
                version = None
            elif version and (version == asked or version.startswith(asked + ".")):
                version = asked
        groups: list[str] | None = sorted(g["VpcSecurityGroupId"] for g in d.get("VpcSecurityGroups") or [])
        if props is not None and props.vpc_security_group_ids is None:
            groups = None
        out: dict[str, Any] = {
            "identifier": d["DBInstanceIdentifier"],
            "engine": d["Engine"],
            "engine_version": version,
            "instance_class": d["DBInstanceClass"],
            "allocated_storage": int(d["AllocatedStorage"]),
            "username": d.get("MasterUsername"),
            "db_name": d.get("DBName"),
            "db_subnet_group_name": (d.get("DBSubnetGroup") or {}).get("DBSubnetGroupName"),
            "vpc_security_group_ids": groups,
            "deletion_protection": bool(d.get("DeletionProtection", False)),
            # what to do at delete is cloudorch's, not the cloud's: as last applied, and for an
            # imported instance a final snapshot under a name derived from its identifier (shown
            # in the plan, so a plan file that says otherwise updates it before any delete)
            "skip_final_snapshot": props.skip_final_snapshot if props else False,
            "final_snapshot_identifier": props.final_snapshot_identifier
            if props
            else imported_snapshot_name(d["DBInstanceIdentifier"]),
            "tags": self.observed_tags(tag_dict(d.get("TagList")), props.tags if props else None),
        }
        endpoint = d.get("Endpoint") or {}
        host, port = endpoint.get("Address"), endpoint.get("Port")
        attrs = {
            "arn": d.get("DBInstanceArn"),
            "identifier": d["DBInstanceIdentifier"],
            "address": host,
            "port": int(port) if port is not None else None,
            "endpoint": f"{host}:{port}" if host and port is not None else None,
            "resource_id": d.get("DbiResourceId"),
        }
        return Observed(d["DBInstanceIdentifier"], out, attrs)

    @staticmethod
    def _live(d: dict[str, Any]) -> bool:
        return d.get("DBInstanceStatus") != "deleting"

    def _instance(self, address: str | None, ident: str) -> dict[str, Any] | None:
        got = self.call(address, "describe_db_instances", DBInstanceIdentifier=ident, missing=INSTANCE_GONE)
        found = [d for d in (got or {}).get("DBInstances", []) if self._live(d)]
        return found[0] if found else None

    def _observe(self, address: str | None, ident: str, props: InstanceProperties | None) -> Observed | None:
        d = self._instance(address, ident)
        return None if d is None else self._observed(d, props)

    def read(self, address: str, id: str, props: InstanceProperties) -> Observed | None:
        return self._observe(address, id, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        if len(requests) < 2:
            return [self.read(r.address, r.id, r.properties) for r in requests]  # type: ignore[arg-type]
        ids = list(dict.fromkeys(r.id for r in requests))
        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), 100):  # RDS takes up to 100 values per filter
            for d in self.paginate(None, "describe_db_instances", "DBInstances",
                                   Filters=[{"Name": "db-instance-id", "Values": ids[i : i + 100]}]):
                if self._live(d):
                    found[d["DBInstanceIdentifier"]] = d
        return [
            self._observed(found[r.id], r.properties) if r.id in found else None  # type: ignore[arg-type]
            for r in requests
        ]

    def update(self, address: str, id: str, old: InstanceProperties, new: InstanceProperties) -> Observed:
        current = self._observe(address, id, new)
        if current is None:
            raise ProviderError(f"DB instance {id} is gone", kind=ErrorKind.FATAL, address=address)
        kwargs: dict[str, Any] = {}
        for field, param in MODIFIABLE.items():
            want = getattr(new, field)
            if want is not None and current.properties[field] != want:
                kwargs[param] = want
        if "EngineVersion" in kwargs:
            kwargs["AllowMajorVersionUpgrade"] = True
        # the password cannot be read back: send it whenever it may have changed (state keeps a
        # hash, so the old side differs from the plain new one unless both are plain and equal)
        if getattr(old, "password", None) != new.password:
            kwargs["MasterUserPassword"] = new.password
        if kwargs:
            self.call(address, "modify_db_instance", DBInstanceIdentifier=id, ApplyImmediately=True, **kwargs)
            self._available(address, id)
        if dict(old.tags) != dict(new.tags) or current.properties["tags"] != dict(sorted(new.tags.items())):
            self.retag(address, current.attributes["arn"], old.tags, new.tags)
        seen = self.read(address, id, new)
        if seen is None:
            raise ProviderError(f"DB instance {id} is gone", kind=ErrorKind.FATAL, address=address)
        return seen

    def delete(self, address: str, id: str, props: InstanceProperties) -> None:
        got = self.call(address, "describe_db_instances", DBInstanceIdentifier=id, missing=INSTANCE_GONE)
        found = (got or {}).get("DBInstances", [])
        if not found:
            return
        current = found[0]
        if not self._live(current):
            # a delete under way (perhaps ours, its answer lost): its subnet group cannot go before it
            self.wait(address, "db_instance_deleted", delay=10, max_attempts=360, DBInstanceIdentifier=id)
            return
        skip = bool(getattr(props, "skip_final_snapshot", False))
        snapshot = getattr(props, "final_snapshot_identifier", None)
        if not skip and not snapshot:
            raise ProviderError(
                f"deleting DB instance {id} takes a final snapshot, "
                "but final_snapshot_identifier is not set",
                kind=ErrorKind.FATAL,
                address=address,
                hint="set final_snapshot_identifier (or skip_final_snapshot: true) and apply before destroying",
            )
        if current.get("DeletionProtection"):
            raise ProviderError(
                f"DB instance {id} has deletion_protection on; RDS refuses to delete it",
                kind=ErrorKind.FATAL,
                address=address,
                hint="set deletion_protection: false and apply, then destroy",
            )
        kwargs: dict[str, Any] = {"SkipFinalSnapshot": True} if skip else {
            "SkipFinalSnapshot": False, "FinalDBSnapshotIdentifier": snapshot,
        }
        self.call(address, "delete_db_instance", DBInstanceIdentifier=id, missing=INSTANCE_GONE, **kwargs)
        self.wait(address, "db_instance_deleted", delay=10, max_attempts=360, DBInstanceIdentifier=id)

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no DB instance {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        def listed() -> list[str]:
            return [d["DBInstanceIdentifier"] for d in self.paginate(address, "describe_db_instances", "DBInstances")]

        return self.lookup_listed(query, lambda i: self._observe(address, i, None), listed)

    def find(self, address: str, props: InstanceProperties) -> Observed | None:
        return self._observe(address, props.identifier, props)

    def estimate_seconds(self, props: InstanceProperties) -> float:
        return 600.0

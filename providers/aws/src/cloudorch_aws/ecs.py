"""ECS: `aws.ecs_cluster`, `aws.ecs_task_definition`, `aws.ecs_service`.

A task definition revision is immutable: every property but `tags` is force-new, so a change
plans a replace whose new object is the next revision (registered, with its own ARN and
`revision`) and whose delete deregisters the old one. Revisions are found by the address tag
among the family's ACTIVE revisions, so old and new are told apart by ARN.

Clusters and services have asynchronous states. Waits go through botocore waiters (the
provider's convention, `AwsResource.wait`); where botocore has none that fits (a cluster or a
service becoming ACTIVE, a service gone after its delete) this module builds one from a waiter
model. A waiter's first poll is immediate, so an emulator that is ready at once costs one call.
A service is ACTIVE when ECS accepted it; its tasks reaching the desired count is
`wait_for_steady_state` (off by default, as in Terraform).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, field_validator, model_validator

from cloudorch.provider.contract import (
    ErrorKind,
    LookupQuery,
    Observed,
    ProviderError,
    ReadRequest,
    ResourceProperties,
    prop,
)
from cloudorch_aws.errors import error_code
from cloudorch_aws.resource import AwsResource, Shape, tag_dict, tag_list

CLUSTER_GONE = ("ClusterNotFoundException",)
SERVICE_GONE = ("ServiceNotFoundException", "ServiceNotActiveException", "ClusterNotFoundException")
#: codes that mean "busy, try again shortly" here, beyond those `cloudorch_aws.errors` knows
ECS_BUSY = frozenset(
    {
        "ClusterContainsTasksException",  # tasks of a deleted service still stopping
        "ClusterContainsServicesException",  # a service still draining
        "UpdateInProgressException",
    }
)


def dumped(value: Any) -> Any:
    """A property value as plain JSON data: the old side of an update is rebuilt from state
    without validation, so a nested block may be a model or the mapping state stored."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [dumped(v) for v in value]
    return value


class BusyAware(AwsResource[Any]):
    """Calls whose error codes in `busy_codes` are classified CONFLICT (retried by the engine)."""

    busy_codes: ClassVar[Collection[str]] = ()

    def call_on(
        self, client: Any, address: str | None, op: str, *, missing: Collection[str] = (), **kwargs: Any
    ) -> Any:
        try:
            return super().call_on(client, address, op, missing=missing, **kwargs)
        except ProviderError as err:
            if err.kind is ErrorKind.FATAL and error_code(err.cause or err) in self.busy_codes:
                err.kind = ErrorKind.CONFLICT
            raise

    def wait_model(
        self,
        address: str | None,
        name: str,
        operation: str,
        acceptors: list[dict[str, Any]],
        *,
        delay: int,
        max_attempts: int,
        **kwargs: Any,
    ) -> None:
        """Wait with a botocore waiter built from `acceptors` (for states botocore has no waiter for)."""
        from botocore.waiter import WaiterModel, create_waiter_with_client

        model = WaiterModel(
            {
                "version": 2,
                "waiters": {
                    name: {"operation": operation, "delay": delay, "maxAttempts": max_attempts, "acceptors": acceptors}
                },
            }
        )
        try:
            create_waiter_with_client(name, model, self.client).wait(**kwargs)
        except Exception as exc:
            raise self.provider.classify(exc, address) from exc


class EcsResource(BusyAware):
    service = "ecs"
    busy_codes = ECS_BUSY

    def retag(self, address: str, arn: str, old: dict[str, str] | None, new: dict[str, str]) -> None:
        removed = [k for k in (old or {}) if k not in new]
        if removed:
            self.call(address, "untag_resource", resourceArn=arn, tagKeys=removed)
        self.call(address, "tag_resource", resourceArn=arn, tags=self.ecs_tags(address, new))

    def ecs_tags(self, address: str, tags: dict[str, str]) -> list[dict[str, str]]:
        return tag_list(self.tags_to_apply(address, tags), "key", "value")


def _last(arn_or_name: str) -> str:
    return arn_or_name.rsplit("/", 1)[-1]


# ============================================================================ cluster


class ClusterProperties(ResourceProperties):
    """An ECS cluster."""

    name: str = prop(force_new=True, pattern=r"^[A-Za-z0-9_-]{1,255}$", description="Cluster name.")
    container_insights: Literal["enabled", "disabled", "enhanced"] | None = prop(
        None, description="CloudWatch Container Insights; None leaves AWS's setting unmanaged."
    )
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")


class ClusterResource(EcsResource):
    """An ECS cluster; the id is its name."""

    type_name = "aws.ecs_cluster"
    Properties = ClusterProperties
    description = "An ECS cluster (for Fargate or EC2 services)."
    attributes = {"arn": "The cluster ARN.", "name": "The cluster name."}
    recomputed_on_update = frozenset()

    ACTIVE: ClassVar[list[dict[str, Any]]] = [
        {"matcher": "pathAll", "argument": "clusters[].status", "expected": "ACTIVE", "state": "success"},
        {"matcher": "pathAny", "argument": "clusters[].status", "expected": "FAILED", "state": "failure"},
        {"matcher": "pathAny", "argument": "failures[].reason", "expected": "MISSING", "state": "failure"},
    ]
    GONE: ClassVar[list[dict[str, Any]]] = [
        {"matcher": "pathAll", "argument": "clusters[].status", "expected": "INACTIVE", "state": "success"},
        {"matcher": "pathAny", "argument": "failures[].reason", "expected": "MISSING", "state": "success"},
    ]

    def plan_create(self, desired: Any) -> dict[str, Any]:
        name = desired.get("name")
        return {"name": name} if isinstance(name, str) else {}

    def create(self, address: str, props: ClusterProperties) -> Observed:
        kwargs: dict[str, Any] = {}
        if props.container_insights is not None:
            kwargs["settings"] = [{"name": "containerInsights", "value": props.container_insights}]
        self.call(address, "create_cluster", clusterName=props.name, tags=self.ecs_tags(address, props.tags), **kwargs)

        def settle() -> Observed:
            self.wait_model(
                address, "ClusterActive", "DescribeClusters", self.ACTIVE, delay=2, max_attempts=150,
                clusters=[props.name],
            )
            seen = self.read(address, props.name, props)
            if seen is None:
                raise ProviderError(f"cluster {props.name} vanished after create", kind=ErrorKind.TRANSIENT,
                                    address=address)
            return seen

        return self.finish_create(address, props.name, settle)

    def _describe(self, address: str | None, names: list[str]) -> dict[str, dict[str, Any]]:
        """Live (not INACTIVE) clusters among `names`, by name; up to 100 per call."""
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(names), 100):
            got = self.call(
                address, "describe_clusters", clusters=names[i : i + 100], include=["TAGS", "SETTINGS"],
                missing=CLUSTER_GONE,
            )
            for c in (got or {}).get("clusters", []):
                if c.get("status") != "INACTIVE":
                    out[c["clusterName"]] = c
        return out

    def _observed(self, c: dict[str, Any], props: ClusterProperties | None) -> Observed:
        settings = {s["name"]: s.get("value") for s in c.get("settings") or []}
        insights = settings.get("containerInsights") if props is None or props.container_insights else None
        out = {
            "name": c["clusterName"],
            "container_insights": insights,
            "tags": self.observed_tags(tag_dict(c.get("tags"), "key", "value"), props.tags if props else None),
        }
        return Observed(c["clusterName"], out, {"arn": c["clusterArn"], "name": c["clusterName"]})

    def _observe(self, address: str | None, name: str, props: ClusterProperties | None) -> Observed | None:
        found = self._describe(address, [_last(name)]).get(_last(name))
        return None if found is None else self._observed(found, props)

    def read(self, address: str, id: str, props: ClusterProperties) -> Observed | None:
        return self._observe(address, id, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        found = self._describe(None, list(dict.fromkeys(_last(r.id) for r in requests)))
        return [
            self._observed(found[_last(r.id)], r.properties) if _last(r.id) in found else None  # type: ignore[arg-type]
            for r in requests
        ]

    def update(self, address: str, id: str, old: ClusterProperties, new: ClusterProperties) -> Observed:
        current = self._describe(address, [id]).get(id)
        if current is None:
            raise ProviderError(f"ECS cluster {id} is gone", kind=ErrorKind.FATAL, address=address)
        if new.container_insights is not None and new.container_insights != old.container_insights:
            self.call(
                address, "update_cluster", cluster=id,
                settings=[{"name": "containerInsights", "value": new.container_insights}],
            )
        self.retag(address, current["clusterArn"], old.tags, new.tags)
        seen = self.read(address, id, new)
        if seen is None:
            raise ProviderError(f"ECS cluster {id} is gone", kind=ErrorKind.FATAL, address=address)
        return seen

    def delete(self, address: str, id: str, props: ClusterProperties) -> None:
        if self._observe(address, id, props) is None:
            return  # ECS answers a delete of an INACTIVE cluster as if it were live
        self.call(address, "delete_cluster", cluster=id, missing=CLUSTER_GONE)
        self.wait_model(address, "ClusterGone", "DescribeClusters", self.GONE, delay=2, max_attempts=150,
                        clusters=[id])

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no ECS cluster {id}", kind=ErrorKind.FATAL, address=address,
                                hint="import takes the cluster's name or ARN")
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        def listed() -> list[str]:
            return [_last(a) for a in self.paginate(address, "list_clusters", "clusterArns")]

        return self.lookup_listed(query, lambda i: self._observe(address, i, None), listed)

    def find(self, address: str, props: ClusterProperties) -> Observed | None:
        return self._observe(address, props.name, props)

    def estimate_seconds(self, props: ClusterProperties) -> float:
        return 2.0


# ============================================================================ task definition


def _prune(seen: Any, asked: Any) -> Any:
    """`seen` cut down to the keys `asked` has (recursively, lists item by item): AWS fills in
    defaults a user never wrote (`essential`, `cpu: 0`, empty lists, a port's protocol)."""
    if isinstance(seen, dict) and isinstance(asked, dict):
        return {k: _prune(seen[k], asked[k]) for k in asked if k in seen}
    if isinstance(seen, list) and isinstance(asked, list) and len(seen) == len(asked):
        return [_prune(s, a) for s, a in zip(seen, asked, strict=True)]
    return seen


#: what ECS fills in for a container (and a port mapping) that did not say
CONTAINER_DEFAULTS: dict[str, Any] = {"essential": True, "cpu": 0}
PORT_DEFAULTS: dict[str, Any] = {"protocol": "tcp"}


def _bare(value: Any, defaults: dict[str, Any] | None = None) -> Any:
    """`value` without empty lists, mappings, nulls and ECS's defaults: a container as one would
    write it, for an import."""
    if isinstance(value, dict):
        defaults = defaults or {}
        return {
            k: _bare(v, PORT_DEFAULTS if k == "portMappings" else None)
            for k, v in value.items()
            if v not in (None, [], {}) and not (k in defaults and defaults[k] == v)
        }
    if isinstance(value, list):
        return [_bare(v, defaults) for v in value]
    return value


class TaskDefinitionProperties(ResourceProperties):
    """One revision of an ECS task definition. Every property but `tags` is force-new: ECS never
    changes a revision, so a change registers the next one and deregisters this one."""

    family: str = prop(force_new=True, pattern=r"^[A-Za-z0-9_-]{1,255}$", description="Task definition family.")
    container_definitions: list[dict[str, Any]] = prop(
        force_new=True,
        min_length=1,
        description="Containers, in ECS's own JSON shape (`name`, `image`, `portMappings`, ...). "
        "Keys left out keep ECS's defaults and are not compared.",
    )
    cpu: str | None = prop(None, force_new=True, description="Task CPU units, e.g. `256` (Fargate requires it).")
    memory: str | None = prop(None, force_new=True, description="Task memory in MiB, e.g. `512` (Fargate requires it).")
    network_mode: Literal["awsvpc", "bridge", "host", "none"] | None = prop(
        None, force_new=True, description="Docker networking mode; Fargate requires `awsvpc`."
    )
    requires_compatibilities: list[Literal["EC2", "FARGATE", "EXTERNAL"]] = prop(
        default_factory=list, force_new=True, description="Launch types this definition must be valid for."
    )
    execution_role_arn: str | None = prop(
        None, force_new=True, description="Role ECS uses to pull images and read secrets."
    )
    task_role_arn: str | None = prop(None, force_new=True, description="Role the containers run as.")
    tags: dict[str, str] = prop(default_factory=dict, description="Tags (changed in place, on this revision).")

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("container_definitions")
    @classmethod
    def _named(cls, containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, c in enumerate(containers):
            if not isinstance(c.get("name"), str) or not isinstance(c.get("image"), str):
                raise ValueError(f"container {i} needs a `name` and an `image`")
        return containers


def _family_of(arn: str) -> str:
    """`family` of `arn:...:task-definition/family:3` (or of `family:3`)."""
    return _last(arn).rsplit(":", 1)[0]


class TaskDefinitionResource(EcsResource):
    """An ECS task definition revision; the id is its ARN (`...:task-definition/FAMILY:REVISION`)."""

    type_name = "aws.ecs_task_definition"
    Properties = TaskDefinitionProperties
    description = "A revision of an ECS task definition (a change registers the next revision)."
    attributes = {
        "arn": "The revision's ARN (what a service's `task_definition` takes).",
        "revision": "The revision number.",
        "family": "The family.",
        "arn_without_revision": "The family's ARN, without the revision.",
    }
    # only tags change in place, and they touch neither the ARN nor the revision
    recomputed_on_update = frozenset()

    def plan_create(self, desired: Any) -> dict[str, Any]:
        family = desired.get("family")
        return {"family": family} if isinstance(family, str) else {}

    def create(self, address: str, props: TaskDefinitionProperties) -> Observed:
        kwargs: dict[str, Any] = {}
        for field, key in (
            ("cpu", "cpu"),
            ("memory", "memory"),
            ("network_mode", "networkMode"),
            ("execution_role_arn", "executionRoleArn"),
            ("task_role_arn", "taskRoleArn"),
        ):
            if getattr(props, field) is not None:
                kwargs[key] = getattr(props, field)
        if props.requires_compatibilities:
            kwargs["requiresCompatibilities"] = list(props.requires_compatibilities)
        got = self.call(
            address,
            "register_task_definition",
            family=props.family,
            containerDefinitions=props.container_definitions,
            tags=self.ecs_tags(address, props.tags),
            **kwargs,
        )
        arn = got["taskDefinition"]["taskDefinitionArn"]

        def settle() -> Observed:
            seen = self.read(address, arn, props)
            if seen is None:
                raise ProviderError(f"{arn} vanished after it was registered", kind=ErrorKind.TRANSIENT,
                                    address=address)
            return seen

        return self.finish_create(address, arn, settle)

    def _get(self, address: str | None, arn: str) -> dict[str, Any] | None:
        try:
            got = self.client.describe_task_definition(taskDefinition=arn, include=["TAGS"])
        except Exception as exc:
            # ECS answers an unknown revision with a generic ClientException
            if error_code(exc) == "ClientException":
                return None
            raise self.provider.classify(exc, address) from exc
        td: dict[str, Any] = got["taskDefinition"]
        if td.get("status") != "ACTIVE":
            return None  # deregistered (INACTIVE) or being deleted: gone for cloudorch
        td["tags"] = got.get("tags") or []
        return td

    def _observed(self, td: dict[str, Any], props: TaskDefinitionProperties | None) -> Observed:
        containers = td.get("containerDefinitions") or []
        if props is None:
            shown = [_bare(c, CONTAINER_DEFAULTS) for c in containers]
        else:
            asked = {c.get("name"): c for c in props.container_definitions}
            shown = [
                _prune(c, asked[c.get("name")]) if c.get("name") in asked else _bare(c, CONTAINER_DEFAULTS)
                for c in containers
            ]

        def managed(field: str, value: Any) -> Any:
            return value if props is None or getattr(props, field) is not None else None

        out = {
            "family": td["family"],
            "container_definitions": shown,
            "cpu": managed("cpu", td.get("cpu")),
            "memory": managed("memory", td.get("memory")),
            "network_mode": managed("network_mode", td.get("networkMode")),
            "requires_compatibilities": sorted(td.get("requiresCompatibilities") or [])
            if props is None
            else [c for c in props.requires_compatibilities if c in (td.get("requiresCompatibilities") or [])]
            + sorted(set(td.get("requiresCompatibilities") or []) - set(props.requires_compatibilities)),
            "execution_role_arn": td.get("executionRoleArn"),
            "task_role_arn": td.get("taskRoleArn"),
            "tags": self.observed_tags(tag_dict(td.get("tags"), "key", "value"), props.tags if props else None),
        }
        arn = td["taskDefinitionArn"]
        attrs = {
            "arn": arn,
            "revision": int(td["revision"]),
            "family": td["family"],
            "arn_without_revision": arn.rsplit(":", 1)[0],
        }
        return Observed(arn, out, attrs)

    def read(self, address: str, id: str, props: TaskDefinitionProperties) -> Observed | None:
        td = self._get(address, id)
        return None if td is None else self._observed(td, props)

    def update(
        self, address: str, id: str, old: TaskDefinitionProperties, new: TaskDefinitionProperties
    ) -> Observed:
        self.retag(address, id, old.tags, new.tags)
        seen = self.read(address, id, new)
        if seen is None:
            raise ProviderError(f"task definition {id} is gone", kind=ErrorKind.FATAL, address=address)
        return seen

    def delete(self, address: str, id: str, props: TaskDefinitionProperties) -> None:
        if self._get(address, id) is None:
            return
        self.call(address, "deregister_task_definition", taskDefinition=id)

    def import_(self, address: str, id: str) -> Observed:
        td = self._get(address, id)
        if td is None:
            raise ProviderError(
                f"no active ECS task definition {id}", kind=ErrorKind.FATAL, address=address,
                hint="import takes a revision's ARN or FAMILY:REVISION",
            )
        return self._observed(td, None)

    def _revisions(self, address: str | None, family: str) -> list[str]:
        arns = self.paginate(address, "list_task_definitions", "taskDefinitionArns", familyPrefix=family,
                             status="ACTIVE")
        return [a for a in arns if _family_of(a) == family]

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        family = query.filter.get("family")

        def observe(arn: str) -> Observed | None:
            td = self._get(address, arn)
            return None if td is None else self._observed(td, None)

        def listed() -> list[str]:
            if isinstance(family, str):
                return self._revisions(address, family)
            return self.paginate(address, "list_task_definitions", "taskDefinitionArns", status="ACTIVE")

        return self.lookup_listed(query, observe, listed)

    def find_all(self, address: str, props: TaskDefinitionProperties) -> list[Observed]:
        out = []
        for arn in self._revisions(address, props.family):
            td = self._get(address, arn)
            if td is not None and self.owned_by(tag_dict(td["tags"], "key", "value"), address):
                out.append(self._observed(td, props))
        return out

    def find(self, address: str, props: TaskDefinitionProperties) -> Observed | None:
        found = self.find_all(address, props)
        return found[-1] if found else None

    def estimate_seconds(self, props: TaskDefinitionProperties) -> float:
        return 0.5


# ============================================================================ service


class NetworkConfiguration(Shape):
    subnets: list[str] = prop(min_length=1, description="Subnet ids the tasks run in (a set).")
    security_groups: list[str] = prop(default_factory=list, description="Security group ids (a set).")
    assign_public_ip: bool = prop(False, description="Give each task a public IP (Fargate).")

    @field_validator("subnets", "security_groups")
    @classmethod
    def _set(cls, value: list[str]) -> list[str]:
        return sorted(set(value))


class LoadBalancer(Shape):
    target_group_arn: str = prop(description="Target group ARN, e.g. `${resources.tg.arn}`.")
    container_name: str = prop(description="The container (of the task definition) to route to.")
    container_port: int = prop(ge=1, le=65535, description="Its port.")


class ServiceProperties(ResourceProperties):
    """An ECS service running `desired_count` copies of a task definition revision."""

    name: str = prop(
        force_new=True, pattern=r"^[A-Za-z0-9_-]{1,255}$", description="Service name, unique in the cluster."
    )
    cluster: str = prop(force_new=True, description="Cluster name or ARN, e.g. `${resources.cluster.name}`.")
    task_definition: str = prop(
        description="The revision to run: its ARN, e.g. `${resources.task.arn}` (changed in place: a new deployment)."
    )
    desired_count: int = prop(1, ge=0, description="How many tasks to keep running (changed in place).")
    launch_type: Literal["FARGATE", "EC2"] = prop("FARGATE", force_new=True, description="FARGATE or EC2.")
    network_configuration: NetworkConfiguration | None = prop(
        None, description="Subnets and security groups of `awsvpc` tasks (required for FARGATE)."
    )
    load_balancers: list[LoadBalancer] = prop(
        default_factory=list, description="Target groups the tasks register with."
    )
    wait_for_steady_state: bool = prop(
        False, description="After create and update, wait until the running tasks match desired_count."
    )
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")

    @model_validator(mode="after")
    def _fargate_network(self) -> ServiceProperties:
        if self.launch_type == "FARGATE" and self.network_configuration is None:
            raise ValueError(
                "a FARGATE service needs `network_configuration` (its tasks use awsvpc networking): "
                "give `subnets` and `security_groups`"
            )
        return self


def _network(cfg: Any) -> dict[str, Any] | None:
    data = dumped(cfg)
    if not data:
        return None
    return {
        "subnets": sorted(set(data.get("subnets") or [])),
        "security_groups": sorted(set(data.get("security_groups") or [])),
        "assign_public_ip": bool(data.get("assign_public_ip", False)),
    }


def _aws_network(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "awsvpcConfiguration": {
            "subnets": cfg["subnets"],
            "securityGroups": cfg["security_groups"],
            "assignPublicIp": "ENABLED" if cfg["assign_public_ip"] else "DISABLED",
        }
    }


def _balancers(value: Any) -> list[dict[str, Any]]:
    return [
        {"target_group_arn": b["target_group_arn"], "container_name": b["container_name"],
         "container_port": int(b["container_port"])}
        for b in dumped(value) or []
    ]


def _aws_balancers(balancers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"targetGroupArn": b["target_group_arn"], "containerName": b["container_name"],
         "containerPort": b["container_port"]}
        for b in balancers
    ]


def client_token(address: str, cluster: str, name: str) -> str:
    """The same token for every create of this service at this address: ECS answers a repeated
    CreateService with the same token and parameters with the service it made, not a second one."""
    return hashlib.sha256(f"{address}\0{_last(cluster)}\0{name}".encode()).hexdigest()[:32]


class ServiceResource(EcsResource):
    """An ECS service; the id is its ARN (`arn:...:service/CLUSTER/NAME`)."""

    type_name = "aws.ecs_service"
    Properties = ServiceProperties
    description = "An ECS service (Fargate or EC2), optionally behind load balancer target groups."
    attributes = {
        "arn": "The service ARN.",
        "name": "The service name.",
        "cluster_arn": "The ARN of its cluster.",
    }
    # desired count, revision, network and load balancers change in place; the ARN stays
    recomputed_on_update = frozenset()

    ACTIVE: ClassVar[list[dict[str, Any]]] = [
        {"matcher": "pathAll", "argument": "services[].status", "expected": "ACTIVE", "state": "success"},
        {"matcher": "pathAny", "argument": "services[].status", "expected": "INACTIVE", "state": "failure"},
        {"matcher": "pathAny", "argument": "failures[].reason", "expected": "MISSING", "state": "failure"},
    ]
    GONE: ClassVar[list[dict[str, Any]]] = [
        {"matcher": "pathAll", "argument": "services[].status", "expected": "INACTIVE", "state": "success"},
        {"matcher": "pathAny", "argument": "failures[].reason", "expected": "MISSING", "state": "success"},
    ]

    def plan_create(self, desired: Any) -> dict[str, Any]:
        name = desired.get("name")
        return {"name": name} if isinstance(name, str) else {}

    @staticmethod
    def _where(id: str, props: ServiceProperties | None) -> tuple[str, str]:
        """(cluster, service) of an id: an ARN `...:service/CLUSTER/NAME`, or `CLUSTER/NAME`."""
        tail = id.split(":service/", 1)[-1] if ":service/" in id else id
        parts = tail.split("/")
        if len(parts) >= 2:
            return parts[-2], parts[-1]
        return (_last(props.cluster) if props else "default"), parts[-1]

    def _wait(self, address: str, cluster: str, name: str, props: ServiceProperties, acceptors: list[Any]) -> None:
        self.wait_model(address, "ServiceActive", "DescribeServices", acceptors, delay=5, max_attempts=120,
                        cluster=cluster, services=[name])
        if props.wait_for_steady_state:
            self.wait(address, "services_stable", delay=15, max_attempts=80, cluster=cluster, services=[name])

    def create(self, address: str, props: ServiceProperties) -> Observed:
        kwargs: dict[str, Any] = {}
        network = _network(props.network_configuration)
        if network is not None:
            kwargs["networkConfiguration"] = _aws_network(network)
        balancers = _balancers(props.load_balancers)
        if balancers:
            kwargs["loadBalancers"] = _aws_balancers(balancers)
        got = self.call(
            address,
            "create_service",
            cluster=props.cluster,
            serviceName=props.name,
            taskDefinition=props.task_definition,
            desiredCount=props.desired_count,
            launchType=props.launch_type,
            clientToken=client_token(address, props.cluster, props.name),
            tags=self.ecs_tags(address, props.tags),
            **kwargs,
        )
        arn = got["service"]["serviceArn"]
        cluster = _last(props.cluster)

        def settle() -> Observed:
            self._wait(address, cluster, props.name, props, self.ACTIVE)
            seen = self.read(address, arn, props)
            if seen is None:
                raise ProviderError(f"service {arn} vanished after create", kind=ErrorKind.TRANSIENT,
                                    address=address)
            return seen

        return self.finish_create(address, arn, settle)

    def _describe(
        self, address: str | None, cluster: str, names: list[str], *, statuses: Collection[str] = ("ACTIVE",)
    ) -> dict[str, dict[str, Any]]:
        """Services among `names` of `cluster` in one of `statuses`, by name; up to 10 per call.
        Only ACTIVE ones exist for cloudorch: DRAINING is on its way out, INACTIVE is gone."""
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(names), 10):
            got = self.call(address, "describe_services", cluster=cluster, services=names[i : i + 10],
                            include=["TAGS"], missing=SERVICE_GONE)
            for s in (got or {}).get("services", []):
                if s.get("status") in statuses:
                    out[s["serviceName"]] = s
        return out

    def _observed(self, s: dict[str, Any], props: ServiceProperties | None) -> Observed:
        cluster_arn = s.get("clusterArn", "")
        cluster = _last(cluster_arn)
        if props is not None and props.cluster in (cluster, cluster_arn):
            cluster = props.cluster  # as the user wrote it: name or ARN
        task = s.get("taskDefinition", "")
        if props is not None and task.endswith("/" + props.task_definition):
            task = props.task_definition  # `family:revision` names the same revision as its ARN
        raw_net = (s.get("networkConfiguration") or {}).get("awsvpcConfiguration")
        network = None
        if raw_net:
            network = {
                "subnets": sorted(set(raw_net.get("subnets") or [])),
                "security_groups": sorted(set(raw_net.get("securityGroups") or [])),
                "assign_public_ip": raw_net.get("assignPublicIp") == "ENABLED",
            }
        out = {
            "name": s["serviceName"],
            "cluster": cluster,
            "task_definition": task,
            "desired_count": int(s.get("desiredCount", 0)),
            "launch_type": s.get("launchType") or (props.launch_type if props else "FARGATE"),
            "network_configuration": network,
            "load_balancers": [
                {"target_group_arn": b.get("targetGroupArn"), "container_name": b.get("containerName"),
                 "container_port": int(b.get("containerPort", 0))}
                for b in s.get("loadBalancers") or []
            ],
            "wait_for_steady_state": props.wait_for_steady_state if props else False,
            "tags": self.observed_tags(tag_dict(s.get("tags"), "key", "value"), props.tags if props else None),
        }
        return Observed(s["serviceArn"], out, {"arn": s["serviceArn"], "name": s["serviceName"],
                                                "cluster_arn": cluster_arn})

    def _observe(self, address: str | None, id: str, props: ServiceProperties | None) -> Observed | None:
        cluster, name = self._where(id, props)
        found = self._describe(address, cluster, [name]).get(name)
        return None if found is None else self._observed(found, props)

    def read(self, address: str, id: str, props: ServiceProperties) -> Observed | None:
        return self._observe(address, id, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        by_cluster: dict[str, list[str]] = {}
        for r in requests:
            cluster, name = self._where(r.id, r.properties)  # type: ignore[arg-type]
            by_cluster.setdefault(cluster, []).append(name)
        found = {
            cluster: self._describe(None, cluster, list(dict.fromkeys(names)))
            for cluster, names in by_cluster.items()
        }
        out: list[Observed | None] = []
        for r in requests:
            cluster, name = self._where(r.id, r.properties)  # type: ignore[arg-type]
            s = found[cluster].get(name)
            out.append(None if s is None else self._observed(s, r.properties))  # type: ignore[arg-type]
        return out

    def update(self, address: str, id: str, old: ServiceProperties, new: ServiceProperties) -> Observed:
        cluster, name = self._where(id, new)
        current = self._describe(address, cluster, [name]).get(name)
        if current is None:
            raise ProviderError(f"ECS service {id} is gone", kind=ErrorKind.FATAL, address=address)
        seen = self._observed(current, new)
        kwargs: dict[str, Any] = {}
        if seen.properties["desired_count"] != new.desired_count:
            kwargs["desiredCount"] = new.desired_count
        if seen.properties["task_definition"] != new.task_definition:
            kwargs["taskDefinition"] = new.task_definition
        network = _network(new.network_configuration)
        if network is not None and network != seen.properties["network_configuration"]:
            kwargs["networkConfiguration"] = _aws_network(network)
        balancers = _balancers(new.load_balancers)
        if balancers != seen.properties["load_balancers"]:
            kwargs["loadBalancers"] = _aws_balancers(balancers)
        if kwargs:
            self.call(address, "update_service", cluster=cluster, service=name, **kwargs)
        if dict(old.tags) != dict(new.tags) or seen.properties["tags"] != dict(sorted(new.tags.items())):
            self.retag(address, current["serviceArn"], old.tags, new.tags)
        self._wait(address, cluster, name, new, self.ACTIVE)
        after = self.read(address, id, new)
        if after is None:
            raise ProviderError(f"ECS service {id} is gone", kind=ErrorKind.FATAL, address=address)
        return after

    def delete(self, address: str, id: str, props: ServiceProperties) -> None:
        cluster, name = self._where(id, props)
        current = self._describe(address, cluster, [name], statuses=("ACTIVE", "DRAINING")).get(name)
        if current is None:
            return
        if current.get("status") == "ACTIVE":
            replica = current.get("schedulingStrategy", "REPLICA") == "REPLICA"
            if replica and int(current.get("desiredCount", 0)) > 0:
                # ECS refuses to delete a replica service that still wants tasks: scale it to zero first
                self.call(
                    address, "update_service", cluster=cluster, service=name, desiredCount=0, missing=SERVICE_GONE
                )
            # a daemon service has no count to scale down: only `force` deletes it
            self.call(
                address, "delete_service", cluster=cluster, service=name, force=not replica, missing=SERVICE_GONE
            )
        # DRAINING (a delete under way, perhaps a lost one of ours): its cluster cannot go before it
        self.wait_model(address, "ServiceGone", "DescribeServices", self.GONE, delay=5, max_attempts=120,
                        cluster=cluster, services=[name])

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no active ECS service {id}", kind=ErrorKind.FATAL, address=address,
                                hint="import takes the service ARN or CLUSTER/NAME")
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        cluster = query.filter.get("cluster")

        def listed() -> list[str]:
            if not isinstance(cluster, str):
                raise ProviderError(
                    "looking up ECS services without an id needs `cluster` in the filter",
                    kind=ErrorKind.FATAL, address=address, hint="add `cluster: NAME` to the filter, or give `id`",
                )
            return self.paginate(address, "list_services", "serviceArns", cluster=cluster)

        return self.lookup_listed(query, lambda i: self._observe(address, i, None), listed)

    def find(self, address: str, props: ServiceProperties) -> Observed | None:
        return self._observe(address, f"{_last(props.cluster)}/{props.name}", props)

    def estimate_seconds(self, props: ServiceProperties) -> float:
        return 30.0 if props.wait_for_steady_state else 3.0

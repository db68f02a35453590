"""Elastic Load Balancing v2: `aws.lb`, `aws.lb_target_group`, `aws.lb_listener`.

Each object's id is its ARN. Subnets and security groups are sets (sorted in both the model and
`read`). A load balancer's create is two steps, the create (which tags it, so `find` knows it from
the first moment) and its attributes (the idle timeout): the second runs in `finish_create`, so a
failure there leaves the balancer recorded as tainted, never made twice. Refresh reads in bulk:
one Describe call and one DescribeTags call per 20 objects, plus a balancer's attributes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

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
from cloudorch_aws.located import field_error, field_missing
from cloudorch_aws.resource import AwsResource, Shape, tag_dict, tag_list

LB_GONE = ("LoadBalancerNotFound",)
TG_GONE = ("TargetGroupNotFound",)
LISTENER_GONE = ("ListenerNotFound",)
SUBNET_GONE = ("InvalidSubnetID.NotFound",)
#: how many ARNs one Describe or DescribeTags call takes
BATCH = 20
#: an ELB name: letters, digits and hyphens, at most 32, no hyphen at either end
NAME = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$"
HTTP_PROTOCOLS = ("HTTP", "HTTPS")


def _chunks(items: Sequence[str]) -> list[list[str]]:
    return [list(items[i : i + BATCH]) for i in range(0, len(items), BATCH)]


def _block(model: type[BaseModel], value: Any) -> Any:
    """A nested block as its model: properties rebuilt from state without validation (the old side
    of an update) carry it as the plain mapping state stored."""
    if value is None or isinstance(value, model):
        return value
    return model.model_validate(value)


class ElbResource(AwsResource[Any]):
    """The ELBv2 types share tags (AddTags/RemoveTags/DescribeTags by ARN) and bulk reads."""

    service = "elbv2"
    #: the codes meaning the object is gone, and the Describe call's ARN parameter and answer key
    gone: tuple[str, ...] = ()
    describe_op = ""
    arns_param = ""
    answer_key = ""
    arn_key = ""

    def retag(self, address: str, arn: str, old: Mapping[str, str], new: Mapping[str, str]) -> None:
        if dict(old) == dict(new):
            return
        removed = [k for k in old if k not in new]
        if removed:
            self.call(address, "remove_tags", ResourceArns=[arn], TagKeys=removed)
        self.call(address, "add_tags", ResourceArns=[arn], Tags=tag_list(self.tags_to_apply(address, new)))

    def tags_of(self, address: str | None, arns: Sequence[str]) -> dict[str, dict[str, str]]:
        """ARN -> raw tags, one DescribeTags call per 20 ARNs (an ARN gone meanwhile has none)."""
        out: dict[str, dict[str, str]] = {}
        for chunk in _chunks(list(arns)):
            got = self.call(address, "describe_tags", ResourceArns=chunk, missing=self.gone)
            if got is None:  # one of them went away between the two calls: ask one by one
                for arn in chunk:
                    one = self.call(address, "describe_tags", ResourceArns=[arn], missing=self.gone)
                    for d in (one or {}).get("TagDescriptions", []):
                        out[d["ResourceArn"]] = tag_dict(d.get("Tags"))
                continue
            for d in got.get("TagDescriptions", []):
                out[d["ResourceArn"]] = tag_dict(d.get("Tags"))
        return out

    def describe(self, address: str | None, arns: Sequence[str]) -> dict[str, dict[str, Any]]:
        """ARN -> what the Describe call says, one call per 20 ARNs; a missing ARN is left out."""
        out: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(list(arns)):
            got = self.call(address, self.describe_op, **{self.arns_param: chunk}, missing=self.gone)
            if got is None:  # AWS fails the whole call when one is missing: ask one by one
                if len(chunk) == 1:
                    continue
                for arn in chunk:
                    out.update(self.describe(address, [arn]))
                continue
            for item in got.get(self.answer_key, []):
                out[item[self.arn_key]] = item
        return out

    def build(self, item: Mapping[str, Any], tags: Mapping[str, str], props: Any, address: str | None) -> Observed:
        raise NotImplementedError

    def extra(self, address: str | None, items: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """What else a read needs per object (a balancer's attributes); nothing by default."""
        return {}

    def observe_many(self, address: str | None, arns: Sequence[str], props: Sequence[Any]) -> list[Observed | None]:
        items = self.describe(address, arns)
        tags = self.tags_of(address, list(items))
        more = self.extra(address, items)
        out: list[Observed | None] = []
        for arn, p in zip(arns, props, strict=True):
            item = items.get(arn)
            if item is None:
                out.append(None)
                continue
            merged = {**item, **more.get(arn, {})}
            out.append(self.build(merged, tags.get(arn, {}), p, address))
        return out

    def observe(self, address: str | None, arn: str, props: Any) -> Observed | None:
        return self.observe_many(address, [arn], [props])[0]

    def read(self, address: str, id: str, props: Any) -> Observed | None:
        return self.observe(address, id, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        address = requests[0].address if len(requests) == 1 else None
        return self.observe_many(address, [r.id for r in requests], [r.properties for r in requests])

    def gone_after_update(self, address: str, id: str, what: str) -> ProviderError:
        return ProviderError(f"{what} {id} is gone", kind=ErrorKind.FATAL, address=address)

    def owned(self, address: str, arns: Sequence[str], props: Any) -> list[Observed]:
        """The objects among `arns` that carry `address`'s tag, read."""
        tags = self.tags_of(address, arns)
        mine = [a for a in arns if self.owned_by(tags.get(a, {}), address)]
        return [o for o in self.observe_many(address, mine, [props] * len(mine)) if o is not None]

    def find(self, address: str, props: Any) -> Observed | None:
        found = self.find_all(address, props)
        return found[0] if found else None


# ============================================================================ load balancer


class NamedElbResource(ElbResource):
    """A load balancer or target group: named by the user (unique in a region), so imported and
    looked up by name as well as by ARN, and found through its name and the address tag."""

    #: the Describe answer's name field, and what the type is called in messages
    name_key = ""
    noun = ""

    def _by_name(self, address: str, name: str) -> list[str]:
        got = self.call(address, self.describe_op, Names=[name], missing=self.gone)
        return [str(x[self.arn_key]) for x in (got or {}).get(self.answer_key, []) if x[self.name_key] == name]

    def import_(self, address: str, id: str) -> Observed:
        arns = [id] if id.startswith("arn:") else self._by_name(address, id)
        seen = self.observe(address, arns[0], None) if arns else None
        if seen is None:
            raise ProviderError(
                f"no {self.noun} {id}", kind=ErrorKind.FATAL, address=address, hint="import by ARN or by name"
            )
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        name = query.filter.get("name")

        def listed() -> list[str]:
            if isinstance(name, str):
                return self._by_name(address, name)
            return [str(x[self.arn_key]) for x in self.paginate(address, self.describe_op, self.answer_key)]

        return self.lookup_listed(query, lambda arn: self.observe(address, arn, None), listed)

    def find_all(self, address: str, props: Any) -> list[Observed]:
        # the name is unique in a region, but a replace may leave an old one under another name:
        # the address tag tells which are this address's
        return self.owned(address, self._by_name(address, props.name), props)


class LoadBalancerProperties(ResourceProperties):
    """An application (or network) load balancer."""

    name: str = prop(
        force_new=True,
        pattern=NAME,
        description="Name, unique in the region: letters, digits and hyphens, at most 32, not `internal-...`.",
    )
    internal: bool = prop(
        False, force_new=True, description="Scheme `internal` (VPC addresses only); false: `internet-facing`."
    )
    load_balancer_type: Literal["application", "network"] = prop(
        "application", force_new=True, description="application (HTTP/HTTPS) or network (TCP/UDP/TLS)."
    )
    subnets: list[str] = prop(
        min_length=2, description="Subnet ids, at least two, each in another availability zone (a set)."
    )
    security_groups: list[str] = prop(default_factory=list, description="Security group ids (a set).")
    idle_timeout: int = prop(
        60, ge=1, le=4000, description="Seconds an idle connection stays open (application load balancers only)."
    )
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")

    @field_validator("subnets")
    @classmethod
    def _subnets(cls, value: list[str]) -> list[str]:
        out = sorted(set(value))
        if len(out) < 2:
            raise ValueError("name at least two different subnets, each in another availability zone")
        return out

    @field_validator("security_groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        return sorted(set(value))

    @model_validator(mode="after")
    def _network(self) -> LoadBalancerProperties:
        if self.load_balancer_type == "network" and "idle_timeout" in self.model_fields_set and self.idle_timeout != 60:
            raise field_error(
                "aws.lb", "idle_timeout", "a network load balancer has no idle timeout", self.idle_timeout
            )
        if self.name.startswith("internal-"):
            raise field_error("aws.lb", "name", "a load balancer's name cannot start with `internal-`", self.name)
        return self


IDLE_TIMEOUT = "idle_timeout.timeout_seconds"


class LoadBalancerResource(NamedElbResource):
    """A load balancer; the id is its ARN."""

    type_name = "aws.lb"
    Properties = LoadBalancerProperties
    description = "An Elastic Load Balancing v2 load balancer (application or network)."
    attributes = {
        "arn": "The load balancer's ARN.",
        "arn_suffix": "The ARN's last part (app/NAME/ID), as CloudWatch metrics name it.",
        "dns_name": "Its DNS name, e.g. for a Route 53 alias.",
        "zone_id": "Its canonical hosted zone id, for a Route 53 alias.",
        "vpc_id": "The VPC of its subnets.",
        "name": "Its name.",
    }
    # an in-place change (subnets, groups, attributes, tags) keeps the ARN, the DNS name and zone
    recomputed_on_update = frozenset()
    gone = LB_GONE
    describe_op = "describe_load_balancers"
    arns_param = "LoadBalancerArns"
    answer_key = "LoadBalancers"
    arn_key = "LoadBalancerArn"
    name_key = "LoadBalancerName"
    noun = "load balancer"

    def _check_zones(self, address: str, subnets: Sequence[str]) -> None:
        """At most one subnet per availability zone, and two zones at least: a located error
        before anything is made (AWS itself says it only for some of the calls)."""
        got = self.call_on(
            self.provider.client("ec2"), address, "describe_subnets", SubnetIds=list(subnets), missing=SUBNET_GONE
        )
        if got is None:
            return  # a subnet that does not exist: AWS's own error on the create names it
        zones: dict[str, list[str]] = {}
        for s in got.get("Subnets", []):
            zones.setdefault(s["AvailabilityZone"], []).append(s["SubnetId"])
        shared = {z: ids for z, ids in zones.items() if len(ids) > 1}
        if shared or len(zones) < 2:
            detail = "; ".join(f"{', '.join(sorted(ids))} are all in {z}" for z, ids in sorted(shared.items()))
            raise ProviderError(
                f"{address}: property `subnets`: " + (detail or f"all subnets are in {next(iter(zones), 'one zone')}"),
                kind=ErrorKind.FATAL,
                address=address,
                hint="name one subnet in each of at least two availability zones",
            )

    def _set_attributes(self, address: str, arn: str, props: LoadBalancerProperties) -> None:
        self.call(
            address,
            "modify_load_balancer_attributes",
            LoadBalancerArn=arn,
            Attributes=[{"Key": IDLE_TIMEOUT, "Value": str(props.idle_timeout)}],
        )

    def _attrs(self, lb: Mapping[str, Any]) -> dict[str, Any]:
        arn = str(lb["LoadBalancerArn"])
        return {
            "arn": arn,
            "arn_suffix": arn.split(":loadbalancer/", 1)[-1],
            "dns_name": lb.get("DNSName"),
            "zone_id": lb.get("CanonicalHostedZoneId"),
            "vpc_id": lb.get("VpcId"),
            "name": lb.get("LoadBalancerName"),
        }

    def create(self, address: str, props: LoadBalancerProperties) -> Observed:
        self._check_zones(address, props.subnets)
        kwargs: dict[str, Any] = {}
        if props.security_groups:
            kwargs["SecurityGroups"] = props.security_groups
        got = self.call(
            address,
            "create_load_balancer",
            Name=props.name,
            Subnets=props.subnets,
            Scheme="internal" if props.internal else "internet-facing",
            Type=props.load_balancer_type,
            IpAddressType="ipv4",
            # tagged by the create itself: `find` knows it whatever happens next
            Tags=tag_list(self.tags_to_apply(address, props.tags)),
            **kwargs,
        )
        lb = got["LoadBalancers"][0]
        arn = str(lb["LoadBalancerArn"])
        attrs = self._attrs(lb)

        def settle() -> Observed:
            # idempotent steps on the balancer that exists: retried alone, never by a second create
            if props.load_balancer_type == "application":
                self._set_attributes(address, arn, props)
            return Observed(arn, props.model_dump(mode="json"), attrs)

        return self.finish_create(address, arn, settle)

    def update(self, address: str, id: str, old: LoadBalancerProperties, new: LoadBalancerProperties) -> Observed:
        if sorted(old.subnets) != new.subnets:
            self._check_zones(address, new.subnets)
            self.call(address, "set_subnets", LoadBalancerArn=id, Subnets=new.subnets)
        if sorted(old.security_groups or []) != new.security_groups:
            self.call(address, "set_security_groups", LoadBalancerArn=id, SecurityGroups=new.security_groups)
        if old.idle_timeout != new.idle_timeout and new.load_balancer_type == "application":
            self._set_attributes(address, id, new)
        self.retag(address, id, old.tags or {}, new.tags)
        seen = self.observe(address, id, new)
        if seen is None:
            raise self.gone_after_update(address, id, "load balancer")
        return seen

    def extra(self, address: str | None, items: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        arns = [a for a, lb in items.items() if lb.get("Type", "application") == "application"]

        def attributes(arn: str) -> tuple[str, dict[str, str] | None]:
            got = self.call(address, "describe_load_balancer_attributes", LoadBalancerArn=arn, missing=LB_GONE)
            return arn, None if got is None else {a["Key"]: a.get("Value", "") for a in got.get("Attributes", [])}

        return {arn: {"_attributes": attrs} for arn, attrs in self.parallel(attributes, arns) if attrs is not None}

    def build(self, item: Mapping[str, Any], tags: Mapping[str, str], props: Any, address: str | None) -> Observed:
        attributes: Mapping[str, str] = item.get("_attributes") or {}
        out = {
            "name": item["LoadBalancerName"],
            "internal": item.get("Scheme") == "internal",
            "load_balancer_type": item.get("Type", "application"),
            "subnets": sorted(z["SubnetId"] for z in item.get("AvailabilityZones", [])),
            "security_groups": sorted(item.get("SecurityGroups") or []),
            # AWS leaves the attribute out until it is set; its value then is the default
            "idle_timeout": int(attributes.get(IDLE_TIMEOUT) or 60),
            "tags": self.observed_tags(tags, props.tags if props is not None else None),
        }
        return Observed(str(item["LoadBalancerArn"]), out, self._attrs(item))

    def delete(self, address: str, id: str, props: LoadBalancerProperties) -> None:
        self.call(address, "delete_load_balancer", LoadBalancerArn=id, missing=LB_GONE)
        self.wait(address, "load_balancers_deleted", delay=2, max_attempts=90, LoadBalancerArns=[id])

    def estimate_seconds(self, props: LoadBalancerProperties) -> float:
        return 120.0


# ============================================================================ target group


class HealthCheck(Shape):
    """How the load balancer checks a target; unset values follow the group's protocol."""

    enabled: bool = prop(True, description="Whether targets are checked at all.")
    protocol: str | None = prop(
        None, description="HTTP, HTTPS or TCP; default: the group's protocol for HTTP(S), else TCP."
    )
    port: str = prop("traffic-port", description="Port to check, or `traffic-port` (the target's own).")
    path: str | None = prop(None, description="HTTP(S) checks only: the path to request (default /).")
    matcher: str | None = prop(
        None, description="HTTP(S) checks only: healthy status codes, e.g. 200-299 (default 200)."
    )
    interval: int = prop(30, ge=5, le=300, description="Seconds between checks.")
    timeout: int | None = prop(
        None, ge=2, le=120, description="Seconds without an answer that fail a check (default 5 for HTTP(S), else 10)."
    )
    healthy_threshold: int = prop(5, ge=2, le=10, description="Checks passed in a row to call a target healthy.")
    unhealthy_threshold: int = prop(2, ge=2, le=10, description="Checks failed in a row to call it unhealthy.")

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class TargetGroupProperties(ResourceProperties):
    """A target group: where a listener forwards requests."""

    name: str = prop(force_new=True, pattern=NAME, description="Name: letters, digits and hyphens, at most 32.")
    target_type: Literal["instance", "ip", "lambda", "alb"] = prop(
        "instance", force_new=True, description="What the targets are: instance, ip, lambda or alb."
    )
    port: int | None = prop(
        None, ge=1, le=65535, force_new=True, description="Port targets receive traffic on (not for lambda)."
    )
    protocol: Literal["HTTP", "HTTPS", "TCP", "TLS", "UDP", "TCP_UDP", "GENEVE"] | None = prop(
        None,
        force_new=True,
        description="HTTP or HTTPS (application), TCP, TLS, UDP, TCP_UDP (network); not for lambda.",
    )
    vpc_id: str | None = prop(
        None, force_new=True, description="VPC of the targets, `${resources.VPC.id}` (not for lambda)."
    )
    health_check: HealthCheck = prop(default_factory=HealthCheck, description="The health check (changed in place).")
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")

    @field_validator("protocol", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _shape(self) -> TargetGroupProperties:
        for name in ("port", "protocol", "vpc_id"):
            if self.target_type == "lambda" and getattr(self, name) is not None:
                raise field_error("aws.lb_target_group", name, "a lambda target group has none", getattr(self, name))
            if self.target_type != "lambda" and getattr(self, name) is None:
                raise field_missing("aws.lb_target_group", name, f"required for target_type {self.target_type}")
        hc = self.health_check
        if hc.protocol is not None:
            hc.protocol = hc.protocol.upper()
        else:
            hc.protocol = (
                self.protocol if self.protocol in HTTP_PROTOCOLS else "HTTP" if self.protocol is None else "TCP"
            )
        if hc.protocol in HTTP_PROTOCOLS:
            hc.path = hc.path or "/"
            hc.matcher = hc.matcher or "200"
            hc.timeout = hc.timeout or 5
        else:
            for name in ("path", "matcher"):
                if getattr(hc, name) is not None:
                    raise field_error(
                        "aws.lb_target_group", "health_check", f"`{name}` applies to HTTP and HTTPS checks only"
                    )
            hc.timeout = hc.timeout or 10
        if hc.timeout > hc.interval:
            raise field_error("aws.lb_target_group", "health_check", "timeout must not exceed interval", hc.timeout)
        return self


def _health_kwargs(hc: HealthCheck) -> dict[str, Any]:
    out: dict[str, Any] = {
        "HealthCheckEnabled": hc.enabled,
        "HealthCheckProtocol": hc.protocol,
        "HealthCheckPort": hc.port,
        "HealthCheckIntervalSeconds": hc.interval,
        "HealthCheckTimeoutSeconds": hc.timeout,
        "HealthyThresholdCount": hc.healthy_threshold,
        "UnhealthyThresholdCount": hc.unhealthy_threshold,
    }
    if hc.path is not None:
        out["HealthCheckPath"] = hc.path
    if hc.matcher is not None:
        out["Matcher"] = {"HttpCode": hc.matcher}
    return out


class TargetGroupResource(NamedElbResource):
    """A target group; the id is its ARN."""

    type_name = "aws.lb_target_group"
    Properties = TargetGroupProperties
    description = "An Elastic Load Balancing v2 target group with its health check."
    attributes = {
        "arn": "The target group's ARN.",
        "arn_suffix": "The ARN's last part (targetgroup/NAME/ID), as CloudWatch metrics name it.",
        "name": "Its name.",
    }
    recomputed_on_update = frozenset()
    gone = TG_GONE
    describe_op = "describe_target_groups"
    arns_param = "TargetGroupArns"
    answer_key = "TargetGroups"
    arn_key = "TargetGroupArn"
    name_key = "TargetGroupName"
    noun = "target group"

    def create(self, address: str, props: TargetGroupProperties) -> Observed:
        kwargs: dict[str, Any] = {"TargetType": props.target_type, **_health_kwargs(props.health_check)}
        for name, key in (("port", "Port"), ("protocol", "Protocol"), ("vpc_id", "VpcId")):
            if getattr(props, name) is not None:
                kwargs[key] = getattr(props, name)
        # one call, tagged by the create itself: a lost answer is found again by `find`
        got = self.call(
            address,
            "create_target_group",
            Name=props.name,
            Tags=tag_list(self.tags_to_apply(address, props.tags)),
            **kwargs,
        )
        tg = got["TargetGroups"][0]
        return Observed(str(tg["TargetGroupArn"]), props.model_dump(mode="json"), self._attrs(tg))

    def _attrs(self, tg: Mapping[str, Any]) -> dict[str, Any]:
        arn = str(tg["TargetGroupArn"])
        return {"arn": arn, "arn_suffix": arn.rsplit(":", 1)[-1], "name": tg.get("TargetGroupName")}

    def update(self, address: str, id: str, old: TargetGroupProperties, new: TargetGroupProperties) -> Observed:
        if _block(HealthCheck, old.health_check) != new.health_check:
            self.call(address, "modify_target_group", TargetGroupArn=id, **_health_kwargs(new.health_check))
        self.retag(address, id, old.tags or {}, new.tags)
        seen = self.observe(address, id, new)
        if seen is None:
            raise self.gone_after_update(address, id, "target group")
        return seen

    def build(self, item: Mapping[str, Any], tags: Mapping[str, str], props: Any, address: str | None) -> Observed:
        hc_protocol = item.get("HealthCheckProtocol")
        http = hc_protocol in HTTP_PROTOCOLS
        health = {
            "enabled": bool(item.get("HealthCheckEnabled", True)),
            "protocol": hc_protocol,
            "port": str(item.get("HealthCheckPort") or "traffic-port"),
            "path": item.get("HealthCheckPath") if http else None,
            "matcher": (item.get("Matcher") or {}).get("HttpCode") if http else None,
            "interval": int(item.get("HealthCheckIntervalSeconds") or 30),
            "timeout": int(item.get("HealthCheckTimeoutSeconds") or (5 if http else 10)),
            "healthy_threshold": int(item.get("HealthyThresholdCount") or 5),
            "unhealthy_threshold": int(item.get("UnhealthyThresholdCount") or 2),
        }
        port = item.get("Port")
        out = {
            "name": item["TargetGroupName"],
            "target_type": item.get("TargetType", "instance"),
            "port": int(port) if port is not None else None,
            "protocol": item.get("Protocol"),
            "vpc_id": item.get("VpcId"),
            "health_check": health,
            "tags": self.observed_tags(tags, props.tags if props is not None else None),
        }
        return Observed(str(item["TargetGroupArn"]), out, self._attrs(item))

    def delete(self, address: str, id: str, props: TargetGroupProperties) -> None:
        self.call(address, "delete_target_group", TargetGroupArn=id, missing=TG_GONE)

    def estimate_seconds(self, props: TargetGroupProperties) -> float:
        return 2.0


# ============================================================================ listener


class FixedResponse(Shape):
    content_type: Literal["text/plain", "text/css", "text/html", "application/javascript", "application/json"] = prop(
        "text/plain", description="Content-Type of the answer."
    )
    message_body: str | None = prop(None, max_length=1024, description="The body (at most 1024 characters).")
    status_code: str = prop(pattern=r"^[2-5]\d\d$", description="HTTP status, e.g. 404.")

    @field_validator("status_code", mode="before")
    @classmethod
    def _code(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class Redirect(Shape):
    """Where to send the client; `#{protocol}`, `#{host}`, `#{port}`, `#{path}`, `#{query}` keep its own."""

    status_code: Literal["HTTP_301", "HTTP_302"] = prop(description="HTTP_301 (permanent) or HTTP_302 (temporary).")
    protocol: str = prop("#{protocol}", description="HTTP, HTTPS or #{protocol}.")
    port: str = prop("#{port}", description="Port, or #{port}.")
    host: str = prop("#{host}", description="Host name, or #{host}.")
    path: str = prop("/#{path}", description="Path starting with /, or /#{path}.")
    query: str = prop("#{query}", description="Query string without `?`, or #{query}.")

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class DefaultAction(Shape):
    """What the listener does with a request no rule takes."""

    type: Literal["forward", "fixed-response", "redirect"] = prop(description="forward, fixed-response or redirect.")
    target_group_arn: str | None = prop(None, description="forward: the target group, `${resources.TG.arn}`.")
    fixed_response: FixedResponse | None = prop(None, description="fixed-response: the answer.")
    redirect: Redirect | None = prop(None, description="redirect: where to.")

    @model_validator(mode="after")
    def _one(self) -> DefaultAction:
        wanted = {"forward": "target_group_arn", "fixed-response": "fixed_response", "redirect": "redirect"}[self.type]
        for name in ("target_group_arn", "fixed_response", "redirect"):
            if name == wanted and getattr(self, name) is None:
                raise field_missing("default_action", name, f"required when type is {self.type}")
            if name != wanted and getattr(self, name) is not None:
                raise field_error("default_action", name, f"not allowed when type is {self.type}")
        return self


def _action(action: DefaultAction) -> dict[str, Any]:
    if action.type == "forward":
        return {"Type": "forward", "TargetGroupArn": action.target_group_arn}
    if action.type == "fixed-response":
        fr = action.fixed_response
        assert fr is not None
        config = {"ContentType": fr.content_type, "StatusCode": fr.status_code}
        if fr.message_body is not None:
            config["MessageBody"] = fr.message_body
        return {"Type": "fixed-response", "FixedResponseConfig": config}
    rd = action.redirect
    assert rd is not None
    return {
        "Type": "redirect",
        "RedirectConfig": {
            "Protocol": rd.protocol,
            "Port": rd.port,
            "Host": rd.host,
            "Path": rd.path,
            "Query": rd.query,
            "StatusCode": rd.status_code,
        },
    }


def _action_of(raw: Mapping[str, Any]) -> dict[str, Any]:
    kind = raw.get("Type")
    if kind == "forward":
        arn = raw.get("TargetGroupArn")
        if not arn:
            groups = (raw.get("ForwardConfig") or {}).get("TargetGroups") or [{}]
            arn = groups[0].get("TargetGroupArn")
        return {"type": "forward", "target_group_arn": arn, "fixed_response": None, "redirect": None}
    if kind == "fixed-response":
        fr = raw.get("FixedResponseConfig") or {}
        return {
            "type": "fixed-response",
            "target_group_arn": None,
            "fixed_response": {
                "content_type": fr.get("ContentType", "text/plain"),
                "message_body": fr.get("MessageBody"),
                "status_code": str(fr.get("StatusCode", "")),
            },
            "redirect": None,
        }
    rd = raw.get("RedirectConfig") or {}
    return {
        "type": str(kind),
        "target_group_arn": None,
        "fixed_response": None,
        "redirect": {
            "status_code": rd.get("StatusCode"),
            "protocol": rd.get("Protocol", "#{protocol}"),
            "port": str(rd.get("Port", "#{port}")),
            "host": rd.get("Host", "#{host}"),
            "path": rd.get("Path", "/#{path}"),
            "query": rd.get("Query", "#{query}"),
        },
    }


class ListenerProperties(ResourceProperties):
    """A listener of a load balancer: a port and protocol, and what to do with requests."""

    load_balancer_arn: str = prop(force_new=True, description="The load balancer, `${resources.LB.arn}`.")
    port: int = prop(ge=1, le=65535, description="Port it listens on (changed in place).")
    protocol: Literal["HTTP", "HTTPS", "TCP", "TLS", "UDP", "TCP_UDP"] = prop(
        "HTTP", description="HTTP or HTTPS (application), TCP, TLS, UDP, TCP_UDP (network); changed in place."
    )
    certificate_arn: str | None = prop(None, description="HTTPS and TLS: the default certificate's ARN (ACM or IAM).")
    ssl_policy: str | None = prop(
        None, description="HTTPS and TLS: the security policy; None: AWS's default, not compared."
    )
    default_action: DefaultAction = prop(description="forward to a target group, a fixed-response, or a redirect.")
    tags: dict[str, str] = prop(default_factory=dict, description="Tags; merged over the provider's default_tags.")

    @field_validator("protocol", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _certificate(self) -> ListenerProperties:
        secure = self.protocol in ("HTTPS", "TLS")
        if secure and self.certificate_arn is None:
            raise field_missing("aws.lb_listener", "certificate_arn", f"a {self.protocol} listener needs a certificate")
        for name in ("certificate_arn", "ssl_policy"):
            if not secure and getattr(self, name) is not None:
                raise field_error(
                    "aws.lb_listener", name, f"only HTTPS and TLS listeners have one, not {self.protocol}"
                )
        return self


class ListenerResource(ElbResource):
    """A listener; the id is its ARN."""

    type_name = "aws.lb_listener"
    Properties = ListenerProperties
    description = "A listener of an Elastic Load Balancing v2 load balancer with its default action."
    attributes = {"arn": "The listener's ARN."}
    recomputed_on_update = frozenset()
    gone = (*LISTENER_GONE, *LB_GONE)
    describe_op = "describe_listeners"
    arns_param = "ListenerArns"
    answer_key = "Listeners"
    arn_key = "ListenerArn"

    def _settings(self, props: ListenerProperties) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Port": props.port,
            "Protocol": props.protocol,
            "DefaultActions": [_action(_block(DefaultAction, props.default_action))],
        }
        if props.certificate_arn is not None:
            out["Certificates"] = [{"CertificateArn": props.certificate_arn}]
        if props.ssl_policy is not None:
            out["SslPolicy"] = props.ssl_policy
        return out

    def create(self, address: str, props: ListenerProperties) -> Observed:
        # one call, tagged by the create itself: a lost answer is found again by `find`
        got = self.call(
            address,
            "create_listener",
            LoadBalancerArn=props.load_balancer_arn,
            Tags=tag_list(self.tags_to_apply(address, props.tags)),
            **self._settings(props),
        )
        arn = str(got["Listeners"][0]["ListenerArn"])
        return Observed(arn, props.model_dump(mode="json"), {"arn": arn})

    def update(self, address: str, id: str, old: ListenerProperties, new: ListenerProperties) -> Observed:
        mine = ("port", "protocol", "certificate_arn", "ssl_policy")
        action_changed = _block(DefaultAction, old.default_action) != new.default_action
        if action_changed or any(getattr(old, k) != getattr(new, k) for k in mine):
            self.call(address, "modify_listener", ListenerArn=id, **self._settings(new))
        self.retag(address, id, old.tags or {}, new.tags)
        seen = self.observe(address, id, new)
        if seen is None:
            raise self.gone_after_update(address, id, "listener")
        return seen

    def build(self, item: Mapping[str, Any], tags: Mapping[str, str], props: Any, address: str | None) -> Observed:
        secure = item.get("Protocol") in ("HTTPS", "TLS")
        certs = (item.get("Certificates") or []) if secure else []
        actions = item.get("DefaultActions") or [{}]
        out = {
            "load_balancer_arn": item["LoadBalancerArn"],
            "port": int(item["Port"]),
            "protocol": item.get("Protocol"),
            "certificate_arn": certs[0].get("CertificateArn") if certs else None,
            # AWS picks a policy when none is named: compared only where the plan names one
            "ssl_policy": item.get("SslPolicy") if secure and (props is None or props.ssl_policy) else None,
            "default_action": _action_of(actions[0]),
            "tags": self.observed_tags(tags, props.tags if props is not None else None),
        }
        return Observed(str(item["ListenerArn"]), out, {"arn": item["ListenerArn"]})

    def delete(self, address: str, id: str, props: ListenerProperties) -> None:
        self.call(address, "delete_listener", ListenerArn=id, missing=self.gone)

    def _of_balancer(self, address: str, lb_arn: str) -> list[str]:
        got = self.call(address, "describe_listeners", LoadBalancerArn=lb_arn, missing=LB_GONE)
        return [str(x["ListenerArn"]) for x in (got or {}).get("Listeners", [])]

    def import_(self, address: str, id: str) -> Observed:
        seen = self.observe(address, id, None)
        if seen is None:
            raise ProviderError(
                f"no listener {id}", kind=ErrorKind.FATAL, address=address, hint="import a listener by its ARN"
            )
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        lb = query.filter.get("load_balancer_arn")

        def listed() -> list[str]:
            balancers = (
                [lb]
                if isinstance(lb, str)
                else [
                    str(x["LoadBalancerArn"])
                    for x in self.paginate(address, "describe_load_balancers", "LoadBalancers")
                ]
            )
            return [arn for b in balancers for arn in self._of_balancer(address, b)]

        return self.lookup_listed(query, lambda arn: self.observe(address, arn, None), listed)

    def find_all(self, address: str, props: ListenerProperties) -> list[Observed]:
        return self.owned(address, self._of_balancer(address, props.load_balancer_arn), props)

    def estimate_seconds(self, props: ListenerProperties) -> float:
        return 2.0

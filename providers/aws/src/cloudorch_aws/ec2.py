"""EC2 networking: `aws.vpc`, `aws.subnet`, `aws.security_group`.

Security group rules are a set: both the properties model and `read` bring them to one canonical
form (rules with the same protocol and ports merged, CIDRs sorted, rules sorted), so order in
the plan file or in AWS's answer never causes a diff.
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from cloudorch.provider.contract import (
    ErrorKind,
    LookupQuery,
    Observed,
    ProviderError,
    ResourceProperties,
    prop,
)
from cloudorch_aws.resource import ADDRESS_TAG, AwsResource, Shape, address_tag_value, tag_dict, tag_list

VPC_GONE = ("InvalidVpcID.NotFound",)
SUBNET_GONE = ("InvalidSubnetID.NotFound",)
SG_GONE = ("InvalidGroup.NotFound", "InvalidGroupId.NotFound")


class Ec2Resource(AwsResource[Any]):
    """EC2 types share tagging through TagSpecifications and find by the address tag."""

    service = "ec2"
    ec2_type: str = ""

    def tag_spec(self, address: str, tags: dict[str, str]) -> list[dict[str, Any]]:
        return [{"ResourceType": self.ec2_type, "Tags": tag_list(self.tags_to_apply(address, tags))}]

    def retag(self, address: str, id: str, old: dict[str, str], new: dict[str, str]) -> None:
        if old == new:
            return
        removed = [{"Key": k} for k in old if k not in new]
        if removed:
            self.call(address, "delete_tags", Resources=[id], Tags=removed)
        self.call(address, "create_tags", Resources=[id], Tags=tag_list(self.tags_to_apply(address, new)))

    def tag_filter(self, address: str) -> list[dict[str, Any]]:
        return [{"Name": f"tag:{ADDRESS_TAG}", "Values": [address_tag_value(address)]}]

    def lookup_filters(self, query: LookupQuery) -> list[dict[str, Any]]:
        """EC2's own filters for a data source's tags, so the list call narrows it down already."""
        tags = query.filter.get("tags")
        if not isinstance(tags, dict):
            return []
        return [{"Name": f"tag:{k}", "Values": [str(v)]} for k, v in tags.items()]


# ============================================================================ VPC


class VpcProperties(ResourceProperties):
    """A VPC."""

    cidr_block: str = prop(force_new=True, description="IPv4 range, e.g. 10.0.0.0/16.")
    enable_dns_support: bool = prop(True, description="Resolve DNS through the Amazon resolver.")
    enable_dns_hostnames: bool = prop(False, description="Give instances public DNS hostnames.")
    instance_tenancy: str = prop("default", force_new=True, description="default or dedicated.")
    tags: dict[str, str] = prop(default_factory=dict, description="Tags (Name shows in the console).")


class VpcResource(Ec2Resource):
    """A VPC; the id is vpc-...."""

    type_name = "aws.vpc"
    Properties = VpcProperties
    ec2_type = "vpc"
    description = "A VPC with its CIDR block and DNS settings."
    attributes = {"id": "vpc-...", "arn": "The VPC ARN.", "default_security_group_id": "Its default group."}
    recomputed_on_update = frozenset()

    def create(self, address: str, props: VpcProperties) -> Observed:
        got = self.call(
            address,
            "create_vpc",
            CidrBlock=props.cidr_block,
            InstanceTenancy=props.instance_tenancy,
            TagSpecifications=self.tag_spec(address, props.tags),
        )
        vpc_id = got["Vpc"]["VpcId"]

        def settle() -> Observed:
            # idempotent steps on the VPC that exists: retried alone, never by a second create
            self.wait(address, "vpc_available", delay=1, max_attempts=60, VpcIds=[vpc_id])
            self._dns(address, vpc_id, None, props)
            seen = self.read(address, vpc_id, props)
            if seen is None:
                raise ProviderError(f"VPC {vpc_id} vanished after create", kind=ErrorKind.TRANSIENT, address=address)
            return seen

        return self.finish_create(address, vpc_id, settle)

    def _dns(self, address: str, vpc_id: str, old: VpcProperties | None, new: VpcProperties) -> None:
        if old is None or old.enable_dns_support != new.enable_dns_support:
            self.call(
                address,
                "modify_vpc_attribute",
                VpcId=vpc_id,
                EnableDnsSupport={"Value": new.enable_dns_support},
            )
        if (old is None and new.enable_dns_hostnames) or (old and old.enable_dns_hostnames != new.enable_dns_hostnames):
            self.call(
                address,
                "modify_vpc_attribute",
                VpcId=vpc_id,
                EnableDnsHostnames={"Value": new.enable_dns_hostnames},
            )

    def update(self, address: str, id: str, old: VpcProperties, new: VpcProperties) -> Observed:
        self._dns(address, id, old, new)
        self.retag(address, id, old.tags, new.tags)
        seen = self.read(address, id, new)
        if seen is None:
            raise ProviderError(f"VPC {id} is gone", kind=ErrorKind.FATAL, address=address)
        return seen

    def _observe(self, address: str | None, vpc_id: str, props: VpcProperties | None) -> Observed | None:
        got = self.call(address, "describe_vpcs", VpcIds=[vpc_id], missing=VPC_GONE)
        vpcs = (got or {}).get("Vpcs", [])
        if not vpcs:
            return None
        vpc = vpcs[0]

        def attr(name: str, key: str) -> bool:
            value = self.call(address, "describe_vpc_attribute", VpcId=vpc_id, Attribute=name)
            return bool(value.get(key, {}).get("Value", False))

        out = {
            "cidr_block": vpc["CidrBlock"],
            "enable_dns_support": attr("enableDnsSupport", "EnableDnsSupport"),
            "enable_dns_hostnames": attr("enableDnsHostnames", "EnableDnsHostnames"),
            "instance_tenancy": vpc.get("InstanceTenancy", "default"),
            "tags": self.observed_tags(tag_dict(vpc.get("Tags")), props.tags if props else None),
        }
        sgs = self.call(
            address,
            "describe_security_groups",
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": ["default"]}],
        ).get("SecurityGroups", [])
        attrs = {
            "id": vpc_id,
            "arn": f"arn:aws:ec2:{self.provider.region}:{vpc.get('OwnerId', '')}:vpc/{vpc_id}",
            "default_security_group_id": sgs[0]["GroupId"] if sgs else None,
        }
        return Observed(vpc_id, out, attrs)

    def read(self, address: str, id: str, props: VpcProperties) -> Observed | None:
        return self._observe(address, id, props)

    def delete(self, address: str, id: str, props: VpcProperties) -> None:
        self.call(address, "delete_vpc", VpcId=id, missing=VPC_GONE)

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no VPC {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        def listed() -> list[str]:
            got = self.call(address, "describe_vpcs", Filters=self.lookup_filters(query))
            return [v["VpcId"] for v in got.get("Vpcs", [])]

        return self.lookup_listed(query, lambda i: self._observe(address, i, None), listed)

    def find(self, address: str, props: VpcProperties) -> Observed | None:
        found = self.find_all(address, props)
        return found[0] if found else None

    def find_all(self, address: str, props: VpcProperties) -> list[Observed]:
        got = self.call(address, "describe_vpcs", Filters=self.tag_filter(address))
        seen = [self._observe(address, v["VpcId"], props) for v in got.get("Vpcs", [])]
        return [o for o in seen if o is not None]

    def estimate_seconds(self, props: VpcProperties) -> float:
        return 3.0


# ============================================================================ subnet


class SubnetProperties(ResourceProperties):
    """A subnet of a VPC."""

    vpc_id: str = prop(force_new=True, description="VPC id, usually `${resources.VPC.id}`.")
    cidr_block: str = prop(force_new=True, description="IPv4 range inside the VPC's.")
    availability_zone: str | None = prop(None, force_new=True, description="AZ name; None: AWS picks one.")
    map_public_ip_on_launch: bool = prop(False, description="Give instances launched here a public IP.")
    tags: dict[str, str] = prop(default_factory=dict, description="Tags (Name shows in the console).")


class SubnetResource(Ec2Resource):
    """A subnet; the id is subnet-...."""

    type_name = "aws.subnet"
    Properties = SubnetProperties
    ec2_type = "subnet"
    description = "A subnet of a VPC."
    attributes = {"id": "subnet-...", "arn": "The subnet ARN.", "availability_zone": "The AZ it lives in."}
    recomputed_on_update = frozenset()

    def create(self, address: str, props: SubnetProperties) -> Observed:
        kwargs: dict[str, Any] = {}
        if props.availability_zone:
            kwargs["AvailabilityZone"] = props.availability_zone
        got = self.call(
            address,
            "create_subnet",
            VpcId=props.vpc_id,
            CidrBlock=props.cidr_block,
            TagSpecifications=self.tag_spec(address, props.tags),
            **kwargs,
        )
        subnet_id = got["Subnet"]["SubnetId"]

        def settle() -> Observed:
            if props.map_public_ip_on_launch:
                self._map_public(address, subnet_id, True)
            seen = self.read(address, subnet_id, props)
            if seen is None:
                raise ProviderError(
                    f"subnet {subnet_id} vanished after create", kind=ErrorKind.TRANSIENT, address=address
                )
            return seen

        return self.finish_create(address, subnet_id, settle)

    def _map_public(self, address: str, subnet_id: str, value: bool) -> None:
        self.call(address, "modify_subnet_attribute", SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": value})

    def update(self, address: str, id: str, old: SubnetProperties, new: SubnetProperties) -> Observed:
        if old.map_public_ip_on_launch != new.map_public_ip_on_launch:
            self._map_public(address, id, new.map_public_ip_on_launch)
        self.retag(address, id, old.tags, new.tags)
        seen = self.read(address, id, new)
        if seen is None:
            raise ProviderError(f"subnet {id} is gone", kind=ErrorKind.FATAL, address=address)
        return seen

    def _observe(self, address: str | None, subnet_id: str, props: SubnetProperties | None) -> Observed | None:
        got = self.call(address, "describe_subnets", SubnetIds=[subnet_id], missing=SUBNET_GONE)
        subnets = (got or {}).get("Subnets", [])
        if not subnets:
            return None
        s = subnets[0]
        out = {
            "vpc_id": s["VpcId"],
            "cidr_block": s["CidrBlock"],
            "availability_zone": s["AvailabilityZone"] if props is None or props.availability_zone else None,
            "map_public_ip_on_launch": bool(s.get("MapPublicIpOnLaunch", False)),
            "tags": self.observed_tags(tag_dict(s.get("Tags")), props.tags if props else None),
        }
        attrs = {"id": subnet_id, "arn": s.get("SubnetArn"), "availability_zone": s["AvailabilityZone"]}
        return Observed(subnet_id, out, attrs)

    def read(self, address: str, id: str, props: SubnetProperties) -> Observed | None:
        return self._observe(address, id, props)

    def delete(self, address: str, id: str, props: SubnetProperties) -> None:
        self.call(address, "delete_subnet", SubnetId=id, missing=SUBNET_GONE)

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no subnet {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        def listed() -> list[str]:
            filters = self.lookup_filters(query)
            if isinstance(query.filter.get("vpc_id"), str):
                filters.append({"Name": "vpc-id", "Values": [query.filter["vpc_id"]]})
            got = self.call(address, "describe_subnets", Filters=filters)
            return [s["SubnetId"] for s in got.get("Subnets", [])]

        return self.lookup_listed(query, lambda i: self._observe(address, i, None), listed)

    def find(self, address: str, props: SubnetProperties) -> Observed | None:
        found = self.find_all(address, props)
        return found[0] if found else None

    def find_all(self, address: str, props: SubnetProperties) -> list[Observed]:
        got = self.call(address, "describe_subnets", Filters=self.tag_filter(address))
        seen = [self._observe(address, x["SubnetId"], props) for x in got.get("Subnets", [])]
        return [o for o in seen if o is not None]

    def estimate_seconds(self, props: SubnetProperties) -> float:
        return 1.5


# ============================================================================ security group


class Rule(Shape):
    protocol: str = prop("tcp", description="tcp, udp, icmp, or -1 (all).")
    from_port: int = prop(0, description="First port (ICMP type); 0 for all protocols.")
    to_port: int = prop(0, description="Last port (ICMP code); 0 for all protocols.")
    cidr_blocks: list[str] = prop(description="IPv4 or IPv6 ranges the rule admits (a set).")


#: tuple form of one (protocol, from, to, cidr) permission, the unit AWS adds and revokes
Perm = tuple[str, int, int, str]
PROTOCOL_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "all": "-1", "58": "icmpv6"}


def _perms(rules: list[Rule]) -> set[Perm]:
    out: set[Perm] = set()
    for r in rules:
        proto = PROTOCOL_NAMES.get(r.protocol.lower(), r.protocol.lower())
        lo, hi = (0, 0) if proto == "-1" else (r.from_port, r.to_port)
        out.update((proto, lo, hi, c) for c in r.cidr_blocks)
    return out


def _rules(perms: set[Perm]) -> list[Rule]:
    grouped: dict[tuple[str, int, int], list[str]] = {}
    for proto, lo, hi, cidr in perms:
        grouped.setdefault((proto, lo, hi), []).append(cidr)
    return [
        Rule(protocol=p, from_port=lo, to_port=hi, cidr_blocks=sorted(cidrs))
        for (p, lo, hi), cidrs in sorted(grouped.items())
    ]


def _aws_perms(perms: set[Perm]) -> list[dict[str, Any]]:
    out = []
    for proto, lo, hi, cidr in sorted(perms):
        perm: dict[str, Any] = {"IpProtocol": proto}
        if proto != "-1":
            perm.update(FromPort=lo, ToPort=hi)
        perm["Ipv6Ranges" if ":" in cidr else "IpRanges"] = [{"CidrIpv6" if ":" in cidr else "CidrIp": cidr}]
        out.append(perm)
    return out


def _from_aws(permissions: list[dict[str, Any]]) -> set[Perm]:
    out: set[Perm] = set()
    for p in permissions:
        proto = PROTOCOL_NAMES.get(str(p.get("IpProtocol", "-1")), str(p.get("IpProtocol", "-1")))
        lo, hi = (0, 0) if proto == "-1" else (int(p.get("FromPort", 0)), int(p.get("ToPort", 0)))
        for r in p.get("IpRanges", []):
            out.add((proto, lo, hi, r["CidrIp"]))
        for r in p.get("Ipv6Ranges", []):
            out.add((proto, lo, hi, r["CidrIpv6"]))
    return out


ALLOW_ALL_EGRESS: set[Perm] = {("-1", 0, 0, "0.0.0.0/0")}


class SecurityGroupProperties(ResourceProperties):
    """A security group; `ingress` and `egress` are sets of CIDR rules (order never matters)."""

    name: str = prop(force_new=True, description="Group name, unique in the VPC.")
    description: str = prop("Managed by cloudorch", force_new=True, description="Free text (fixed at create).")
    vpc_id: str = prop(force_new=True, description="VPC id, usually `${resources.VPC.id}`.")
    ingress: list[Rule] = prop(default_factory=list, description="Inbound rules.")
    egress: list[Rule] | None = prop(
        None, description="Outbound rules; None keeps AWS's default (all traffic out) unmanaged."
    )
    tags: dict[str, str] = prop(default_factory=dict, description="Tags.")

    @field_validator("ingress", "egress")
    @classmethod
    def _canonical(cls, rules: list[Rule] | None) -> list[Rule] | None:
        return None if rules is None else _rules(_perms(rules))


class SecurityGroupResource(Ec2Resource):
    """A security group; the id is sg-...."""

    type_name = "aws.security_group"
    Properties = SecurityGroupProperties
    ec2_type = "security-group"
    description = "A VPC security group with ingress and egress rule sets."
    attributes = {"id": "sg-...", "arn": "The group ARN.", "name": "The group name."}
    recomputed_on_update = frozenset()

    def create(self, address: str, props: SecurityGroupProperties) -> Observed:
        got = self.call(
            address,
            "create_security_group",
            GroupName=props.name,
            Description=props.description,
            VpcId=props.vpc_id,
            TagSpecifications=self.tag_spec(address, props.tags),
        )
        group_id = got["GroupId"]

        vanished = f"group {group_id} vanished after create"

        def settle() -> Observed:
            # rules are synced from what the group has now, so a retried step adds nothing twice
            group = self._group(address, group_id)
            if group is None:
                raise ProviderError(vanished, kind=ErrorKind.TRANSIENT, address=address)
            ingress, egress = self._inline(address, group)
            self._sync(address, group_id, ingress, _perms(props.ingress), "ingress")
            if props.egress is not None:
                self._sync(address, group_id, egress, _perms(props.egress), "egress")
            seen = self.read(address, group_id, props)
            if seen is None:
                raise ProviderError(vanished, kind=ErrorKind.TRANSIENT, address=address)
            return seen

        return self.finish_create(address, group_id, settle)

    def _sync(self, address: str, group_id: str, have: set[Perm], want: set[Perm], direction: str) -> None:
        add, remove = want - have, have - want
        if remove:
            self.call(
                address,
                f"revoke_security_group_{direction}",
                GroupId=group_id,
                IpPermissions=_aws_perms(remove),
            )
        if add:
            self.call(
                address,
                f"authorize_security_group_{direction}",
                GroupId=group_id,
                IpPermissions=_aws_perms(add),
            )

    def update(self, address: str, id: str, old: SecurityGroupProperties, new: SecurityGroupProperties) -> Observed:
        group = self._group(address, id)
        if group is None:
            raise ProviderError(f"security group {id} is gone", kind=ErrorKind.FATAL, address=address)
        ingress, egress = self._inline(address, group)
        self._sync(address, id, ingress, _perms(new.ingress), "ingress")
        if new.egress is not None:
            self._sync(address, id, egress, _perms(new.egress), "egress")
        self.retag(address, id, old.tags, new.tags)
        seen = self.read(address, id, new)
        if seen is None:
            raise ProviderError(f"security group {id} is gone", kind=ErrorKind.FATAL, address=address)
        return seen

    def _inline(self, address: str | None, group: dict[str, Any]) -> tuple[set[Perm], set[Perm]]:
        """The group's ingress and egress permissions without those of standalone
        `aws.security_group_rule`s (tagged with their address, which inline rules never are; see
        ec2_network.py), so a group and its separate rules never undo one another."""
        ingress = _from_aws(group.get("IpPermissions", []))
        egress = _from_aws(group.get("IpPermissionsEgress", []))
        if not ingress and not egress:
            return ingress, egress
        got = self.call(
            address,
            "describe_security_group_rules",
            Filters=[{"Name": "group-id", "Values": [group["GroupId"]]}],
            missing=SG_GONE,
        )
        for r in (got or {}).get("SecurityGroupRules", []):
            cidr = r.get("CidrIpv4") or r.get("CidrIpv6")
            if cidr is None or ADDRESS_TAG not in tag_dict(r.get("Tags")):
                continue
            proto = PROTOCOL_NAMES.get(str(r.get("IpProtocol", "-1")), str(r.get("IpProtocol", "-1")))
            lo, hi = (0, 0) if proto == "-1" else (int(r.get("FromPort", 0)), int(r.get("ToPort", 0)))
            (egress if r.get("IsEgress") else ingress).discard((proto, lo, hi, cidr))
        return ingress, egress

    def _group(self, address: str | None, group_id: str) -> dict[str, Any] | None:
        got = self.call(address, "describe_security_groups", GroupIds=[group_id], missing=SG_GONE)
        groups = (got or {}).get("SecurityGroups", [])
        return groups[0] if groups else None

    def _observe(self, address: str | None, group_id: str, props: SecurityGroupProperties | None) -> Observed | None:
        g = self._group(address, group_id)
        if g is None:
            return None
        ingress, inline_egress = self._inline(address, g)
        egress = None
        if props is None or props.egress is not None:
            egress = [r.model_dump(mode="json") for r in _rules(inline_egress)]
        out = {
            "name": g["GroupName"],
            "description": g.get("Description", ""),
            "vpc_id": g.get("VpcId"),
            "ingress": [r.model_dump(mode="json") for r in _rules(ingress)],
            "egress": egress,
            "tags": self.observed_tags(tag_dict(g.get("Tags")), props.tags if props else None),
        }
        arn = f"arn:aws:ec2:{self.provider.region}:{g.get('OwnerId', '')}:security-group/{group_id}"
        return Observed(group_id, out, {"id": group_id, "arn": arn, "name": g["GroupName"]})

    def read(self, address: str, id: str, props: SecurityGroupProperties) -> Observed | None:
        return self._observe(address, id, props)

    def delete(self, address: str, id: str, props: SecurityGroupProperties) -> None:
        self.call(address, "delete_security_group", GroupId=id, missing=SG_GONE)

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no security group {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        def listed() -> list[str]:
            filters = self.lookup_filters(query)
            for key, name in (("vpc_id", "vpc-id"), ("name", "group-name")):
                if isinstance(query.filter.get(key), str):
                    filters.append({"Name": name, "Values": [query.filter[key]]})
            got = self.call(address, "describe_security_groups", Filters=filters)
            return [g["GroupId"] for g in got.get("SecurityGroups", [])]

        return self.lookup_listed(query, lambda i: self._observe(address, i, None), listed)

    def find(self, address: str, props: SecurityGroupProperties) -> Observed | None:
        found = self.find_all(address, props)
        return found[0] if found else None

    def find_all(self, address: str, props: SecurityGroupProperties) -> list[Observed]:
        got = self.call(address, "describe_security_groups", Filters=self.tag_filter(address))
        seen = [self._observe(address, g["GroupId"], props) for g in got.get("SecurityGroups", [])]
        return [o for o in seen if o is not None]

    def estimate_seconds(self, props: SecurityGroupProperties) -> float:
        return 1.5

"""EC2 routing and single rules: `aws.internet_gateway`, `aws.route_table`,
`aws.route_table_association`, `aws.security_group_rule`.

A gateway is attached to its VPC after it is made, and a route table gets its routes after it
is made: both finish through `finish_create`, so a failure after the object exists leaves it in
state tainted, never made twice. Each later step first reads what the object has now, so a
retried step (or one whose answer was lost) does nothing twice. A standalone security group rule
is tagged with its address; `aws.security_group` leaves such rules out of its own rule sets (see
`ec2.SecurityGroupResource`), so the two types can manage one group without fighting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import model_validator

from cloudorch.provider.contract import (
    ErrorKind,
    LookupQuery,
    Observed,
    ProviderError,
    ReadRequest,
    ResourceProperties,
    matches_filter,
    prop,
)
from cloudorch_aws.ec2 import PROTOCOL_NAMES, SG_GONE, Ec2Resource
from cloudorch_aws.errors import error_code
from cloudorch_aws.resource import ADDRESS_TAG, Shape, address_tag_value, tag_dict

IGW_GONE = ("InvalidInternetGatewayID.NotFound",)
RTB_GONE = ("InvalidRouteTableID.NotFound",)
ASSOC_GONE = ("InvalidAssociationID.NotFound",)
RULE_GONE = ("InvalidSecurityGroupRuleId.NotFound", "InvalidGroup.NotFound", "InvalidGroupId.NotFound")


def _gone(what: str, id: str, address: str) -> ProviderError:
    return ProviderError(f"{what} {id} is gone", kind=ErrorKind.FATAL, address=address)


# ============================================================================ internet gateway


class InternetGatewayProperties(ResourceProperties):
    """An internet gateway, attached to at most one VPC."""

    vpc_id: str | None = prop(
        None, description="VPC to attach to, usually `${resources.VPC.id}`; None: detached. Changed in place."
    )
    tags: dict[str, str] = prop(default_factory=dict, description="Tags (Name shows in the console).")


class InternetGatewayResource(Ec2Resource):
    """An internet gateway; the id is igw-...."""

    type_name = "aws.internet_gateway"
    Properties = InternetGatewayProperties
    ec2_type = "internet-gateway"
    description = "An internet gateway, attached to a VPC (moved between VPCs in place)."
    attributes = {"id": "igw-...", "arn": "The gateway ARN."}
    recomputed_on_update = frozenset()

    def create(self, address: str, props: InternetGatewayProperties) -> Observed:
        got = self.call(address, "create_internet_gateway", TagSpecifications=self.tag_spec(address, props.tags))
        igw_id = got["InternetGateway"]["InternetGatewayId"]

        def attach() -> Observed:
            self._attach(address, igw_id, props.vpc_id)
            return self._seen(address, igw_id, props, "vanished after create")

        return self.finish_create(address, igw_id, attach)

    def _attached(self, address: str, igw_id: str) -> list[str]:
        got = self.call(address, "describe_internet_gateways", InternetGatewayIds=[igw_id], missing=IGW_GONE)
        gws = (got or {}).get("InternetGateways", [])
        if not gws:
            raise ProviderError(f"internet gateway {igw_id} is gone", kind=ErrorKind.FATAL, address=address)
        return [a["VpcId"] for a in gws[0].get("Attachments", []) if a.get("State") != "detached"]

    def _attach(self, address: str, igw_id: str, vpc_id: str | None) -> None:
        """Attach to `vpc_id` only (detaching from any other first), from what is attached now,
        so a retry after a lost answer neither detaches twice nor attaches twice."""
        for other in self._attached(address, igw_id):
            if other != vpc_id:
                self.call(address, "detach_internet_gateway", InternetGatewayId=igw_id, VpcId=other)
            else:
                return
        if vpc_id is not None:
            self.call(address, "attach_internet_gateway", InternetGatewayId=igw_id, VpcId=vpc_id)

    def _seen(self, address: str, igw_id: str, props: InternetGatewayProperties, why: str) -> Observed:
        seen = self._observe(address, igw_id, props)
        if seen is None:
            raise ProviderError(f"internet gateway {igw_id} {why}", kind=ErrorKind.TRANSIENT, address=address)
        return seen

    def update(self, address: str, id: str, old: InternetGatewayProperties, new: InternetGatewayProperties) -> Observed:
        if old.vpc_id != new.vpc_id:
            self._attach(address, id, new.vpc_id)
        self.retag(address, id, old.tags, new.tags)
        return self._seen(address, id, new, "is gone")

    def _shape(self, g: dict[str, Any], props: InternetGatewayProperties | None) -> Observed:
        vpcs = [a["VpcId"] for a in g.get("Attachments", []) if a.get("State") != "detached"]
        igw_id = g["InternetGatewayId"]
        out = {
            "vpc_id": vpcs[0] if vpcs else None,
            "tags": self.observed_tags(tag_dict(g.get("Tags")), props.tags if props else None),
        }
        arn = f"arn:aws:ec2:{self.provider.region}:{g.get('OwnerId', '')}:internet-gateway/{igw_id}"
        return Observed(igw_id, out, {"id": igw_id, "arn": arn})

    def _observe(self, address: str | None, igw_id: str, props: InternetGatewayProperties | None) -> Observed | None:
        got = self.call(address, "describe_internet_gateways", InternetGatewayIds=[igw_id], missing=IGW_GONE)
        gws = (got or {}).get("InternetGateways", [])
        return self._shape(gws[0], props) if gws else None

    def read(self, address: str, id: str, props: InternetGatewayProperties) -> Observed | None:
        return self._observe(address, id, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        # one DescribeInternetGateways by filter answers for all (by id it fails if one is gone)
        if len(requests) < 2:
            return [self.read(r.address, r.id, r.properties) for r in requests]  # type: ignore[arg-type]
        ids = sorted({r.id for r in requests})
        got = self.paginate(
            None,
            "describe_internet_gateways",
            "InternetGateways",
            Filters=[{"Name": "internet-gateway-id", "Values": ids}],
        )
        by_id = {g["InternetGatewayId"]: g for g in got}
        return [
            self._shape(by_id[r.id], r.properties) if r.id in by_id else None  # type: ignore[arg-type]
            for r in requests
        ]

    def delete(self, address: str, id: str, props: InternetGatewayProperties) -> None:
        got = self.call(address, "describe_internet_gateways", InternetGatewayIds=[id], missing=IGW_GONE)
        for g in (got or {}).get("InternetGateways", []):
            for a in g.get("Attachments", []):
                self.call(
                    address,
                    "detach_internet_gateway",
                    InternetGatewayId=id,
                    VpcId=a["VpcId"],
                    missing=("Gateway.NotAttached", *IGW_GONE),
                )
        self.call(address, "delete_internet_gateway", InternetGatewayId=id, missing=IGW_GONE)

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no internet gateway {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        def listed() -> list[str]:
            filters = self.lookup_filters(query)
            if isinstance(query.filter.get("vpc_id"), str):
                filters.append({"Name": "attachment.vpc-id", "Values": [query.filter["vpc_id"]]})
            got = self.call(address, "describe_internet_gateways", Filters=filters)
            return [g["InternetGatewayId"] for g in got.get("InternetGateways", [])]

        return self.lookup_listed(query, lambda i: self._observe(address, i, None), listed)

    def find(self, address: str, props: InternetGatewayProperties) -> Observed | None:
        found = self.find_all(address, props)
        return found[0] if found else None

    def find_all(self, address: str, props: InternetGatewayProperties) -> list[Observed]:
        got = self.call(address, "describe_internet_gateways", Filters=self.tag_filter(address))
        return [self._shape(g, props) for g in got.get("InternetGateways", [])]

    def estimate_seconds(self, props: InternetGatewayProperties) -> float:
        return 1.5


# ============================================================================ route table


class Route(Shape):
    destination_cidr_block: str = prop(description="IPv4 range the route sends, e.g. 0.0.0.0/0.")
    gateway_id: str | None = prop(None, description="An internet (igw-) or virtual private (vgw-) gateway.")
    nat_gateway_id: str | None = prop(None, description="A NAT gateway (nat-).")
    vpc_peering_connection_id: str | None = prop(None, description="A VPC peering connection (pcx-).")

    @model_validator(mode="after")
    def _one_target(self) -> Route:
        targets = [self.gateway_id, self.nat_gateway_id, self.vpc_peering_connection_id]
        # an unknown target (a gateway made in the same apply) is checked at apply, not at plan
        if sum(t is not None for t in targets) != 1:
            raise ValueError(
                f"route {self.destination_cidr_block}: set exactly one of gateway_id, nat_gateway_id, "
                "vpc_peering_connection_id"
            )
        return self


#: Route field -> the EC2 API's name for it
_ROUTE_TARGETS = {
    "gateway_id": "GatewayId",
    "nat_gateway_id": "NatGatewayId",
    "vpc_peering_connection_id": "VpcPeeringConnectionId",
}


def _routes_by_dest(routes: Sequence[Route | Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in routes:
        data = r.model_dump() if isinstance(r, Route) else dict(r)
        out[data["destination_cidr_block"]] = {k: data.get(k) for k in _ROUTE_TARGETS}
    return out


class RouteTableProperties(ResourceProperties):
    """A route table of a VPC; `routes` are the routes it adds to the VPC's local one (a set)."""

    vpc_id: str = prop(force_new=True, description="VPC id, usually `${resources.VPC.id}`.")
    routes: list[Route] = prop(
        default_factory=list,
        description="Routes, one per destination (order never matters); each changed in place.",
    )
    tags: dict[str, str] = prop(default_factory=dict, description="Tags (Name shows in the console).")

    @model_validator(mode="after")
    def _canonical(self) -> RouteTableProperties:
        seen: set[str] = set()
        for r in self.routes:
            if r.destination_cidr_block in seen:
                raise ValueError(f"two routes for {r.destination_cidr_block}: a route table has one per destination")
            seen.add(r.destination_cidr_block)
        self.routes = sorted(self.routes, key=lambda r: r.destination_cidr_block)
        return self


class RouteTableResource(Ec2Resource):
    """A route table; the id is rtb-...."""

    type_name = "aws.route_table"
    Properties = RouteTableProperties
    ec2_type = "route-table"
    description = "A VPC route table with its routes (to gateways, NAT gateways, peerings)."
    attributes = {"id": "rtb-...", "arn": "The route table ARN."}
    recomputed_on_update = frozenset()

    def create(self, address: str, props: RouteTableProperties) -> Observed:
        got = self.call(
            address,
            "create_route_table",
            VpcId=props.vpc_id,
            TagSpecifications=self.tag_spec(address, props.tags),
        )
        rtb_id = got["RouteTable"]["RouteTableId"]

        def routes() -> Observed:
            self._sync(address, rtb_id, props.routes)
            return self._seen(address, rtb_id, props, "vanished after create")

        return self.finish_create(address, rtb_id, routes)

    def _table(self, address: str | None, rtb_id: str) -> dict[str, Any] | None:
        got = self.call(address, "describe_route_tables", RouteTableIds=[rtb_id], missing=RTB_GONE)
        tables = (got or {}).get("RouteTables", [])
        return tables[0] if tables else None

    def _sync(self, address: str, rtb_id: str, routes: Sequence[Route | Mapping[str, Any]]) -> None:
        """Make the table's own routes `routes`, diffing against what it has now (so a retried or
        repeated sync changes only what still differs)."""
        table = self._table(address, rtb_id)
        if table is None:
            raise _gone("route table", rtb_id, address)
        have = _routes_by_dest(_own_routes(table))
        want = _routes_by_dest(routes)
        for dest in sorted(set(have) - set(want)):
            self.call(
                address,
                "delete_route",
                RouteTableId=rtb_id,
                DestinationCidrBlock=dest,
                missing=("InvalidRoute.NotFound",),
            )
        for dest, target in sorted(want.items()):
            if have.get(dest) == target:
                continue
            kwargs = {_ROUTE_TARGETS[k]: v for k, v in target.items() if v is not None}
            op = "replace_route" if dest in have else "create_route"
            self.call(address, op, RouteTableId=rtb_id, DestinationCidrBlock=dest, **kwargs)

    def _seen(self, address: str, rtb_id: str, props: RouteTableProperties, why: str) -> Observed:
        seen = self._observe(address, rtb_id, props)
        if seen is None:
            raise ProviderError(f"route table {rtb_id} {why}", kind=ErrorKind.TRANSIENT, address=address)
        return seen

    def update(self, address: str, id: str, old: RouteTableProperties, new: RouteTableProperties) -> Observed:
        self._sync(address, id, new.routes)
        self.retag(address, id, old.tags, new.tags)
        return self._seen(address, id, new, "is gone")

    def _shape(self, t: dict[str, Any], props: RouteTableProperties | None) -> Observed:
        rtb_id = t["RouteTableId"]
        routes = [
            {"destination_cidr_block": dest, **target}
            for dest, target in sorted(_routes_by_dest(_own_routes(t)).items())
        ]
        out = {
            "vpc_id": t["VpcId"],
            "routes": routes,
            "tags": self.observed_tags(tag_dict(t.get("Tags")), props.tags if props else None),
        }
        arn = f"arn:aws:ec2:{self.provider.region}:{t.get('OwnerId', '')}:route-table/{rtb_id}"
        return Observed(rtb_id, out, {"id": rtb_id, "arn": arn})

    def _observe(self, address: str | None, rtb_id: str, props: RouteTableProperties | None) -> Observed | None:
        t = self._table(address, rtb_id)
        return None if t is None else self._shape(t, props)

    def read(self, address: str, id: str, props: RouteTableProperties) -> Observed | None:
        return self._observe(address, id, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        if len(requests) < 2:
            return [self.read(r.address, r.id, r.properties) for r in requests]  # type: ignore[arg-type]
        ids = sorted({r.id for r in requests})
        got = self.paginate(
            None, "describe_route_tables", "RouteTables", Filters=[{"Name": "route-table-id", "Values": ids}]
        )
        by_id = {t["RouteTableId"]: t for t in got}
        return [
            self._shape(by_id[r.id], r.properties) if r.id in by_id else None  # type: ignore[arg-type]
            for r in requests
        ]

    def delete(self, address: str, id: str, props: RouteTableProperties) -> None:
        self.call(address, "delete_route_table", RouteTableId=id, missing=RTB_GONE)

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id, None)
        if seen is None:
            raise ProviderError(f"no route table {id}", kind=ErrorKind.FATAL, address=address)
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        def listed() -> list[str]:
            filters = self.lookup_filters(query)
            if isinstance(query.filter.get("vpc_id"), str):
                filters.append({"Name": "vpc-id", "Values": [query.filter["vpc_id"]]})
            got = self.call(address, "describe_route_tables", Filters=filters)
            return [t["RouteTableId"] for t in got.get("RouteTables", [])]

        return self.lookup_listed(query, lambda i: self._observe(address, i, None), listed)

    def find(self, address: str, props: RouteTableProperties) -> Observed | None:
        found = self.find_all(address, props)
        return found[0] if found else None

    def find_all(self, address: str, props: RouteTableProperties) -> list[Observed]:
        got = self.call(address, "describe_route_tables", Filters=self.tag_filter(address))
        return [self._shape(t, props) for t in got.get("RouteTables", [])]

    def estimate_seconds(self, props: RouteTableProperties) -> float:
        return 1.5


def _own_routes(table: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The routes a user added (CreateRoute), by destination: not the VPC's local route, nor
    those a VPC endpoint or a propagating gateway added on its own."""
    out = []
    for r in table.get("Routes", []):
        if r.get("Origin", "CreateRoute") != "CreateRoute" or "DestinationCidrBlock" not in r:
            continue
        gateway = r.get("GatewayId")
        out.append(
            {
                "destination_cidr_block": r["DestinationCidrBlock"],
                "gateway_id": gateway if gateway and gateway != "local" else None,
                "nat_gateway_id": r.get("NatGatewayId"),
                "vpc_peering_connection_id": r.get("VpcPeeringConnectionId"),
            }
        )
    return out


# ============================================================================ route table association


class RouteTableAssociationProperties(ResourceProperties):
    """A subnet's explicit route table."""

    route_table_id: str = prop(description="Route table id, usually `${resources.RTB.id}`; changed in place.")
    subnet_id: str = prop(force_new=True, description="Subnet id, usually `${resources.SUBNET.id}`.")


class RouteTableAssociationResource(Ec2Resource):
    """The association of a subnet with a route table; the id is rtbassoc-.... A subnet has at most
    one, so `find` looks it up by subnet. Moving it to another table (ReplaceRouteTableAssociation)
    gives it a new id: `id` is the one attribute an update recomputes."""

    type_name = "aws.route_table_association"
    Properties = RouteTableAssociationProperties
    taggable = False
    description = "Associates a subnet with a route table (moved to another table in place)."
    attributes = {"id": "rtbassoc-... (a new one after the table changes)."}
    recomputed_on_update = frozenset({"id"})

    def create(self, address: str, props: RouteTableAssociationProperties) -> Observed:
        got = self.call(address, "associate_route_table", RouteTableId=props.route_table_id, SubnetId=props.subnet_id)
        assoc_id = str(got["AssociationId"])
        return self.finish_create(
            address, assoc_id, lambda: self._shape(assoc_id, props.route_table_id, props.subnet_id)
        )

    def _shape(self, assoc_id: str, rtb_id: str, subnet_id: str) -> Observed:
        return Observed(assoc_id, {"route_table_id": rtb_id, "subnet_id": subnet_id}, {"id": assoc_id})

    def _by(self, address: str | None, name: str, value: str) -> Observed | None:
        got = self.call(address, "describe_route_tables", Filters=[{"Name": name, "Values": [value]}])
        for t in got.get("RouteTables", []):
            for a in t.get("Associations", []):
                if a.get("Main") or not a.get("SubnetId"):
                    continue
                if a.get("AssociationState", {}).get("State", "associated") not in ("associated", "associating"):
                    continue
                if (name == "association.subnet-id" and a["SubnetId"] == value) or a[
                    "RouteTableAssociationId"
                ] == value:
                    return self._shape(a["RouteTableAssociationId"], t["RouteTableId"], a["SubnetId"])
        return None

    def _observe(self, address: str | None, assoc_id: str) -> Observed | None:
        return self._by(address, "association.route-table-association-id", assoc_id)

    def update(
        self, address: str, id: str, old: RouteTableAssociationProperties, new: RouteTableAssociationProperties
    ) -> Observed:
        # a retry of an update whose answer was lost finds the subnet already moved under a new id
        now = self._observe(address, id) or self._by(address, "association.subnet-id", new.subnet_id)
        if now is None:
            raise _gone("route table association", id, address)
        if now.properties["route_table_id"] == new.route_table_id:
            return now
        got = self.call(
            address, "replace_route_table_association", AssociationId=now.id, RouteTableId=new.route_table_id
        )
        return self._shape(str(got["NewAssociationId"]), new.route_table_id, new.subnet_id)

    def read(self, address: str, id: str, props: RouteTableAssociationProperties) -> Observed | None:
        return self._observe(address, id)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        if len(requests) < 2:
            return [self.read(r.address, r.id, r.properties) for r in requests]  # type: ignore[arg-type]
        ids = sorted({r.id for r in requests})
        got = self.paginate(
            None,
            "describe_route_tables",
            "RouteTables",
            Filters=[{"Name": "association.route-table-association-id", "Values": ids}],
        )
        by_id: dict[str, Observed] = {}
        for t in got:
            for a in t.get("Associations", []):
                if a.get("SubnetId") and not a.get("Main"):
                    aid = a["RouteTableAssociationId"]
                    by_id[aid] = self._shape(aid, t["RouteTableId"], a["SubnetId"])
        return [by_id.get(r.id) for r in requests]

    def delete(self, address: str, id: str, props: RouteTableAssociationProperties) -> None:
        self.call(address, "disassociate_route_table", AssociationId=id, missing=ASSOC_GONE)

    def import_(self, address: str, id: str) -> Observed:
        # by association id, or by subnet id (a subnet has at most one explicit association)
        seen = (
            self._by(address, "association.subnet-id", id) if id.startswith("subnet-") else self._observe(address, id)
        )
        if seen is None:
            raise ProviderError(
                f"no route table association {id}",
                kind=ErrorKind.FATAL,
                address=address,
                hint="import by association id (rtbassoc-...) or by the subnet's id",
            )
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        if query.id is not None:
            one = self._observe(address, query.id)
            found = [one] if one else []
        elif isinstance(query.filter.get("subnet_id"), str):
            one = self._by(address, "association.subnet-id", query.filter["subnet_id"])
            found = [one] if one else []
        else:
            filters = []
            if isinstance(query.filter.get("route_table_id"), str):
                filters.append({"Name": "route-table-id", "Values": [query.filter["route_table_id"]]})
            got = self.call(address, "describe_route_tables", Filters=filters)
            found = [
                self._shape(a["RouteTableAssociationId"], t["RouteTableId"], a["SubnetId"])
                for t in got.get("RouteTables", [])
                for a in t.get("Associations", [])
                if a.get("SubnetId") and not a.get("Main")
            ]
        return [o for o in found if matches_filter(o, query.filter)]

    def find(self, address: str, props: RouteTableAssociationProperties) -> Observed | None:
        return self._by(address, "association.subnet-id", props.subnet_id)

    def estimate_seconds(self, props: RouteTableAssociationProperties) -> float:
        return 1.0


# ============================================================================ security group rule


class SecurityGroupRuleProperties(ResourceProperties):
    """One rule of a security group: one protocol and port range, from one source."""

    security_group_id: str = prop(force_new=True, description="The group the rule belongs to (`${resources.SG.id}`).")
    type: str = prop(
        force_new=True, pattern=r"^(ingress|egress)$", description="ingress (inbound) or egress (outbound)."
    )
    protocol: str = prop(force_new=True, description="tcp, udp, icmp, icmpv6, a protocol number, or -1 (all).")
    from_port: int = prop(0, force_new=True, description="First port (ICMP type); ignored for -1.")
    to_port: int = prop(0, force_new=True, description="Last port (ICMP code); ignored for -1.")
    cidr_blocks: list[str] = prop(
        default_factory=list, force_new=True, description="One IPv4 range; exactly one source per rule."
    )
    ipv6_cidr_blocks: list[str] = prop(
        default_factory=list, force_new=True, description="One IPv6 range; exactly one source per rule."
    )
    source_security_group_id: str | None = prop(
        None, force_new=True, description="A group whose members the rule admits (or, for egress, reaches)."
    )
    description: str | None = prop(None, max_length=255, description="Free text; the only property changed in place.")

    @model_validator(mode="after")
    def _one_source(self) -> SecurityGroupRuleProperties:
        self.protocol = PROTOCOL_NAMES.get(self.protocol.lower(), self.protocol.lower())
        if self.protocol == "-1":
            self.from_port = self.to_port = 0
        sources = len(self.cidr_blocks) + len(self.ipv6_cidr_blocks) + (self.source_security_group_id is not None)
        if sources != 1:
            raise ValueError(
                "a security group rule has exactly one source: one entry of `cidr_blocks` or "
                "`ipv6_cidr_blocks`, or `source_security_group_id` (declare one rule per range, e.g. with for_each)"
            )
        return self


def _perm(props: SecurityGroupRuleProperties, *, description: bool = True) -> dict[str, Any]:
    """The rule as one IpPermission of the EC2 API."""
    perm: dict[str, Any] = {"IpProtocol": props.protocol}
    if props.protocol != "-1":
        perm.update(FromPort=props.from_port, ToPort=props.to_port)
    extra = {"Description": props.description} if description and props.description is not None else {}
    if props.cidr_blocks:
        perm["IpRanges"] = [{"CidrIp": props.cidr_blocks[0], **extra}]
    elif props.ipv6_cidr_blocks:
        perm["Ipv6Ranges"] = [{"CidrIpv6": props.ipv6_cidr_blocks[0], **extra}]
    else:
        perm["UserIdGroupPairs"] = [{"GroupId": props.source_security_group_id, **extra}]
    return perm


def _rule_props(r: Mapping[str, Any]) -> dict[str, Any]:
    """A SecurityGroupRule of DescribeSecurityGroupRules in the shape of the properties."""
    proto = PROTOCOL_NAMES.get(str(r.get("IpProtocol", "-1")), str(r.get("IpProtocol", "-1")))
    lo, hi = (0, 0) if proto == "-1" else (int(r.get("FromPort", 0)), int(r.get("ToPort", 0)))
    return {
        "security_group_id": r["GroupId"],
        "type": "egress" if r.get("IsEgress") else "ingress",
        "protocol": proto,
        "from_port": lo,
        "to_port": hi,
        "cidr_blocks": [r["CidrIpv4"]] if r.get("CidrIpv4") else [],
        "ipv6_cidr_blocks": [r["CidrIpv6"]] if r.get("CidrIpv6") else [],
        "source_security_group_id": (r.get("ReferencedGroupInfo") or {}).get("GroupId"),
        "description": r.get("Description") or None,
    }


_TUPLE = (
    "security_group_id",
    "type",
    "protocol",
    "from_port",
    "to_port",
    "cidr_blocks",
    "ipv6_cidr_blocks",
    "source_security_group_id",
)


class SecurityGroupRuleResource(Ec2Resource):
    """One security group rule; the id is its SecurityGroupRuleId (sgr-...).

    Everything but the description replaces the rule. `find` matches the rule's tuple (group,
    direction, protocol, ports, source), which a group holds at most once, so a rule whose
    authorize answer was lost is adopted, not authorized twice.
    """

    type_name = "aws.security_group_rule"
    Properties = SecurityGroupRuleProperties
    ec2_type = "security-group-rule"
    # tagged on create with its address (and default_tags) only: a rule has no `tags` property
    taggable = False
    description = "One ingress or egress rule of a security group (a CIDR range or another group)."
    attributes = {"id": "sgr-...", "security_group_id": "The group the rule belongs to."}
    recomputed_on_update = frozenset()

    def create(self, address: str, props: SecurityGroupRuleProperties) -> Observed:
        try:
            got = getattr(self.client, f"authorize_security_group_{props.type}")(
                GroupId=props.security_group_id,
                IpPermissions=[_perm(props)],
                TagSpecifications=self.tag_spec(address, {}),
            )
        except Exception as exc:
            err = self.provider.classify(exc, address)
            if error_code(exc) == "InvalidPermission.Duplicate":
                err.hint = (
                    "the group already has this rule: it is declared twice (inline in aws.security_group "
                    "and here, or in two rules), or was made outside cloudorch (import it instead)"
                )
            raise err from exc
        rules = got.get("SecurityGroupRules") or []
        if not rules:
            # an API without the rule ids in its answer: the tuple still names the one rule
            found = self.find(address, props)
            if found is None:
                raise ProviderError("rule vanished after create", kind=ErrorKind.TRANSIENT, address=address)
            return found
        rule_id = str(rules[0]["SecurityGroupRuleId"])
        return self.finish_create(address, rule_id, lambda: self._seen(address, rule_id, props))

    def _seen(self, address: str, rule_id: str, props: SecurityGroupRuleProperties) -> Observed:
        seen = self._observe(address, rule_id, props.security_group_id)
        if seen is None:
            raise ProviderError(f"security group rule {rule_id} is gone", kind=ErrorKind.TRANSIENT, address=address)
        return seen

    def update(
        self, address: str, id: str, old: SecurityGroupRuleProperties, new: SecurityGroupRuleProperties
    ) -> Observed:
        if old.description != new.description:
            perm = _perm(new.model_copy(update={"description": new.description or ""}))
            self.call(
                address,
                f"update_security_group_rule_descriptions_{new.type}",
                GroupId=new.security_group_id,
                IpPermissions=[perm],
            )
        return self._seen(address, id, new)

    def _pair_descriptions(self, address: str | None, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rules, with the description of each rule naming another group filled in from
        DescribeSecurityGroups where DescribeSecurityGroupRules left it out. moto (5.2) omits
        it there, and an absent description reads as "none", so every refresh would report a
        described group-referencing rule as changed outside cloudorch. One call covers all the
        groups involved, and only when such a rule has no description."""
        bare = [r for r in rules if r.get("ReferencedGroupInfo") and "Description" not in r]
        if not bare:
            return rules
        groups = sorted({str(r["GroupId"]) for r in bare})
        got = self.call(address, "describe_security_groups", GroupIds=groups, missing=SG_GONE)
        said: dict[tuple[Any, ...], str] = {}
        for g in (got or {}).get("SecurityGroups", []):
            for egress, key in ((False, "IpPermissions"), (True, "IpPermissionsEgress")):
                for perm in g.get(key, []):
                    for pair in perm.get("UserIdGroupPairs", []):
                        if pair.get("Description"):
                            rule = (g["GroupId"], egress, perm.get("IpProtocol"), perm.get("FromPort"),
                                    perm.get("ToPort"), pair.get("GroupId"))  # fmt: skip
                            said[rule] = pair["Description"]
        for r in bare:
            rule = (r["GroupId"], bool(r.get("IsEgress")), r.get("IpProtocol"), r.get("FromPort"),
                    r.get("ToPort"), r["ReferencedGroupInfo"].get("GroupId"))  # fmt: skip
            if rule in said:
                r["Description"] = said[rule]
        return rules

    def _shape(self, r: Mapping[str, Any]) -> Observed:
        rule_id = str(r["SecurityGroupRuleId"])
        return Observed(rule_id, _rule_props(r), {"id": rule_id, "security_group_id": r["GroupId"]})

    def _observe(self, address: str | None, rule_id: str, group_id: str | None = None) -> Observed | None:
        filters = [{"Name": "security-group-rule-id", "Values": [rule_id]}]
        if group_id:
            filters.append({"Name": "group-id", "Values": [group_id]})
        got = self.call(address, "describe_security_group_rules", Filters=filters, missing=RULE_GONE)
        rules = [r for r in (got or {}).get("SecurityGroupRules", []) if r.get("SecurityGroupRuleId") == rule_id]
        return self._shape(self._pair_descriptions(address, rules)[0]) if rules else None

    def read(self, address: str, id: str, props: SecurityGroupRuleProperties) -> Observed | None:
        return self._observe(address, id, props.security_group_id)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        # the rules of all the groups involved, one call per group (a gone group answers alone)
        groups = sorted({r.properties.security_group_id for r in requests})  # type: ignore[attr-defined]
        listed = self.parallel(lambda g: self._group_rules(None, g), groups)
        rules = self._pair_descriptions(None, [r for group_rules in listed for r in group_rules])
        by_id = {str(r["SecurityGroupRuleId"]): r for r in rules}
        return [self._shape(by_id[r.id]) if r.id in by_id else None for r in requests]

    def _group_rules(self, address: str | None, group_id: str) -> list[dict[str, Any]]:
        got = self.call(
            address,
            "describe_security_group_rules",
            Filters=[{"Name": "group-id", "Values": [group_id]}],
            missing=RULE_GONE,
        )
        return list((got or {}).get("SecurityGroupRules", []))

    def delete(self, address: str, id: str, props: SecurityGroupRuleProperties) -> None:
        self.call(
            address,
            f"revoke_security_group_{props.type}",
            GroupId=props.security_group_id,
            SecurityGroupRuleIds=[id],
            missing=(*RULE_GONE, *SG_GONE, "InvalidPermission.NotFound"),
        )

    def import_(self, address: str, id: str) -> Observed:
        seen = self._observe(address, id)
        if seen is None:
            raise ProviderError(
                f"no security group rule {id}",
                kind=ErrorKind.FATAL,
                address=address,
                hint="import a rule by its SecurityGroupRuleId (sgr-...), see DescribeSecurityGroupRules",
            )
        return seen

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        if query.id is not None:
            one = self._observe(address, query.id)
            found = [one] if one else []
        else:
            group = query.filter.get("security_group_id")
            filters = [{"Name": "group-id", "Values": [group]}] if isinstance(group, str) else []
            got = self.paginate(address, "describe_security_group_rules", "SecurityGroupRules", Filters=filters)
            found = [self._shape(r) for r in self._pair_descriptions(address, list(got))]
        return [o for o in found if matches_filter(o, query.filter)]

    def find(self, address: str, props: SecurityGroupRuleProperties) -> Observed | None:
        found = self.find_all(address, props)
        return found[0] if found else None

    def find_all(self, address: str, props: SecurityGroupRuleProperties) -> list[Observed]:
        want = {k: v for k, v in props.model_dump().items() if k in _TUPLE}
        out: list[Observed] = []
        for r in self._group_rules(address, props.security_group_id):
            seen = self._shape(r)
            tagged = tag_dict(r.get("Tags")).get(ADDRESS_TAG) == address_tag_value(address)
            same = {k: seen.properties[k] for k in _TUPLE} == want
            if same:
                out.insert(0, seen)  # the rule these properties name comes first, for `find`
            elif tagged:
                out.append(seen)
        return out

    def estimate_seconds(self, props: SecurityGroupRuleProperties) -> float:
        return 1.0

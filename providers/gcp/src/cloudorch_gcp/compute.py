"""`gcp.compute_network`, `gcp.compute_subnetwork`, `gcp.compute_firewall`: VPC networking.

Owns create/read/update/delete/import/find/lookup of the three through compute v1, each write's
operation awaited. Compute networking takes no labels, so the user's name is the object's
identity (`find` reads it back by name), and an insert carries a `requestId` the service
deduplicates, resent when the engine retries a create whose answer was lost.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import field_validator, model_validator

from cloudorch.provider.contract import (
    ConfigError,
    ErrorKind,
    LookupQuery,
    Observed,
    ProviderError,
    ReadRequest,
    ResourceProperties,
    matches_filter,
    prop,
)
from cloudorch_gcp.api_type import ApiType, PendingCreates, last_segment, pages, partial_url

NAME_PATTERN = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"


def _network_ref(value: str) -> str:
    """A network as the user may write it (a name, a partial URL, a self link), self links cut short."""
    return partial_url(value)


def network_path(project: str, value: str) -> str:
    """`projects/P/global/networks/N` for a network named any way `_network_ref` accepts."""
    ref = partial_url(value)
    if "/" not in ref:
        return f"projects/{project}/global/networks/{ref}"
    if ref.startswith("global/"):
        return f"projects/{project}/{ref}"
    return ref


def _same_network(project: str, a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    return network_path(project, a) == network_path(project, b)


class ComputeType(ApiType[Any]):
    """What the three compute types share: the client, inserts that can be retried, lists."""

    #: the collection's name in compute v1 (`networks`), and its path parameter (`network`)
    collection: ClassVar[str]
    param: ClassVar[str]
    what: ClassVar[str]

    def __init__(self, provider: Any) -> None:
        super().__init__(provider)
        self.pending = PendingCreates()

    @property
    def compute(self) -> Any:
        return self.api("compute", "v1")

    def scope(self, props: Any) -> dict[str, str]:
        """The path parameters naming the collection an object of `props` lives in."""
        return {"project": self.project_of(props.project)}

    def scope_of_id(self, id: str) -> tuple[dict[str, str], str]:
        """(collection path parameters, name) of an id `projects/P/.../NAME`."""
        parts = partial_url(id).split("/")
        if len(parts) < 4 or parts[0] != "projects":
            raise ConfigError(
                f"not a {self.what} id: {id!r}", hint=f"expected {self.id_for({'project': 'P', 'region': 'R'}, 'NAME')}"
            )
        scope = {"project": parts[1]}
        if parts[2] == "regions":
            scope["region"] = parts[3]
        return scope, parts[-1]

    def id_for(self, scope: Mapping[str, str], name: str) -> str:
        raise NotImplementedError

    def methods(self) -> Any:
        return getattr(self.compute, self.collection)()

    def get(self, address: str | None, scope: Mapping[str, str], name: str) -> dict[str, Any] | None:
        request = self.methods().get(**scope, **{self.param: name})
        got: dict[str, Any] | None = self.call(address, f"read {self.what} {name}", request, missing=True)
        return got

    def insert(self, address: str, props: Any, body: dict[str, Any]) -> dict[str, Any]:
        """Insert `body` and await it; a retry after a lost answer finds its object made."""
        scope = self.scope(props)
        key = f"{address}\0{self.id_for(scope, props.name)}"
        retried = self.pending.sent_before(key)
        request_id = self.pending.request_id(key)
        what = f"create {self.what} {props.name}"
        try:
            op = self.call(address, what, self.methods().insert(**scope, body=body, requestId=request_id))
        except ProviderError as exc:
            if not (retried and self.status_of(exc.cause) == 409):
                raise
            # our own insert acted and its answer was lost: the object is ours
            op = None
        if op is not None:
            self.wait(address, what, op)
        seen = self.get(address, scope, props.name)
        if seen is None:
            raise ProviderError(f"{address}: {what}: it is not there after the insert", kind=ErrorKind.TRANSIENT,
                                address=address)  # fmt: skip
        self.pending.done(key)
        return seen

    def run(self, address: str, what: str, request: Any) -> None:
        """One write and its operation awaited."""
        op = self.call(address, what, request)
        if op is not None:
            self.wait(address, what, op)

    def delete_by_id(self, address: str, id: str) -> None:
        scope, name = self.scope_of_id(id)
        what = f"delete {self.what} {name}"
        op = self.call(address, what, self.methods().delete(**scope, **{self.param: name}), missing=True)
        if op is not None:
            self.wait(address, what, op)

    def list_scope(self, address: str | None, scope: Mapping[str, str]) -> list[dict[str, Any]]:
        def fetch(token: str | None) -> Mapping[str, Any]:
            request = self.methods().list(**scope, pageToken=token, maxResults=500)
            got: Mapping[str, Any] = self.call(address, f"list {self.what}s", request)
            return got

        return list(pages(fetch, "items"))

    def observe(self, raw: Mapping[str, Any], applied: Any, *, imported: bool = False) -> Observed:
        raise NotImplementedError

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        """One list per project (and region) answers every object in it."""
        if len(requests) < 2:
            return [self.read(r.address, r.id, r.properties) for r in requests]
        groups: dict[tuple[tuple[str, str], ...], list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            scope, _ = self.scope_of_id(r.id)
            groups[tuple(sorted(scope.items()))].append(i)
        out: list[Observed | None] = [None] * len(requests)
        for key, indexes in groups.items():
            if len(indexes) == 1:
                r = requests[indexes[0]]
                out[indexes[0]] = self.read(r.address, r.id, r.properties)
                continue
            by_name = {item["name"]: item for item in self.list_scope(requests[indexes[0]].address, dict(key))}
            for i in indexes:
                raw = by_name.get(self.scope_of_id(requests[i].id)[1])
                out[i] = None if raw is None else self.observe(raw, requests[i].properties)
        return out

    def read(self, address: str, id: str, props: Any) -> Observed | None:
        scope, name = self.scope_of_id(id)
        raw = self.get(address, scope, name)
        return None if raw is None else self.observe(raw, props)

    def delete(self, address: str, id: str, props: Any) -> None:
        self.delete_by_id(address, id)

    def import_(self, address: str, id: str) -> Observed:
        scope, name = self.scope_of_id(id)
        raw = self.get(address, scope, name)
        if raw is None:
            raise ProviderError(f"{address}: {self.what} {id} does not exist", kind=ErrorKind.FATAL, address=address)
        return self.observe(raw, None, imported=True)

    def find(self, address: str, props: Any) -> Observed | None:
        # the name is the identity: nothing else marks a compute network as this address's
        raw = self.get(address, self.scope(props), props.name)
        return None if raw is None else self.observe(raw, props)

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        if query.id is not None:
            scope, name = self.scope_of_id(query.id)
            raw = self.get(address, scope, name)
            found = [] if raw is None else [self.observe(raw, None, imported=True)]
        else:
            found = [self.observe(raw, None, imported=True) for raw in self.list_for_lookup(address, query)]
        return [o for o in found if matches_filter(o, query.filter)]

    def list_for_lookup(self, address: str, query: LookupQuery) -> list[dict[str, Any]]:
        project = self.project_of(query.filter.get("project") if isinstance(query.filter.get("project"), str) else None)
        return self.list_scope(address, {"project": project})

    def estimate_seconds(self, props: Any) -> float:
        return 5.0


# --------------------------------------------------------------------------- networks


class NetworkProperties(ResourceProperties):
    name: str = prop(
        force_new=True, pattern=NAME_PATTERN, description="Network name, unique in the project (1-63: a-z, 0-9, -)."
    )
    project: str | None = prop(None, force_new=True, description="Owning project; unset: providers.gcp.project.")
    description: str | None = prop(None, force_new=True, description="Free text (fixed at create).")
    auto_create_subnetworks: bool = prop(
        True,
        force_new=True,
        description="Auto mode (a subnetwork in every region, made by Google) when true; custom mode when false.",
    )
    routing_mode: Literal["REGIONAL", "GLOBAL"] | None = prop(
        None, description="Cloud Router route advertisement: REGIONAL or GLOBAL; unset: the service's (REGIONAL)."
    )
    mtu: int | None = prop(None, ge=1300, le=8896, description="Maximum transmission unit in bytes; unset: 1460.")


class ComputeNetwork(ComputeType):
    """A VPC network."""

    type_name = "gcp.compute_network"
    Properties = NetworkProperties
    description = "A VPC network (auto or custom mode); routing_mode and mtu change in place."
    attributes = {
        "id": "projects/PROJECT/global/networks/NAME (reference it from a subnetwork or firewall).",
        "name": "The network name.",
        "self_link": "The network's compute URL.",
        "numeric_id": "The service's numeric id.",
        "gateway_ipv4": "Gateway address of a legacy network (empty otherwise).",
    }
    recomputed_on_update = frozenset()
    collection, param, what = "networks", "network", "network"

    def id_for(self, scope: Mapping[str, str], name: str) -> str:
        return f"projects/{scope['project']}/global/networks/{name}"

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        name, project = desired.get("name"), desired.get("project") or self.default_project
        if isinstance(name, str) and isinstance(project, str):
            return {"id": self.id_for({"project": project}, name), "name": name}
        return {}

    def observe(self, raw: Mapping[str, Any], applied: Any, *, imported: bool = False) -> Observed:
        project = partial_url(str(raw.get("selfLink", ""))).split("/")[1] if raw.get("selfLink") else (
            self.project_of(applied.project if applied else None))  # fmt: skip
        routing = (raw.get("routingConfig") or {}).get("routingMode")
        mtu = raw.get("mtu")
        properties: dict[str, Any] = {
            "name": raw["name"],
            **self.project_field(project, applied.project if applied else None, imported=imported),
            "description": raw.get("description") or None,
            "auto_create_subnetworks": bool(raw.get("autoCreateSubnetworks", False)),
            "routing_mode": routing,
            "mtu": int(mtu) if mtu is not None else None,
        }
        if applied is not None:
            # what the user left to the service reads as unset
            if applied.routing_mode is None:
                properties["routing_mode"] = None
            if applied.mtu is None:
                properties["mtu"] = None
        id = self.id_for({"project": project}, raw["name"])
        return Observed(
            id=id,
            properties=properties,
            attributes={
                "id": id,
                "name": raw["name"],
                "self_link": raw.get("selfLink"),
                "numeric_id": str(raw.get("id", "")),
                "gateway_ipv4": raw.get("gatewayIPv4", ""),
            },
        )

    def create(self, address: str, props: NetworkProperties) -> Observed:
        body: dict[str, Any] = {"name": props.name, "autoCreateSubnetworks": props.auto_create_subnetworks}
        if props.description:
            body["description"] = props.description
        if props.routing_mode:
            body["routingConfig"] = {"routingMode": props.routing_mode}
        if props.mtu is not None:
            body["mtu"] = props.mtu
        return self.observe(self.insert(address, props, body), props)

    def update(self, address: str, id: str, old: NetworkProperties, new: NetworkProperties) -> Observed:
        scope, name = self.scope_of_id(id)
        body: dict[str, Any] = {}
        if new.routing_mode is not None:
            body["routingConfig"] = {"routingMode": new.routing_mode}
        if new.mtu is not None:
            body["mtu"] = new.mtu
        if body:
            self.run(address, f"update network {name}", self.methods().patch(**scope, network=name, body=body))
        raw = self.get(address, scope, name)
        if raw is None:
            raise self.gone(address, f"network {name}")
        return self.observe(raw, new)


# --------------------------------------------------------------------------- subnetworks


class SecondaryRange(ResourceProperties):
    range_name: str = prop(pattern=NAME_PATTERN, description="The range's name, unique in the subnetwork.")
    ip_cidr_range: str = prop(description="The range, e.g. 10.4.0.0/20.")


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network range (e.g. 10.0.0.0/24): {exc}") from None


class SubnetworkProperties(ResourceProperties):
    name: str = prop(force_new=True, pattern=NAME_PATTERN, description="Subnetwork name, unique in the region.")
    project: str | None = prop(None, force_new=True, description="Owning project; unset: providers.gcp.project.")
    region: str = prop(force_new=True, description="Region, e.g. europe-west1.")
    network: str = prop(
        force_new=True,
        description="The network: `${resources.NET.id}`, a self link, or a network name in the same project.",
    )
    ip_cidr_range: str = prop(
        description="Primary IPv4 range. It can only grow in place (a range containing the old one); "
        "to move it elsewhere, rename the subnetwork so it is replaced."
    )
    secondary_ip_ranges: list[SecondaryRange] = prop(
        default_factory=list, description="Secondary ranges (alias IPs, GKE pods/services), by name."
    )
    private_ip_google_access: bool = prop(False, description="VMs without external IPs may reach Google APIs.")
    description: str | None = prop(None, force_new=True, description="Free text (fixed at create).")

    @field_validator("network")
    @classmethod
    def _short_network(cls, value: str) -> str:
        return _network_ref(value)

    @field_validator("ip_cidr_range")
    @classmethod
    def _range(cls, value: str) -> str:
        return _cidr(value)

    @field_validator("secondary_ip_ranges")
    @classmethod
    def _secondary(cls, ranges: list[SecondaryRange]) -> list[SecondaryRange]:
        names = [r.range_name for r in ranges]
        if len(set(names)) != len(names):
            raise ValueError("two secondary ranges have the same range_name")
        for r in ranges:
            r.ip_cidr_range = _cidr(r.ip_cidr_range)
        return sorted(ranges, key=lambda r: r.range_name)  # a set by name: order never matters


class ComputeSubnetwork(ComputeType):
    """A regional subnetwork of a VPC network."""

    type_name = "gcp.compute_subnetwork"
    Properties = SubnetworkProperties
    description = (
        "A regional subnetwork; its range grows in place (expandIpCidrRange), secondary ranges and "
        "private Google access change in place."
    )
    attributes = {
        "id": "projects/PROJECT/regions/REGION/subnetworks/NAME.",
        "name": "The subnetwork name.",
        "self_link": "The subnetwork's compute URL.",
        "gateway_address": "The range's gateway address.",
        "network_self_link": "The network's compute URL.",
    }
    recomputed_on_update = frozenset()
    collection, param, what = "subnetworks", "subnetwork", "subnetwork"

    def scope(self, props: Any) -> dict[str, str]:
        return {"project": self.project_of(props.project), "region": props.region}

    def id_for(self, scope: Mapping[str, str], name: str) -> str:
        return f"projects/{scope['project']}/regions/{scope['region']}/subnetworks/{name}"

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        name, region = desired.get("name"), desired.get("region")
        project = desired.get("project") or self.default_project
        if isinstance(name, str) and isinstance(region, str) and isinstance(project, str):
            return {"id": self.id_for({"project": project, "region": region}, name), "name": name}
        return {}

    def observe(self, raw: Mapping[str, Any], applied: Any, *, imported: bool = False) -> Observed:
        parts = partial_url(str(raw.get("selfLink", ""))).split("/")
        project = parts[1] if len(parts) > 1 else self.project_of(applied.project if applied else None)
        region = last_segment(str(raw.get("region", ""))) or (applied.region if applied else "")
        network = network_path(project, str(raw.get("network", "")))
        if applied is not None and _same_network(project, applied.network, network):
            network = applied.network  # the user's spelling of the same network
        secondary = sorted(
            (
                {"range_name": r["rangeName"], "ip_cidr_range": r["ipCidrRange"]}
                for r in raw.get("secondaryIpRanges") or []
            ),
            key=lambda r: r["range_name"],
        )
        properties: dict[str, Any] = {
            "name": raw["name"],
            **self.project_field(project, applied.project if applied else None, imported=imported),
            "region": region,
            "network": network,
            "ip_cidr_range": raw.get("ipCidrRange"),
            "secondary_ip_ranges": secondary,
            "private_ip_google_access": bool(raw.get("privateIpGoogleAccess", False)),
            "description": raw.get("description") or None,
        }
        id = self.id_for({"project": project, "region": region}, raw["name"])
        return Observed(
            id=id,
            properties=properties,
            attributes={
                "id": id,
                "name": raw["name"],
                "self_link": raw.get("selfLink"),
                "gateway_address": raw.get("gatewayAddress", ""),
                "network_self_link": raw.get("network"),
            },
        )

    def create(self, address: str, props: SubnetworkProperties) -> Observed:
        props = self.valid(props)
        project = self.project_of(props.project)
        body: dict[str, Any] = {
            "name": props.name,
            "network": network_path(project, props.network),
            "ipCidrRange": props.ip_cidr_range,
            "privateIpGoogleAccess": props.private_ip_google_access,
        }
        if props.secondary_ip_ranges:
            body["secondaryIpRanges"] = [
                {"rangeName": r.range_name, "ipCidrRange": r.ip_cidr_range} for r in props.secondary_ip_ranges
            ]
        if props.description:
            body["description"] = props.description
        return self.observe(self.insert(address, props, body), props)

    def update(self, address: str, id: str, old: SubnetworkProperties, new: SubnetworkProperties) -> Observed:
        new = self.valid(new)
        scope, name = self.scope_of_id(id)
        raw = self.get(address, scope, name)
        if raw is None:
            raise self.gone(address, f"subnetwork {name}")
        have = ipaddress.ip_network(raw["ipCidrRange"])
        want = ipaddress.ip_network(new.ip_cidr_range)
        if want != have:
            if not (want.version == have.version and have.subnet_of(want)):  # type: ignore[arg-type]
                raise ProviderError(
                    f"{address}: ip_cidr_range {new.ip_cidr_range} does not contain the subnetwork's range {have}: "
                    "a range can only grow in place",
                    kind=ErrorKind.FATAL,
                    address=address,
                    hint="give a range that contains the old one, or change `name` so the subnetwork is replaced",
                )
            self.run(
                address,
                f"expand subnetwork {name} to {want}",
                self.methods().expandIpCidrRange(**scope, subnetwork=name, body={"ipCidrRange": str(want)}),
            )
        if bool(raw.get("privateIpGoogleAccess", False)) != new.private_ip_google_access:
            self.run(
                address,
                f"set private Google access of subnetwork {name}",
                self.methods().setPrivateIpGoogleAccess(
                    **scope, subnetwork=name, body={"privateIpGoogleAccess": new.private_ip_google_access}
                ),
            )
        have_secondary = sorted(
            ((r["rangeName"], r["ipCidrRange"]) for r in raw.get("secondaryIpRanges") or []), key=lambda r: r[0]
        )
        want_secondary = [(r.range_name, r.ip_cidr_range) for r in new.secondary_ip_ranges]
        if have_secondary != want_secondary:
            # a patch names the fingerprint it was computed from: read again, the calls above changed it
            fresh = self.get(address, scope, name)
            if fresh is None:
                raise self.gone(address, f"subnetwork {name}")
            body = {
                "fingerprint": fresh.get("fingerprint"),
                "secondaryIpRanges": [{"rangeName": n, "ipCidrRange": r} for n, r in want_secondary],
            }
            self.run(
                address, f"update secondary ranges of subnetwork {name}",
                self.methods().patch(**scope, subnetwork=name, body=body),
            )  # fmt: skip
        raw = self.get(address, scope, name)
        if raw is None:
            raise self.gone(address, f"subnetwork {name}")
        return self.observe(raw, new)

    def list_for_lookup(self, address: str, query: LookupQuery) -> list[dict[str, Any]]:
        project = query.filter.get("project")
        project = self.project_of(project if isinstance(project, str) else None)
        region = query.filter.get("region")
        if not isinstance(region, str):
            raise ConfigError(
                f"{address}: a gcp.compute_subnetwork lookup needs `region` in its filter (or an `id`)",
                hint="filter: {region: europe-west1, name: ...}",
            )
        return self.list_scope(address, {"project": project, "region": region})

    def estimate_seconds(self, props: Any) -> float:
        return 10.0


# --------------------------------------------------------------------------- firewalls


class FirewallRule(ResourceProperties):
    protocol: str = prop(description="tcp, udp, icmp, esp, ah, sctp, ipip, all, or an IP protocol number.")
    ports: list[str] = prop(
        default_factory=list, description="Ports or ranges (`80`, `8000-8080`) for tcp, udp, sctp; empty: all."
    )


def _rules(raw: list[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    return sorted(
        ({"protocol": str(r.get("IPProtocol", "")), "ports": [str(p) for p in r.get("ports") or []]}
         for r in raw or []),
        key=lambda r: (r["protocol"], r["ports"]),
    )  # fmt: skip


class FirewallProperties(ResourceProperties):
    name: str = prop(force_new=True, pattern=NAME_PATTERN, description="Firewall rule name, unique in the project.")
    project: str | None = prop(None, force_new=True, description="Owning project; unset: providers.gcp.project.")
    network: str = prop(
        force_new=True,
        description="The network: `${resources.NET.id}`, a self link, or a network name in the same project.",
    )
    direction: Literal["INGRESS", "EGRESS"] = prop("INGRESS", force_new=True, description="INGRESS or EGRESS.")
    priority: int = prop(1000, ge=0, le=65535, description="0 (first) to 65535 (last).")
    allow: list[FirewallRule] = prop(default_factory=list, description="Traffic the rule allows (or use `deny`).")
    deny: list[FirewallRule] = prop(default_factory=list, description="Traffic the rule denies (or use `allow`).")
    source_ranges: list[str] = prop(default_factory=list, description="Source CIDR ranges (ingress).")
    destination_ranges: list[str] = prop(default_factory=list, description="Destination CIDR ranges (egress).")
    source_tags: list[str] = prop(default_factory=list, description="Source instance network tags (ingress).")
    target_tags: list[str] = prop(default_factory=list, description="Instance network tags the rule applies to.")
    description: str | None = prop(None, description="Free text.")
    disabled: bool = prop(False, description="Keep the rule but do not enforce it.")

    @field_validator("network")
    @classmethod
    def _short_network(cls, value: str) -> str:
        return _network_ref(value)

    @field_validator("allow", "deny")
    @classmethod
    def _sorted_rules(cls, rules: list[FirewallRule]) -> list[FirewallRule]:
        return sorted(rules, key=lambda r: (r.protocol, r.ports))  # a set: order never matters

    @field_validator("source_ranges", "destination_ranges", "source_tags", "target_tags")
    @classmethod
    def _sorted(cls, values: list[str]) -> list[str]:
        return sorted(set(values))

    @model_validator(mode="after")
    def _allow_or_deny(self) -> FirewallProperties:
        if bool(self.allow) == bool(self.deny):
            raise ValueError("a firewall rule has either `allow` or `deny` blocks (exactly one of the two)")
        return self


class ComputeFirewall(ComputeType):
    """A VPC firewall rule."""

    type_name = "gcp.compute_firewall"
    Properties = FirewallProperties
    description = "A VPC firewall rule (allow or deny blocks); every field but name, network and direction patches."
    attributes = {
        "id": "projects/PROJECT/global/firewalls/NAME.",
        "name": "The rule name.",
        "self_link": "The rule's compute URL.",
    }
    recomputed_on_update = frozenset()
    collection, param, what = "firewalls", "firewall", "firewall rule"

    def id_for(self, scope: Mapping[str, str], name: str) -> str:
        return f"projects/{scope['project']}/global/firewalls/{name}"

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        name, project = desired.get("name"), desired.get("project") or self.default_project
        if isinstance(name, str) and isinstance(project, str):
            return {"id": self.id_for({"project": project}, name), "name": name}
        return {}

    def body(self, props: FirewallProperties, project: str) -> dict[str, Any]:
        # every managed field is sent, empty ones too: a patch leaves out what it does not name
        props = self.valid(props)
        return {
            "name": props.name,
            "network": network_path(project, props.network),
            "direction": props.direction,
            "priority": props.priority,
            "allowed": [{"IPProtocol": r.protocol, **({"ports": r.ports} if r.ports else {})} for r in props.allow],
            "denied": [{"IPProtocol": r.protocol, **({"ports": r.ports} if r.ports else {})} for r in props.deny],
            "sourceRanges": props.source_ranges,
            "destinationRanges": props.destination_ranges,
            "sourceTags": props.source_tags,
            "targetTags": props.target_tags,
            "description": props.description or "",
            "disabled": props.disabled,
        }

    def observe(self, raw: Mapping[str, Any], applied: Any, *, imported: bool = False) -> Observed:
        parts = partial_url(str(raw.get("selfLink", ""))).split("/")
        project = parts[1] if len(parts) > 1 else self.project_of(applied.project if applied else None)
        network = network_path(project, str(raw.get("network", "")))
        if applied is not None and _same_network(project, applied.network, network):
            network = applied.network
        properties: dict[str, Any] = {
            "name": raw["name"],
            **self.project_field(project, applied.project if applied else None, imported=imported),
            "network": network,
            "direction": raw.get("direction", "INGRESS"),
            "priority": int(raw.get("priority", 1000)),
            "allow": _rules(raw.get("allowed")),
            "deny": _rules(raw.get("denied")),
            "source_ranges": sorted(set(raw.get("sourceRanges") or [])),
            "destination_ranges": sorted(set(raw.get("destinationRanges") or [])),
            "source_tags": sorted(set(raw.get("sourceTags") or [])),
            "target_tags": sorted(set(raw.get("targetTags") or [])),
            "description": raw.get("description") or None,
            "disabled": bool(raw.get("disabled", False)),
        }
        if applied is not None:
            # a rule with no source (ingress) or destination (egress) is given 0.0.0.0/0 by the service
            anywhere = ["0.0.0.0/0"]
            no_source = not (applied.source_ranges or applied.source_tags or properties["source_tags"])
            if applied.direction == "INGRESS" and no_source and properties["source_ranges"] == anywhere:
                properties["source_ranges"] = []
            no_destination = not applied.destination_ranges
            if applied.direction == "EGRESS" and no_destination and properties["destination_ranges"] == anywhere:
                properties["destination_ranges"] = []
        id = self.id_for({"project": project}, raw["name"])
        return Observed(id=id, properties=properties,
                        attributes={"id": id, "name": raw["name"], "self_link": raw.get("selfLink")})  # fmt: skip

    def create(self, address: str, props: FirewallProperties) -> Observed:
        return self.observe(self.insert(address, props, self.body(props, self.project_of(props.project))), props)

    def update(self, address: str, id: str, old: FirewallProperties, new: FirewallProperties) -> Observed:
        scope, name = self.scope_of_id(id)
        body = self.body(new, scope["project"])
        self.run(address, f"update firewall rule {name}", self.methods().patch(**scope, firewall=name, body=body))
        raw = self.get(address, scope, name)
        if raw is None:
            raise self.gone(address, f"firewall rule {name}")
        return self.observe(raw, new)

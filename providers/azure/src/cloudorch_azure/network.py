"""`azure.virtual_network`, `azure.subnet`, `azure.network_security_group`: typed Azure networking.

Owns the mapping of these three types to Microsoft.Network's ARM bodies at a pinned API version.
The one trap it guards against: a virtual network's PUT replaces its whole `subnets` list, so a
PUT without the subnets ARM has deletes them. Subnets are managed one by one (`azure.subnet`, a
child resource), so an update of the network first reads the subnets ARM has and sends them
back unchanged; the network never reports or diffs its subnets.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from cloudorch.provider.contract import ConfigError, Observed, ResourceProperties, prop
from cloudorch_azure.arm_resource import arm_id, parse_arm_id
from cloudorch_azure.typed import GroupedProperties, TypedArmResource, as_written

NETWORK_API_VERSION = "2024-05-01"

#: what ARM adds to a subnet it reports and a PUT must not send back as the user's
_SUBNET_READ_ONLY = frozenset({"provisioningState", "ipConfigurations", "purpose", "resourceNavigationLinks"})


_GUARD = threading.Lock()
_NETWORK_LOCKS: dict[str, threading.Lock] = {}


def network_lock(vnet_id: str) -> threading.Lock:
    """One lock per network in this process: a network's update (read its subnets, PUT them back)
    and a write of one of its subnets never interleave, so the update never sends a subnet list
    that misses a subnet made meanwhile (ARM also refuses concurrent writes in one network)."""
    with _GUARD:
        return _NETWORK_LOCKS.setdefault(vnet_id.lower(), threading.Lock())


def _cidr(value: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network in CIDR form (e.g. 10.0.0.0/16): {exc}") from None
    return value


class VirtualNetworkProperties(GroupedProperties):
    name: str = prop(
        description="Network name (2-64 letters, digits, `._-`).",
        force_new=True,
        pattern=r"^[A-Za-z0-9][-\w.]{0,62}[\w]$",
    )
    address_space: list[str] = prop(
        description="The network's address prefixes in CIDR form, e.g. [10.0.0.0/16].", min_length=1
    )
    dns_servers: list[str] = prop(
        default_factory=list, description="DNS server addresses; empty: Azure's own resolver."
    )

    @field_validator("address_space")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        return [_cidr(v) for v in value]


class VirtualNetwork(TypedArmResource[VirtualNetworkProperties]):
    """A virtual network; its subnets are `azure.subnet` resources, kept across its updates."""

    type_name = "azure.virtual_network"
    Properties = VirtualNetworkProperties
    arm_type = "Microsoft.Network/virtualNetworks"
    api_version = NETWORK_API_VERSION
    description = (
        "An Azure virtual network (address space, DNS servers); subnets are azure.subnet resources, "
        "which an update of the network keeps."
    )
    attributes = {
        "id": "The ARM id.",
        "provisioning_state": "ARM's provisioning state.",
        "resource_guid": "The network's GUID, set by Azure.",
        "location": "The region as ARM reports it.",
    }
    recomputed_on_update = frozenset({"provisioning_state"})

    def update(
        self, address: str, id: str, old: VirtualNetworkProperties, new: VirtualNetworkProperties
    ) -> Observed:
        with network_lock(self.rid(new)):
            return super().update(address, id, old, new)

    def to_arm(self, address: str, props: VirtualNetworkProperties, current: dict[str, Any] | None) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "addressSpace": {"addressPrefixes": list(props.address_space)},
            "dhcpOptions": {"dnsServers": list(props.dns_servers)},
        }
        if current is not None:
            # ARM deletes every subnet a PUT leaves out: send back the ones it has, as it has them
            properties["subnets"] = [
                {
                    "name": s.get("name"),
                    "id": s.get("id"),
                    "properties": {
                        k: v for k, v in (s.get("properties") or {}).items() if k not in _SUBNET_READ_ONLY
                    },
                }
                for s in (current.get("properties") or {}).get("subnets") or []
            ]
        return {**self.base_body(address, props), "properties": properties}

    def from_arm(self, raw: dict[str, Any], applied: VirtualNetworkProperties | None) -> dict[str, Any]:
        p = raw.get("properties") or {}
        return {
            **self.base_properties(raw, applied),
            "address_space": list((p.get("addressSpace") or {}).get("addressPrefixes") or []),
            "dns_servers": list((p.get("dhcpOptions") or {}).get("dnsServers") or []),
        }

    def attributes_of(self, raw: dict[str, Any]) -> dict[str, Any]:
        p = raw.get("properties") or {}
        return {
            **super().attributes_of(raw),
            "resource_guid": p.get("resourceGuid"),
            "location": raw.get("location"),
        }

    def estimate_seconds(self, props: VirtualNetworkProperties) -> float:
        return 8.0


# ---------------------------------------------------------------------- subnets


class SubnetProperties(ResourceProperties):
    name: str = prop(
        description="Subnet name (1-80 letters, digits, `._-`).",
        force_new=True,
        pattern=r"^[A-Za-z0-9]([-\w.]{0,78}[\w])?$",
    )
    virtual_network: str = prop(description="Name of the virtual network it is part of.", force_new=True)
    resource_group: str = prop(description="Resource group of the virtual network.", force_new=True)
    address_prefixes: list[str] = prop(
        description="The subnet's prefixes in CIDR form, inside the network's address space.", min_length=1
    )
    network_security_group_id: str | None = prop(
        None, description="ARM id of the network security group to associate (usually a reference); none: no group."
    )
    service_endpoints: list[str] = prop(
        default_factory=list, description="Service endpoints to enable, e.g. [Microsoft.Storage, Microsoft.KeyVault]."
    )

    @field_validator("address_prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        return [_cidr(v) for v in value]


class Subnet(TypedArmResource[SubnetProperties]):
    """A subnet, a child resource of its virtual network (PUT and DELETE one by one)."""

    type_name = "azure.subnet"
    Properties = SubnetProperties
    arm_type = "Microsoft.Network/virtualNetworks/subnets"
    api_version = NETWORK_API_VERSION
    # ARM keeps no tags on a subnet: its name in its network is its identity, and `find` adopts
    # the subnet of that name (a crashed create's), as it adopts nothing else
    taggable = False
    description = "A subnet of an Azure virtual network (prefixes, network security group, service endpoints)."
    attributes = {
        "id": "The ARM id.",
        "provisioning_state": "ARM's provisioning state.",
    }
    recomputed_on_update = frozenset({"provisioning_state"})

    def rid(self, props: SubnetProperties) -> str:
        name = f"{props.virtual_network}/{props.name}"
        return arm_id(self.az.subscription_id, props.resource_group, self.arm_type, name)

    def _network(self, props: SubnetProperties) -> threading.Lock:
        return network_lock(arm_id(self.az.subscription_id, props.resource_group, VirtualNetwork.arm_type,
                                   props.virtual_network))

    def create(self, address: str, props: SubnetProperties) -> Observed:
        with self._network(props):
            return super().create(address, props)

    def update(self, address: str, id: str, old: SubnetProperties, new: SubnetProperties) -> Observed:
        with self._network(new):
            return super().update(address, id, old, new)

    def delete(self, address: str, id: str, props: SubnetProperties) -> None:
        with self._network(props):
            super().delete(address, id, props)

    def to_arm(self, address: str, props: SubnetProperties, current: dict[str, Any] | None) -> dict[str, Any]:
        # what ARM has and the type does not manage (delegations, policies, ...) is kept
        properties = {
            k: v for k, v in ((current or {}).get("properties") or {}).items() if k not in _SUBNET_READ_ONLY
        }
        properties.pop("addressPrefix", None)
        properties["addressPrefixes"] = list(props.address_prefixes)
        properties["networkSecurityGroup"] = (
            {"id": props.network_security_group_id} if props.network_security_group_id else None
        )
        properties["serviceEndpoints"] = [{"service": s} for s in props.service_endpoints]
        return {"properties": properties}

    def from_arm(self, raw: dict[str, Any], applied: SubnetProperties | None) -> dict[str, Any]:
        _, group, _, names = parse_arm_id(str(raw["id"]))
        network, _, name = names.partition("/")
        p = raw.get("properties") or {}
        # ARM answers one prefix as `addressPrefix`, several as `addressPrefixes`
        prefixes = list(p.get("addressPrefixes") or ([p["addressPrefix"]] if p.get("addressPrefix") else []))
        nsg = (p.get("networkSecurityGroup") or {}).get("id")
        services = [str(s.get("service")) for s in p.get("serviceEndpoints") or []]
        if applied is not None:
            wanted = {s.lower(): s for s in applied.service_endpoints}
            services = [wanted.get(s.lower(), s) for s in services]
        return {
            "name": applied.name if applied is not None and applied.name.lower() == name.lower() else name,
            "virtual_network": (
                applied.virtual_network
                if applied is not None and applied.virtual_network.lower() == network.lower()
                else network
            ),
            "resource_group": (
                applied.resource_group
                if applied is not None and applied.resource_group.lower() == group.lower()
                else group
            ),
            "address_prefixes": prefixes,
            "network_security_group_id": as_written(nsg, applied.network_security_group_id if applied else None),
            "service_endpoints": services,
        }

    def list_ids(self, address: str, filter: Any) -> list[str]:
        """A network's subnets: its GET lists them (the generic list does not show child resources)."""
        group, network = filter.get("resource_group"), filter.get("virtual_network")
        if not isinstance(group, str) or not isinstance(network, str):
            raise ConfigError(
                f"{address}: an azure.subnet lookup needs an id, or resource_group and virtual_network in its filter",
                hint="filter: {resource_group: RG, virtual_network: VNET}",
            )
        vnet_id = arm_id(self.az.subscription_id, group, VirtualNetwork.arm_type, network)
        with self.az.errors(address, f"list subnets of {vnet_id}"):
            result = self.az.resources.resources.get_by_id(vnet_id, api_version=self.api_version)
        subnets = (dict(result.as_dict()).get("properties") or {}).get("subnets") or []
        return [str(s["id"]) for s in subnets if s.get("id")]

    def estimate_seconds(self, props: SubnetProperties) -> float:
        return 5.0


# ---------------------------------------------------------------------- network security groups


class SecurityRule(ResourceProperties):
    """One rule of a network security group."""

    name: str = prop(description="Rule name, unique in the group.", min_length=1, max_length=80)
    priority: int = prop(description="100-4096; lower runs first.", ge=100, le=4096)
    direction: Literal["Inbound", "Outbound"] = prop(description="Inbound or Outbound.")
    access: Literal["Allow", "Deny"] = prop(description="Allow or Deny.")
    protocol: Literal["Tcp", "Udp", "Icmp", "Esp", "Ah", "*"] = prop("*", description="Protocol; `*` any.")
    source_address_prefix: str = prop("*", description="Source CIDR, service tag or `*`.")
    source_port_range: str = prop("*", description="Source port or range (`80`, `1000-2000`, `*`).")
    destination_address_prefix: str = prop("*", description="Destination CIDR, service tag or `*`.")
    destination_port_range: str = prop("*", description="Destination port or range.")
    description: str = prop("", description="Free text.")


_RULE_FIELDS = {
    "priority": "priority",
    "direction": "direction",
    "access": "access",
    "protocol": "protocol",
    "source_address_prefix": "sourceAddressPrefix",
    "source_port_range": "sourcePortRange",
    "destination_address_prefix": "destinationAddressPrefix",
    "destination_port_range": "destinationPortRange",
    "description": "description",
}


class NetworkSecurityGroupProperties(GroupedProperties):
    name: str = prop(
        description="Group name (1-80 letters, digits, `._-`).",
        force_new=True,
        pattern=r"^[A-Za-z0-9]([-\w.]{0,78}[\w])?$",
    )
    security_rules: list[SecurityRule] = prop(
        default_factory=list, description="The group's own rules (Azure's default rules are always there too)."
    )

    @field_validator("security_rules")
    @classmethod
    def _unique(cls, rules: list[SecurityRule]) -> list[SecurityRule]:
        for what, key in (("name", lambda r: r.name.lower()), ("priority", lambda r: (r.direction, r.priority))):
            seen: set[Any] = set()
            for rule in rules:
                k = key(rule)
                if k in seen:
                    raise ValueError(f"two rules share the {what} of rule {rule.name!r}")
                seen.add(k)
        return rules


class NetworkSecurityGroup(TypedArmResource[NetworkSecurityGroupProperties]):
    """A network security group with its rules inline."""

    type_name = "azure.network_security_group"
    Properties = NetworkSecurityGroupProperties
    arm_type = "Microsoft.Network/networkSecurityGroups"
    api_version = NETWORK_API_VERSION
    description = "An Azure network security group and its security rules."
    attributes = {
        "id": "The ARM id.",
        "provisioning_state": "ARM's provisioning state.",
        "resource_guid": "The group's GUID, set by Azure.",
    }
    recomputed_on_update = frozenset({"provisioning_state"})
    _ENUMS: ClassVar[frozenset[str]] = frozenset({"direction", "access", "protocol"})

    def to_arm(
        self, address: str, props: NetworkSecurityGroupProperties, current: dict[str, Any] | None
    ) -> dict[str, Any]:
        rules = []
        for r in props.security_rules:
            rule = SecurityRule.model_validate(r) if isinstance(r, dict) else r
            rules.append(
                {"name": rule.name, "properties": {arm: getattr(rule, f) for f, arm in _RULE_FIELDS.items()}}
            )
        return {**self.base_body(address, props), "properties": {"securityRules": rules}}

    def from_arm(self, raw: dict[str, Any], applied: NetworkSecurityGroupProperties | None) -> dict[str, Any]:
        rules = []
        for r in (raw.get("properties") or {}).get("securityRules") or []:
            p = r.get("properties") or {}
            rule: dict[str, Any] = {"name": r.get("name")}
            for field, arm in _RULE_FIELDS.items():
                value = p.get(arm, "" if field == "description" else None)
                if field in self._ENUMS and isinstance(value, str):
                    # ARM enums are case-insensitive: report the model's spelling
                    value = next(
                        (v for v in ("Inbound", "Outbound", "Allow", "Deny", "Tcp", "Udp", "Icmp", "Esp", "Ah", "*")
                         if v.lower() == value.lower()),
                        value,
                    )
                rule[field] = value
            rules.append(rule)
        rules.sort(key=lambda r: (str(r["direction"]), int(r["priority"] or 0)))
        if applied is not None:
            # in the order the user wrote them, when the same rules
            # (properties rebuilt from state without validation hold the rules as mappings)
            names = [r["name"] if isinstance(r, dict) else r.name for r in applied.security_rules]
            order = {str(n).lower(): i for i, n in enumerate(names)}
            rules.sort(key=lambda r: order.get(str(r["name"]).lower(), len(order)))
        return {**self.base_properties(raw, applied), "security_rules": rules}

    def attributes_of(self, raw: dict[str, Any]) -> dict[str, Any]:
        return {**super().attributes_of(raw), "resource_guid": (raw.get("properties") or {}).get("resourceGuid")}

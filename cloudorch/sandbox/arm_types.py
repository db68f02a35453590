"""What Azure's resource providers do to the resources they store, for both local ARM servers.

The sandbox's server (`cloudorch/sandbox/arm.py`) and the fault-injecting test double
(`cloudorch/testing/arm.py`) store resources by lower-cased id in a dict; this module gives both
the same resource-provider behaviour for the types the `azure` provider knows by name:
server-set properties (provisioningState, resourceGuid, vaultUri, principalId, primaryEndpoints,
default security rules), the checks a provider makes on a PUT (a subnet inside its network,
purge protection never turned off, one assignment of a role to a principal at a scope), a
virtual network's subnets (child resources ARM reports inside the network, and deletes when a
PUT of the network leaves them out), and role assignments, extension resources at any scope.
Pure functions on the store: the caller holds its lock and sends the HTTP answer.
"""

from __future__ import annotations

import datetime
import ipaddress
import uuid
from typing import Any

VNET = "microsoft.network/virtualnetworks"
SUBNET = "microsoft.network/virtualnetworks/subnets"
NSG = "microsoft.network/networksecuritygroups"
STORAGE = "microsoft.storage/storageaccounts"
VAULT = "microsoft.keyvault/vaults"
IDENTITY = "microsoft.managedidentity/userassignedidentities"
ROLE_ASSIGNMENTS = "microsoft.authorization/roleassignments"

#: namespace -> resource type -> API versions, for the types above (merged into each server's listing)
API_VERSIONS: dict[str, dict[str, list[str]]] = {
    "Microsoft.Network": {
        "virtualNetworks": ["2024-05-01"],
        "virtualNetworks/subnets": ["2024-05-01"],
        "networkSecurityGroups": ["2024-05-01"],
    },
    "Microsoft.KeyVault": {"vaults": ["2023-07-01"]},
    "Microsoft.ManagedIdentity": {"userAssignedIdentities": ["2023-01-31"]},
    "Microsoft.Authorization": {"roleAssignments": ["2022-04-01"]},
}

#: the tenant the servers' identities and vaults live in
TENANT = "00000000-0000-0000-0000-00000000a7e1"

_DEFAULT_RULES = (
    ("AllowVnetInBound", 65000, "Inbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
    ("AllowAzureLoadBalancerInBound", 65001, "Inbound", "Allow", "AzureLoadBalancer", "*"),
    ("DenyAllInBound", 65500, "Inbound", "Deny", "*", "*"),
    ("AllowVnetOutBound", 65000, "Outbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
    ("AllowInternetOutBound", 65001, "Outbound", "Allow", "*", "Internet"),
    ("DenyAllOutBound", 65500, "Outbound", "Deny", "*", "*"),
)


class ArmError(Exception):
    """An ARM error answer: status, code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def _kept(existing: dict[str, Any] | None, key: str, make: Any) -> Any:
    """A server-set value: the one the object already has, else a new one."""
    old = ((existing or {}).get("properties") or {}).get(key)
    return old if old is not None else make()


# ---------------------------------------------------------------------- PUT checks and server-set values


def check_put(
    rtype: str, key: str, body: dict[str, Any], existing: dict[str, Any] | None, resources: dict[str, Any]
) -> None:
    """Raise `ArmError` for a PUT the resource provider refuses."""
    low = rtype.lower()
    props = body.get("properties") or {}
    if low == SUBNET:
        parent = resources.get(key.rsplit("/subnets/", 1)[0])
        prefixes = props.get("addressPrefixes") or ([props["addressPrefix"]] if props.get("addressPrefix") else [])
        if not prefixes:
            raise ArmError(400, "InvalidRequestFormat", "A subnet needs addressPrefix or addressPrefixes.")
        if parent is not None:
            space = ((parent.get("properties") or {}).get("addressSpace") or {}).get("addressPrefixes") or []
            for prefix in prefixes:
                try:
                    net = ipaddress.ip_network(prefix)
                    inside = any(net.subnet_of(ipaddress.ip_network(s)) for s in space)  # type: ignore[arg-type]
                except (ValueError, TypeError):
                    inside = False
                if not inside:
                    raise ArmError(
                        400,
                        "NetcfgSubnetRangeOutsideVnet",
                        f"Subnet '{key.rsplit('/', 1)[-1]}' is not valid because its IP address range "
                        f"{prefix} is outside the IP address range of virtual network.",
                    )
    if low == VAULT and existing is not None:
        old = existing.get("properties") or {}
        if old.get("enablePurgeProtection") and props.get("enablePurgeProtection") is False:
            raise ArmError(
                400, "BadRequest", "The property \"enablePurgeProtection\" cannot be set to false once enabled."
            )
        days = props.get("softDeleteRetentionInDays")
        if days is not None and days != old.get("softDeleteRetentionInDays"):
            raise ArmError(
                400, "BadRequest", "The property \"softDeleteRetentionInDays\" cannot be changed after creation."
            )


def server_properties(
    rtype: str,
    rid: str,
    name: str,
    resource: dict[str, Any],
    existing: dict[str, Any] | None,
    resources: dict[str, dict[str, Any]],
) -> None:
    """Add to `resource` (the stored body) what the resource provider sets itself."""
    low = rtype.lower()
    props: dict[str, Any] = resource.setdefault("properties", {})
    if low == VNET:
        props.pop("subnets", None)  # kept as child resources, put back by `view`
        props["resourceGuid"] = _kept(existing, "resourceGuid", lambda: str(uuid.uuid4()))
        props.setdefault("enableDdosProtection", False)
        props.setdefault("dhcpOptions", {"dnsServers": []})
    elif low == SUBNET:
        props.setdefault("privateEndpointNetworkPolicies", "Disabled")
        props.setdefault("privateLinkServiceNetworkPolicies", "Enabled")
        if props.get("networkSecurityGroup") is None:
            props.pop("networkSecurityGroup", None)
        resource.pop("location", None)
        network = resources.get(rid.lower().rsplit("/subnets/", 1)[0]) or {}
        location = network.get("location")
        for endpoint in props.get("serviceEndpoints") or []:
            endpoint.setdefault("locations", [location or "*"])
            endpoint["provisioningState"] = "Succeeded"
        resource["type"] = "Microsoft.Network/virtualNetworks/subnets"
    elif low == NSG:
        props["resourceGuid"] = _kept(existing, "resourceGuid", lambda: str(uuid.uuid4()))
        for rule in props.get("securityRules") or []:
            rule["id"] = f"{rid}/securityRules/{rule.get('name')}"
            rule["type"] = "Microsoft.Network/networkSecurityGroups/securityRules"
            rp = rule.setdefault("properties", {})
            rp["provisioningState"] = "Succeeded"
            for k in ("sourceAddressPrefixes", "destinationAddressPrefixes"):
                rp.setdefault(k, [])
            for k in ("sourcePortRanges", "destinationPortRanges"):
                rp.setdefault(k, [])
        props["defaultSecurityRules"] = [
            {
                "name": n,
                "id": f"{rid}/defaultSecurityRules/{n}",
                "properties": {
                    "priority": p, "direction": d, "access": a, "protocol": "*",
                    "sourceAddressPrefix": s, "destinationAddressPrefix": t,
                    "sourcePortRange": "*", "destinationPortRange": "*", "provisioningState": "Succeeded",
                },
            }
            for n, p, d, a, s, t in _DEFAULT_RULES
        ]
    elif low == STORAGE:
        props["primaryEndpoints"] = {
            service: f"https://{name}.{service}.core.windows.net/"
            for service in ("blob", "queue", "table", "file", "dfs", "web")
        }
        props.setdefault("supportsHttpsTrafficOnly", True)
        props["statusOfPrimary"] = "available"
    elif low == VAULT:
        props["vaultUri"] = f"https://{name}.vault.azure.net/"
        props.setdefault("enableSoftDelete", True)
        props.setdefault("softDeleteRetentionInDays", 90)
        props.setdefault("enableRbacAuthorization", False)
        props.setdefault("accessPolicies", [])
        if existing is not None and (existing.get("properties") or {}).get("enablePurgeProtection"):
            props["enablePurgeProtection"] = True  # once on, a PUT leaving it out keeps it on
    elif low == IDENTITY:
        props.clear()
        props["tenantId"] = TENANT
        props["principalId"] = _kept(existing, "principalId", lambda: str(uuid.uuid4()))
        props["clientId"] = _kept(existing, "clientId", lambda: str(uuid.uuid4()))


# ---------------------------------------------------------------------- virtual networks and their subnets


def view(resources: dict[str, dict[str, Any]], resource: dict[str, Any]) -> dict[str, Any]:
    """A stored resource as GET answers it: a network with its subnets inside."""
    if str(resource.get("type", "")).lower() != VNET:
        return resource
    prefix = str(resource["id"]).lower() + "/subnets/"
    subnets = [
        r for k, r in sorted(resources.items()) if k.startswith(prefix) and "/" not in k[len(prefix) :]
    ]
    return {**resource, "properties": {**resource.get("properties", {}), "subnets": subnets}}


def sync_subnets(resources: dict[str, dict[str, Any]], vnet_id: str, body: dict[str, Any]) -> None:
    """A PUT of a network sets its subnets to those in its body: one left out is deleted, as in ARM."""
    prefix = vnet_id.lower() + "/subnets/"
    wanted: dict[str, dict[str, Any]] = {}
    for subnet in (body.get("properties") or {}).get("subnets") or []:
        name = str(subnet.get("name") or str(subnet.get("id", "")).rsplit("/", 1)[-1])
        wanted[prefix + name.lower()] = {**subnet, "name": name}
    for key in [k for k in resources if k.startswith(prefix) and k not in wanted]:
        del resources[key]
    for key, subnet in wanted.items():
        existing = resources.get(key)
        stored = {
            "id": f"{vnet_id}/subnets/{subnet['name']}",
            "name": subnet["name"],
            "properties": {**dict(subnet.get("properties") or {}), "provisioningState": "Succeeded"},
        }
        server_properties(SUBNET, stored["id"], subnet["name"], stored, existing, resources)
        resources[key] = stored


# ---------------------------------------------------------------------- role assignments (at any scope)


def is_role_assignment(low_parts: list[str]) -> bool:
    """`{scope}/providers/Microsoft.Authorization/roleAssignments/{name}` (the path's parts, lower-cased)."""
    return len(low_parts) >= 6 and low_parts[-4:-1] == ["providers", "microsoft.authorization", "roleassignments"]


def is_role_assignment_list(low_parts: list[str]) -> bool:
    return len(low_parts) >= 5 and low_parts[-3:] == ["providers", "microsoft.authorization", "roleassignments"]


def _scope_exists(scope: str, groups: dict[str, Any], resources: dict[str, Any]) -> bool:
    parts = [p for p in scope.lower().split("/") if p]
    if len(parts) == 2:
        return True  # a subscription
    if len(parts) == 4 and parts[2] == "resourcegroups":
        return parts[3] in groups
    return len(parts) >= 4 and parts[3] in groups and scope.lower() in resources


def role_assignment(
    command: str,
    parts: list[str],
    body: dict[str, Any],
    groups: dict[str, Any],
    resources: dict[str, dict[str, Any]],
) -> tuple[int, Any]:
    """The answer (status, body) to a request on one role assignment; PUT is synchronous, as in ARM."""
    rid = "/" + "/".join(parts)
    key = rid.lower()
    scope = "/" + "/".join(parts[:-4])
    existing = resources.get(key)
    name = parts[-1]
    if command == "GET":
        if existing is None:
            raise ArmError(404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found.")
        return 200, existing
    if command == "DELETE":
        if existing is None:
            return 204, None
        del resources[key]
        return 200, existing
    if command != "PUT":
        raise ArmError(405, "MethodNotAllowed", command)
    try:
        uuid.UUID(name)
    except ValueError:
        raise ArmError(400, "InvalidRoleAssignmentId", f"The role assignment ID '{name}' is not valid.") from None
    if not _scope_exists(scope, groups, resources):
        raise ArmError(404, "ResourceNotFound", f"The scope '{scope}' does not exist.")
    props = body.get("properties") or {}
    role, principal = str(props.get("roleDefinitionId") or ""), str(props.get("principalId") or "")
    if "/providers/microsoft.authorization/roledefinitions/" not in role.lower() or not principal:
        raise ArmError(400, "InvalidRequest", "roleDefinitionId and principalId are required.")
    if existing is not None:
        old = existing["properties"]
        if old["roleDefinitionId"].lower() != role.lower() or old["principalId"].lower() != principal.lower():
            raise ArmError(
                400, "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            )
        return 200, existing
    for other in resources.values():
        p = other.get("properties") or {}
        if (
            str(other.get("type", "")).lower() == ROLE_ASSIGNMENTS
            and str(p.get("scope", "")).lower() == scope.lower()
            and str(p.get("roleDefinitionId", "")).lower() == role.lower()
            and str(p.get("principalId", "")).lower() == principal.lower()
        ):
            raise ArmError(409, "RoleAssignmentExists", f"The role assignment already exists: {other['id']}.")
    now = _now()
    resources[key] = {
        "id": rid,
        "name": name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": role,
            "principalId": principal,
            "principalType": props.get("principalType") or "User",
            "scope": scope,
            "createdOn": now,
            "updatedOn": now,
        },
    }
    return 201, resources[key]


def list_role_assignments(parts: list[str], resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The assignments made at exactly this scope."""
    scope = "/" + "/".join(parts[:-3])
    found = [
        r
        for r in resources.values()
        if str(r.get("type", "")).lower() == ROLE_ASSIGNMENTS
        and str((r.get("properties") or {}).get("scope", "")).lower() == scope.lower()
    ]
    return {"value": sorted(found, key=lambda r: str(r["id"]))}


def is_extension(rid_low: str) -> bool:
    """An extension resource (a role assignment) is not listed among a group's resources."""
    return rid_low.count("/providers/") > 1 or "/providers/microsoft.authorization/" in rid_low

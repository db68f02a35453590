"""The conformance kit on the typed Azure types (networking, storage account, Key Vault, identity,
role assignment), against the ARM test server through the real azure-mgmt-resource client.

Each example declares an out-of-band change made through the SDK's generic resources client (a
PUT of the object as ARM has it, one setting changed), which the next plan must show. Faults go
through `cloudorch_azure.faults.WriteFaults` on every client of the engine's provider; censuses
count with the SDK clients of a provider instance of this module, never through the types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from azure_testkit import SUBSCRIPTION
from cloudorch_azure import AzureConfig, AzureProvider
from cloudorch_azure.faults import WriteFaults
from cloudorch_azure.provider import TOKEN_ENV

from cloudorch.provider.contract import Observed, ProviderContext, ResourceType
from cloudorch.testing.arm import ArmServer
from cloudorch.testing.conformance import ConformanceEnv, ConformanceExample, ConformanceSuite

SEAM = WriteFaults()
_CENSUS: list[AzureProvider] = []
RG = "rg-typed"
RG_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}"
VNET = "vnet-fixture"
TENANT = "11111111-2222-3333-4444-555555555555"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
PRINCIPAL = "0e5c6a3b-8a1b-4c55-9d5a-2c1d7f3a9b01"
PRINCIPAL2 = "7f2d1c4e-3b6a-4e8d-a1c9-5e0b2f4d6a83"

PROVIDER = {
    "subscription_id": SUBSCRIPTION,
    "arm_endpoint": "{arm_url}",
    "ca_bundle": "{ca_bundle}",
    "location": "westeurope",
    "polling_interval": 0,
}


def provider_for(arm: ArmServer, plan_dir: Path) -> AzureProvider:
    config = AzureConfig.model_validate(
        {**PROVIDER, "arm_endpoint": arm.url, "ca_bundle": str(arm.ca_bundle)}
    )
    return AzureProvider(config, "azure", ProviderContext(plan_dir=plan_dir, env={TOKEN_ENV: "test-token"}))


# ---------------------------------------------------------------------- censuses (the SDK's own listing)


def _in_group(arm_type: str) -> Callable[[ResourceType[Any], str, Mapping[str, Any]], int]:
    def census(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
        listed = _CENSUS[0].resources.resources.list_by_resource_group(props["resource_group"])
        return sum(r.type.lower() == arm_type.lower() and r.name == props["name"] for r in listed)

    return census


def _subnets(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    vnet_id = f"{RG_ID}/providers/Microsoft.Network/virtualNetworks/{props['virtual_network']}"
    raw = _CENSUS[0].resources.resources.get_by_id(vnet_id, api_version="2024-05-01").as_dict()
    return sum(s["name"] == props["name"] for s in raw["properties"].get("subnets") or [])


def _assignments(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    from azure.core.rest import HttpRequest

    client = _CENSUS[0].resources
    url = f"{props['scope']}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01"
    response = client.send_request(HttpRequest("GET", url))
    response.raise_for_status()
    return sum(
        a["properties"]["principalId"] == props["principal_id"]
        and a["properties"]["roleDefinitionId"].endswith(props["role_definition_id"].rsplit("/", 1)[-1])
        for a in response.json()["value"]
    )


# ---------------------------------------------------------------------- drift (a PUT through the SDK)


def _drift(api_version: str, change: Callable[[dict[str, Any]], None]) -> Callable[[ResourceType[Any], Observed], None]:
    """Read the object through the SDK, change its body, PUT it back: as someone in the portal would."""

    def drift(rt: ResourceType[Any], seen: Observed) -> None:
        client = _CENSUS[0].resources.resources
        raw = client.get_by_id(seen.id, api_version=api_version).as_dict()
        body = {k: raw[k] for k in ("location", "tags", "properties", "sku", "kind") if raw.get(k) is not None}
        change(body)
        client.begin_create_or_update_by_id(seen.id, body, api_version=api_version, polling_interval=0).result()

    return drift


def _delete_out_of_band(rt: ResourceType[Any], seen: Observed) -> None:
    _CENSUS[0].resources.resources.begin_delete_by_id(seen.id, api_version="2022-04-01", polling_interval=0).result()


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = body
        for p in parents:
            target = target.setdefault(p, {})
        target[last] = value

    return change


def _rules(prop: str, value: Any) -> Any:
    """Rules compared with their defaults filled in, as the plan compares them."""
    from cloudorch_azure.network import SecurityRule

    if prop != "security_rules":
        return value
    return [SecurityRule.model_validate(r).model_dump() for r in value]


RULE = {"name": "https", "priority": 100, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
        "destination_port_range": "443"}
SSH = {"name": "ssh", "priority": 110, "direction": "Inbound", "access": "Deny", "protocol": "Tcp",
       "source_address_prefix": "Internet", "destination_port_range": "22", "description": "no ssh"}


class TestAzureTypedConformance(ConformanceSuite):
    # one seeded sample of each operation's mutating calls (the last always in it): the typed
    # types make one or two, so this is every call but keeps a slow run bounded
    max_calls = 1
    examples = (
        ConformanceExample(
            type="azure.virtual_network",
            minimal={"name": "vnet-{run}", "resource_group": RG, "address_space": ["10.0.0.0/16"]},
            full={"name": "vnet-{run}", "resource_group": RG, "address_space": ["10.0.0.0/16"],
                  "dns_servers": ["10.0.0.4"], "tags": {"owner": "net"}},
            updates={"address_space": ["10.0.0.0/16", "10.1.0.0/16"], "dns_servers": ["10.0.0.5", "10.0.0.6"],
                     "tags": {"owner": "ops"}},
            force_new={"name": "vnet2-{run}"},
            drift=_drift("2024-05-01", _set("properties.dhcpOptions.dnsServers", ["8.8.8.8"])),
            census=_in_group("Microsoft.Network/virtualNetworks"),
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="azure.subnet",
            minimal={"name": "sn-{run}", "virtual_network": VNET, "resource_group": RG,
                     "address_prefixes": ["10.9.1.0/24"]},
            full={"name": "sn-{run}", "virtual_network": VNET, "resource_group": RG,
                  "address_prefixes": ["10.9.1.0/24"], "service_endpoints": ["Microsoft.Storage"],
                  "network_security_group_id": "{nsg_id}"},
            updates={"address_prefixes": ["10.9.2.0/24", "10.9.3.0/24"],
                     "service_endpoints": ["Microsoft.Storage", "Microsoft.KeyVault"],
                     "network_security_group_id": None},
            force_new={"name": "sn2-{run}"},
            drift=_drift("2024-05-01", _set("properties.serviceEndpoints", [])),
            census=_subnets,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="azure.network_security_group",
            minimal={"name": "nsg-{run}", "resource_group": RG},
            full={"name": "nsg-{run}", "resource_group": RG, "security_rules": [RULE, SSH], "tags": {"owner": "net"}},
            updates={"security_rules": [{**RULE, "priority": 200}], "tags": {"owner": "ops"}},
            force_new={"name": "nsg2-{run}"},
            drift=_drift("2024-05-01", _set("properties.securityRules", [])),
            normalise=_rules,
            census=_in_group("Microsoft.Network/networkSecurityGroups"),
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="azure.storage_account",
            minimal={"name": "st{run}", "resource_group": RG},
            full={"name": "st{run}", "resource_group": RG, "sku": "Standard_GRS", "access_tier": "Hot",
                  "min_tls_version": "TLS1_2", "tags": {"owner": "data"}},
            updates={"sku": "Standard_LRS", "access_tier": "Cool", "https_only": False, "min_tls_version": "TLS1_1",
                     "tags": {"owner": "ops"}},
            force_new={"name": "st2{run}"},
            drift=_drift("2023-05-01", _set("properties.minimumTlsVersion", "TLS1_0")),
            census=_in_group("Microsoft.Storage/storageAccounts"),
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="azure.key_vault",
            minimal={"name": "kv-{run}", "resource_group": RG, "tenant_id": TENANT},
            full={"name": "kv-{run}", "resource_group": RG, "tenant_id": TENANT, "sku": "standard",
                  "soft_delete_retention_days": 30, "tags": {"owner": "sec"}},
            updates={"sku": "premium", "purge_protection": True, "enable_rbac_authorization": False,
                     "tags": {"owner": "ops"}},
            force_new={"name": "kv2-{run}"},
            drift=_drift("2023-07-01", _set("properties.enableRbacAuthorization", False)),
            census=_in_group("Microsoft.KeyVault/vaults"),
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="azure.user_assigned_identity",
            minimal={"name": "id-{run}", "resource_group": RG},
            full={"name": "id-{run}", "resource_group": RG, "tags": {"owner": "app"}},
            updates={"tags": {"owner": "ops"}},
            force_new={"name": "id2-{run}"},
            drift=_drift("2023-01-31", _set("tags.owner", "someone-else")),
            census=_in_group("Microsoft.ManagedIdentity/userAssignedIdentities"),
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="azure.role_assignment",
            minimal={"scope": RG_ID, "role_definition_id": READER, "principal_id": PRINCIPAL},
            full={"scope": RG_ID, "principal_id": PRINCIPAL, "principal_type": "ServicePrincipal",
                  "role_definition_id": f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/"
                  f"roleDefinitions/{READER}"},
            force_new={"principal_id": PRINCIPAL2, "role_definition_id": CONTRIBUTOR, "scope": "{vnet_id}"},
            drift=_delete_out_of_band,
            census=_assignments,
            provider_config=PROVIDER,
        ),
    )


@pytest.fixture
def conformance_env(arm: ArmServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ConformanceEnv]:
    """A resource group, a network (for subnets) and a security group, made through the provider,
    and the seam on every client the engine makes from now on."""
    monkeypatch.setenv(TOKEN_ENV, "test-token")  # the crash check's subprocess inherits it
    azure = provider_for(arm, tmp_path)
    rg = azure.resource_type("azure.resource_group")
    rg.create("setup.rg", rg.Properties.model_validate({"name": RG}))
    vnet = azure.resource_type("azure.virtual_network")
    made = vnet.create("setup.vnet", vnet.Properties.model_validate(
        {"name": VNET, "resource_group": RG, "address_space": ["10.9.0.0/16"]}
    ))
    nsg = azure.resource_type("azure.network_security_group")
    group = nsg.create("setup.nsg", nsg.Properties.model_validate({"name": "nsg-fixture", "resource_group": RG}))
    _CENSUS[:] = [azure]
    monkeypatch.setattr(AzureProvider, "extra_policies", [*AzureProvider.extra_policies, SEAM.policy])
    yield ConformanceEnv(
        seam=SEAM,
        values={"arm_url": arm.url, "ca_bundle": str(arm.ca_bundle), "nsg_id": group.id, "vnet_id": made.id},
    )
    azure.close()

"""azure.resource (generic ARM by id) against the ARM test server, which adds defaults like ARM does."""

from __future__ import annotations

from typing import Any

import pytest
from azure_testkit import SUBSCRIPTION, changed_keys, replaced_by
from cloudorch_azure import AzureProvider
from cloudorch_azure.arm_resource import arm_id, parse_arm_id

from cloudorch.errors import ErrorKind, ProviderError
from cloudorch.testing.arm import ArmServer

ADDR = "dev.account"
ACCOUNT_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/acct1"


def account(**overrides: Any) -> dict[str, Any]:
    return {
        "resource_type": "Microsoft.Storage/storageAccounts",
        "api_version": "2023-05-01",
        "name": "acct1",
        "resource_group": "rg-data",
        "sku": {"name": "Standard_LRS"},
        "kind": "StorageV2",
        "tags": {"owner": "data"},
        "properties": {"accessTier": "hot", "encryption": {"services": {"blob": {"enabled": True}}}},
        **overrides,
    }


@pytest.fixture
def group(azure: AzureProvider) -> None:
    rg = azure.resource_type("azure.resource_group")
    rg.create("dev.rg", rg.Properties.model_validate({"name": "rg-data"}))


def test_ids() -> None:
    assert arm_id("s", "rg", "Microsoft.Network/virtualNetworks/subnets", "vnet/a") == (
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/a"
    )
    assert parse_arm_id(ACCOUNT_ID) == (SUBSCRIPTION, "rg-data", "Microsoft.Storage/storageAccounts", "acct1")


def test_lifecycle(azure: AzureProvider, arm: ArmServer, group: None) -> None:
    rt = azure.resource_type("azure.resource")
    user = account()
    props = rt.Properties.model_validate(user)

    created = rt.create(ADDR, props)  # PUT answers 201 + Azure-AsyncOperation, polled to Succeeded
    assert created.id == ACCOUNT_ID
    assert created.attributes["provisioning_state"] == "Succeeded"
    stored = arm.state.resources[ACCOUNT_ID.lower()]
    assert stored["location"] == "westeurope"  # the provider's default location
    assert stored["tags"]["cloudorch:address"] == ADDR
    # ARM added defaults and re-cased an enum; the user's shape hides both
    assert stored["properties"]["minimumTlsVersion"] == "TLS1_0"
    assert stored["properties"]["accessTier"] == "Hot"
    assert stored["sku"] == {"name": "Standard_LRS", "tier": "Standard"}

    seen = rt.read(ADDR, created.id, props)
    assert seen is not None
    assert seen.properties["properties"] == user["properties"]
    assert seen.properties["sku"] == {"name": "Standard_LRS"}
    assert seen.properties["tags"] == {"owner": "data"}
    assert "minimumTlsVersion" in seen.attributes["full_properties"]
    assert changed_keys(rt, seen, user) == set()  # no-change plan

    # drift inside a property the user set is seen; a default the user never set is not
    stored["properties"]["encryption"]["services"]["blob"]["enabled"] = False
    stored["properties"]["minimumTlsVersion"] = "TLS1_2"
    seen = rt.read(ADDR, created.id, props)
    assert seen is not None
    assert changed_keys(rt, seen, user) == {"properties"}

    # update: a property change is a full PUT
    user2 = account(properties={"accessTier": "Cool", "encryption": {"services": {"blob": {"enabled": True}}}})
    assert replaced_by(rt, seen, user2) == set()
    updated = rt.update(ADDR, created.id, props, rt.Properties.model_validate(user2))
    assert changed_keys(rt, updated, user2) == set()
    props = rt.Properties.model_validate(user2)

    # a tags-only change goes through the tags API
    user3 = {**user2, "tags": {"owner": "web"}}
    puts_before = len(arm.requests("PUT"))
    updated = rt.update(ADDR, created.id, props, rt.Properties.model_validate(user3))
    tag_puts = [r for r in arm.requests("PUT")[puts_before:] if r[1].endswith("/tags/default")]
    assert len(tag_puts) == 1 and len(arm.requests("PUT")) == puts_before + 1
    assert arm.state.resources[ACCOUNT_ID.lower()]["tags"] == {
        "team": "platform",
        "owner": "web",
        "cloudorch:address": ADDR,
    }
    assert changed_keys(rt, updated, user3) == set()
    props = rt.Properties.model_validate(user3)

    # force-new: name, type, group, location
    assert replaced_by(rt, updated, {**user3, "name": "acct2"}) == {"name"}
    assert replaced_by(rt, updated, {**user3, "location": "northeurope"}) == {"location"}

    # deleted outside -> None; find -> None; re-create; find recovers it by tag
    del arm.state.resources[ACCOUNT_ID.lower()]
    assert rt.read(ADDR, created.id, props) is None
    assert rt.find(ADDR, props) is None
    rt.create(ADDR, props)
    found = rt.find(ADDR, props)
    assert found is not None and found.id == ACCOUNT_ID

    # import: with an explicit api-version, and without (newest stable from the provider's listing)
    imported = rt.import_(ADDR, ACCOUNT_ID + "?api-version=2023-05-01")
    assert imported.properties["api_version"] == "2023-05-01"
    assert imported.properties["resource_group"] == "rg-data"
    assert imported.properties["properties"]["accessTier"] == "Cool"
    assert "provisioningState" not in imported.properties["properties"]
    assert rt.import_(ADDR, ACCOUNT_ID).properties["api_version"] == "2024-01-01"

    rt.delete(ADDR, created.id, props)
    assert ACCOUNT_ID.lower() not in arm.state.resources
    rt.delete(ADDR, created.id, props)


def test_missing_group_is_a_clear_fatal_error(azure: AzureProvider, arm: ArmServer) -> None:
    rt = azure.resource_type("azure.resource")
    with pytest.raises(ProviderError) as err:
        rt.create(ADDR, rt.Properties.model_validate(account(resource_group="nope")))
    assert err.value.kind is ErrorKind.FATAL
    assert ADDR in str(err.value) and "resource group not found" in str(err.value)
    assert "azure.resource_group" in (err.value.hint or "")


def test_read_when_group_deleted_is_gone(azure: AzureProvider, arm: ArmServer, group: None) -> None:
    rt = azure.resource_type("azure.resource")
    props = rt.Properties.model_validate(account())
    rt.create(ADDR, props)
    azure.resource_type("azure.resource_group").delete(
        "dev.rg", "", azure.resource_type("azure.resource_group").Properties.model_validate({"name": "rg-data"})
    )
    assert rt.read(ADDR, ACCOUNT_ID, props) is None


def test_child_resource_has_no_default_location(azure: AzureProvider, arm: ArmServer, group: None) -> None:
    rt = azure.resource_type("azure.resource")
    vnet = {
        "resource_type": "Microsoft.Network/virtualNetworks",
        "api_version": "2024-05-01",
        "name": "vnet",
        "resource_group": "rg-data",
        "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}},
    }
    subnet = {
        "resource_type": "Microsoft.Network/virtualNetworks/subnets",
        "api_version": "2024-05-01",
        "name": "vnet/a",
        "resource_group": "rg-data",
        "properties": {"addressPrefix": "10.0.1.0/24"},
    }
    rt.create("dev.vnet", rt.Properties.model_validate(vnet))
    seen = rt.create("dev.subnet", rt.Properties.model_validate(subnet))
    assert seen.id.endswith("/virtualNetworks/vnet/subnets/a")
    assert "location" not in arm.state.resources[seen.id.lower()]
    assert changed_keys(rt, seen, subnet) == set()

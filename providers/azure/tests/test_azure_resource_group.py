"""azure.resource_group against the ARM test server with the real ResourceManagementClient."""

from __future__ import annotations

import pytest
from azure_testkit import SUBSCRIPTION, changed_keys, replaced_by
from cloudorch_azure import AzureProvider

from cloudorch.errors import ErrorKind, ProviderError
from cloudorch.testing.arm import ArmServer

ADDR = "dev.rg"


def test_lifecycle(azure: AzureProvider, arm: ArmServer) -> None:
    rt = azure.resource_type("azure.resource_group")
    user = {"name": "rg-web", "location": "West Europe", "tags": {"owner": "web"}}
    props = rt.Properties.model_validate(user)

    # create: ARM stores the address tag and the provider's default tags
    created = rt.create(ADDR, props)
    assert created.id == f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-web"
    stored = arm.state.groups["rg-web"]
    assert stored["tags"] == {"team": "platform", "owner": "web", "cloudorch:address": ADDR}
    assert stored["location"] == "westeurope"

    # read reports the user's shape: no default/address tags, the user's spelling of the region
    seen = rt.read(ADDR, created.id, props)
    assert seen is not None
    assert seen.properties == {"name": "rg-web", "location": "West Europe", "tags": {"owner": "web"}}
    assert seen.attributes["location"] == "westeurope"
    assert changed_keys(rt, seen, user) == set()  # no-change plan

    # update: tags in place
    user2 = {**user, "tags": {"owner": "data"}}
    assert changed_keys(rt, seen, user2) == {"tags"}
    assert replaced_by(rt, seen, user2) == set()
    updated = rt.update(ADDR, created.id, props, rt.Properties.model_validate(user2))
    assert updated.properties["tags"] == {"owner": "data"}
    assert arm.state.groups["rg-web"]["tags"]["owner"] == "data"
    props = rt.Properties.model_validate(user2)

    # force-new: a new location replaces the group
    assert replaced_by(rt, updated, {**user2, "location": "northeurope"}) == {"location"}

    # deleted outside cloudorch -> read None; find by tag also None; re-create works
    del arm.state.groups["rg-web"]
    assert rt.read(ADDR, created.id, props) is None
    assert rt.find(ADDR, props) is None
    again = rt.create(ADDR, props)
    assert rt.find(ADDR, props) == again

    # import by id, then delete (202 + Location polled to completion)
    imported = rt.import_(ADDR, created.id)
    assert imported.properties["name"] == "rg-web"
    assert imported.properties["tags"] == {"owner": "data"}
    rt.delete(ADDR, created.id, props)
    assert "rg-web" not in arm.state.groups
    polls = [r for r in arm.requests("GET") if "operationresults" in r[1]]
    assert [s for _, _, s in polls] == [202, 200]
    rt.delete(ADDR, created.id, props)  # deleting a missing group is not an error


def test_create_refuses_a_group_it_did_not_make(azure: AzureProvider, arm: ArmServer) -> None:
    rt = azure.resource_type("azure.resource_group")
    rt.create("other.rg", rt.Properties.model_validate({"name": "shared"}))
    with pytest.raises(ProviderError) as err:
        rt.create(ADDR, rt.Properties.model_validate({"name": "shared"}))
    assert err.value.kind is ErrorKind.FATAL
    assert ADDR in str(err.value) and "import" in (err.value.hint or "")


def test_authorization_failed_is_fatal_and_names_the_address(azure: AzureProvider, arm: ArmServer) -> None:
    rt = azure.resource_type("azure.resource_group")
    arm.inject(
        403,
        "AuthorizationFailed",
        "The client 'x' does not have authorization to perform action "
        "'Microsoft.Resources/subscriptions/resourcegroups/read'.",
    )
    with pytest.raises(ProviderError) as err:
        rt.read(ADDR, "", rt.Properties.model_validate({"name": "rg"}))
    assert err.value.kind is ErrorKind.FATAL
    assert err.value.address == ADDR
    assert ADDR in str(err.value) and "AuthorizationFailed" in str(err.value)
    assert "role" in (err.value.hint or "")

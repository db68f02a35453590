"""The conformance kit (`cloudorch.testing.conformance`) on the Azure types, against the ARM test
server and Azurite, driven through the engine on generated plan files.

Faults go through `cloudorch_azure.faults.WriteFaults`, an azure-core pipeline policy on every
client of the provider (`AzureProvider.extra_policies`); the crash check's subprocess reads
`CLOUDORCH_AZURE_KILL_AFTER_CALLS`. Censuses count objects with the SDK's own clients of the
test's provider instance, never through the type under test.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from azure_testkit import SUBSCRIPTION
from cloudorch_azure import AzureProvider
from cloudorch_azure.faults import WriteFaults
from cloudorch_azure.provider import TOKEN_ENV

from cloudorch.provider.contract import ResourceType
from cloudorch.testing import RunningServer
from cloudorch.testing.arm import ArmServer
from cloudorch.testing.conformance import ConformanceEnv, ConformanceExample, ConformanceSuite

SEAM = WriteFaults()
#: the provider instance of the running test, whose SDK clients the censuses use
_CENSUS: list[AzureProvider] = []


def _groups(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    return int(bool(_CENSUS[0].resources.resource_groups.check_existence(props["name"])))


def _resources(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    from azure.core.exceptions import ResourceNotFoundError

    id = (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{props['resource_group']}/providers/"
        f"{props['resource_type']}/{props['name']}"
    )
    try:
        _CENSUS[0].resources.resources.get_by_id(id, api_version=props["api_version"])
    except ResourceNotFoundError:
        return 0
    return 1


def _containers(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    return sum(c.name == props["name"] for c in _CENSUS[0].blob_service.list_containers(name_starts_with=props["name"]))


def _blobs(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    container = _CENSUS[0].blob_service.get_container_client(props["container"])
    return sum(b.name == props["name"] for b in container.list_blobs(name_starts_with=props["name"]))

PROVIDER = {
    "subscription_id": SUBSCRIPTION,
    "arm_endpoint": "{arm_url}",
    "ca_bundle": "{ca_bundle}",
    "storage_connection_string": "{storage}",
    "location": "westeurope",
    "polling_interval": 0,
}


ACCOUNT = {
    "resource_type": "Microsoft.Storage/storageAccounts",
    "api_version": "2023-05-01",
    "resource_group": "rg-conformance",
    "sku": {"name": "Standard_LRS"},
    "kind": "StorageV2",
}


class TestAzureConformance(ConformanceSuite):
    examples = (
        ConformanceExample(
            type="azure.resource_group",
            minimal={"name": "rg-{run}"},
            full={"name": "rg-{run}", "tags": {"owner": "web"}},
            updates={"tags": {"owner": "data"}},
            force_new={"name": "rg2-{run}"},
            census=_groups,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="azure.storage_container",
            minimal={"name": "c-{run}"},
            full={"name": "c-{run}", "metadata": {"owner": "web"}},
            updates={"metadata": {"owner": "data"}},
            force_new={"name": "c2-{run}"},
            census=_containers,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="azure.storage_blob",
            minimal={"container": "{container}", "name": "b-{run}.txt", "content": "hello"},
            full={"container": "{container}", "name": "b-{run}.txt", "content": "hello",
                  "content_type": "text/plain", "metadata": {"owner": "web"}},
            updates={"content": "goodbye", "metadata": {"owner": "data"}},
            force_new={"name": "b2-{run}.txt"},
            census=_blobs,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="azure.resource",
            minimal={**ACCOUNT, "name": "acct{run}"},
            full={**ACCOUNT, "name": "acct{run}", "tags": {"owner": "web"},
                  "properties": {"accessTier": "Hot"}},
            updates={"tags": {"owner": "data"}, "properties": {"accessTier": "Cool"}},
            force_new={"name": "acct2{run}"},
            # an import sees ARM's whole view (its defaults, the newest API version), not the
            # subset a plan file wrote
            import_ignore=("api_version", "sku", "properties"),
            census=_resources,
            provider_config=PROVIDER,
        ),
    )


@pytest.fixture
def conformance_env(
    arm: ArmServer, azurite: RunningServer, azure: AzureProvider, monkeypatch: pytest.MonkeyPatch
) -> ConformanceEnv:
    """The seam on every client, and what the examples refer to (a resource group, a blob
    container), set up through the provider."""
    monkeypatch.setenv(TOKEN_ENV, "test-token")  # the crash check's subprocess inherits it
    rg = azure.resource_type("azure.resource_group")
    rg.create("setup.rg", rg.Properties.model_validate({"name": "rg-conformance"}))
    container = azure.resource_type("azure.storage_container")
    props = container.Properties.model_validate({"name": "conformance-blobs"})
    if container.read("setup.container", "conformance-blobs", props) is None:
        container.create("setup.container", props)
    _CENSUS[:] = [azure]  # its clients are made: the seam added now is on the engine's clients only
    monkeypatch.setattr(AzureProvider, "extra_policies", [*AzureProvider.extra_policies, SEAM.policy])
    return ConformanceEnv(
        seam=SEAM,
        values={
            "arm_url": arm.url,
            "ca_bundle": str(arm.ca_bundle),
            "storage": str(azurite.extra["connection_string"]),
            "container": "conformance-blobs",
        }
    )

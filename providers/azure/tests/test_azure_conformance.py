"""The conformance kit (`cloudorch.testing.conformance`) on the Azure types, against the ARM test
server and Azurite, driven through the engine on generated plan files.

The Azure provider has no client-side fault seam yet (the ARM test server injects faults on the
server side only), so the fault and crash checks report `n/a` here.
"""

from __future__ import annotations

import pytest
from azure_testkit import SUBSCRIPTION
from cloudorch_azure import AzureProvider
from cloudorch_azure.provider import TOKEN_ENV

from cloudorch.testing import RunningServer
from cloudorch.testing.arm import ArmServer
from cloudorch.testing.conformance import ConformanceEnv, ConformanceExample, ConformanceSuite

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
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="azure.storage_container",
            minimal={"name": "c-{run}"},
            full={"name": "c-{run}", "metadata": {"owner": "web"}},
            updates={"metadata": {"owner": "data"}},
            force_new={"name": "c2-{run}"},
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="azure.storage_blob",
            minimal={"container": "{container}", "name": "b-{run}.txt", "content": "hello"},
            full={"container": "{container}", "name": "b-{run}.txt", "content": "hello",
                  "content_type": "text/plain", "metadata": {"owner": "web"}},
            updates={"content": "goodbye", "metadata": {"owner": "data"}},
            force_new={"name": "b2-{run}.txt"},
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
            provider_config=PROVIDER,
        ),
    )


@pytest.fixture
def conformance_env(
    arm: ArmServer, azurite: RunningServer, azure: AzureProvider, monkeypatch: pytest.MonkeyPatch
) -> ConformanceEnv:
    """What the examples refer to (a resource group, a blob container), set up through the provider."""
    monkeypatch.setenv(TOKEN_ENV, "test-token")
    rg = azure.resource_type("azure.resource_group")
    rg.create("setup.rg", rg.Properties.model_validate({"name": "rg-conformance"}))
    container = azure.resource_type("azure.storage_container")
    props = container.Properties.model_validate({"name": "conformance-blobs"})
    if container.read("setup.container", "conformance-blobs", props) is None:
        container.create("setup.container", props)
    return ConformanceEnv(
        values={
            "arm_url": arm.url,
            "ca_bundle": str(arm.ca_bundle),
            "storage": str(azurite.extra["connection_string"]),
            "container": "conformance-blobs",
        }
    )

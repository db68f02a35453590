"""The conformance kit (`cloudorch.testing.conformance`) on the Azure types, against the ARM test
server and Azurite, driven through the engine on generated plan files.

The Azure provider has no client-side fault seam yet (the ARM test server injects faults on the
server side only), so the fault and crash checks report `n/a` here.
"""

from __future__ import annotations

import pytest
from azure_arm_server import ArmServer
from azure_testkit import SUBSCRIPTION
from cloudorch_azure.provider import TOKEN_ENV

from cloudorch.testing import RunningServer
from cloudorch.testing.conformance import ConformanceEnv, ConformanceExample, ConformanceSuite

PROVIDER = {
    "subscription_id": SUBSCRIPTION,
    "arm_endpoint": "{arm_url}",
    "ca_bundle": "{ca_bundle}",
    "storage_connection_string": "{storage}",
    "location": "westeurope",
    "polling_interval": 0,
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
    )


@pytest.fixture
def conformance_env(arm: ArmServer, azurite: RunningServer, monkeypatch: pytest.MonkeyPatch) -> ConformanceEnv:
    monkeypatch.setenv(TOKEN_ENV, "test-token")
    return ConformanceEnv(
        values={
            "arm_url": arm.url,
            "ca_bundle": str(arm.ca_bundle),
            "storage": str(azurite.extra["connection_string"]),
        }
    )

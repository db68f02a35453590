"""Classification of ARM faults: throttling with Retry-After, 5xx, connection failures."""

from __future__ import annotations

import pytest
from azure_testkit import provider_config
from cloudorch_azure import AzureConfig, AzureProvider
from cloudorch_azure.provider import TOKEN_ENV

from cloudorch.errors import ErrorKind, ProviderError
from cloudorch.provider.contract import ProviderContext
from cloudorch.testing import RunningServer, free_port
from cloudorch.testing.arm import ArmServer

RG = {"name": "rg-faults"}


def test_two_429s_are_throttled_with_retry_after_then_success(azure: AzureProvider, arm: ArmServer) -> None:
    rt = azure.resource_type("azure.resource_group")
    props = rt.Properties.model_validate(RG)
    arm.inject_throttle(2, retry_after="2")
    for _ in range(2):
        with pytest.raises(ProviderError) as err:
            rt.create("dev.rg", props)
        assert err.value.kind is ErrorKind.THROTTLED
        assert err.value.retry_after == 2.0
        assert err.value.address == "dev.rg"
    # the SDK did not retry on its own: exactly one request per call reached the server
    assert [s for _, _, s in arm.requests()] == [429, 429]
    assert rt.create("dev.rg", props).properties["name"] == "rg-faults"


def test_5xx_is_transient(azure: AzureProvider, arm: ArmServer) -> None:
    rt = azure.resource_type("azure.resource_group")
    arm.inject(503, "ServiceUnavailable", "try later")
    with pytest.raises(ProviderError) as err:
        rt.read("dev.rg", "", rt.Properties.model_validate(RG))
    assert err.value.kind is ErrorKind.TRANSIENT


def test_connection_refused_is_transient(arm: ArmServer, azurite: RunningServer) -> None:
    config = AzureConfig.model_validate(provider_config(arm, azurite, arm_endpoint=f"https://127.0.0.1:{free_port()}"))
    provider = AzureProvider(config, "azure", ProviderContext(env={TOKEN_ENV: "t"}))
    rt = provider.resource_type("azure.resource_group")
    with pytest.raises(ProviderError) as err:
        rt.read("dev.rg", "", rt.Properties.model_validate(RG))
    assert err.value.kind is ErrorKind.TRANSIENT


def test_untrusted_certificate_is_fatal(arm: ArmServer, azurite: RunningServer) -> None:
    config = AzureConfig.model_validate(provider_config(arm, azurite, ca_bundle=None))
    provider = AzureProvider(config, "azure", ProviderContext(env={TOKEN_ENV: "t"}))
    rt = provider.resource_type("azure.resource_group")
    with pytest.raises(ProviderError) as err:
        rt.read("dev.rg", "", rt.Properties.model_validate(RG))
    assert "certificate" in str(err.value).lower() or "ssl" in str(err.value).lower()

"""Azure's Retry-After in its HTTP-date form (delta-seconds: test_azure_faults.py) reaches the engine.

The ARM test server answers 429 with the header; the real azure-mgmt client reads the response.
"""

from __future__ import annotations

import email.utils
import time

import pytest
from cloudorch_azure import AzureProvider

from cloudorch.provider.contract import ErrorKind, ProviderError
from cloudorch.testing.arm import ArmServer


def _throttled(azure: AzureProvider, arm: ArmServer, retry_after: str) -> ProviderError:
    rt = azure.resource_type("azure.resource_group")
    arm.inject_throttle(1, retry_after=retry_after)
    with pytest.raises(ProviderError) as info:
        rt.create("dev.rg", rt.Properties.model_validate({"name": "rg-retry-after"}))
    assert info.value.kind is ErrorKind.THROTTLED
    return info.value


def test_http_date(azure: AzureProvider, arm: ArmServer) -> None:
    seconds = _throttled(azure, arm, email.utils.formatdate(time.time() + 120, usegmt=True)).retry_after
    assert seconds is not None and 100 < seconds <= 120


def test_a_date_in_the_past_means_now(azure: AzureProvider, arm: ArmServer) -> None:
    assert _throttled(azure, arm, email.utils.formatdate(time.time() - 60, usegmt=True)).retry_after == 0.0


def test_garbage_is_ignored(azure: AzureProvider, arm: ArmServer) -> None:
    assert _throttled(azure, arm, "whenever").retry_after is None

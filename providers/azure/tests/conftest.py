"""Fixtures for the Azure provider tests: the provider against Azurite and the ARM test server.

Both servers (`azurite`, and `arm` reset before each test) and each test's own directory and
credential-free environment come from `cloudorch.testing.plugin`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure_testkit import provider_config
from cloudorch_azure import AzureConfig, AzureProvider
from cloudorch_azure.provider import TOKEN_ENV

from cloudorch.provider.contract import ProviderContext
from cloudorch.testing import RunningServer
from cloudorch.testing.arm import ArmServer


@pytest.fixture
def azure(arm: ArmServer, azurite: RunningServer, tmp_path: Path) -> Iterator[AzureProvider]:
    config = AzureConfig.model_validate(provider_config(arm, azurite))
    provider = AzureProvider(config, "azure", ProviderContext(plan_dir=tmp_path, env={TOKEN_ENV: "test-token"}))
    yield provider
    provider.close()

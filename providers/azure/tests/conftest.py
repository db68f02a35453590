"""Fixtures for the Azure provider tests: Azurite and the ARM test server, once per session.

Every test gets its own working directory and an environment without cloud credentials, so
nothing here can reach a real Azure account.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure_arm_server import ArmServer
from azure_testkit import provider_config
from cloudorch_azure import AzureConfig, AzureProvider
from cloudorch_azure.provider import TOKEN_ENV

from cloudorch.provider.contract import ProviderContext
from cloudorch.testing import RunningServer, start_azurite


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("AZURE_", "ARM_", "MSI_", "IDENTITY_", "GOOGLE_", "AWS_", "CLOUDSDK_")):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def arm_server() -> Iterator[ArmServer]:
    server = ArmServer().start()
    yield server
    server.stop()


@pytest.fixture
def arm(arm_server: ArmServer) -> ArmServer:
    arm_server.reset()
    return arm_server


@pytest.fixture(scope="session")
def azurite() -> Iterator[RunningServer]:
    server = start_azurite()
    yield server
    server.stop()


@pytest.fixture
def azure(arm: ArmServer, azurite: RunningServer, tmp_path: Path) -> Iterator[AzureProvider]:
    config = AzureConfig.model_validate(provider_config(arm, azurite))
    provider = AzureProvider(config, "azure", ProviderContext(plan_dir=tmp_path, env={TOKEN_ENV: "test-token"}))
    yield provider
    provider.close()

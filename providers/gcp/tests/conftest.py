"""Fixtures for the GCP provider tests: fake-gcs-server (memory backend), once per session.

Every test gets its own working directory and an environment without cloud credentials, so
nothing here can reach a real Google account.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cloudorch_gcp import GcpConfig, GcpProvider

from cloudorch.provider.contract import ProviderContext
from cloudorch.testing import RunningServer, start_fake_gcs


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("GOOGLE_", "CLOUDSDK_", "STORAGE_EMULATOR", "AZURE_", "AWS_")):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[RunningServer]:
    server = start_fake_gcs()  # every bucket reports location US
    yield server
    server.stop()


@pytest.fixture
def gcp(fake_gcs: RunningServer, tmp_path: Path) -> Iterator[GcpProvider]:
    config = GcpConfig(project="test-project", endpoint=fake_gcs.url, default_labels={"team": "platform"})
    provider = GcpProvider(config, "gcp", ProviderContext(plan_dir=tmp_path, env={}))
    yield provider
    provider.close()

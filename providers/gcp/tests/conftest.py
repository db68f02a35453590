"""Fixtures for the GCP provider tests: the provider against fake-gcs-server.

The server (`fake_gcs`, memory backend, once per session) and each test's own directory and
credential-free environment come from `cloudorch.testing.plugin`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cloudorch_gcp import GcpConfig, GcpProvider

from cloudorch.provider.contract import ProviderContext
from cloudorch.testing import RunningServer


@pytest.fixture
def gcp(fake_gcs: RunningServer, tmp_path: Path) -> Iterator[GcpProvider]:
    config = GcpConfig(project="test-project", endpoint=fake_gcs.url, default_labels={"team": "platform"})
    provider = GcpProvider(config, "gcp", ProviderContext(plan_dir=tmp_path, env={}))
    yield provider
    provider.close()

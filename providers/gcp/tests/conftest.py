"""Fixtures for the GCP provider tests: the provider against fake-gcs-server (Cloud Storage) and
against the Google REST test server (every other API).

fake-gcs-server (`fake_gcs`, memory backend, once per session) and each test's own directory and
credential-free environment come from `cloudorch.testing.plugin`; the Google REST test server
(`google_server` once per session, `google_api` reset for one test) from here. Its fault and
latency knobs are `GoogleServer.fail`, `fail_operation` and `configure`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cloudorch_gcp import GcpConfig, GcpProvider
from cloudorch_gcp.testserver import GoogleServer

from cloudorch.provider.contract import ProviderContext
from cloudorch.testing import RunningServer


@pytest.fixture
def gcp(fake_gcs: RunningServer, tmp_path: Path) -> Iterator[GcpProvider]:
    config = GcpConfig(project="test-project", endpoint=fake_gcs.url, default_labels={"team": "platform"})
    provider = GcpProvider(config, "gcp", ProviderContext(plan_dir=tmp_path, env={}))
    yield provider
    provider.close()


# --------------------------------------------------------------------------- the Google REST test server


@pytest.fixture(scope="session")
def google_server() -> Iterator[GoogleServer]:
    """The Google REST test server (`cloudorch_gcp.testserver`) on a thread, once per session."""
    server = GoogleServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def google_api(google_server: GoogleServer) -> GoogleServer:
    """The Google REST test server with no resources, faults, latency or pending operations."""
    google_server.reset()
    return google_server


@pytest.fixture
def gcp_rest(google_api: GoogleServer, tmp_path: Path) -> Iterator[GcpProvider]:
    """A `gcp` provider whose discovery clients talk to the test server (operations polled at once)."""
    config = GcpConfig(project="test-project", api_endpoint=google_api.url, operation_poll_interval=0,
                       default_labels={"team": "platform"})  # fmt: skip
    provider = GcpProvider(config, "gcp", ProviderContext(plan_dir=tmp_path, env={}))
    yield provider
    provider.close()
